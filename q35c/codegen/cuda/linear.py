"""Linear kernels: a tiled `linear.*` function of the final IR (unpack -> dequantize -> GEMV/GEMM) as CUDA.

What comes from the IR:

- the tile (`q35.tile` = [tile_t, tile_n, tile_k]) and the staged tiles: every operand `schedule-memory` copies
  into shared memory, with the tile shape it copies, and whether it streams through a two-slot ring
  (double buffering) or is staged once (an operand whose tile is the whole tensor);
- the element chain from the staged storage to the weight (`unpack-bits`' generics: bit extraction, sign
  extension, dequantization) and to the activation, printed as C++ lambdas of the tile indices
  (`q35c.codegen.cuda.values.generic_lambda`): no scheme is known here, the arithmetic is the IR's;
- the contraction's body (the multiply-accumulate, SIMT path) and the epilogue generic (the rounding to the
  output type).

The skeleton is fixed: a block walks its steps (tile, K tile) with the next step's cp.async copies in flight
(`q35_stage` into the other ring slot, `q35_wait<1>`), and computes the step from the current slot:

- GEMV (tile_t < 16, the decode): a warp per weight row, lanes along K, a warp sum per row;
- MMA (tile_t and tile_k multiples of 16, prefill and large batches): the step's weights and activations are
  dequantized 16 columns at a time into f16 tiles in shared memory, and each warp runs `nvcuda::wmma`
  16x16x16 tensor-core MMAs (f16 inputs, f32 accumulation) on its share of the output tile.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func, scf
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, TensorType
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Block, BlockArgument, Operation, OpResult, SSAValue

from q35c.codegen.cuda.cexpr import (
    BodyPrinter,
    UnsupportedIR,
    ctype,
    element_size,
    ilit,
    index_using,
    index_width,
    is_half,
    needs_wide,
)
from q35c.codegen.cuda.index import Ix, affine_ix
from q35c.codegen.cuda.kernel import Kernel, Param, c_identifier
from q35c.codegen.cuda.linear_steps import MMA, PAD, PAIR, gemv_step, mma_chunk, mma_step
from q35c.codegen.cuda.values import Reader, element_type, generic_lambda, shape_of
from q35c.ir.attrs import DST_SPACE_ATTR, FUSED_ATTR, KERNEL_ATTR, TILE_ATTR
from q35c.targets.gpu_occupancy import SmLimits
from q35c.util.errors import Q35Error

ALIGN = 128
THREADS = 512  # 16 warps: up to 128 registers per thread (an MMA warp's accumulator tiles, the unpacking chain)


@dataclass(frozen=True)
class Leaf:
    """A staged tile: the IR value the chain reads, the function argument it is a tile of, its tile shape,
    whether it streams through a ring, and which tile index moves its rows (`t` or `n`)."""

    value: SSAValue
    arg: int
    rows: int
    cols: int
    ring: bool
    row_dim: str
    elem: str
    size: int

    @property
    def bytes(self) -> int:
        return self.rows * self.cols * self.size


def _is_leaf(value: SSAValue) -> bool:
    if not isinstance(value, OpResult):
        return False
    op = value.op
    if op.name == "linalg.copy":
        space = op.attributes.get(DST_SPACE_ATTR)
        return isinstance(space, IntegerAttr) and int(space.value.data) != 0
    if op.name == "tensor.extract_slice":
        source = op.operands[0]
        if isinstance(source.type, TensorType) and isinstance(value.type, TensorType):
            src_shape = source.type.get_shape()
            return len(src_shape) == len(value.type.get_shape()) + 1 and src_shape[0] == 2
    return False


def _trace_arg(value: SSAValue, fn: func.FuncOp) -> int:
    """The index of the function argument a staged tile copies from."""
    stack = [value]
    seen: set[SSAValue] = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if isinstance(v, BlockArgument):
            if v.owner is fn.body.block:
                return v.index
            parent = v.owner.parent_op() if isinstance(v.owner, Block) else None
            if isinstance(parent, scf.ForOp) and v.index >= 1:
                stack.append(parent.iter_args[v.index - 1])
            continue
        op = v.owner
        assert isinstance(op, Operation)
        if op.name == "tensor.insert_slice":
            stack += [op.operands[1], op.operands[0]]
        elif op.name in ("tensor.extract_slice", "tensor.expand_shape", "tensor.collapse_shape", "linalg.copy"):
            stack.append(op.operands[0])
    raise UnsupportedIR(f"{fn.sym_name.data}: a staged tile with no argument it copies")


def _chain(start: SSAValue, leaves: dict[SSAValue, None], generics: list[GenericOp]) -> None:
    """Collect the staged tiles and the generics (producers first) that `start` is computed from."""
    if _is_leaf(start):
        leaves[start] = None
        return
    if not isinstance(start, OpResult):
        raise UnsupportedIR(f"{start.name_hint}: an operand that is not staged")
    op = start.op
    if isinstance(op, GenericOp):
        for operand in op.inputs:
            _chain(operand, leaves, generics)
        if op not in generics:
            generics.append(op)
    elif op.name in ("tensor.expand_shape", "tensor.collapse_shape", "tensor.extract_slice"):
        _chain(op.operands[0], leaves, generics)
    elif op.name not in ("tensor.empty", "bufferization.alloc_tensor", "linalg.fill", "arith.constant"):
        raise UnsupportedIR(f"{op.name} on the way to a contraction")


def _contraction(fn: func.FuncOp) -> GenericOp:
    for op in fn.walk():
        attr = op.attributes.get(KERNEL_ATTR)
        if isinstance(op, GenericOp) and attr is not None and getattr(attr, "data", None) == "linear":
            return op
    raise UnsupportedIR(f"{fn.sym_name.data}: no contraction tagged q35.kernel = linear")


def _epilogue(fn: func.FuncOp, contraction: GenericOp, out_elem: str) -> GenericOp:
    after = False
    for op in fn.walk():
        if op is contraction:
            after = True
            continue
        if (
            after
            and isinstance(op, GenericOp)
            and len(op.inputs) == 1
            and FUSED_ATTR not in op.attributes
            and ctype(element_type(op.results[0])) == out_elem
        ):
            return op
    raise UnsupportedIR(f"{fn.sym_name.data}: no epilogue after the contraction")


def _is_mul_add(op: GenericOp) -> bool:
    """Whether the contraction's body is acc + cast(x) * cast(w) (what a tensor core does)."""
    block = op.body.block
    last = block.last_op
    if last is None or not last.operands:
        return False
    total = last.operands[0].owner
    if not isinstance(total, Operation) or total.name != "arith.addf" or block.args[-1] not in total.operands:
        return False
    product = [v for v in total.operands if v is not block.args[-1]]
    owner = product[0].owner if product else None
    if not isinstance(owner, Operation) or owner.name != "arith.mulf":
        return False
    for v in owner.operands:
        while isinstance(v, OpResult) and v.op.name == "arith.extf":
            v = v.op.operands[0]
        if not (isinstance(v, BlockArgument) and v.owner is block and v.index < 2):
            return False
    return True


