"""What a compiled module asks of the hardware: the work and traffic every cost model starts from.

`extract(module, graph=None)` reads the IR a target's pipeline produced and returns a `Workload`: plain data,
computed from the IR alone (never from a parameter count), so that a change to a pass shows up in the cost.

- Weights: one `WeightTensor` per storage tensor, from the entry function's arguments tagged `q35.param` /
  `q35.storage` (after materialize-weights), or from `q35.weight` ops and their `!q35.packed` types (before).
- Kernels: a kernel is an op tagged `q35.kernel = "<name>"` with the untagged linalg ops that feed it
  (dequantization, a reduction) or follow it (a final rounding); a function tagged `q35.kernel` (a tiled
  kernel, its loop nest) is one kernel. A kernel tagged `unpack` whose codes feed one other kernel is fused into
  it: the codes stream into the consumer and never reach memory. Before lower-graph, each q35 graph op is a
  kernel of its own, costed from its type (`graph_op_work`).
- Work per kernel call: MACs by dtype -- a contraction (reduction loops, a body yielding acc + a * b) does one
  MAC per iteration of its domain, in the dtype of its narrowest float input -- and element-wise ALU ops, by
  the counting rule of `q35c.analysis.kernels.body_work`: an arith/math op of a linalg body is ALU work only
  when it depends on tensor data, and runs once per iteration of the loops down to the innermost loop it
  varies with; ops on loop indices, constants and loop-invariant values alone are address arithmetic
  (`index_ops`, not costed); casts that re-view bits are free; in a contraction the multiply-add and its type
  conversions belong to the MAC. ALU ops of generics that read weights only (unpacking, dequantization) are
  `weight_alu` (of which `unpack_alu` extracts codes); the rest `token_alu`. This is how unpacking sub-byte
  weights shows up: a q3p5 dense code costs more shifts than an int4 one, an int8 code none
  (`ops_per_weight` sums it per weight).
- Traffic per kernel call: bytes read of weights, of the KV cache (non-weight function arguments an attention
  kernel reads) and of other activations, first reads (each source at most once per call) apart from re-reads:
  what the tile loops read again (a weight tile for each token tile), with the working set between two reads
  of the same bytes, by the rule of `q35c.analysis.reuse` (the cost model decides which memory level serves
  them); a `tensor.extract` gather reads one element per iteration.
  Bytes written: results another kernel, a call or the return uses. And the weight elements its contractions
  consume (what a matrix unit must load). The analysis itself is in `q35c.analysis.kernels`.
- KV-cache bytes written: T new tokens x the KV width, from each `q35.attention`'s k and v operands in the
  graph IR (`graph`): lowering leaves the cache append to the runtime, so the lowered IR no longer shows it.
- Loops: ops inside `scf.for` count once per trip (constant bounds). Copies into a memory space
  (`bufferization.alloc_tensor {memory_space = n}` filled by `linalg.copy` or by its `copy` operand) are bytes
  moved into that level (named by the module's `q35.memory_spaces`); a `linalg.copy` into an on-chip space is
  where main-memory traffic happens, and reads of what it staged are not; `q35.peak_bytes` is collected.
- Identical blocks: a function called N times is analysed once; its kernels carry `calls = N`.
- Placement (a module the `shard` pass rewrote): the module is what one device runs, so every count is per
  device. `q35.placement` gives tp and pp; the ops of the entry function after the k-th `q35.transfer` (and
  everything they call) run on pipeline stage k, so each kernel and collective carries its calls per stage
  (`stage_calls`); each collective (`q35.all_reduce`, `q35.all_gather`, `q35.transfer`) its payload bytes per
  device and the devices taking part, read off its operand and result types.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field, replace
from typing import Any

from xdsl.dialects import func, scf
from xdsl.dialects.builtin import (
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Block, BlockArgument, Operation, OpResult, SSAValue

from q35c.analysis.kernels import (
    FunctionInfo,
    Node,
    analyse,
    arg_attrs,
    body_work,
    consumer_kernel,
    dtype_name,
    graph_op_work,
    group,
    kernel_name,
    read_bytes,
    tensor_bytes,
    tensor_elements,
    trip_count,
    whole_bytes,
)
from q35c.analysis.reuse import LoopDependence, Reread, Site, enclosing_loops, root, split
from q35c.dialects.q35 import AttentionOp, PackedType, WeightOp
from q35c.dialects.q35_collectives import TransferOp, group_size, payload_type
from q35c.ir import attrs
from q35c.ir.attrs import KERNEL_ATTR, PARAM_ATTR, STORAGE_ATTR, string_attr


class Counts(Mapping[str, float]):
    """An immutable mapping of names to amounts (bytes per level, ops per class), sorted by name; picklable."""

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        self._data = {k: float(v) for k, v in sorted((values or {}).items()) if v}

    def __getitem__(self, key: str) -> float:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # The mapping's views and lookups straight from the dict (the cost model adds and scales counts per kernel
    # and per bound of every uncertain figure: the generic Mapping versions were much of its time).
    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[float]:
        return self._data.values()

    def items(self) -> ItemsView[str, float]:
        return self._data.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Counts):
            return self._data == other._data
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return f"Counts({self._data!r})"


def _frozen(values: Mapping[str, float]) -> Counts:
    return Counts(values)


def add_counts(a: Counts, b: Counts, scale: float = 1.0) -> Counts:
    """a + scale * b, key by key."""
    if not b and isinstance(a, Counts):
        return a
    if not a and scale == 1.0 and isinstance(b, Counts):
        return b  # 0 + 1 * v is v
    out = dict(a.items())
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v * scale
    return _frozen(out)


def scale_counts(a: Counts, scale: float) -> Counts:
    if scale == 1.0 and isinstance(a, Counts):
        return a
    return _frozen({k: v * scale for k, v in a.items()})


def _empty() -> Counts:
    return Counts()


@dataclass(frozen=True)
class WeightTensor:
    """One stored tensor of a model parameter: `role` is codes, scale or offset (`packed` before materializing)."""

    param: str
    role: str
    bytes: int


@dataclass(frozen=True)
class KernelWork:
    """One kernel of one function: its work per call, and `calls`, how often it runs per forward pass.

    `weight_*` quantities do not depend on the tokens in flight (a batch shares them); token ALU ops, MACs,
    activation and KV traffic grow with the rows in flight (a batch of B sequences is compiled with B*T rows).
    ALU maps are keyed by op class (`int`, `fp16.add`,
    `fp16.mul`, `fp32.add`, `fp32.mul`; divisions and transcendentals count as `mul`); MACs by dtype; `moved`
    is bytes copied into each memory space; `weight_elements` counts the weights contractions consume, by the
    dtype they consume them in (what a matrix unit must load); `unpack_alu` is the part of the ALU ops done by
    fused `unpack` generics (extracting codes from packed storage; weight-side); `index_ops` is the address
    arithmetic of its bodies, which unrolling and constant folding remove: not costed, kept for reports (as
    compiled). `weight_bytes`, `activation_read` and `kv_read` are first reads (each source at most its size);
    `rereads` are the bytes the tile loops read again, each with the working set a memory level must hold to
    serve them (`q35c.analysis.reuse`).
    """

    name: str
    function: str
    calls: int
    macs: Counts = field(default_factory=_empty)
    weight_alu: Counts = field(default_factory=_empty)
    token_alu: Counts = field(default_factory=_empty)
    weight_bytes: float = 0.0
    weight_elements: Counts = field(default_factory=_empty)
    activation_read: float = 0.0
    activation_written: float = 0.0
    kv_read: float = 0.0
    kv_written: float = 0.0
    moved: Counts = field(default_factory=_empty)
    unpack_alu: float = 0.0
    index_ops: float = 0.0
    rereads: tuple[Reread, ...] = ()
    stage_calls: Counts = field(default_factory=_empty)

    def calls_by_stage(self) -> dict[int, float]:
        """Calls per pipeline stage (all on stage 0 in a module with no pipeline)."""
        return {int(k): v for k, v in self.stage_calls.items()} if self.stage_calls else {0: float(self.calls)}

    @property
    def alu_ops(self) -> float:
        return sum(self.weight_alu.values()) + sum(self.token_alu.values())

    @property
    def mac_count(self) -> float:
        return sum(self.macs.values())

    @property
    def memory_bytes(self) -> float:
        """Bytes this kernel moves to and from the memory the weights live in, per call."""
        return self.weight_bytes + self.activation_read + self.activation_written + self.kv_read + self.kv_written


@dataclass(frozen=True)
class Collective:
    """One collective op of a sharded module (`dialects.q35_collectives`): `kind` (all_reduce, all_gather,
    transfer), the payload bytes per device and call, the devices taking part (a transfer: sender and receiver),
    and how often it runs per pass, per pipeline stage (a transfer counts on the stage that sends it)."""

    kind: str
    payload_bytes: float
    group: int
    calls: int
    stage_calls: Counts = field(default_factory=_empty)
    source: int = 0
    dest: int = 0

    def calls_by_stage(self) -> dict[int, float]:
        return {int(k): v for k, v in self.stage_calls.items()} if self.stage_calls else {0: float(self.calls)}


@dataclass(frozen=True)
class BlockCalls:
    """A function called from another (a decoder block): how often per pass, and the bytes of its results."""

    name: str
    calls: int
    output_bytes: float


@dataclass(frozen=True)
class Workload:
    """Everything the cost models need from one compiled module: one forward pass of `batch` independent
    sequences, each of T tokens after C cached; `tokens` counts the rows in flight (B*T), `context` is C per
    sequence. Every count is the compiled module's: nothing is scaled after compilation."""

    tokens: int
    context: float
    weights: tuple[WeightTensor, ...]
    kernels: tuple[KernelWork, ...]
    blocks: tuple[BlockCalls, ...] = ()
    peak_bytes: Counts = field(default_factory=_empty)
    batch: int = 1
    tp: int = 1
    pp: int = 1
    collectives: tuple[Collective, ...] = ()
    stage_weight_bytes: Counts = field(default_factory=_empty)

    @property
    def devices(self) -> int:
        """Devices the module was compiled for: tp x pp (1 for a module that was not sharded)."""
        return self.tp * self.pp

    @property
    def weight_bytes(self) -> int:
        """Bytes of every stored weight tensor: what must be resident in device memory."""
        return sum(w.bytes for w in self.weights)

    @property
    def layers(self) -> int:
        """Calls of repeated blocks per pass (decoder layers)."""
        return sum(b.calls for b in self.blocks)

    @property
    def kernel_launches(self) -> int:
        return sum(k.calls for k in self.kernels)

    def total(self, attribute: str) -> float:
        """A numeric KernelWork field summed over every kernel and call (`weight_bytes`, `kv_read`, ...)."""
        return sum(float(getattr(k, attribute)) * k.calls for k in self.kernels)

    @property
    def total_macs(self) -> float:
        return sum(k.mac_count * k.calls for k in self.kernels)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one new token adds, all layers together (KV written / tokens in flight)."""
        return self.total("kv_written") / self.tokens if self.tokens else 0.0

    @property
    def peak_activation_bytes(self) -> float:
        """The largest activation traffic of one kernel call: a bound on the activations live at once."""
        return max((k.activation_read + k.activation_written for k in self.kernels), default=0.0)


@dataclass(frozen=True)
class OpsPerWeight:
    """Ops per weight that contractions consume: weight-side ALU ops split into `unpack` (the codes generics)
    and `dequant` (the other weight-side ops: block scales, dequantization), and `index`, the address
    arithmetic of the same kernels (not costed)."""

    unpack: float
    dequant: float
    index: float

    @property
    def total(self) -> float:
        return self.unpack + self.dequant


def ops_per_weight(work: Workload) -> OpsPerWeight:
    """Per weight a workload's contractions consume (per kernel, its largest weight operand: the scales a
    per-group scaling contraction reads are not weights): its unpacking, dequantization and index ops."""
    weights = sum(max(k.weight_elements.values(), default=0.0) * k.calls for k in work.kernels)
    if not weights:
        return OpsPerWeight(0.0, 0.0, 0.0)
    unpack = sum(k.unpack_alu * k.calls for k in work.kernels)
    weight_side = sum(sum(k.weight_alu.values()) * k.calls for k in work.kernels)
    index = sum(k.index_ops * k.calls for k in work.kernels)
    return OpsPerWeight(unpack / weights, (weight_side - unpack) / weights, index / weights)


def _kernel_work(
    fa: FunctionInfo,
    index: int,
    name: str,
    members: list[Node],
    calls: int,
    kv_written: float,
    readers: tuple[dict[SSAValue, set[int]], set[SSAValue]],
    whole: bool = False,
) -> tuple[KernelWork, set[SSAValue]]:
    """The work of one kernel per call, and the cache arguments it reads (attention only)."""
    mine = {n.op for n in members}
    macs: dict[str, float] = {}
    alu: dict[str, dict[str, float]] = {"weight": {}, "token": {}}
    op_sites: dict[SSAValue, Site] = {}
    sites: list[Site] = []
    loops_of = LoopDependence()
    weight_elements: dict[str, float] = {}
    index_ops = unpack_alu = 0.0
    for node in members:
        op, op_inputs = node.op, fa.inputs(node.op)
        if op.name.startswith("q35."):
            op_macs, op_alu, elements = graph_op_work(op)
            op_macs = {k: v * node.trips for k, v in op_macs.items()}
            op_alu = {k: v * node.trips for k, v in op_alu.items()}
            for k, v in elements.items():
                weight_elements[k] = weight_elements.get(k, 0.0) + v * node.trips
        else:
            work = body_work(op, node.trips)
            op_macs, op_alu = work.macs, work.alu
            index_ops += work.index_ops
            if kernel_name(op) == "unpack":
                unpack_alu += sum(work.alu.values())
            for v in op.operands[:-1] if op_macs else ():
                if fa.side_of(v) == "weight" and isinstance(v.type, TensorType):
                    key = dtype_name(v.type.element_type)
                    weight_elements[key] = weight_elements.get(key, 0.0) + tensor_elements(v.type) * node.trips
        side = "token" if any(fa.side_of(v) == "token" for v in op_inputs) else "weight"
        for k, v in op_macs.items():
            macs[k] = macs.get(k, 0.0) + v
        for k, v in op_alu.items():
            alu[side][k] = alu[side].get(k, 0.0) + v
        for value in op_inputs:
            for source in fa.sources(value):
                if isinstance(source, OpResult) and source.owner in mine:
                    continue
                site = Site(
                    source,
                    read_bytes(fa, op, value, source, 1),
                    enclosing_loops(op, fa.fn),
                    loops_of.of_slice(value, source),
                )
                if source not in op_sites or site.total > op_sites[source].total:
                    op_sites[source] = site
    moved: dict[str, float] = {}
    for copy in fa.copies:
        if not (whole or consumer_kernel(fa, copy.op) == index):
            continue
        if copy.dst != "0":
            moved[copy.dst] = moved.get(copy.dst, 0.0) + copy.amount
        loops = enclosing_loops(copy.op, fa.fn)
        if copy.src == "0" and copy.dst != "0":  # staged in from main memory
            origins = list(fa.sources(copy.source))
            for origin in origins:
                each = tensor_bytes(copy.source.type) / len(origins)
                sites.append(Site(origin, each, loops, loops_of.of_slice(copy.source, origin)))
        elif copy.dst == "0" and copy.src != "0":  # a tile written back: part of the working set
            target = copy.op.operands[-1]
            moving = loops_of.of_slice(target, root(target))
            sites.append(Site(root(target), tensor_bytes(target.type), loops, moving, written=True))
    sites.extend(op_sites.values())

    def kind(source: SSAValue) -> str:
        if fa.is_weight(source):
            return "weight"
        cache = name == "attention" and isinstance(source, BlockArgument)
        return "kv" if cache else "activation"

    traffic = split(sites, kind)
    reads = traffic.first
    caches = {s for s in reads if kind(s) == "kv"}
    weight_bytes = sum(v for s, v in reads.items() if fa.is_weight(s))
    kv_read = sum(v for s, v in reads.items() if s in caches)
    activation_read = sum(v for s, v in reads.items() if not fa.is_weight(s) and s not in caches)
    written = 0.0
    for node in members:
        for result in node.op.results:
            if result in readers[1] or readers[0].get(result, set()) - {index}:
                written += min(tensor_bytes(result.type) * node.trips, whole_bytes(result))
    kernel = KernelWork(
        name=name,
        function=fa.fn.sym_name.data,
        calls=calls,
        macs=_frozen(macs),
        weight_alu=_frozen(alu["weight"]),
        token_alu=_frozen(alu["token"]),
        weight_bytes=weight_bytes,
        weight_elements=_frozen(weight_elements),
        activation_read=activation_read,
        activation_written=written,
        kv_read=kv_read,
        kv_written=kv_written,
        moved=_frozen(moved),
        unpack_alu=unpack_alu,
        index_ops=index_ops,
        rereads=traffic.rereads,
    )
    return kernel, caches


# --------------------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------------------


def functions_of(module: ModuleOp) -> dict[str, func.FuncOp]:
    """The module's defined functions by name."""
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration}


