"""Staging one linear kernel's tiles on chip, for `schedule-memory`: what to stage (`_plan`) and the rewrite
patterns that stage it.

A kernel made by `tile` reads slices of its arguments (weight storage, activations) inside its tile loops. The
plan sorts them: a slice read in an innermost loop at an offset that moves with the loop is double-buffered
(`double_buffer.DoubleBuffer`; identical slices in one loop, such as the activation tile that every N tile of a
token tile reads, share one ring: `MergeRepeatedSlice`); any other slice (`StageSingle`), and an argument read
whole (`StageWholeArguments`), is copied once into a tile-level buffer where it is read; output tiles are copied
back to main memory (`CopyOut`). Fresh intermediate tensors are allocated in the tile level (`PlaceIntermediate`),
except the values of elementwise generics that only feed other linalg ops, which are marked `q35.fused` and take
no memory (`MarkFused`). A remainder tile, and the output tile after it:

    %codes_tile_4 = tensor.extract_slice %codes[31992, 0] [8, 896] [1, 1] : tensor<32000x896xi32> to tensor<8x896xi32>
    %codes_tile_staged_buf = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<8x896xi32>
    %codes_tile_staged = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64}
        ins(%codes_tile_4 : tensor<8x896xi32>) outs(%codes_tile_staged_buf : tensor<8x896xi32>) -> tensor<8x896xi32>
    ... decoded (q35.fused) and multiplied into %y_3, allocated in the tile level ...
    %y_slice_2 = tensor.extract_slice %62[0, 31992] [1, 8] [1, 1] : tensor<1x32000xf16> to tensor<1x8xf16>
    %y_out_2 = linalg.copy {q35.src_space = 2 : i64, q35.dst_space = 0 : i64}
        ins(%y_3 : tensor<1x8xf16>) outs(%y_slice_2 : tensor<1x8xf16>) -> tensor<1x8xf16>
    %91 = tensor.insert_slice %y_out_2 into %62[0, 31992] [1, 8] [1, 1] : tensor<1x8xf16> into tensor<1x32000xf16>

`stage_kernel` applies the patterns with three `PatternRewriteWalker`s over the kernel body, each visiting every
op once (a walk's patterns match disjoint ops): the per-op staging above; then the whole arguments and the rings
(`StageWholeArguments` anchors at the kernel's first op, so its copies go to the top before the rings put their
index constants above them); then, users before definitions, `FoldConstantOffsets` with xDSL's trivial dead-code
elimination (`GreedyRewritePatternApplier(dce_enabled=True)`, i.e. `is_trivially_dead`), which erases what the
rings and the folding left dead: the index arithmetic of replaced slices, constants that became static offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from functools import cache

from xdsl.dialects import func, scf, tensor
from xdsl.dialects.builtin import TensorType, UnitAttr
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import CopyOp, GenericOp
from xdsl.ir import Block, BlockArgument, Operation, OpResult, Region, SSAValue, Use
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand

from q35c.analysis.opgraph import alias_components
from q35c.ir.attrs import FUSED_ATTR, SRC_SPACE_ATTR
from q35c.passes._build.double_buffer import DoubleBuffer, FoldConstantOffsets, alloc_in, copy_between
from q35c.passes._build.linalg import element_type, shape_of


def _feeds_compute(value: SSAValue) -> bool:
    """Every use of `value` is an input of a (non-copy) linalg op in its block, possibly through reshapes."""
    block = value.owner.parent_block() if isinstance(value, OpResult) else None
    for use in value.uses:
        user = use.operation
        if isinstance(user, tensor.ExpandShapeOp | tensor.CollapseShapeOp):
            if not _feeds_compute(user.result):
                return False
            continue
        if not isinstance(user, LinalgStructuredOperation) or isinstance(user, CopyOp):
            return False
        if use.index >= len(user.inputs) or user.parent_block() is not block:
            return False
    return bool(value.uses)


def fusible(op: Operation) -> bool:
    """An elementwise generic writing a fresh tensor that only other linalg ops read: it streams into them."""
    if not isinstance(op, GenericOp) or any(it.data.value != "parallel" for it in op.iterator_types):
        return False
    inits = [v.owner for v in op.outputs]
    return all(isinstance(i, tensor.EmptyOp) for i in inits) and all(_feeds_compute(r) for r in op.results)


# The plan ---------------------------------------------------------------------------------------------------------


def _depends_on(value: SSAValue, target: SSAValue, body: Block) -> bool:
    if value is target:
        return True
    owner = value.owner
    if isinstance(owner, Operation) and owner.parent_block() is body:
        return any(_depends_on(v, target, body) for v in owner.operands)
    return False


def _innermost(loop: scf.ForOp) -> bool:
    return not any(isinstance(op, scf.ForOp) for op in loop.body.walk())


@dataclass(frozen=True)
class _Plan:
    """What to stage in one kernel, found before anything is rewritten."""

    rings: dict[scf.ForOp, list[tensor.ExtractSliceOp]]
    repeats: dict[tensor.ExtractSliceOp, tensor.ExtractSliceOp]  # a slice -> the same slice earlier in its loop
    singles: set[tensor.ExtractSliceOp]
    whole: list[BlockArgument]
    outputs: set[tensor.InsertSliceOp]
    returned: set[SSAValue]


def _same_slice(a: tensor.ExtractSliceOp, b: tensor.ExtractSliceOp) -> bool:
    """Two slices of the same tensor at the same offsets, of the same sizes."""
    return (
        a.result.type == b.result.type
        and list(a.operands) == list(b.operands)
        and all(a.properties[k] == b.properties[k] for k in ("static_offsets", "static_sizes", "static_strides"))
    )


def _returned(fn: func.FuncOp) -> set[SSAValue]:
    """The values that share a buffer with what `fn` returns (its output, which lives in main memory)."""
    returned = {v for op in fn.body.walk() if isinstance(op, func.ReturnOp) for v in op.operands}
    return {v for component in alias_components(fn) if not returned.isdisjoint(component) for v in component}


def _ring_loop(loop: scf.ForOp) -> bool:
    """An innermost loop of constant bounds: the slices that move with it can be double-buffered over it."""
    return _innermost(loop) and all(const_evaluate_operand(v) is not None for v in (loop.lb, loop.ub, loop.step))


def _plan(fn: func.FuncOp) -> _Plan:
    """Sort the slices and arguments of kernel `fn` into rings, single copies and whole copies, and find the
    output tiles and the repeated slices in one ring loop (which read the first)."""
    returned = _returned(fn)
    args = set(fn.args)
    plan = _Plan({}, {}, set(), [], set(), returned)
    ring_loop = cache(_ring_loop)
    for op in fn.body.walk():
        if isinstance(op, tensor.ExtractSliceOp) and op.source in args:
            loop = op.parent_op()
            if (
                isinstance(loop, scf.ForOp)
                and ring_loop(loop)
                and any(_depends_on(v, loop.body.block.args[0], loop.body.block) for v in op.operands[1:])
            ):
                slices = plan.rings.setdefault(loop, [])
                same = next((s for s in slices if _same_slice(s, op)), None)
                if same is None:
                    slices.append(op)
                else:  # the N tiles of a token tile read one activation tile: one ring holds it
                    plan.repeats[op] = same
            else:
                plan.singles.add(op)
        elif isinstance(op, tensor.InsertSliceOp) and op.dest in returned:
            plan.outputs.add(op)
    plan.whole.extend(a for a in fn.args if any(not isinstance(u.operation, tensor.ExtractSliceOp) for u in a.uses))
    return plan


# The patterns -----------------------------------------------------------------------------------------------------


def _staging_copy(op: Operation) -> bool:
    """`op` is a copy between memory levels that staging made (a `linalg.copy` tagged with its spaces)."""
    return isinstance(op, CopyOp) and SRC_SPACE_ATTR in op.attributes


def _copy_in(rewriter: PatternRewriter, value: SSAValue, where: InsertPoint, name: str, space: int) -> SSAValue:
    """Copy `value` (in main memory) into a fresh buffer of memory space `space` at `where`; return the copy."""
    alloc = alloc_in(shape_of(value), element_type(value), space, f"{name}_buf")
    copy = copy_between(value, alloc.tensor, 0, space, name)
    rewriter.insert([alloc, copy], where)
    return copy.results[0]


@dataclass(frozen=True)
class MergeRepeatedSlice(RewritePattern):
    """A slice that repeats an earlier one of its ring loop (`repeats`) -> the earlier one."""

    repeats: Mapping[tensor.ExtractSliceOp, tensor.ExtractSliceOp]

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExtractSliceOp, rewriter: PatternRewriter, /) -> None:
        if (first := self.repeats.get(op)) is None:
            return
        rewriter.replace(op, [], [first.result])


class MarkFused(RewritePattern):
    """An elementwise generic streaming into other linalg ops (`fusible`) -> marked `q35.fused`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GenericOp, rewriter: PatternRewriter, /) -> None:
        if FUSED_ATTR in op.attributes or not fusible(op):
            return
        op.attributes[FUSED_ATTR] = UnitAttr()
        rewriter.notify_op_modified(op)


