"""The IR analysis behind `q35c.analysis.workload`: what one function's ops compute, read and write.

`analyse(fn)` walks a function body once (into `scf.for` loops, counting their trips) and records its compute ops
(linalg ops and unlowered q35 graph ops), its calls, its copies between memory spaces, and for every value whether
it derives from weights alone; `sources(value)` follows a value through views, slices, copies and loop-carried
values to what it is made of. `group(fa)` assigns every compute op to a kernel, and `body_work` counts the MACs,
ALU ops and address arithmetic of a linalg body (its docstring states the counting rule).
`q35c.analysis.workload` turns these into `KernelWork`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from xdsl.dialects import func, scf
from xdsl.dialects.builtin import AnyFloat, DictionaryAttr, IntegerAttr, IntegerType, StringAttr, TensorType
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import IndexOp, LinalgStructuredOperation
from xdsl.ir import Attribute, Block, BlockArgument, Operation, OpResult, SSAValue
from xdsl.ir.affine import AffineMap

from q35c.dialects.q35 import AttentionOp, EmbedOp, LinearOp, PackedType, WeightOp
from q35c.dialects.q35_collectives import COLLECTIVE_NAMES
from q35c.ir.attrs import DST_SPACE_ATTR, KERNEL_ATTR, SRC_SPACE_ATTR, STORAGE_ATTR, string_attr

FUSED_KERNELS = ("unpack",)

# Ops that only re-view, slice, join or copy tensors: data flows through them unchanged.
_VIEW_OPS = frozenset(
    {
        "tensor.expand_shape",
        "tensor.collapse_shape",
        "tensor.extract_slice",
        "tensor.insert_slice",
        "tensor.cast",
        "tensor.reshape",
        "tensor.concat",
        "bufferization.alloc_tensor",
        "bufferization.materialize_in_destination",
        "linalg.copy",
        "q35_storage.assemble",
    }
)
_COPY_OPS = frozenset({"linalg.copy"})
# Type conversions a matrix unit does on its inputs: in a contraction they belong to the MAC.
_CASTS = frozenset(
    {
        "arith.extf",
        "arith.truncf",
        "arith.sitofp",
        "arith.uitofp",
        "arith.extsi",
        "arith.extui",
        "arith.trunci",
        "arith.index_cast",
        "arith.bitcast",
    }
)
# Casts that only re-view a register's bits: free (see `body_work`).
_FREE_CASTS = frozenset({"arith.bitcast", "arith.index_cast", "arith.index_castui", "arith.extui", "arith.trunci"})
_MUL_OPS = frozenset({"arith.mulf", "arith.muli", "arith.divf", "arith.divsi", "arith.divui"})
_GRAPH_KERNELS = frozenset({"linear", "embed", "rmsnorm", "rope", "attention", "silu", "mul", "add"})


# --------------------------------------------------------------------------------------------------------------
# Small IR helpers
# --------------------------------------------------------------------------------------------------------------


def element_bytes(typ: Attribute) -> float:
    """Bytes of one element of an integer or float type (i1 counts as a byte); 0 for others (index)."""
    if isinstance(typ, IntegerType):
        return max(1, typ.width.data // 8)
    if isinstance(typ, AnyFloat):
        return typ.bitwidth / 8
    return 0.0


def tensor_elements(typ: Attribute) -> float:
    if not isinstance(typ, TensorType):
        return 0.0
    count = 1
    for d in typ.get_shape():
        count *= max(d, 0)
    return float(count)


def tensor_bytes(typ: Attribute) -> float:
    """Bytes of a tensor type, or the exact storage bytes of a `!q35.packed` type."""
    if isinstance(typ, PackedType):
        return float(typ.storage_bytes())
    if not isinstance(typ, TensorType):
        return 0.0
    return tensor_elements(typ) * element_bytes(typ.element_type)


def dtype_name(typ: Attribute) -> str:
    """q35c's dtype name for an element type: fp16, bf16, fp32, fp64, int8, ..."""
    if isinstance(typ, AnyFloat):
        return {16: "bf16" if "bf16" in typ.name else "fp16", 32: "fp32", 64: "fp64"}.get(typ.bitwidth, "fp32")
    if isinstance(typ, IntegerType):
        return f"int{typ.width.data}"
    return "fp32"