def _entry(functions: Mapping[str, func.FuncOp], called: set[str]) -> str:
    if "main" in functions:
        return "main"
    uncalled = [name for name in functions if name not in called]
    if not uncalled:
        raise ValueError("no entry function: every function is called by another")
    return uncalled[0]


def entry_function(module: ModuleOp) -> func.FuncOp:
    """The entry function: `@main`, else the first function no other calls (ValueError when there is none)."""
    functions = functions_of(module)
    called = {op.callee.string_value() for op in module.walk() if isinstance(op, func.CallOp)}
    return functions[_entry(functions, called)]


def _call_sites(block: Block, trips: int = 1) -> list[tuple[func.CallOp, int]]:
    """Every call in a block, with the trip count of the loops around it."""
    found: list[tuple[func.CallOp, int]] = []
    for op in block.ops:
        if isinstance(op, func.CallOp):
            found.append((op, trips))
        elif isinstance(op, scf.ForOp):
            found.extend(_call_sites(op.body.block, trips * trip_count(op)))
    return found


def _call_order(functions: Mapping[str, func.FuncOp], entry: str) -> tuple[list[str], dict[str, int]]:
    """Functions reachable from the entry, callers before callees, and how often each runs per pass."""
    sites = {name: _call_sites(fn.body.blocks.first) for name, fn in functions.items()}  # type: ignore[arg-type]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name not in functions:
            return
        if name in visiting:
            raise ValueError(f"@{name} is recursive: its cost has no bound")
        visiting.add(name)
        for call, _ in sites[name]:
            visit(call.callee.string_value())
        visiting.discard(name)
        order.append(name)

    visit(entry)
    order.reverse()
    calls = dict.fromkeys(order, 0)
    calls[entry] = 1
    for name in order:
        for call, trips in sites[name]:
            callee = call.callee.string_value()
            if callee in calls:
                calls[callee] += calls[name] * trips
    return order, calls


