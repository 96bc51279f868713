"""schedule-memory: place every buffer in a memory level of the target, stage tiles on chip, report the peak.

Memory spaces number the target's memory levels in spec order: 0 is main memory (HBM, DRAM; on Groq the SRAM,
its only memory), 1, 2, ... the levels after it (h100-sxm: 0 hbm, 1 l2, 2 smem). A level the spec lacks but the
target has by assumption comes next (Apple: threadgroup memory, space 1). The tile level (`tile_level`) is where
kernels stage their tiles. The module records the numbering, `q35.memory_spaces = ["hbm", "l2", "smem"]`.

Inside each linear kernel (a function marked `q35.kernel`, made by `tile`), where weights stream from main memory:
- a slice of a kernel argument (weight storage, activations) read in an innermost tile loop, at an offset that
  moves with the loop, is double-buffered: a two-slot ring `bufferization.alloc_tensor` in the tile level is
  carried through the loop; each iteration first issues the copy of the next tile into the other slot
  (`linalg.copy`) and then computes on the current slot, so two tiles are live at once. The first copy is
  issued before the loop and the last iteration is peeled, so every tile is copied exactly once;
- any other slice, and an argument read whole, is copied once into a tile-level buffer where it is read;
- intermediate tensors (accumulators, rounded output tiles) are allocated in the tile level, except the values
  of elementwise generics that feed straight into another linalg op (decoded codes, dequantized weights,
  widened activations), which are marked `q35.fused`: they stream through registers and take no memory;
- output tiles are copied back to main memory (`linalg.copy` into the slice `tensor.insert_slice` writes).
Every copy between levels is a `linalg.copy` tagged `{q35.src_space = a, q35.dst_space = b}`:

    %codes_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x16x896xi32>
    ... copy of tile 0 into slot 0 ...
    %r:2 = scf.for %n = %c0 to %c28656 step %c16 iter_args(%y_n = %y, %codes_ring_n = %ring0) -> (...) {
      %slot = ..., %next = ...                     // (n / 16) mod 2 and its other slot
      %codes_next = tensor.extract_slice %codes[%n_next, 0] [16, 896] [1, 1] : ...
      %codes_slot = tensor.extract_slice %codes_ring_n[%next, 0, 0] [1, 16, 896] [1, 1, 1] : ... to tensor<16x896xi32>
      %copied = linalg.copy {q35.dst_space = 2 : i64, q35.src_space = 0 : i64}
          ins(%codes_next : tensor<16x896xi32>) outs(%codes_slot : tensor<16x896xi32>) -> tensor<16x896xi32>
      %ring = tensor.insert_slice %copied into %codes_ring_n[%next, 0, 0] [1, 16, 896] [1, 1, 1] : ...
      %codes_tile = tensor.extract_slice %ring[%slot, 0, 0] [1, 16, 896] [1, 1, 1] : ... to tensor<16x896xi32>
      ... compute on %codes_tile ...
      scf.yield %y_next, %ring : ...
    }
    ... the last tile, on slot (trips - 1) mod 2 ...

On Groq the weights are resident in SRAM and nothing streams: no copies are inserted, everything is in space 0.

The peak bytes live per level (`liveness.module_peaks`) are recorded on every function and the module as
`q35.peak_bytes = {smem = 139264 : i64, hbm = ...}`; tile-level peaks are per tile (per SM, per CPU, per
threadgroup), main-memory peaks per device. A kernel whose tile-level peak exceeds the level's budget fails the
pass with the kernel, its tile, its weights and the buffers live at the peak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
from xdsl.context import Context
from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IndexType,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    i32,
    i64,
)
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import CopyOp, GenericOp
from xdsl.ir import Attribute, Block, BlockArgument, Operation, OpResult, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from q35c.opgraph import alias_graph
from q35c.passes.liveness import FUSED_ATTR, Peak, module_peaks
from q35c.passes.tile import SCHEME_ATTR, TILE_ATTR, insert_slice, is_kernel
from q35c.passes.tile_choice import OnChipLevel, TileError, tile_level
from q35c.targets.base import HardwareSpec, load_spec

SRC_SPACE_ATTR = "q35.src_space"
DST_SPACE_ATTR = "q35.dst_space"
PEAK_ATTR = "q35.peak_bytes"
SPACES_ATTR = "q35.memory_spaces"
TARGET_ATTR = "q35.target"
TILE_LEVEL_ATTR = "q35.tile_level"
TILE_BUDGET_ATTR = "q35.tile_budget_bytes"
_index = IndexType()


def space_names(spec: HardwareSpec, level: OnChipLevel) -> list[str]:
    """Level names by memory space: the spec's levels in order, then an assumed tile level."""
    names = [m.name for m in spec.memory]
    return [*names, level.name] if level.memory_space == len(names) else names


