"""IR builders of the attention lowering (`passes/lower_graph.py`): the per-sequence [cache; new] keys and
values, indexing maps with a batch loop prepended, and the tags the cost model reads off the attention kernel."""

from __future__ import annotations

from xdsl.dialects import tensor
from xdsl.dialects.builtin import AnyFloat, IntegerAttr, i64
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineExpr, AffineMap
from xdsl.pattern_rewriter import PatternRewriter

from q35c.dialects.q35 import AttentionOp
from q35c.ir.attrs import BATCH_ATTR, KV_APPEND_ATTR
from q35c.passes._build.linalg import MapFn, element_type, empty, expand_shape, identity, shape_of


def record_appends(kernel: SSAValue, op: AttentionOp) -> None:
    """Tag the attention kernel with what the step appends to the KV cache (its k and v rows, in bytes) and,
    for B > 1, the batch: the lowered IR keeps what the cost model reads of the graph op."""
    rows, width = shape_of(op.k)
    element = element_type(op.k)
    assert isinstance(element, AnyFloat)
    owner = kernel.owner
    assert isinstance(owner, Operation)
    owner.attributes[KV_APPEND_ATTR] = IntegerAttr(2 * rows * width * element.bitwidth // 8, i64)
    if op.batch > 1:
        owner.attributes[BATCH_ATTR] = IntegerAttr(op.batch, i64)


def split(batched: int) -> list[list[int]]:
    """The reassociation that expands [B*R, H*hd] to [B, R, H, hd] (`batched` = 1) or [R, H*hd] to [R, H, hd]."""
    return [[0, 1], [2, 3]] if batched else [[0], [1, 2]]


def batched_map(fn: MapFn | int, batched: int) -> MapFn:
    """An indexing map over a sequence's loops (a lambda, or a rank for the identity), with the batch loop b
    prepended to the loops and to the indices when `batched` (= 1)."""
    inner = identity(fn) if isinstance(fn, int) else fn if isinstance(fn, AffineMap) else AffineMap.from_callable(fn)
    if not batched:
        return inner
    shifted = inner.replace_dims_and_symbols(
        [AffineExpr.dimension(i + 1) for i in range(inner.num_dims)], [], inner.num_dims + 1, 0
    )
    return AffineMap(inner.num_dims + 1, 0, (AffineExpr.dimension(0), *shifted.results))


def with_cache(
    rewriter: PatternRewriter, cache: SSAValue, new: SSAValue, shape: tuple[int, ...], name: str
) -> SSAValue:
    """[cache; new] per sequence, as [L, Hkv, hd] (or [B, L, Hkv, hd] for a batch): both inserted into one
    [L, Hkv*hd] ([B, L, Hkv*hd]) tensor; just `new` when C = 0."""
    batched = len(shape) == 4
    b = shape[0] if batched else 1
    rows, width = shape_of(cache)
    c, t = rows // b, shape_of(new)[0] // b
    joined = new
    if batched:
        cache = expand_shape(rewriter, cache, [[0, 1], [2]], (b, c, width), f"{name}_cache") if c else cache
        joined = expand_shape(rewriter, new, [[0, 1], [2]], (b, t, width), f"{name}_new")
    if c > 0:
        new_rows = joined
        joined = empty(rewriter, element_type(new), (*shape[:-3], c + t, width), f"{name}_init")
        for source, offset, count in ((cache, 0, c), (new_rows, c, t)):
            offsets, sizes = ([0, offset, 0], [b, count, width]) if batched else ([offset, 0], [count, width])
            insert = tensor.InsertSliceOp.from_static_parameters(source, joined, offsets, sizes)
            joined = rewriter.insert(insert).result
        joined.name_hint = f"{name}_rows"
    groups = [[0], [1], [2, 3]] if batched else [[0], [1, 2]]
    return expand_shape(rewriter, joined, groups, shape, name)


def runtime_positions(rewriter: PatternRewriter, op: AttentionOp, lead: tuple[int, ...]) -> SSAValue | None:
    """The new tokens' positions, [T] (or [B, T] for a batch), when the op masks cache rows by position and has
    cache rows to mask; None otherwise (the plain causal mask)."""
    if op.positions is None or op.cache_len == 0:
        return None
    if not lead:
        return op.positions
    return expand_shape(rewriter, op.positions, [[0, 1]], (*lead, op.seq_len), "pos_seq")