def _top_level(op: Operation, block: Block) -> Operation | None:
    """The op of `block` that is or contains `op` (None when `op` is elsewhere)."""
    current: Operation | None = op
    for _ in range(64):  # bounded: nesting is a few loops deep
        if current is None or current.parent_block() is block:
            return current
        current = current.parent_op()
    return None


def entry_stages(entry: func.FuncOp) -> dict[Operation, int]:
    """The pipeline stage of each op of the entry function's body: the `to` of the last `q35.transfer` before it
    (a transfer itself counts on the stage that sends it)."""
    block = entry.body.blocks.first
    assert block is not None
    found: dict[Operation, int] = {}
    stage = 0
    for op in block.ops:
        if isinstance(op, TransferOp):
            found[op] = op.source.value.data
            stage = op.dest.value.data
        else:
            found[op] = stage
    return found


def _stage_of(op: Operation, entry: func.FuncOp, stages: Mapping[Operation, int]) -> int:
    block = entry.body.blocks.first
    assert block is not None
    top = _top_level(op, block)
    return stages.get(top, 0) if top is not None else 0


def _stage_calls(
    functions: Mapping[str, func.FuncOp], entry: str, order: list[str], stages: Mapping[Operation, int]
) -> dict[str, dict[int, float]]:
    """Per function other than the entry, how often it runs per pass on each pipeline stage."""
    found: dict[str, dict[int, float]] = {}
    for name in order:
        for call, trips in _call_sites(functions[name].body.blocks.first):  # type: ignore[arg-type]
            callee = call.callee.string_value()
            if callee not in functions:
                continue
            own = {_stage_of(call, functions[entry], stages): 1.0} if name == entry else found.get(name, {})
            into = found.setdefault(callee, {})
            for stage, count in own.items():
                into[stage] = into.get(stage, 0.0) + count * trips
    return found


