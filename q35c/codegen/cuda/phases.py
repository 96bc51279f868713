"""Kernels of the non-tiled functions (norms, attention, RoPE, embedding, element-wise): one per kernel of the
cost model's grouping (`q35c.analysis.kernels.group`), each linalg op of it a phase.

A phase is a grid-stride loop over its op's parallel iterations, one output element per thread, its reduction
loops inside (in the IR's order); its result is a global buffer. A reduction that would leave the GPU idle or
read memory far apart that way is split instead, a warp or a block per output (`split`). Phases of one kernel
meet at a grid-wide barrier (a cooperative launch), so a kernel is one launch, as the cost model counts it. An
unpacking step the kernel alone reads (`inlined`) is no phase: a lambda computes it where it is read.

    for (q35_i flat = blockIdx.x; flat < 1; flat += gridDim.x) {      // RMSNorm's sum of squares: a block
      const int q35_lane = threadIdx.x;                                //   per output
      const q35_i d0 = ...;                                            // parallel dims of the op
      float acc0 = q35_lane == 0 ? 0.0f : 0.0f;                        // its init (a fill), else the identity
      for (q35_i step = q35_lane; step < 4096; step += 256) { ... acc0 = v4; }
      acc0 = q35_block_sum(acc0);
      if (q35_lane == 0) { b_ss[d0] = acc0; }
    }
    q35_grid_sync();
    for (q35_i flat = blockIdx.x * blockDim.x + threadIdx.x; flat < 4096; flat += gridDim.x * blockDim.x) {
      const q35_i d1 = ...;                                            // the scaling: a thread per element
      ... b_y[...] = acc0;
    }
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineDimExpr

from q35c.codegen.cuda.cexpr import UnsupportedIR, ctype, ilit, index_using, index_width, needs_wide
from q35c.codegen.cuda.index import Ix, affine_ix, linear
from q35c.codegen.cuda.kernel import THREADS, Kernel, Param, c_identifier
from q35c.codegen.cuda.values import Reader, body_lines, element_type, generic_lambda, loop_dims, shape_of
from q35c.ir.attrs import FUSED_ATTR, KERNEL_ATTR

PREAMBLE = '#include "q35_cuda.h"\n'


@dataclass
class Buffers:
    """The global buffers of one function: a C name for every value that lives in memory (arguments, call
    results, generic results), unique within the function."""

    names: dict[SSAValue, str]

    @classmethod
    def of(cls, fn: func.FuncOp) -> Buffers:
        names: dict[SSAValue, str] = {}
        taken: set[str] = set()

        def add(value: SSAValue, hint: str) -> None:
            base = f"b_{c_identifier(hint)}"
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}_{n}"
            taken.add(name)
            names[value] = name

        for i, arg in enumerate(fn.args):
            add(arg, arg.name_hint or f"arg{i}")
        for op in fn.walk():
            if isinstance(op, GenericOp) or op.name == "func.call":
                for i, result in enumerate(op.results):
                    if isinstance(result.type, TensorType):
                        add(result, result.name_hint or f"{op.name.split('.')[-1]}{i}")
        return cls(names)


# A reduction whose outputs are too few to fill the GPU one thread each is split: across a warp (each lane folds
# every 32nd reduction step, warp shuffles combine the lanes) or, for very few outputs with long reductions,
# across a block (each thread folds every THREADS-th step; warp shuffles, then shared memory, combine them). The
# combining op must be associative: a sum, a maximum or a minimum of f32, the accumulator read by that op alone.
WARP_MAX_THREADS = 1 << 22
BLOCK_MIN_STEPS = 256
_COMBINE = {
    "arith.addf": ("sum", "0.0f"),
    "arith.maximumf": ("max", "-INFINITY"),
    "arith.maxnumf": ("max", "-INFINITY"),
    "arith.minimumf": ("min", "INFINITY"),
    "arith.minnumf": ("min", "INFINITY"),
}


@dataclass(frozen=True)
class Split:
    """How a phase maps its iterations to threads: `lanes` threads per output (1: a thread per output; 32: a
    warp; THREADS: a block), and per output the combining function and identity of each accumulator."""

    lanes: int
    combines: tuple[tuple[str, str], ...] = ()

    @property
    def scope(self) -> str:
        return "warp" if self.lanes == 32 else "block"

    def header(self, total: str) -> list[str]:
        if self.lanes == 1:
            return [
                f"for (q35_i flat = (q35_i)blockIdx.x * blockDim.x + threadIdx.x; flat < {total}; "
                "flat += (q35_i)gridDim.x * blockDim.x) {"
            ]
        if self.lanes == 32:
            return [
                f"for (q35_i flat = (q35_i)((blockIdx.x * blockDim.x + threadIdx.x) / 32); flat < {total}; "
                "flat += (q35_i)(gridDim.x * blockDim.x / 32)) {",
                "  const int q35_lane = threadIdx.x % 32;",
            ]
        return [
            f"for (q35_i flat = (q35_i)blockIdx.x; flat < {total}; flat += (q35_i)gridDim.x) {{",
            "  const int q35_lane = threadIdx.x;",
        ]


def combines(op: GenericOp) -> tuple[tuple[str, str], ...] | None:
    """(combining op, identity) per output when every output accumulates by one associative f32 op that alone
    reads the accumulator; else None."""
    block = op.body.block
    last = block.last_op
    if last is None:
        return None
    found: list[tuple[str, str]] = []
    for acc, value in zip(block.args[len(op.inputs) :], last.operands, strict=True):
        owner = value.owner
        if not isinstance(owner, Operation) or owner.name not in _COMBINE or ctype(acc.type) != "float":
            return None
        uses = list(acc.uses)
        if len(uses) != 1 or uses[0].operation is not owner:
            return None
        found.append(_COMBINE[owner.name])
    return tuple(found)


def _strides(op: GenericOp, dim: int) -> list[int]:
    """Per tensor input, how far apart (in elements of its row-major layout) its reads of neighbouring `dim`
    iterations are."""
    ranges = [int(r) for r in op.get_static_loop_ranges()]
    dims = [Ix.var(f"d{i}", r if r > 0 else None) for i, r in enumerate(ranges)]
    found: list[int] = []
    for operand, mapping in zip(op.inputs, op.indexing_maps.data[: len(op.inputs)], strict=True):
        if not isinstance(operand.type, TensorType):
            continue
        flat = linear([affine_ix(e, dims) for e in mapping.data.results], shape_of(operand))
        found.append(abs(dict(flat.terms).get(dims[dim].terms[0][0], 0)))
    return found


def split(op: GenericOp, parallel: list[int], reduction: list[int], total: int, steps: int) -> Split:
    """The phase's mapping (see `Split`):

    - a block per output where THREADS threads per output still fit WARP_MAX_THREADS and each thread folds at
      least one step of BLOCK_MIN_STEPS or more (a norm's sum of squares, softmax over a long context);
    - a warp per output where one thread per output would not fill the GPU (fewer than WARP_MAX_THREADS / 32
      outputs), or where neighbouring threads would read memory far apart (the innermost parallel dim strides
      over 16 elements or more in an input) while a warp's lanes read it contiguously (the innermost reduction
      dim strides by at most one element in every input): attention scores over keys laid out in rows;
    - else a thread per output, its reduction loops inside."""
    found = combines(op) if reduction and steps >= 32 else None
    if found is None:
        return Split(1)
    if steps >= BLOCK_MIN_STEPS and total * THREADS <= WARP_MAX_THREADS:
        return Split(THREADS, found)
    if total * 32 <= WARP_MAX_THREADS:
        return Split(32, found)
    if parallel:
        apart = any(s >= 16 for s in _strides(op, parallel[-1]))
        if apart and all(s <= 1 for s in _strides(op, reduction[-1])):
            return Split(32, found)
    return Split(1)


def _phase(op: GenericOp, reader: Reader, out_names: list[str], counter: list[int]) -> tuple[list[str], int]:
    ranges = [int(r) for r in op.get_static_loop_ranges()]
    kinds = [t.data for t in op.iterator_types]
    parallel = [i for i, k in enumerate(kinds) if k == IteratorType.PARALLEL]
    reduction = [i for i, k in enumerate(kinds) if k != IteratorType.PARALLEL]
    dims = [f"d{i}" for i in range(len(ranges))]
    bounded = loop_dims(dims, op)
    total = 1
    for i in parallel:
        total *= ranges[i]
    steps = 1
    for i in reduction:
        steps *= ranges[i]
    mode = split(op, parallel, reduction, total, steps)
    names = ", ".join(v.name_hint or "?" for v in op.results)
    lines = [f"// {op.name} -> {names}" + ("" if mode.lanes == 1 else f" (a {mode.scope} per output)")]
    lines += mode.header(ilit(total))
    stride = 1
    for i in reversed(parallel):
        lines.append(f"  const q35_i d{i} = (flat / {ilit(stride)}) % {ilit(ranges[i])};")
        stride *= ranges[i]
    out_maps = [m.data for m in op.indexing_maps.data[len(op.inputs) :]]
    accs: list[str] = []
    for k, (out, mapping) in enumerate(zip(op.outputs, out_maps, strict=True)):
        if not all(
            isinstance(e, AffineDimExpr) and kinds[e.position] == IteratorType.PARALLEL for e in mapping.results
        ):
            raise UnsupportedIR(f"{op.name}: an output map that is not a projection of parallel dims")
        index = [bounded[e.position] for e in mapping.results]  # type: ignore[union-attr]
        acc = f"acc{k}"
        accs.append(acc)
        init = reader.read(out, index)
        if mode.lanes > 1:
            init = f"q35_lane == 0 ? {init} : {mode.combines[k][1]}"
        lines.append(f"  {ctype(element_type(out))} {acc} = {init};")
    indent = "  "
    if mode.lanes == 1:
        for i in reduction:
            lines.append(f"{indent}for (q35_i d{i} = 0; d{i} < {ilit(ranges[i])}; ++d{i}) {{")
            indent += "  "
    else:
        lines.append(f"  for (q35_i step = q35_lane; step < {ilit(steps)}; step += {mode.lanes}) {{")
        indent += "  "
        stride = 1
        for i in reversed(reduction):
            lines.append(f"{indent}const q35_i d{i} = (step / {ilit(stride)}) % {ilit(ranges[i])};")
            stride *= ranges[i]
    body, yields = body_lines(op, reader, dims, accs, counter)
    lines += [f"{indent}{line}" for line in body]
    for acc, value in zip(accs, yields, strict=True):
        lines.append(f"{indent}{acc} = {value};")
    loops = len(reduction) if mode.lanes == 1 else 1  # the reduction loops, or the one loop over a split's steps
    for _ in range(loops):
        indent = indent[:-2]
        lines.append(f"{indent}}}")
    store = "  "
    if mode.lanes > 1:
        lines += [f"  {acc} = q35_{mode.scope}_{fn}({acc});" for acc, (fn, _) in zip(accs, mode.combines, strict=True)]
        lines.append("  if (q35_lane == 0) {")
        store = "    "
    for result, mapping, acc, name in zip(op.results, out_maps, accs, out_names, strict=True):
        index = [bounded[e.position] for e in mapping.results]  # type: ignore[union-attr]
        lines.append(f"{store}{name}[{linear(index, shape_of(result)).text()}] = {acc};")
    if mode.lanes > 1:
        lines.append("  }")
    lines.append("}")
    return lines, total * mode.lanes


def group_kernel(fn: func.FuncOp, buffers: Buffers, label: str, index: int, members: list[Operation]) -> Kernel:
    """The kernel of one group of linalg ops of `fn` (in program order; 32-bit index arithmetic where the
    members' tensors allow)."""
    with index_width(needs_wide(iter(members), [v for op in members for v in op.operands])):
        return _group_kernel(fn, buffers, label, index, members)


def _group_kernel(fn: func.FuncOp, buffers: Buffers, label: str, index: int, members: list[Operation]) -> Kernel:
    name = c_identifier(f"{fn.sym_name.data}.{index:02d}.{label}")
    reader = Reader(buffers=dict(buffers.names), prefix=name)
    counter = [0]
    phases: list[list[str]] = []
    written: dict[SSAValue, None] = {}
    work = 1
    lambdas: list[str] = []
    for op in members:
        if op.name == "linalg.fill":
            continue  # read as its value where used
        if not isinstance(op, GenericOp):
            raise UnsupportedIR(f"{op.name} in a kernel of {fn.sym_name.data}")
        if inlined(op, members):
            lambda_name = f"u{len(lambdas)}"
            lambdas += generic_lambda(op, reader, lambda_name, counter)
            reader.inline[op.results[0]] = lambda_name
            continue
        outs = [buffers.names[r] for r in op.results]
        lines, total = _phase(op, reader, outs, counter)
        for r in op.results:
            written[r] = None
        phases.append(lines)
        work = max(work, total)
    cooperative = len(phases) > 1
    params: list[Param] = []
    for value in list(reader.used) + [v for v in written if v not in reader.used]:
        params.append(
            Param(buffers.names[value], ctype(element_type(value)), _elements(value), written=value in written)
        )
    body: list[str] = [index_using(), *lambdas]
    for i, phase in enumerate(phases):
        if i:
            body.append("q35_grid_sync();")
        body += phase
    source = [PREAMBLE, *reader.constant_decls, ""] if reader.constant_decls else [PREAMBLE]
    signature = ",\n    ".join(p.declaration() for p in params)
    source.append(f'extern "C" __global__ void __launch_bounds__({THREADS}) {name}(\n    {signature}) {{')
    source += [f"  {line}" for line in body]
    source.append("}\n")
    return Kernel(
        name=name,
        kind=label,
        function=fn.sym_name.data,
        source="\n".join(source),
        params=tuple(params),
        work=work,
        smem_bytes=0,
        cooperative=cooperative,
    )


def inlined(op: GenericOp, members: list[Operation]) -> bool:
    """Whether a generic is computed where it is read instead of stored: an unpacking step (`q35.kernel =
    "unpack"` or `q35.fused`), element-wise, read only by this kernel's ops (the embedding gathers one row of a
    quantized table: only that row is unpacked)."""
    tag = op.attributes.get(KERNEL_ATTR)
    fused = FUSED_ATTR in op.attributes or (isinstance(tag, StringAttr) and tag.data == "unpack")
    if not fused or len(op.results) != 1 or any(t.data != IteratorType.PARALLEL for t in op.iterator_types):
        return False
    mine = set(members)
    stack: list[SSAValue] = [op.results[0]]
    while stack:
        for use in stack.pop().uses:
            user: Operation | None = use.operation
            if user is not None and user.name in _VIEWS:
                stack.extend(user.results)
                continue
            while user is not None and user not in mine:  # a gather in a member's body reads it too
                user = user.parent_op()
            if user is None:
                return False
    return True


_VIEWS = frozenset({"tensor.expand_shape", "tensor.collapse_shape", "tensor.extract_slice"})


def _elements(value: SSAValue) -> int:
    count = 1
    for d in shape_of(value):
        count *= d
    return count