def constant_int(value: SSAValue) -> int | None:
    owner = value.owner
    if isinstance(owner, Operation) and owner.name == "arith.constant":
        attr = owner.properties.get("value", owner.attributes.get("value"))
        if isinstance(attr, IntegerAttr):
            return int(attr.value.data)
    return None


def trip_count(loop: scf.ForOp) -> int:
    """Iterations of an scf.for with constant bounds (1 when a bound is not a constant)."""
    lb, ub, step = constant_int(loop.lb), constant_int(loop.ub), constant_int(loop.step)
    if lb is None or ub is None or step is None or step <= 0:
        return 1
    return max(0, -(-(ub - lb) // step))


def iterations(op: Operation) -> int:
    """The size of a linalg op's iteration domain."""
    total = 1
    if isinstance(op, LinalgStructuredOperation):
        for r in op.get_static_loop_ranges():
            total *= r
    return total


def arg_attrs(fn: func.FuncOp) -> list[DictionaryAttr]:
    if fn.arg_attrs is None:
        return [DictionaryAttr({}) for _ in fn.args]
    return list(fn.arg_attrs.data)


def alu_class(op: Operation) -> str:
    """The ALU class of an arith/math op, from its result type: `int`, or `fp16.add`, `fp32.mul`, ..."""
    typ = op.results[0].type if op.results else None
    if not isinstance(typ, AnyFloat):
        return "int"
    kind = "mul" if op.name in _MUL_OPS or op.name.startswith("math.") else "add"
    return f"{'fp16' if typ.bitwidth <= 16 else 'fp32'}.{kind}"


def is_alu(op: Operation) -> bool:
    return (op.name.startswith("arith.") and op.name != "arith.constant") or op.name.startswith("math.")


def inputs_of(op: Operation) -> list[SSAValue]:
    """The values an op reads: its operands, then values from outside that ops in its regions use (gathers)."""
    values = list(op.operands)
    if not op.regions:
        return values
    nested = set(op.walk())
    for inner in nested:
        if inner is op:
            continue
        for v in inner.operands:
            definer = v.owner if isinstance(v, OpResult) else v.owner.parent_op()  # type: ignore[union-attr]
            if definer not in nested and v not in values:
                values.append(v)
    return values


# --------------------------------------------------------------------------------------------------------------
# One function
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Node:
    """A compute op (linalg or q35 graph op) with the product of the trip counts of its enclosing loops."""

    op: Operation
    trips: int
    kernel: int = -1


@dataclass(frozen=True)
class Copy:
    """A copy between memory spaces: what it copies, from and to which space, and its bytes over all trips."""

    op: Operation
    source: SSAValue
    src: str
    dst: str
    amount: float


def copy_spaces(op: Operation) -> tuple[str, str]:
    """(source, destination) memory spaces of a copy: its `q35.src_space`/`q35.dst_space`, else its buffers'."""
    found: list[str] = []
    for key, value in ((SRC_SPACE_ATTR, op.operands[0]), (DST_SPACE_ATTR, op.operands[-1])):
        attr = op.attributes.get(key)
        if isinstance(attr, IntegerAttr):
            found.append(str(attr.value.data))
        else:
            found.append(memory_space(value) or "0")
    return found[0], found[1]


@dataclass
class FunctionInfo:
    """One function body: its compute ops, where their data comes from, and which values derive from weights."""

    fn: func.FuncOp
    nodes: list[Node] = field(default_factory=list[Node])
    node_of: dict[Operation, Node] = field(default_factory=dict[Operation, Node])
    calls: list[tuple[str, int]] = field(default_factory=list[tuple[str, int]])
    copies: list[Copy] = field(default_factory=list["Copy"])
    sinks: list[SSAValue] = field(default_factory=list[SSAValue])
    weight_args: set[SSAValue] = field(default_factory=set[SSAValue])
    side: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    memo: dict[SSAValue, frozenset[SSAValue]] = field(default_factory=dict[SSAValue, frozenset[SSAValue]])
    read_by: dict[Operation, list[SSAValue]] = field(default_factory=dict[Operation, list[SSAValue]])
    collectives: list[tuple[Operation, int]] = field(default_factory=list[tuple[Operation, int]])

    def inputs(self, op: Operation) -> list[SSAValue]:
        if op not in self.read_by:
            self.read_by[op] = inputs_of(op)
        return self.read_by[op]

    def readers(self) -> tuple[dict[SSAValue, set[int]], set[SSAValue]]:
        """Which kernels read each source, and the sources a call or the return reads."""
        readers: dict[SSAValue, set[int]] = {}
        for node in self.nodes:
            for value in self.inputs(node.op):
                for source in self.sources(value):
                    readers.setdefault(source, set()).add(node.kernel)
        sunk = {source for value in self.sinks for source in self.sources(value)}
        return readers, sunk

    def walk(self, block: Block, trips: int) -> None:
        for op in block.ops:
            if isinstance(op, scf.ForOp):
                self._loop(op, trips)
                continue
            if isinstance(op, func.CallOp):
                self.calls.append((op.callee.string_value(), trips))
                self.sinks.extend(op.arguments)
            elif isinstance(op, func.ReturnOp):
                self.sinks.extend(op.operands)
            elif op.name in COLLECTIVE_NAMES:  # data between devices: costed as communication, not a kernel
                self.collectives.append((op, trips))
            elif op.name in _COPY_OPS:
                amount = tensor_bytes(op.operands[0].type) * trips
                self.copies.append(Copy(op, op.operands[0], *copy_spaces(op), amount))
            elif op.name == "bufferization.alloc_tensor" and op.operands and memory_space(op.results[0]) is not None:
                source = op.operands[-1]
                space = memory_space(op.results[0]) or "0"
                self.copies.append(Copy(op, source, "0", space, tensor_bytes(source.type) * trips))
            elif isinstance(op, LinalgStructuredOperation) or (op.name.startswith("q35.") and op.name != WeightOp.name):
                node = Node(op, trips)
                self.nodes.append(node)
                self.node_of[op] = node
            self._propagate_side(op, self.inputs(op))

    def _loop(self, loop: scf.ForOp, trips: int) -> None:
        for arg, init in zip(loop.body.block.args[1:], loop.iter_args, strict=True):
            self.side[arg] = self.side_of(init)
        self.walk(loop.body.block, trips * trip_count(loop))
        # Each result has the side of its own init and yielded value: a staging ring of weight tiles carried
        # next to the token-side output stays weight-side.
        yielded = loop.body.block.last_op
        results = list(loop.results)
        for index, result in enumerate(results):
            values = [loop.iter_args[index]]
            if yielded is not None and index < len(yielded.operands):
                values.append(yielded.operands[index])
            self.side[result] = combined(self.side_of(v) for v in values)

    def _propagate_side(self, op: Operation, values: Iterable[SSAValue]) -> None:
        sides = {self.side_of(v) for v in values}
        side = "token" if "token" in sides else "weight" if "weight" in sides else "neutral"
        for result in op.results:
            self.side[result] = side

    def side_of(self, value: SSAValue) -> str:
        """`weight` (derived from weights alone), `token` (from activations) or `neutral` (constants)."""
        if value in self.side:
            return self.side[value]
        if isinstance(value, BlockArgument) and value.owner is self.fn.body.blocks.first:
            return "weight" if value in self.weight_args else "token"
        return "neutral"

    def sources(self, value: SSAValue) -> frozenset[SSAValue]:
        """What `value` is made of, through views, copies and loops: function arguments, compute-op results,
        call results and weights. Constants and empty tensors contribute nothing."""
        if value in self.memo:
            return self.memo[value]
        self.memo[value] = frozenset()  # a cycle through loop-carried values ends here
        found: set[SSAValue] = set()
        owner = value.owner
        if isinstance(value, BlockArgument):
            parent = value.owner.parent_op()
            if isinstance(parent, scf.ForOp) and value.index > 0:  # the induction variable comes first
                found |= self.sources(parent.iter_args[value.index - 1])
            elif isinstance(parent, func.FuncOp):
                found.add(value)
        elif isinstance(owner, Operation):
            if owner in self.node_of or isinstance(owner, func.CallOp) or owner.name == WeightOp.name:
                found.add(value)
            elif isinstance(owner, scf.ForOp):
                index = list(owner.results).index(value)
                found |= self.sources(owner.iter_args[index])
                yielded = owner.body.block.last_op
                if yielded is not None and index < len(yielded.operands):
                    found |= self.sources(yielded.operands[index])
            elif owner.name in _COPY_OPS and copy_spaces(owner)[1] != "0":
                pass  # staged into an on-chip level: reads of the copy are not main-memory traffic
            else:  # views, slices, copies out and ops this analysis does not know: data flows through
                for operand in owner.operands:
                    if isinstance(operand.type, TensorType | PackedType):
                        found |= self.sources(operand)
        self.memo[value] = frozenset(found)
        return self.memo[value]

    def is_weight(self, source: SSAValue) -> bool:
        return source in self.weight_args or (isinstance(source, OpResult) and source.owner.name == WeightOp.name)


def combined(sides: Iterable[str]) -> str:
    """The side of a value made from values of these sides: token wins over weight, weight over neutral."""
    found = set(sides)
    return "token" if "token" in found else "weight" if "weight" in found else "neutral"


def memory_space(value: SSAValue) -> str | None:
    """The memory space of the buffer `value` is (an alloc_tensor with `memory_space`), through slices."""
    for _ in range(64):
        owner = value.owner
        if not isinstance(owner, Operation):
            return None
        if owner.name == "bufferization.alloc_tensor":
            space = owner.attributes.get("memory_space", owner.properties.get("memory_space"))
            return str(space.value.data) if isinstance(space, IntegerAttr) else None
        if owner.name in ("linalg.copy", "tensor.insert_slice"):
            value = owner.operands[-1]
        elif owner.name == "tensor.extract_slice":
            value = owner.operands[0]
        else:
            return None
    return None


def analyse(fn: func.FuncOp, weight_positions: set[int]) -> FunctionInfo:
    """Analyse one function; `weight_positions` are arguments its callers pass weights in."""
    fa = FunctionInfo(fn)
    block = fn.body.blocks.first
    assert block is not None
    for arg, attrs in zip(block.args, arg_attrs(fn), strict=True):
        tagged = string_attr(attrs, STORAGE_ATTR) is not None or isinstance(arg.type, PackedType)
        if tagged or arg.index in weight_positions:
            fa.weight_args.add(arg)
    for op in block.walk():
        if op.name == WeightOp.name:
            fa.side[op.results[0]] = "weight"
    fa.walk(block, 1)
    return fa


# --------------------------------------------------------------------------------------------------------------
# Kernels of one function
# --------------------------------------------------------------------------------------------------------------


def kernel_name(op: Operation) -> str | None:
    """The `q35.kernel` tag of an op, or the op's name for an unlowered q35 graph op."""
    attr = op.attributes.get(KERNEL_ATTR)
    if isinstance(attr, StringAttr):
        return attr.data
    short = op.name.removeprefix("q35.")
    return short if op.name.startswith("q35.") and short in _GRAPH_KERNELS else None


def producers(fa: FunctionInfo, node: Node) -> Iterable[Node]:
    for value in fa.inputs(node.op):
        for source in fa.sources(value):
            if isinstance(source, OpResult) and source.owner in fa.node_of:
                yield fa.node_of[source.owner]


def group(fa: FunctionInfo) -> list[tuple[str, list[Node]]]:
    """Assign every compute op to a kernel (the list keeps fused kernels as empty entries).

    1. Each tagged op heads a kernel. 2. In program order, an untagged op taking a kernel member's result
    directly as an operand, as that result's only reader, is that kernel's epilogue (the rounding after a
    matmul, the division after attention's e.V). 3. Untagged ops feeding a kernel's members join it
    (dequantization, attention's scores). 4. Anything left joins the kernel of one of its producers, or forms
    a kernel of its own.
    """
    kernels: list[tuple[str, list[Node]]] = []
    for node in fa.nodes:
        name = kernel_name(node.op)
        if name is not None:
            node.kernel = len(kernels)
            kernels.append((name, [node]))
    reader_count: dict[SSAValue, int] = {}
    for node in fa.nodes:
        for source in {s for v in fa.inputs(node.op) for s in fa.sources(v)}:
            reader_count[source] = reader_count.get(source, 0) + 1
    for value in fa.sinks:
        for source in fa.sources(value):
            reader_count[source] = reader_count.get(source, 0) + 1
    for node in fa.nodes:
        if node.kernel != -1:
            continue
        for value in node.op.operands:
            producer = fa.node_of.get(value.owner) if isinstance(value, OpResult) else None
            if producer is not None and producer.kernel != -1 and reader_count.get(value, 0) == 1:
                node.kernel = producer.kernel
                kernels[producer.kernel][1].append(node)
                break
    for index, (_, members) in enumerate(list(kernels)):
        stack = list(members)
        while stack:
            for producer in producers(fa, stack.pop()):
                if producer.kernel == -1:
                    producer.kernel = index
                    kernels[index][1].append(producer)
                    stack.append(producer)
    for node in fa.nodes:
        if node.kernel != -1:
            continue
        owners = [p.kernel for p in producers(fa, node) if p.kernel != -1]
        node.kernel = owners[0] if owners else len(kernels)
        if owners:
            kernels[owners[0]][1].append(node)
        else:
            kernels.append((node.op.name.split(".")[-1], [node]))
    fuse(fa, kernels)
    order = {id(n): i for i, n in enumerate(fa.nodes)}
    return [(name, sorted(members, key=lambda n: order[id(n)])) for name, members in kernels]


def fuse(fa: FunctionInfo, kernels: list[tuple[str, list[Node]]]) -> None:
    """Merge each `unpack` kernel into the one other kernel that reads its codes (if nothing else does)."""
    for index, (name, members) in enumerate(kernels):
        if name not in FUSED_KERNELS or not members:
            continue
        mine = {r for n in members for r in n.op.results}
        readers = {
            node.kernel
            for node in fa.nodes
            if node.kernel != index and any(mine & fa.sources(v) for v in fa.inputs(node.op))
        }
        if len(readers) == 1 and not any(mine & fa.sources(v) for v in fa.sinks):
            target = readers.pop()
            for node in members:
                node.kernel = target
            kernels[target][1].extend(members)
            kernels[index] = (name, [])


def has_reduction(op: LinalgStructuredOperation) -> bool:
    """Whether a linalg op has a reduction loop."""
    return any(t.data == IteratorType.REDUCTION for t in op.get_iterator_types())


def contraction(op: Operation) -> set[Operation]:
    """The add and multiply of `acc + a * b` when `op` is a contraction (has a reduction loop), else empty."""
    if not isinstance(op, LinalgStructuredOperation) or not op.regions or not op.regions[0].blocks:
        return set()
    if not has_reduction(op):
        return set()
    body = op.regions[0].blocks.first
    assert body is not None
    yielded = body.last_op
    if yielded is None or not yielded.operands or not isinstance(yielded.operands[0], OpResult):
        return set()
    add = yielded.operands[0].owner
    if add.name not in ("arith.addf", "arith.addi"):
        return set()
    acc = body.args[-1]
    for mine, other in ((add.operands[0], add.operands[1]), (add.operands[1], add.operands[0])):
        if mine is acc and isinstance(other, OpResult) and other.owner.name in ("arith.mulf", "arith.muli"):
            return {add, other.owner}
    return set()


def mac_dtype(op: Operation) -> str:
    """A contraction's dtype: its narrowest float input (activations; weights are dequantized or converted on
    the way in), else its narrowest integer input. An input that a generic only widened (`arith.extf` of each
    element: the f32 copy of an f16 activation tile that a K-tiled kernel accumulates in f32) counts in the dtype
    it was widened from, the dtype the multiplier needs: fp16 after dequantization, f32 accumulation."""
    types = [_unwidened(v) for v in op.operands[:-1] if isinstance(v.type, TensorType)]
    floats = [t for t in types if isinstance(t, AnyFloat)]
    pool = floats or [t for t in types if isinstance(t, IntegerType)]
    if not pool:
        return "fp32"
    return dtype_name(min(pool, key=lambda t: element_bytes(t)))


def _unwidened(value: SSAValue) -> Attribute:
    """The element type of a tensor `value`, or, when a generic produced it by only widening its one input
    (`arith.extf`), that input's (followed back)."""
    assert isinstance(value.type, TensorType)
    owner = value.owner if isinstance(value, OpResult) else None
    if isinstance(owner, LinalgStructuredOperation) and len(owner.operands) == 2 and owner.regions:
        body = owner.regions[0].blocks.first
        ops = [] if body is None else [o.name for o in body.ops]
        source = owner.operands[0]
        if ops == ["arith.extf", "linalg.yield"] and isinstance(source.type, TensorType):
            return _unwidened(source)
    return value.type.element_type


@dataclass(frozen=True)
class BodyWork:
    """What a linalg op's body does over its whole domain: MACs by dtype, ALU ops by class, and the address
    arithmetic (`index_ops`) that the counting rule leaves out."""

    macs: dict[str, float]
    alu: dict[str, float]
    index_ops: float = 0.0


@lru_cache(maxsize=4096)
def _innermost(indexing: AffineMap) -> int:
    """The innermost loop dim an indexing map reads (-1 for none: a broadcast scalar)."""
    return max(indexing.used_dims(), default=-1)


def _arg_innermost(op: LinalgStructuredOperation) -> list[int]:
    """The innermost loop each block argument varies with: the deepest dim of its operand's indexing map, or the
    last loop for an output of an op with a reduction loop (its value is carried from one iteration to the next)."""
    last = op.get_num_loops() - 1
    reduces = has_reduction(op)
    inputs = len(op.inputs)
    return [last if reduces and i >= inputs else _innermost(m.data) for i, m in enumerate(op.get_indexing_maps())]


def body_work(op: Operation, count: float) -> BodyWork:
    """MACs, ALU ops and address arithmetic of a linalg op run `count` times over its whole domain.

    The counting rule follows each body value to what it depends on: tensor data (a block argument, a
    `tensor.extract` of a tensor defined outside), loop indices (`linalg.index`), constants and values defined
    outside the body (loop-invariant). An arith/math op counts as ALU work only when it depends on tensor data,
    and then once per iteration of the loops down to the innermost loop it varies with, in the op's loop order
    (what loop-invariant code motion leaves in each loop): joining a q3p5 pair in a body over (n, pair, slot)
    runs once per pair, converting a group's scale in a body over (n, group, i) once per group. Ops on indices,
    constants and loop-invariant values alone are address arithmetic, which unrolling and constant folding
    remove: not ALU work, counted in `index_ops` only. Casts that only re-view a register's bits are free:
    `arith.bitcast`, `arith.index_cast`, `arith.extui` (a narrow load zero-extends) and `arith.trunci` (the low
    bits of a register); conversions that compute (`arith.extf`, `truncf`, `sitofp`, `uitofp`, `extsi`, ...)
    are one op. In a contraction the multiply-add and its type conversions belong to the MAC.
    """
    if not isinstance(op, LinalgStructuredOperation) or not op.regions or not op.regions[0].blocks:
        return BodyWork({}, {})
    body = op.regions[0].blocks.first
    assert body is not None
    # runs[d + 1]: how often an op runs whose innermost loop is d (runs[0]: once, outside every loop)
    runs = [count]
    for extent in op.get_static_loop_ranges():
        runs.append(runs[-1] * extent)
    mac_ops = contraction(op)
    macs = {mac_dtype(op): runs[-1]} if mac_ops else {}
    alu: dict[str, float] = {}
    index_ops = 0.0
    innermost: dict[SSAValue, int] = dict(zip(body.args, _arg_innermost(op), strict=True))
    data: set[SSAValue] = set(body.args)
    for inner in body.walk():
        if isinstance(inner, IndexOp):
            innermost[inner.result] = inner.dim.value.data
            continue
        deepest = max((innermost.get(v, -1) for v in inner.operands), default=-1)
        on_data = inner.name == "tensor.extract" or any(v in data for v in inner.operands)
        for result in inner.results:
            innermost[result] = deepest
            if on_data:
                data.add(result)
        if not is_alu(inner) or inner.name in _FREE_CASTS or inner in mac_ops or (mac_ops and inner.name in _CASTS):
            continue
        if on_data:
            key = alu_class(inner)
            alu[key] = alu.get(key, 0.0) + runs[deepest + 1]
        else:
            index_ops += runs[deepest + 1]
    return BodyWork(macs, alu, index_ops)


def graph_op_work(op: Operation) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(MACs, ALU ops, weight elements by dtype) of an unlowered q35 graph op, from its operand types.

    linear: T*N*K MACs; attention: 2*T*H*hd*(C+T) MACs (scores and values) and 4*H*T*(C+T) softmax ops; the
    element-wise ops (rmsnorm, rope, silu, mul, add): one op per result element. A rough stand-in for the
    lowered body, used only where lower-graph has not run.
    """
    shapes = [v.type.get_shape() if isinstance(v.type, TensorType | PackedType) else () for v in op.operands]
    result = op.results[0].type if op.results else None
    dtype = dtype_name(result.element_type) if isinstance(result, TensorType) else "fp16"
    elements = tensor_elements(result) if result is not None else 0.0
    if op.name == LinearOp.name:
        (t, k), (n, _) = shapes[0], shapes[1]
        weight = op.operands[1].type
        stored = "int8" if isinstance(weight, PackedType) and weight.scheme.is_quantized else "fp16"
        return {dtype: float(t * n * k)}, {}, {stored: float(n * k)}
    if isinstance(op, AttentionOp):
        t = shapes[0][0]
        length = op.cache_len + t
        heads, hd = op.num_heads.value.data, op.head_dim.value.data
        return {dtype: 2.0 * t * heads * hd * length}, {"fp32.add": 4.0 * heads * t * length}, {}
    if op.name == EmbedOp.name:
        return {}, {}, {}
    return {}, {"fp32.add": elements}, {}


def read_bytes(fa: FunctionInfo, op: Operation, value: SSAValue, source: SSAValue, trips: int) -> float:
    """Bytes `op` reads of `source` through `value`: what it sees of it, capped at the source's size; a gather
    (a value only used inside the op's body) reads one element per iteration; a q35 embed reads T rows."""
    whole = tensor_bytes(source.type)
    if op.name == EmbedOp.name and isinstance(source.type, PackedType):
        rows, _ = source.type.get_shape()
        tokens = tensor_elements(op.operands[0].type)
        return whole * min(1.0, tokens / rows) * trips
    if value in op.operands:
        seen = tensor_bytes(value.type)
    elif isinstance(value.type, TensorType):
        seen = min(float(iterations(op)), tensor_elements(value.type)) * element_bytes(value.type.element_type)
    else:
        seen = 0.0
    return min(seen, whole) * trips


def whole_bytes(result: SSAValue) -> float:
    """The bytes of the tensor a kernel's output tile ends up in (through insert_slice and loop results)."""
    biggest = tensor_bytes(result.type)
    stack, seen = [result], set[SSAValue]()
    while stack:
        value = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        biggest = max(biggest, tensor_bytes(value.type))
        for use in value.uses:
            if use.operation.name in ("tensor.insert_slice", "linalg.copy", "scf.yield"):
                stack.extend(use.operation.results)
                if use.operation.name == "scf.yield" and isinstance(use.operation.parent_op(), scf.ForOp):
                    stack.extend(use.operation.parent_op().results)  # type: ignore[union-attr]
    return biggest


def consumer_kernel(fa: FunctionInfo, op: Operation) -> int:
    """The kernel of the first compute op that reads what `op` (a copy) produced, through views and loops."""
    stack = list(op.results)
    seen: set[SSAValue] = set()
    while stack:
        value = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        for use in value.uses:
            user: Operation | None = use.operation
            while user is not None and user not in fa.node_of and user.parent_op() is not fa.fn:
                if user.name in _VIEW_OPS or isinstance(user, scf.ForOp):
                    break
                user = user.parent_op()
            if user is None:
                continue
            if user in fa.node_of:
                return fa.node_of[user].kernel
            stack.extend(user.results)
    return -1