def _weight_stages(entry: func.FuncOp, stages: Mapping[Operation, int]) -> dict[int, float]:
    """Bytes of the entry's weight arguments per pipeline stage: the stage of each one's first user."""
    found: dict[int, float] = {}
    for arg, attrs_ in zip(entry.args, arg_attrs(entry), strict=True):
        if string_attr(attrs_, PARAM_ATTR) is None:
            continue
        users = [use.operation for use in arg.uses]
        stage = min((_stage_of(u, entry, stages) for u in users), default=0)
        found[stage] = found.get(stage, 0.0) + tensor_bytes(arg.type)
    return found


def _calls_and_weights(module: ModuleOp) -> tuple[set[str], list[WeightOp]]:
    """The names of the functions called anywhere in `module`, and its `q35.weight` ops (one walk)."""
    called: set[str] = set()
    weights: list[WeightOp] = []
    for op in module.walk():
        if isinstance(op, func.CallOp):
            called.add(op.callee.string_value())
        elif isinstance(op, WeightOp):
            weights.append(op)
    return called, weights


def _weight_tensors(
    functions: Mapping[str, func.FuncOp], called: set[str], weights: Sequence[WeightOp]
) -> tuple[WeightTensor, ...]:
    entry = functions[_entry(functions, called)] if functions else None
    found: list[WeightTensor] = []
    if entry is not None:
        sizes: dict[int, tuple[Attribute, int]] = {}  # by type: an entry's thousands of weights share a few
        for arg, attrs in zip(entry.args, arg_attrs(entry), strict=True):
            param = string_attr(attrs, PARAM_ATTR)
            if param is not None:
                typ = arg.type
                size = sizes.get(id(typ))
                if size is None:
                    size = sizes[id(typ)] = (typ, int(tensor_bytes(typ)))
                found.append(WeightTensor(param, string_attr(attrs, STORAGE_ATTR) or "", size[1]))
    for op in weights:
        typ = op.result.type
        assert isinstance(typ, PackedType)
        found.append(WeightTensor(op.param_name.data, "packed", typ.storage_bytes()))
    return tuple(found)