def _body_lambda(op: GenericOp, name: str, counter: list[int]) -> list[str]:
    """A generic's body as a lambda of its block arguments (the contraction's MAC, the epilogue)."""
    block = op.body.block
    params = [f"{ctype(a.type)} {name}_a{i}" for i, a in enumerate(block.args)]
    names: dict[SSAValue, str] = {a: f"{name}_a{i}" for i, a in enumerate(block.args)}
    printer = BodyPrinter(names, lambda d: "0", lambda t, i: "0", [], counter)
    yields = printer.block(block)
    result = ctype(block.args[-1].type)
    return [
        f"auto {name} = [&]({', '.join(params)}) -> {result} {{",
        *[f"  {x}" for x in printer.lines],
        f"  return {yields[0]};",
        "};",
    ]


@dataclass(frozen=True)
class Chain:
    """What a linear kernel computes per element, from the IR: the staged tiles it reads (`L0`, `L1`, ... in
    order), the lambdas of the generics between them and the contraction, and the C expressions of the
    contraction's operands at tile indices `t`, `n`, `k` (`x_read`, `w_read`), and at `k = PAIR * kk + u` for each
    u < PAIR (`x_pair`, `w_pair`: a GEMV lane takes PAIR neighbouring K columns per step, their index arithmetic
    simplified once for both)."""

    contraction: GenericOp
    epilogue: GenericOp
    leaves: tuple[Leaf, ...]
    lambdas: tuple[str, ...]
    x_read: str
    w_read: str
    x_pair: tuple[str, ...]
    w_pair: tuple[str, ...]
    x_type: str
    w_type: str
    counter: list[int]


