"""Kernels of the non-tiled functions (norms, attention, RoPE, embedding, element-wise): one per kernel of the
cost model's grouping (`q35c.analysis.kernels.group`), each linalg op of it a phase.

A phase is a grid-stride loop over its op's parallel iterations, one output element per thread, its reduction
loops inside (in the IR's order); its result is a global buffer. Phases of one kernel meet at a grid-wide
barrier (a cooperative launch), so a kernel is one launch, as the cost model counts it. An unpacking step the
kernel alone reads (`inlined`) is no phase: a lambda computes it where it is read.

    for (long long flat = blockIdx.x * blockDim.x + threadIdx.x; flat < 4096; flat += gridDim.x * blockDim.x) {
      const long long d0 = ...;                 // parallel dims of the op
      float acc0 = 0.0f;                        // its init (a fill, here)
      for (long long d1 = 0; d1 < 4096LL; ++d1) { ... acc0 = v3; }
      b_ss[...] = acc0;
    }
    q35_grid_sync();
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineDimExpr

from q35c.codegen.cuda.cexpr import UnsupportedIR, ctype, linear_index
from q35c.codegen.cuda.kernel import THREADS, Kernel, Param, c_identifier
from q35c.codegen.cuda.values import Reader, body_lines, element_type, generic_lambda, shape_of
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


def _phase(op: GenericOp, reader: Reader, out_names: list[str], counter: list[int]) -> tuple[list[str], int]:
    ranges = [int(r) for r in op.get_static_loop_ranges()]
    kinds = [t.data for t in op.iterator_types]
    parallel = [i for i, k in enumerate(kinds) if k == IteratorType.PARALLEL]
    reduction = [i for i, k in enumerate(kinds) if k != IteratorType.PARALLEL]
    dims = [f"d{i}" for i in range(len(ranges))]
    total = 1
    for i in parallel:
        total *= ranges[i]
    lines = [
        f"// {op.name} -> {', '.join(v.name_hint or '?' for v in op.results)}",
        f"for (long long flat = (long long)blockIdx.x * blockDim.x + threadIdx.x; flat < {total}LL; "
        "flat += (long long)gridDim.x * blockDim.x) {",
    ]
    stride = 1
    for i in reversed(parallel):
        lines.append(f"  const long long d{i} = (flat / {stride}LL) % {ranges[i]}LL;")
        stride *= ranges[i]
    out_maps = [m.data for m in op.indexing_maps.data[len(op.inputs) :]]
    accs: list[str] = []
    for k, (out, mapping) in enumerate(zip(op.outputs, out_maps, strict=True)):
        if not all(
            isinstance(e, AffineDimExpr) and kinds[e.position] == IteratorType.PARALLEL for e in mapping.results
        ):
            raise UnsupportedIR(f"{op.name}: an output map that is not a projection of parallel dims")
        index = [dims[e.position] for e in mapping.results]  # type: ignore[union-attr]
        acc = f"acc{k}"
        accs.append(acc)
        lines.append(f"  {ctype(element_type(out))} {acc} = {reader.read(out, index)};")
    indent = "  "
    for i in reduction:
        lines.append(f"{indent}for (long long d{i} = 0; d{i} < {ranges[i]}LL; ++d{i}) {{")
        indent += "  "
    body, yields = body_lines(op, reader, dims, accs, counter)
    lines += [f"{indent}{line}" for line in body]
    for acc, value in zip(accs, yields, strict=True):
        lines.append(f"{indent}{acc} = {value};")
    for _ in reduction:
        indent = indent[:-2]
        lines.append(f"{indent}}}")
    for result, mapping, acc, name in zip(op.results, out_maps, accs, out_names, strict=True):
        index = [dims[e.position] for e in mapping.results]  # type: ignore[union-attr]
        lines.append(f"  {name}[{linear_index(index, shape_of(result))}] = {acc};")
    lines.append("}")
    return lines, total


def group_kernel(fn: func.FuncOp, buffers: Buffers, label: str, index: int, members: list[Operation]) -> Kernel:
    """The kernel of one group of linalg ops of `fn` (in program order)."""
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
    body: list[str] = list(lambdas)
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