def kv_appends(graph: ModuleOp) -> dict[str, list[float]]:
    """Per function, the KV-cache bytes each attention appends per call: bytes of the k and v operands of a
    `q35.attention` (graph IR), or the `q35.kv_append_bytes` lower-graph put on its attention kernel."""
    found: dict[str, list[float]] = {}
    for fn in functions_of(graph).values():
        for op in fn.walk():
            if isinstance(op, AttentionOp):
                found.setdefault(fn.sym_name.data, []).append(tensor_bytes(op.k.type) + tensor_bytes(op.v.type))
            elif (appended := attrs.int_attr(op, attrs.KV_APPEND_ATTR)) is not None:
                found.setdefault(fn.sym_name.data, []).append(float(appended))
    return found


def batch_of(module: ModuleOp) -> int:
    """B, the sequences the module runs together: the `batch` of its attention (graph op or lowered kernel)."""
    for op in module.walk():
        if isinstance(op, AttentionOp):
            return op.batch
        if attrs.kernel_kind(op) == "attention" and (batch := attrs.int_attr(op, attrs.BATCH_ATTR)) is not None:
            return batch
    return 1


def _name_spaces(moved: Counts, names: list[str]) -> Counts:
    return _frozen({names[int(k)] if k.isdigit() and int(k) < len(names) else k: v for k, v in moved.items()})