def element_chain(fn: func.FuncOp, out_elem: str, tile: tuple[int, int, int] | None = None) -> Chain:
    """The element chain of a tiled linear function (see `Chain`); `t`, `n` and `k` are indices within the tile
    when one is given (their ranges simplify the index arithmetic)."""
    label = fn.sym_name.data
    contraction = _contraction(fn)
    kinds = [t.data for t in contraction.iterator_types]
    if kinds != [IteratorType.PARALLEL, IteratorType.PARALLEL, IteratorType.REDUCTION]:
        raise UnsupportedIR(f"{label}: a contraction that is not (t, n, k)")
    leaves_found: dict[SSAValue, None] = {}
    generics: list[GenericOp] = []
    for operand in contraction.inputs:
        _chain(operand, leaves_found, generics)
    epilogue = _epilogue(fn, contraction, out_elem)
    leaves: list[Leaf] = []
    for value in leaves_found:
        arg = _trace_arg(value, fn)
        rows, cols = shape_of(value)
        whole = [rows, cols] == shape_of(fn.args[arg])
        elem = element_type(value)
        leaves.append(
            Leaf(value, arg, rows, cols, not whole, "t" if arg == 0 else "n", ctype(elem), element_size(elem))
        )
    counter = [0]
    reader = Reader(buffers={leaf.value: f"L{i}" for i, leaf in enumerate(leaves)})
    lambdas: list[str] = []
    for i, op in enumerate(generics):
        name = f"g{i}"
        lambdas += generic_lambda(op, reader, name, counter)
        reader.inline[op.results[0]] = name
    maps = [m.data for m in contraction.indexing_maps]
    bounds = tile or (None, None, None)
    dims = [Ix.var(name, bound) for name, bound in zip(("t", "n", "k"), bounds, strict=True)]
    pairs = Ix.var("kk", None if bounds[2] is None else -(-bounds[2] // PAIR))
    paired = [[dims[0], dims[1], pairs.scale(PAIR) + u] for u in range(PAIR)]
    return Chain(
        contraction=contraction,
        epilogue=epilogue,
        leaves=tuple(leaves),
        lambdas=tuple(lambdas),
        x_read=reader.read(contraction.inputs[0], [affine_ix(e, dims) for e in maps[0].results]),
        w_read=reader.read(contraction.inputs[1], [affine_ix(e, dims) for e in maps[1].results]),
        x_pair=tuple(reader.read(contraction.inputs[0], [affine_ix(e, d) for e in maps[0].results]) for d in paired),
        w_pair=tuple(reader.read(contraction.inputs[1], [affine_ix(e, d) for e in maps[1].results]) for d in paired),
        x_type=ctype(contraction.body.block.args[0].type),
        w_type=ctype(contraction.body.block.args[1].type),
        counter=counter,
    )


def linear_kernel(fn: func.FuncOp, scheme: str, limits: SmLimits | None = None) -> Kernel:
    """The CUDA kernel of a tiled linear function (32-bit index arithmetic where its tensors allow)."""
    with index_width(needs_wide(fn.walk(), fn.args)):
        return _linear_kernel(fn, scheme, limits)


def _linear_kernel(fn: func.FuncOp, scheme: str, limits: SmLimits | None) -> Kernel:
    label = fn.sym_name.data
    tile_attr = fn.attributes.get(TILE_ATTR)
    if not isinstance(tile_attr, DenseArrayBase):
        raise UnsupportedIR(f"{label}: no q35.tile")
    tile_t, tile_n, tile_k = (int(v) for v in tile_attr.get_values())
    x_arg = fn.args[0]
    t_total, k_total = shape_of(x_arg)
    result_type = fn.function_type.outputs.data[0]
    assert isinstance(result_type, TensorType)
    n_total = int(result_type.get_shape()[1])
    out_elem = ctype(result_type.element_type)
    chain = element_chain(fn, out_elem, (tile_t, tile_n, tile_k))
    contraction, leaves = chain.contraction, chain.leaves
    tiles_t, tiles_n, k_tiles = -(-t_total // tile_t), -(-n_total // tile_n), -(-k_total // tile_k)
    mma = tile_t % MMA == 0 and tile_k % MMA == 0 and _is_mul_add(contraction) and is_half(result_type.element_type)
    path = "mma" if mma else "gemv"

    # Shared memory layout: staged tiles (two slots when ringed), then the path's own buffers.
    offset = 0
    layout: list[tuple[Leaf, int]] = []
    for leaf in leaves:
        layout.append((leaf, offset))
        offset += -(-leaf.bytes * (2 if leaf.ring else 1) // ALIGN) * ALIGN
    n_pad = -(-tile_n // MMA) * MMA
    extra: dict[str, int] = {}
    threads = THREADS if limits is None else min(THREADS, limits.max_threads_per_block)
    warps = threads // 32
    chunk = mma_chunk(tile_k)
    if mma:
        for key, size in (
            ("wh", n_pad * (chunk + PAD) * 2),
            ("xh", tile_t * (chunk + PAD) * 2),
            ("scratch", warps * 256 * 4),
        ):
            extra[key] = offset
            offset += -(-size // ALIGN) * ALIGN
    elif k_tiles > 1:
        extra["part"] = offset
        offset += -(-tile_t * tile_n * 4 // ALIGN) * ALIGN
    smem = offset
    if limits is not None and smem > limits.max_shared_memory_per_block_bytes:
        raise Q35Error(
            f"{label}: its tile ({tile_t}x{tile_n}x{tile_k}) needs {smem:,} B of shared memory per block on the "
            f"{path.upper()} path; {limits.arch} allows {limits.max_shared_memory_per_block_bytes:,} B "
            "(a smaller budget-bytes or tile-n option fits)"
        )

    lambdas, x_read, w_read = chain.lambdas, chain.x_read, chain.w_read
    x_type, w_type = chain.x_type, chain.w_type
    counter = chain.counter
    mac = _body_lambda(contraction, "mac", counter)
    epi = _body_lambda(chain.epilogue, "epi", counter)

    name = c_identifier(label)
    params = [Param(f"arg{i}", ctype(element_type(a)), _count(a), written=False) for i, a in enumerate(fn.args)] + [
        Param("y", out_elem, t_total * n_total, written=True)
    ]
    lines: list[str] = [
        '#include "q35_cuda.h"',
        f"// {label}: {scheme}, T={t_total} N={n_total} K={k_total}, tile {tile_t}x{tile_n}x{tile_k}, {path} path",
        f'extern "C" __global__ void __launch_bounds__({threads}, 1) {name}(',
        "    " + ",\n    ".join(p.declaration() for p in params) + ") {",
        f"  {index_using()}",
        "  extern __shared__ __align__(128) unsigned char q35_smem[];",
        f"  const q35_i T = {ilit(t_total)}, N = {ilit(n_total)}, K = {ilit(k_total)};",
        f"  const q35_i TILES_N = {ilit(tiles_n)}, TILES = {ilit(tiles_t * tiles_n)}, KT = {ilit(k_tiles)};",
        "  const q35_i my_tiles = blockIdx.x < TILES ? (TILES - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;",
        "  const q35_i steps = my_tiles * KT;",
        "  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;",
        "  (void)warp; (void)lane;",
    ]
    for i, (leaf, off) in enumerate(layout):
        lines.append(f"  {leaf.elem}* const S{i} = reinterpret_cast<{leaf.elem}*>(q35_smem + {off});")

    def stage(leaf: Leaf, i: int, slot: str) -> str:
        rows_total, cols_total = shape_of(fn.args[leaf.arg])
        r0 = "t0" if leaf.row_dim == "t" else "n0"
        dst = f"S{i} + {slot} * {ilit(leaf.rows * leaf.cols)}" if leaf.ring else f"S{i}"
        return (
            f"q35_stage<{leaf.size}>({dst}, arg{leaf.arg}, {ilit(rows_total)}, {ilit(cols_total)}, {r0}, "
            f"kt * {ilit(leaf.cols)}, {leaf.rows}, {leaf.cols});"
        )

    lines += [
        "  auto coords = [&](q35_i s, q35_i& t0, q35_i& n0, q35_i& kt) {",
        "    const q35_i tile = blockIdx.x + (s / KT) * gridDim.x;",
        f"    t0 = (tile / TILES_N) * {ilit(tile_t)}; n0 = (tile % TILES_N) * {ilit(tile_n)}; kt = s % KT;",
        "  };",
        "  auto issue = [&](q35_i s, int slot) {",
        "    q35_i t0, n0, kt;",
        "    coords(s, t0, n0, kt);",
        "    (void)slot;",
    ]
    lines += [f"    {stage(leaf, i, 'slot')}" for i, (leaf, _) in enumerate(layout) if leaf.ring]
    lines += [
        "  };",
        "  if (steps > 0) {",
        "    const q35_i t0 = 0, n0 = 0, kt = 0;",
        "    (void)t0; (void)n0; (void)kt;",
    ]
    lines += [f"    {stage(leaf, i, '0')}" for i, (leaf, _) in enumerate(layout) if not leaf.ring]
    lines += ["    issue(0, 0);", "    q35_commit();", "  }"]
    if mma:
        lines += [
            "  using namespace nvcuda;",
            f"  constexpr int FRAGS = {-(-(tile_t // MMA) * (n_pad // MMA) // warps)};",
            f"  constexpr int TILES_M = {tile_t // MMA}, TILES_NN = {n_pad // MMA};",
            "  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FRAGS];",
            f"  __half* const WH = reinterpret_cast<__half*>(q35_smem + {extra['wh']});",
            f"  __half* const XH = reinterpret_cast<__half*>(q35_smem + {extra['xh']});",
            f"  float* const SCR = reinterpret_cast<float*>(q35_smem + {extra['scratch']}) + warp * 256;",
        ]
    elif "part" in extra:
        lines.append(f"  float* const PART = reinterpret_cast<float*>(q35_smem + {extra['part']});")
    lines += [
        "  for (q35_i s = 0; s < steps; ++s) {",
        "    const int slot = (int)(s & 1);",
        "    if (s + 1 < steps) { issue(s + 1, slot ^ 1); q35_commit(); q35_wait<1>(); } else { q35_wait<0>(); }",
        "    __syncthreads();",
        "    q35_i t0, n0, kt;",
        "    coords(s, t0, n0, kt);",
        f"    const q35_i tv = T - t0 < {ilit(tile_t)} ? T - t0 : {ilit(tile_t)};",
        f"    const q35_i nv = N - n0 < {ilit(tile_n)} ? N - n0 : {ilit(tile_n)};",
        f"    const q35_i kv = K - kt * {ilit(tile_k)} < {ilit(tile_k)} ? K - kt * {ilit(tile_k)} : {ilit(tile_k)};",
    ]
    for i, (leaf, _) in enumerate(layout):
        where = f"S{i} + slot * {ilit(leaf.rows * leaf.cols)}" if leaf.ring else f"S{i}"
        lines.append(f"    const {leaf.elem}* const L{i} = {where};")
    lines += [f"    {x}" for x in [*lambdas, *([] if mma else mac), *epi]]
    paired = tile_k % PAIR == 0 and k_total % PAIR == 0
    if not paired:
        lines.append(f"    auto X = [&](q35_i t, q35_i k) -> {x_type} {{ return {x_read}; }};")
        lines.append(f"    auto W = [&](q35_i n, q35_i k) -> {w_type} {{ return {w_read}; }};")
    else:
        for u, (x_u, w_u) in enumerate(zip(chain.x_pair, chain.w_pair, strict=True)):
            lines.append(f"    auto X{u} = [&](q35_i t, q35_i kk) -> {x_type} {{ return {x_u}; }};")
            lines.append(f"    auto W{u} = [&](q35_i n, q35_i kk) -> {w_type} {{ return {w_u}; }};")
    lines.append("    const q35_i yrow = t0, ycol = n0;")
    lines += (
        mma_step(tile_t, threads, chunk, paired)
        if mma
        else gemv_step(tile_t, tile_n, out_elem, "part" in extra, threads, paired)
    )
    lines += ["    __syncthreads();", "  }", "}", ""]
    work = tiles_t * tiles_n
    return Kernel(
        name=name,
        kind=f"linear.{path}.{scheme.split(':')[0]}",
        function=label,
        source="\n".join(lines),
        params=tuple(params),
        work=work,
        smem_bytes=smem,
        cooperative=False,
        threads=threads,
    )


def _count(value: SSAValue) -> int:
    count = 1
    for d in shape_of(value):
        count *= d
    return count