# --------------------------------------------------------------------------------------------------------------
# Small IR builders
# --------------------------------------------------------------------------------------------------------------


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def _element(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def _alloc(shape: Sequence[int], element: Attribute, space: int, name: str) -> AllocTensorOp:
    op = AllocTensorOp(TensorType(element, shape))
    op.attributes["memory_space"] = IntegerAttr(space, i64)
    op.tensor.name_hint = name
    return op


def _copy(source: SSAValue, dest: SSAValue, src_space: int, dst_space: int, name: str) -> CopyOp:
    op = CopyOp([source], [dest])
    op.attributes[SRC_SPACE_ATTR] = IntegerAttr(src_space, i64)
    op.attributes[DST_SPACE_ATTR] = IntegerAttr(dst_space, i64)
    op.results[0].name_hint = name
    return op


def _slot(ring: SSAValue, slot: SSAValue | int, name: str) -> tensor.ExtractSliceOp:
    """The tile in slot `slot` of a [2, ...] ring (rank-reduced to the tile's shape)."""
    tile = _shape(ring)[1:]
    result_type = TensorType(_element(ring), tile)
    op = tensor.ExtractSliceOp(ring, [slot, *[0] * len(tile)], [1, *tile], [1] * (len(tile) + 1), result_type)
    op.result.name_hint = name
    return op


def _constant(op: SSAValue) -> int | None:
    owner = op.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def _index_const(value: int) -> arith.ConstantOp:
    op = arith.ConstantOp.from_int_and_width(value, _index)
    op.result.name_hint = f"c{value}"
    return op


# --------------------------------------------------------------------------------------------------------------
# Analysis of a kernel
# --------------------------------------------------------------------------------------------------------------


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


@dataclass
class _Plan:
    """What to stage in one kernel, found before anything is rewritten."""

    rings: dict[scf.ForOp, list[tensor.ExtractSliceOp]]
    singles: list[tensor.ExtractSliceOp]
    whole: list[BlockArgument]
    outputs: list[tensor.InsertSliceOp]


def _plan(fn: func.FuncOp) -> _Plan:
    graph = alias_graph(fn)
    returned = [v for op in fn.body.walk() if isinstance(op, func.ReturnOp) for v in op.operands]
    output = set().union(*(nx.node_connected_component(graph, v) for v in returned)) if returned else set()
    args = set(fn.args)
    plan = _Plan({}, [], [], [])
    for op in fn.body.walk():
        if isinstance(op, tensor.ExtractSliceOp) and op.source in args:
            loop = op.parent_op()
            if (
                isinstance(loop, scf.ForOp)
                and _innermost(loop)
                and all(_constant(v) is not None for v in (loop.lb, loop.ub, loop.step))
                and any(_depends_on(v, loop.body.block.args[0], loop.body.block) for v in op.operands[1:])
            ):
                plan.rings.setdefault(loop, []).append(op)
            else:
                plan.singles.append(op)
        elif isinstance(op, tensor.InsertSliceOp) and op.dest in output:
            plan.outputs.append(op)
    plan.whole = [a for a in fn.args if any(not isinstance(u.operation, tensor.ExtractSliceOp) for u in a.uses)]
    return plan


# --------------------------------------------------------------------------------------------------------------
# Staging a kernel
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Stager:
    fn: func.FuncOp
    space: int

    def place_intermediates(self) -> None:
        """Mark fusible generics; allocate every other fresh tensor of the kernel in the tile level, except the
        output, which lives in main memory."""
        for op in self.fn.body.walk():
            if fusible(op):
                op.attributes[FUSED_ATTR] = UnitAttr()
        graph = alias_graph(self.fn)
        returned = [v for op in self.fn.body.walk() if isinstance(op, func.ReturnOp) for v in op.operands]
        escaping = set().union(*(nx.node_connected_component(graph, v) for v in returned)) if returned else set()
        for op in list(self.fn.body.walk()):
            if not isinstance(op, tensor.EmptyOp) or op.tensor in escaping:
                continue
            if any(FUSED_ATTR in u.operation.attributes for u in op.tensor.uses):
                continue
            alloc = _alloc(_shape(op.tensor), _element(op.tensor), self.space, op.tensor.name_hint or "tile")
            Rewriter.replace_op(op, alloc)

    def copy_out(self, op: tensor.InsertSliceOp) -> None:
        """insert_slice %tile into %y[...] -> copy %tile into that slice of %y (main memory), then insert it."""
        dest = tensor.ExtractSliceOp(
            op.dest, [*op.offsets], [*op.sizes], [*op.strides], TensorType(_element(op.source), _shape(op.source))
        )
        dest.properties.update({k: op.properties[k] for k in ("static_offsets", "static_sizes", "static_strides")})
        dest.result.name_hint = "y_slice"
        copy = _copy(op.source, dest.result, self.space, 0, "y_out")
        Rewriter.insert_op([dest, copy], InsertPoint.before(op))
        op.operands[0] = copy.results[0]

    def copy_in(self, value: SSAValue, where: InsertPoint, name: str) -> SSAValue:
        alloc = _alloc(_shape(value), _element(value), self.space, f"{name}_buf")
        copy = _copy(value, alloc.tensor, 0, self.space, name)
        Rewriter.insert_op([alloc, copy], where)
        return copy.results[0]

    def single(self, op: tensor.ExtractSliceOp) -> None:
        staged = self.copy_in(op.result, InsertPoint.after(op), f"{op.result.name_hint or 'tile'}_staged")
        op.result.replace_uses_with_if(staged, lambda use: use.operation is not staged.owner)

    def whole(self, arg: BlockArgument) -> None:
        staged = self.copy_in(arg, InsertPoint.at_start(self.fn.body.block), f"{arg.name_hint or 'arg'}_staged")
        arg.replace_uses_with_if(
            staged,
            lambda use: use.operation is not staged.owner and not isinstance(use.operation, tensor.ExtractSliceOp),
        )

    def const(self, value: int) -> SSAValue:
        """An index constant at the top of the kernel (reusing one that is there)."""
        block = self.fn.body.block
        for op in block.ops:
            if isinstance(op, arith.ConstantOp) and op.result.type == _index and _constant(op.result) == value:
                return op.result
        op = _index_const(value)
        Rewriter.insert_op(op, InsertPoint.at_start(block))
        return op.result

    def ring(self, loop: scf.ForOp, slices: list[tensor.ExtractSliceOp]) -> None:
        """Double-buffer `slices` over `loop` (see the module docstring)."""
        lb, ub, step = (_constant(v) for v in (loop.lb, loop.ub, loop.step))
        assert lb is not None and ub is not None and step is not None
        trips = (ub - lb) // step
        body = loop.body.block
        iv = body.args[0]
        last = self.const(lb + (trips - 1) * step)
        new_ub = self.const(ub - step)

        # The peeled last iteration, computing on the ring slot that holds the last tile.
        old_uses = [list(r.uses) for r in loop.results]
        mapping: dict[SSAValue, SSAValue] = {iv: last, **dict(zip(body.args[1:], loop.results, strict=True))}
        epilogue: list[Operation] = []
        for op in body.ops:
            if not isinstance(op, scf.YieldOp):
                epilogue.append(op.clone(mapping))
        Rewriter.insert_op(epilogue, InsertPoint.after(loop))
        yielded = body.last_op
        assert isinstance(yielded, scf.YieldOp)
        finals = [mapping.get(v, v) for v in yielded.operands]
        for uses, final in zip(old_uses, finals, strict=True):
            for use in uses:
                use.operation.operands[use.index] = final
        peeled = [mapping[s.result].owner for s in slices]

        # Prologue: copy the first tiles into slot 0.
        rings: list[SSAValue] = []
        at_first: dict[SSAValue, SSAValue] = {iv: self.const(lb)}
        for s in slices:
            name = (s.result.name_hint or "tile").removesuffix("_tile")
            alloc = _alloc((2, *_shape(s.result)), _element(s.result), self.space, f"{name}_ring")
            Rewriter.insert_op(alloc, InsertPoint.before(loop))
            source = self._clone_at(s, at_first, body, InsertPoint.before(loop))
            rings.append(self._fill_slot(alloc.tensor, 0, source, InsertPoint.before(loop), name))

        # The loop, one iteration shorter, carrying the rings.
        new_loop = scf.ForOp(loop.lb, new_ub, loop.step, [*loop.iter_args, *rings], loop.detach_region(0))
        for key, value in loop.attributes.items():
            new_loop.attributes[key] = value
        ring_args = [body.insert_arg(r.type, len(body.args)) for r in rings]
        for arg, s in zip(ring_args, slices, strict=True):
            arg.name_hint = f"{(s.result.name_hint or 'tile').removesuffix('_tile')}_ring"
        Rewriter.replace_op(loop, new_loop, new_loop.results[: len(loop.results)])

        # Each iteration: issue the next tiles' copies, then compute on the current slot.
        step_c, two, one = new_loop.step, self.const(2), self.const(1)
        prep: list[Operation] = []
        offset = iv
        if lb:
            prep.append(arith.SubiOp(iv, new_loop.lb))
            offset = prep[-1].results[0]
        index = arith.DivUIOp(offset, step_c)
        slot = arith.RemUIOp(index.result, two)
        other = arith.SubiOp(one, slot.result)
        following = arith.AddiOp(iv, step_c)
        slot.result.name_hint, other.result.name_hint, following.result.name_hint = "slot", "next_slot", "next"
        Rewriter.insert_op([*prep, index, slot, other, following], InsertPoint.at_start(body))
        where = InsertPoint.after(following)
        next_rings: list[SSAValue] = []
        at_next: dict[SSAValue, SSAValue] = {iv: following.result}
        for s, arg in zip(slices, ring_args, strict=True):
            name = (s.result.name_hint or "tile").removesuffix("_tile")
            source = self._clone_at(s, at_next, body, where)
            ring = self._fill_slot(arg, other.result, source, where, name)
            where = InsertPoint.after(ring.owner)  # type: ignore[arg-type]
            next_rings.append(ring)
        for s, ring in zip(slices, next_rings, strict=True):
            current = _slot(ring, slot.result, s.result.name_hint or "tile")
            Rewriter.insert_op(current, InsertPoint.before(s))
            s.result.replace_all_uses_with(current.result)
            Rewriter.erase_op(s)
        terminator = body.last_op
        assert isinstance(terminator, scf.YieldOp)
        Rewriter.replace_op(terminator, scf.YieldOp(*terminator.operands, *next_rings))

        # The peeled iteration reads the last slot of the final rings.
        last_slot = (trips - 1) % 2
        for s, ring in zip(peeled, new_loop.results[len(old_uses) :], strict=True):
            assert isinstance(s, tensor.ExtractSliceOp)
            current = _slot(ring, last_slot, s.result.name_hint or "tile")
            Rewriter.insert_op(current, InsertPoint.before(s))
            s.result.replace_all_uses_with(current.result)
            Rewriter.erase_op(s)
        _erase_dead(body)
        _erase_dead(new_loop.parent_block())

    def _fill_slot(
        self, ring: SSAValue, slot: SSAValue | int, source: SSAValue, where: InsertPoint, name: str
    ) -> SSAValue:
        """Copy `source` (in main memory) into slot `slot` of `ring`; return the updated ring."""
        dest = _slot(ring, slot, f"{name}_slot")
        copy = _copy(source, dest.result, 0, self.space, f"{name}_copied")
        shape = _shape(source)
        update = insert_slice(copy.results[0], ring, [slot, *[0] * len(shape)], [1, *shape])
        update.result.name_hint = f"{name}_ring"
        Rewriter.insert_op([dest, copy, update], where)
        return update.result

    def _clone_at(self, op: Operation, mapping: dict[SSAValue, SSAValue], body: Block, where: InsertPoint) -> SSAValue:
        """Clone `op` and the ops of `body` its operands come from, mapping values by `mapping` (the induction
        variable to another position; shared between the slices of one position, which then share their
        offset arithmetic); index arithmetic on constants folds to constants."""
        cloned: list[Operation] = []

        def need(value: SSAValue) -> None:
            owner = value.owner
            if value in mapping or not isinstance(owner, Operation) or owner.parent_block() is not body:
                return
            for operand in owner.operands:
                need(operand)
            folded = _fold([_constant(mapping.get(v, v)) for v in owner.operands], owner)
            if folded is not None:
                mapping[owner.results[0]] = self.const(folded)
            else:
                cloned.append(owner.clone(mapping))

        for operand in op.operands:
            need(operand)
        copy = op.clone(mapping)
        Rewriter.insert_op([*cloned, copy], where)
        return copy.results[0]


def _fold(operands: list[int | None], op: Operation) -> int | None:
    """The value of index arithmetic on constant operands (the offsets of a tile at a constant position)."""
    if len(operands) != 2 or operands[0] is None or operands[1] is None:
        return None
    a, b = operands
    if isinstance(op, arith.DivUIOp) and b:
        return a // b
    if isinstance(op, arith.MuliOp):
        return a * b
    if isinstance(op, arith.AddiOp):
        return a + b
    if isinstance(op, arith.SubiOp):
        return a - b
    return None


def static_offsets(fn: func.FuncOp) -> None:
    """Slice offsets that are constants (tiles at a fixed position) become static offsets."""
    for op in list(fn.body.walk()):
        if not isinstance(op, tensor.ExtractSliceOp | tensor.InsertSliceOp):
            continue
        values = [_constant(v) for v in op.offsets]
        if all(v is None for v in values):
            continue
        dynamic = iter(zip(op.offsets, values, strict=True))
        static: list[int] = []
        kept: list[SSAValue] = []
        for offset in op.static_offsets.get_values():
            if offset == DYNAMIC_INDEX:
                value, known = next(dynamic)
                static.append(DYNAMIC_INDEX if known is None else known)
                kept += [value] if known is None else []
            else:
                static.append(offset)
        sources = [op.source] if isinstance(op, tensor.ExtractSliceOp) else [op.source, op.dest]
        segments = [*([1] * len(sources)), len(kept), len(op.sizes), len(op.strides)]
        new = op.create(
            operands=[*sources, *kept, *op.sizes, *op.strides],
            result_types=[r.type for r in op.results],
            attributes=dict(op.attributes),
            properties={
                **op.properties,
                "static_offsets": DenseArrayBase.from_list(i64, static),
                "operandSegmentSizes": DenseArrayBase.from_list(i32, segments),
            },
        )
        new.results[0].name_hint = op.results[0].name_hint
        Rewriter.replace_op(op, new)


def _erase_dead(block: Block | None) -> None:
    """Erase pure index arithmetic and slices left without uses (offsets of the slices the rings replaced)."""
    if block is None:
        return
    changed = True
    while changed:
        changed = False
        for op in reversed(list(block.ops)):
            dead = all(not r.uses for r in op.results) and op.results
            if dead and isinstance(op, arith.DivUIOp | arith.MuliOp | arith.AddiOp | tensor.ExtractSliceOp):
                Rewriter.erase_op(op)
                changed = True


def stage_kernel(fn: func.FuncOp, space: int) -> None:
    """Stage one linear kernel's tiles in memory space `space` (see the module docstring)."""
    plan = _plan(fn)
    stager = _Stager(fn, space)
    stager.place_intermediates()
    for op in plan.outputs:
        stager.copy_out(op)
    for op in plan.singles:
        stager.single(op)
    for arg in plan.whole:
        stager.whole(arg)
    for loop, slices in plan.rings.items():
        stager.ring(loop, slices)
    static_offsets(fn)
    for op in reversed(list(fn.body.walk())):
        if isinstance(op, arith.ConstantOp) and not op.result.uses:
            Rewriter.erase_op(op)


# --------------------------------------------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------------------------------------------


def _bytes_attr(peaks: dict[int, Peak], names: Sequence[str]) -> DictionaryAttr:
    return DictionaryAttr({names[s]: IntegerAttr(p.bytes, i64) for s, p in sorted(peaks.items()) if p.bytes})


def _weights_of(module: ModuleOp, kernel: str) -> list[str]:
    names: list[str] = []
    for op in module.walk():
        if isinstance(op, func.CallOp) and op.callee.string_value() == kernel and len(op.arguments) > 1:
            name = (op.arguments[1].name_hint or "?").removesuffix(".codes")
            if name not in names:
                names.append(name)
    return names


def _overflow(module: ModuleOp, fn: func.FuncOp, peak: Peak, spec: HardwareSpec, level: OnChipLevel) -> str:
    tile = fn.attributes.get(TILE_ATTR)
    sizes = "x".join(str(v) for v in tile.get_values()) if tile is not None else "?"  # type: ignore[union-attr]
    scheme = fn.attributes.get(SCHEME_ATTR)
    scheme_text = scheme.data if isinstance(scheme, StringAttr) else "?"
    weights = ", ".join(_weights_of(module, fn.sym_name.data)) or "none"
    live = ", ".join(f"{b.name} {b.type} = {b.bytes} B" for b in sorted(peak.live, key=lambda b: -b.bytes))
    return (
        f"tile {sizes} (T x N x K) of kernel @{fn.sym_name.data} ({scheme_text}; weights: {weights}) needs "
        f"{peak.bytes} bytes of {level.name} at its peak, but {spec.name} has {level.budget_bytes} per "
        f"{level.per}: {live}"
    )


@dataclass(frozen=True)
class ScheduleMemoryPass(ModulePass):
    """Place buffers in the target's memory levels, stage kernel tiles on chip, record and check peak usage."""

    name = "schedule-memory"

    target: str = ""
    budget_bytes: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.target:
            raise PassFailedException("schedule-memory needs a target, e.g. schedule-memory{target=h100-sxm}")
        try:
            spec = load_spec(self.target)
            level = tile_level(spec, self.budget_bytes)
        except (ValueError, TileError) as err:
            raise PassFailedException(str(err)) from None
        functions = [f for f in op.ops if isinstance(f, func.FuncOp)]
        streams = level.memory_space != 0  # Groq: resident weights, nothing to stage
        for fn in functions:
            if is_kernel(fn) and not fn.is_declaration:
                if streams:
                    stage_kernel(fn, level.memory_space)
                else:
                    for inner in fn.body.walk():
                        if fusible(inner):
                            inner.attributes[FUSED_ATTR] = UnitAttr()
        names = space_names(spec, level)
        peaks = module_peaks(functions)
        for fn in functions:
            if fn.sym_name.data not in peaks:
                continue
            fn_peaks = peaks[fn.sym_name.data]
            tile_peak = fn_peaks.get(level.memory_space)
            if streams and is_kernel(fn) and tile_peak is not None and tile_peak.bytes > level.budget_bytes:
                raise PassFailedException(_overflow(op, fn, tile_peak, spec, level))
            fn.attributes[PEAK_ATTR] = _bytes_attr(fn_peaks, names)
        totals: dict[int, Peak] = {}
        for name, fn_peaks in peaks.items():
            for space, p in fn_peaks.items():
                if space not in totals or p.bytes > totals[space].bytes:
                    totals[space] = p
            del name
        op.attributes[TARGET_ATTR] = StringAttr(spec.name)
        op.attributes[SPACES_ATTR] = ArrayAttr([StringAttr(n) for n in names])
        op.attributes[TILE_LEVEL_ATTR] = StringAttr(level.name)
        op.attributes[TILE_BUDGET_ATTR] = IntegerAttr(level.budget_bytes, i64)
        op.attributes[PEAK_ATTR] = _bytes_attr(totals, names)
