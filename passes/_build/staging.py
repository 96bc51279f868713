"""Staging one linear kernel's tiles on chip, for `schedule-memory`: what to stage (`_plan`) and where it goes.

A kernel made by `tile` reads slices of its arguments (weight storage, activations) inside its tile loops. The
plan sorts them: a slice read in an innermost loop at an offset that moves with the loop is double-buffered
(`_double_buffer.RingBuilder`; identical slices in one loop, such as the activation tile that every N tile of a
token tile reads, share one ring); any other slice, and an argument read whole, is copied once into a tile-level
buffer where it is read; output tiles are copied back to main memory. Fresh intermediate tensors are allocated
in the tile level, except the values of elementwise generics that only feed other linalg ops, which are marked
`q35.fused` and take no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.builtin import TensorType, UnitAttr
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import CopyOp, GenericOp
from xdsl.ir import Block, BlockArgument, Operation, OpResult, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from q35c.analysis.opgraph import alias_graph
from q35c.passes._build.double_buffer import RingBuilder, alloc_in, constant_value, copy_between, static_offsets
from q35c.passes._build.linalg import element_type, shape_of
from q35c.ir.attrs import FUSED_ATTR


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
    singles: list[tensor.ExtractSliceOp]
    whole: list[BlockArgument]
    outputs: list[tensor.InsertSliceOp]


def _same_slice(a: tensor.ExtractSliceOp, b: tensor.ExtractSliceOp) -> bool:
    """Two slices of the same tensor at the same offsets, of the same sizes."""
    return (
        a.result.type == b.result.type
        and list(a.operands) == list(b.operands)
        and all(a.properties[k] == b.properties[k] for k in ("static_offsets", "static_sizes", "static_strides"))
    )


def _returned(fn: func.FuncOp) -> set[SSAValue]:
    """The values that share a buffer with what `fn` returns (its output, which lives in main memory)."""
    graph = alias_graph(fn)
    returned = [v for op in fn.body.walk() if isinstance(op, func.ReturnOp) for v in op.operands]
    return set().union(*(nx.node_connected_component(graph, v) for v in returned)) if returned else set()


def _plan(fn: func.FuncOp) -> _Plan:
    """Sort the slices and arguments of kernel `fn` into rings, single copies and whole copies, and find the
    output tiles; repeated slices in one ring loop are merged into the first."""
    output = _returned(fn)
    args = set(fn.args)
    plan = _Plan({}, [], [], [])
    repeats: list[tuple[tensor.ExtractSliceOp, tensor.ExtractSliceOp]] = []
    for op in fn.body.walk():
        if isinstance(op, tensor.ExtractSliceOp) and op.source in args:
            loop = op.parent_op()
            if (
                isinstance(loop, scf.ForOp)
                and _innermost(loop)
                and all(constant_value(v) is not None for v in (loop.lb, loop.ub, loop.step))
                and any(_depends_on(v, loop.body.block.args[0], loop.body.block) for v in op.operands[1:])
            ):
                slices = plan.rings.setdefault(loop, [])
                same = next((s for s in slices if _same_slice(s, op)), None)
                if same is None:
                    slices.append(op)
                else:  # the N tiles of a token tile read one activation tile: one ring holds it
                    repeats.append((op, same))
            else:
                plan.singles.append(op)
        elif isinstance(op, tensor.InsertSliceOp) and op.dest in output:
            plan.outputs.append(op)
    for repeat, first in repeats:
        repeat.result.replace_all_uses_with(first.result)
        Rewriter.erase_op(repeat)
    plan.whole.extend(a for a in fn.args if any(not isinstance(u.operation, tensor.ExtractSliceOp) for u in a.uses))
    return plan


@dataclass(frozen=True)
class _Stager:
    """Places the buffers of kernel `fn` other than rings: intermediates, single and whole copies, output copies."""

    fn: func.FuncOp
    space: int

    def place_intermediates(self) -> None:
        """Mark fusible generics; allocate every other fresh tensor of the kernel in the tile level, except the
        output, which lives in main memory."""
        for op in self.fn.body.walk():
            if fusible(op):
                op.attributes[FUSED_ATTR] = UnitAttr()
        escaping = _returned(self.fn)
        for op in list(self.fn.body.walk()):
            if not isinstance(op, tensor.EmptyOp) or op.tensor in escaping:
                continue
            if any(FUSED_ATTR in u.operation.attributes for u in op.tensor.uses):
                continue
            alloc = alloc_in(shape_of(op.tensor), element_type(op.tensor), self.space, op.tensor.name_hint or "tile")
            Rewriter.replace_op(op, alloc)

    def copy_out(self, op: tensor.InsertSliceOp) -> None:
        """insert_slice %tile into %y[...] -> copy %tile into that slice of %y (main memory), then insert it."""
        dest = tensor.ExtractSliceOp(
            op.dest, [*op.offsets], [*op.sizes], [*op.strides], TensorType(element_type(op.source), shape_of(op.source))
        )
        dest.properties.update({k: op.properties[k] for k in ("static_offsets", "static_sizes", "static_strides")})
        dest.result.name_hint = "y_slice"
        copy = copy_between(op.source, dest.result, self.space, 0, "y_out")
        Rewriter.insert_op([dest, copy], InsertPoint.before(op))
        op.operands[0] = copy.results[0]

    def copy_in(self, value: SSAValue, where: InsertPoint, name: str) -> SSAValue:
        """Copy `value` (in main memory) into a fresh tile-level buffer at `where`; return the copy."""
        alloc = alloc_in(shape_of(value), element_type(value), self.space, f"{name}_buf")
        copy = copy_between(value, alloc.tensor, 0, self.space, name)
        Rewriter.insert_op([alloc, copy], where)
        return copy.results[0]

    def single(self, op: tensor.ExtractSliceOp) -> None:
        """Copy a slice into the tile level right where it is taken; its readers read the copy."""
        staged = self.copy_in(op.result, InsertPoint.after(op), f"{op.result.name_hint or 'tile'}_staged")
        op.result.replace_uses_with_if(staged, lambda use: use.operation is not staged.owner)

    def whole(self, arg: BlockArgument) -> None:
        """Copy an argument read whole into the tile level at the top of the kernel."""
        staged = self.copy_in(arg, InsertPoint.at_start(self.fn.body.block), f"{arg.name_hint or 'arg'}_staged")
        arg.replace_uses_with_if(
            staged,
            lambda use: use.operation is not staged.owner and not isinstance(use.operation, tensor.ExtractSliceOp),
        )


def stage_kernel(fn: func.FuncOp, space: int) -> None:
    """Stage one linear kernel's tiles in memory space `space` (see the module docstring and
    `q35c.passes.schedule_memory`)."""
    plan = _plan(fn)
    stager = _Stager(fn, space)
    rings = RingBuilder(fn, space)
    stager.place_intermediates()
    for op in plan.outputs:
        stager.copy_out(op)
    for op in plan.singles:
        stager.single(op)
    for arg in plan.whole:
        stager.whole(arg)
    for loop, slices in plan.rings.items():
        rings.ring(loop, slices)
    static_offsets(fn)
    for op in reversed(list(fn.body.walk())):
        if isinstance(op, arith.ConstantOp) and not op.result.uses:
            Rewriter.erase_op(op)
