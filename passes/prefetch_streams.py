"""prefetch-streams: software prefetches ahead of the weight streams of the host's interleaved kernels.

A one-token kernel over weights stored with rows interleaved (`integer-matvec`'s `interleave-rows`; the function
arguments carry `q35.interleave`) reads its codes as one stream: in each step of its loop over a row block's
groups, R rows' runs of one group, side by side (q3p5, R = 8: 448 bytes). The hardware prefetchers fall behind
such a stream while the loop's vector work keeps the core busy (and stop at every 4 KiB page); this pass, run on
the bufferized loops (between mlir-opt's calls, like `serial-small-loops`), adds before each such read that
starts a new 64-byte line of the step's run a `memref.prefetch` of the same view `distance` bytes further on:

    %w = vector.transfer_read %codes[%b, %at], %pad : memref<512x9632xi32>, vector<4xi32>
    -> "memref.prefetch"(%codes, %b, %ahead) <{isDataCache = true, isWrite = false, localityHint = 3 : i32}>
       with %ahead = %at + distance / 4

Beyond a row of the view the address lies in the next row block's storage (rows are contiguous), which is what
the stream reads next; a prefetch never faults. Nothing else changes: prefetches move no data the program sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref, scf, vector
from xdsl.dialects.builtin import (
    BoolAttr,
    DictionaryAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    i32,
)
from xdsl.ir import Block, Operation, SSAValue
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, prop_def, var_operand_def
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from q35c.ir.attrs import INTERLEAVE_ATTR, STORAGE_ATTR
from q35c.passes.serial_small_loops import constant_index

LINE = 64  # bytes of a cache line
# Chosen by measuring q3p5 4096x11008 cold on the host (docs/host-code.md: into L1 4 KiB ahead 1.4-1.5 ms, into L2
# 4 KiB 1.2-1.3, 8 KiB 1.1, 16 KiB 1.2, 2 KiB 1.8; none 1.8).
LOCALITY = 2  # into L2 (x86 prefetcht1): the stream passes by, L1 keeps the activations
DISTANCE = 8192  # bytes ahead of the read


@irdl_op_definition
class PrefetchOp(IRDLOperation):
    """MLIR's `memref.prefetch` (printed in generic form, which mlir-opt reads)."""

    name = "memref.prefetch"
    memref = operand_def(MemRefType)
    indices = var_operand_def(IndexType)
    isWrite = prop_def(BoolAttr)
    localityHint = prop_def(IntegerAttr)
    isDataCache = prop_def(BoolAttr)

    def __init__(self, source: SSAValue, indices: list[SSAValue]) -> None:
        super().__init__(
            operands=[source, indices],
            properties={
                "isWrite": BoolAttr.from_bool(False),
                "localityHint": IntegerAttr(LOCALITY, i32),
                "isDataCache": BoolAttr.from_bool(True),
            },
        )


VIEWS = (memref.ExpandShapeOp, memref.CollapseShapeOp, memref.SubviewOp)


def _streams(fn: func.FuncOp) -> list[SSAValue]:
    """The function's interleaved storage arguments (codes, scales, offsets)."""
    block = fn.body.blocks.first
    if block is None or fn.arg_attrs is None:
        return []
    found: list[SSAValue] = []
    for arg, attrs in zip(block.args, fn.arg_attrs.data, strict=True):
        if not isinstance(attrs, DictionaryAttr) or INTERLEAVE_ATTR not in attrs.data:
            continue
        if isinstance(attrs.data.get(STORAGE_ATTR), StringAttr):
            found.append(arg)
    return found


def _views(value: SSAValue) -> Iterator[SSAValue]:
    """`value` and every view of it (reshapes and subviews, transitively)."""
    pending = [value]
    while pending:
        v = pending.pop()
        yield v
        pending.extend(use.operation.results[0] for use in v.uses if isinstance(use.operation, VIEWS))


def _split(index: SSAValue) -> tuple[SSAValue | None, int]:
    """An index as base + constant (base None: a constant)."""
    if (c := constant_index(index)) is not None:
        return None, c
    owner = index.owner
    if isinstance(owner, arith.AddiOp):
        for base, other in ((owner.lhs, owner.rhs), (owner.rhs, owner.lhs)):
            if (c := constant_index(other)) is not None:
                return base, c
    return index, 0


@dataclass(frozen=True)
class PrefetchStreamsPass(ModulePass):
    """Prefetch `distance` bytes ahead of the interleaved code streams in loops (module docstring)."""

    name = "prefetch-streams"

    distance: int = DISTANCE

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.distance == 0:
            return
        for fn in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            reads: dict[tuple[Block, SSAValue, tuple[SSAValue, ...], SSAValue | None], list[vector.TransferReadOp]]
            reads = {}
            for stream in _streams(fn):
                for view in _views(stream):
                    for use in view.uses:
                        read = use.operation
                        if not isinstance(read, vector.TransferReadOp) or use.index != 0:
                            continue
                        block = read.parent_block()
                        if block is None or not isinstance(block.parent_op(), scf.ForOp):
                            continue
                        *rows, column = read.indices
                        base, _ = _split(column)
                        reads.setdefault((block, view, tuple(rows), base), []).append(read)
            for (_, view, rows, base), group in reads.items():
                self._prefetch(view, list(rows), base, group)

    def _prefetch(
        self, view: SSAValue, rows: list[SSAValue], base: SSAValue | None, group: list[vector.TransferReadOp]
    ) -> None:
        """One prefetch per 64-byte line the group's reads start, before the first read of that line."""
        typ = view.type
        assert isinstance(typ, MemRefType)
        size = typ.element_type.bitwidth // 8  # type: ignore[attr-defined]
        ahead = self.distance // size
        last: int | None = None
        for read in sorted(group, key=lambda r: _split(r.indices[-1])[1]):
            offset = _split(read.indices[-1])[1]
            if last is not None and (offset - last) * size < LINE:
                continue
            last = offset
            constant = arith.ConstantOp(IntegerAttr(offset + ahead, IndexType()))
            ops: list[Operation] = [constant]
            column = constant.result
            if base is not None:
                add = arith.AddiOp(base, constant.result)
                ops.append(add)
                column = add.result
            ops.append(PrefetchOp(view, [*rows, column]))
            Rewriter.insert_op(ops, InsertPoint.before(read))