@dataclass(frozen=True)
class PlaceIntermediate(RewritePattern):
    """`tensor.empty` -> `bufferization.alloc_tensor` in memory space `space`, unless it is part of the kernel's
    output (`returned`, in main memory) or a fused generic writes it (it streams through registers)."""

    returned: Set[SSAValue]
    space: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.EmptyOp, rewriter: PatternRewriter, /) -> None:
        users = [u.operation for u in op.tensor.uses]
        if op.tensor in self.returned or any(FUSED_ATTR in u.attributes or fusible(u) for u in users):
            return
        name = op.tensor.name_hint or "tile"
        rewriter.replace(op, alloc_in(shape_of(op.tensor), element_type(op.tensor), self.space, name))


@dataclass(frozen=True)
class CopyOut(RewritePattern):
    """`insert_slice %tile into %y[...]` of the kernel's output (`outputs`) -> `%tile` copied from memory space
    `space` into that slice of `%y` (main memory) first, and the copy inserted."""

    outputs: Set[tensor.InsertSliceOp]
    space: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.InsertSliceOp, rewriter: PatternRewriter, /) -> None:
        if op not in self.outputs or _staging_copy(op.source.owner):  # type: ignore[arg-type]
            return
        tile = TensorType(element_type(op.source), shape_of(op.source))
        dest = tensor.ExtractSliceOp(op.dest, [*op.offsets], [*op.sizes], [*op.strides], tile)
        dest.properties.update({k: op.properties[k] for k in ("static_offsets", "static_sizes", "static_strides")})
        dest.result.name_hint = "y_slice"
        copy = copy_between(op.source, dest.result, self.space, 0, "y_out")
        rewriter.insert([dest, copy], InsertPoint.before(op))
        rewriter.replace_uses_with_if(op.source, copy.results[0], lambda use: use.operation is op and use.index == 0)