def _tokens(functions: Mapping[str, func.FuncOp], entry: str) -> int:
    """T, the tokens in flight: the length of the entry function's first argument (the token ids)."""
    args = functions[entry].args
    if args and isinstance(args[0].type, TensorType) and args[0].type.get_shape():
        return int(args[0].type.get_shape()[0])
    return 1


def is_kernel_function(fn: func.FuncOp) -> bool:
    """A function tagged `q35.kernel` (a tiled kernel): all of it is one kernel, launched once per call."""
    return isinstance(fn.attributes.get(KERNEL_ATTR), StringAttr)


def extract(
    module: ModuleOp,
    graph: ModuleOp | None = None,
    appends: Mapping[str, list[float]] | None = None,
    batch: int | None = None,
) -> Workload:
    """The workload of `module`. What attention appends to the KV cache comes from `appends` (`kv_appends` of
    the graph IR it was compiled from), else from `graph`, else from `module` itself (its `q35.attention` ops,
    or the attention kernels lower-graph tagged); the batch likewise (`batch_of`) unless given."""
    functions = functions_of(module)
    if not functions:
        raise ValueError("the module has no function to cost")
    called, weight_ops = _calls_and_weights(module)
    entry = _entry(functions, called)
    order, calls = _call_order(functions, entry)
    if appends is None:
        appends = kv_appends(graph if graph is not None else module)
    if batch is None:
        batch = batch_of(graph if graph is not None else module)
    tp, pp = attrs.placement(module)
    stages = entry_stages(functions[entry]) if pp > 1 else {}
    per_stage = _stage_calls(functions, entry, order, stages) if pp > 1 else {}
    weight_positions: dict[str, set[int]] = {}
    kernels: list[KernelWork] = []
    collectives: list[Collective] = []
    context = 0.0
    for name in order:
        fa = analyse(functions[name], weight_positions.get(name, set()))
        for call, _ in _call_sites(functions[name].body.blocks.first):  # type: ignore[arg-type]
            positions = weight_positions.setdefault(call.callee.string_value(), set())
            positions.update(i for i, v in enumerate(call.arguments) if fa.side_of(v) == "weight")
        if calls[name] == 0 or not (fa.nodes or fa.collectives):
            continue
        appended = list(appends.get(name, []))
        groups = group(fa)
        kernel_fn = is_kernel_function(fa.fn)
        if kernel_fn:
            for node in fa.nodes:
                node.kernel = 0
            groups = [(fa.fn.attributes[KERNEL_ATTR].data, list(fa.nodes))]  # type: ignore[union-attr]
        readers = fa.readers()

        def by_stage(op: Operation, name: str = name) -> Counts:
            if pp == 1:
                return Counts()
            if name == entry:
                return Counts({str(_stage_of(op, functions[entry], stages)): 1.0})
            return Counts({str(k): v for k, v in per_stage.get(name, {}).items()})

        for op, trips in fa.collectives:
            collectives.append(_collective(op, calls[name] * trips, by_stage(op), trips))
        for index, (kernel, members) in enumerate(groups):
            if not members:
                continue
            kv = appended.pop(0) if kernel == "attention" and appended else 0.0
            work, caches = _kernel_work(fa, index, kernel, members, calls[name], kv, readers, kernel_fn)
            if pp > 1:
                work = replace(work, stage_calls=by_stage(members[0].op))
            kernels.append(work)
            for cache in caches:
                if isinstance(cache.type, TensorType) and cache.type.get_shape():
                    context = max(context, float(cache.type.get_shape()[0]))
    names = attrs.memory_spaces(module)
    if names:
        kernels = [replace(k, moved=_name_spaces(k.moved, names)) for k in kernels]
    blocks = tuple(
        BlockCalls(name, calls[name], sum(tensor_bytes(t) for t in functions[name].function_type.outputs.data))
        for name in order
        if name != entry and calls[name] > 0 and not is_kernel_function(functions[name])
    )
    return Workload(
        tokens=_tokens(functions, entry),
        context=context / batch,
        weights=_weight_tensors(functions, called, weight_ops),
        kernels=tuple(kernels),
        blocks=blocks,
        peak_bytes=_frozen({k: float(v) for k, v in attrs.peak_bytes(module).items()}),
        batch=batch,
        tp=tp,
        pp=pp,
        collectives=tuple(collectives),
        stage_weight_bytes=_frozen({str(k): v for k, v in _weight_stages(functions[entry], stages).items()})
        if pp > 1
        else _frozen({}),
    )


def _collective(op: Operation, calls: int, stage_calls: Counts, trips: int) -> Collective:
    """The `Collective` of one collective op, run `calls` times per pass (`stage_calls` per stage; scaled by the
    loop `trips` around it)."""
    staged = scale_counts(stage_calls, trips) if trips != 1 else stage_calls
    kind = op.name.removeprefix("q35.")
    source = dest = 0
    if isinstance(op, TransferOp):
        source, dest = op.source.value.data, op.dest.value.data
    return Collective(
        kind=kind,
        payload_bytes=tensor_bytes(payload_type(op)),  # type: ignore[arg-type]
        group=group_size(op),  # type: ignore[arg-type]
        calls=calls,
        stage_calls=staged,
        source=source,
        dest=dest,
    )