@dataclass(frozen=True)
class StageSingle(RewritePattern):
    """A slice of a kernel argument read once (`singles`) -> copied into memory space `space` right where it is
    taken; its readers read the copy."""

    singles: Set[tensor.ExtractSliceOp]
    space: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExtractSliceOp, rewriter: PatternRewriter, /) -> None:
        if op not in self.singles or any(_staging_copy(u.operation) for u in op.result.uses):
            return
        name = f"{op.result.name_hint or 'tile'}_staged"
        staged = _copy_in(rewriter, op.result, InsertPoint.after(op), name, self.space)
        rewriter.replace_uses_with_if(op.result, staged, lambda use: use.operation is not staged.owner)


@dataclass(frozen=True)
class StageWholeArguments(RewritePattern):
    """The first op of the kernel -> preceded by copies in memory space `space` of the kernel arguments read whole
    (`whole`; in argument order, each above the previous), which the ops reading them whole then read (slices of
    them keep reading them: they are staged on their own). Anchored at the first op, the copies are made before
    the walk reaches any loop."""

    whole: Sequence[BlockArgument]
    space: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /) -> None:
        if not self.whole or op.parent is not self.whole[0].block or op.prev_op is not None:
            return
        for arg in self.whole:
            where = InsertPoint.at_start(op.parent)  # above `op` and the copies before it
            staged = _copy_in(rewriter, arg, where, f"{arg.name_hint or 'arg'}_staged", self.space)
            rewriter.replace_uses_with_if(arg, staged, _reads_whole(staged))


def _reads_whole(staged: SSAValue) -> Callable[[Use], bool]:
    """Uses of an argument by ops that read it whole, but for its copy `staged`."""
    return lambda use: use.operation is not staged.owner and not isinstance(use.operation, tensor.ExtractSliceOp)


def _walk(region: Region, *patterns: RewritePattern) -> None:
    """Apply `patterns` (matching disjoint ops) once to every op of `region`, in order."""
    pattern = patterns[0] if len(patterns) == 1 else GreedyRewritePatternApplier(list(patterns), dce_enabled=False)
    PatternRewriteWalker(pattern, apply_recursively=False).rewrite_region(region)


def stage_kernel(fn: func.FuncOp, space: int) -> None:
    """Stage one linear kernel's tiles in memory space `space` (see the module docstring and
    `q35c.passes.schedule_memory`)."""
    plan = _plan(fn)
    _walk(
        fn.body,
        MergeRepeatedSlice(plan.repeats),
        MarkFused(),
        PlaceIntermediate(plan.returned, space),
        CopyOut(plan.outputs, space),
        StageSingle(plan.singles, space),
    )
    if plan.whole or plan.rings:  # the first op comes before any loop: whole copies first, then the rings
        _walk(fn.body, StageWholeArguments(plan.whole, space), DoubleBuffer(plan.rings, space, fn.body.block))
    # Last, users before definitions: constant offsets become static, then what that and the rings left dead
    # (index constants and arithmetic, the offsets of replaced slices) is erased by xDSL's trivial DCE.
    fold = GreedyRewritePatternApplier([FoldConstantOffsets()], dce_enabled=True)
    PatternRewriteWalker(fold, apply_recursively=False, walk_reverse=True).rewrite_region(fn.body)
