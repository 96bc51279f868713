"""Vector ops for the host kernels that passes build: casts on vectors, an op emitter, transfer reads.

xDSL 0.74 defines `arith.extsi`, `arith.sitofp` and `arith.fptosi` on scalars only; MLIR's take vectors as well.
`VectorExtSIOp`, `VectorSIToFPOp` and `VectorFPToSIOp` are the same MLIR ops on vectors (same name and syntax),
for IR that is printed and handed to mlir-opt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from xdsl.builder import Builder
from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import (
    AffineMapAttr,
    ArrayAttr,
    BoolAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    TensorType,
    VectorType,
)
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineExpr, AffineMap
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def

f32 = Float32Type()


class _VectorCast(IRDLOperation):
    input = operand_def(VectorType)
    result = result_def(VectorType)
    assembly_format = "$input attr-dict `:` type($input) `to` type($result)"

    def __init__(self, op: SSAValue, target: VectorType) -> None:
        super().__init__(operands=[op], result_types=[target])


@irdl_op_definition
class VectorExtSIOp(_VectorCast):
    """`arith.extsi` on vectors."""

    name = "arith.extsi"


@irdl_op_definition
class VectorSIToFPOp(_VectorCast):
    """`arith.sitofp` on vectors."""

    name = "arith.sitofp"


@irdl_op_definition
class VectorFPToSIOp(_VectorCast):
    """`arith.fptosi` on vectors."""

    name = "arith.fptosi"


@dataclass
class Emit:
    """Inserts ops at a point; integer and vector constants once per emitter."""

    builder: Builder
    _consts: dict[tuple[object, ...], SSAValue] = field(default_factory=dict[tuple[object, ...], SSAValue])

    def op(self, op: Operation) -> SSAValue:
        self.builder.insert(op)
        return op.results[0]

    def index(self, value: int) -> SSAValue:
        key = ("index", value)
        if key not in self._consts:
            self._consts[key] = self.op(arith.ConstantOp(IntegerAttr(value, IndexType())))
        return self._consts[key]

    def f32(self, value: float) -> SSAValue:
        key = ("f32", value)
        if key not in self._consts:
            self._consts[key] = self.op(arith.ConstantOp(FloatAttr(value, f32)))
        return self._consts[key]

    def dense(self, typ: VectorType, values: Sequence[int | float]) -> SSAValue:
        key = ("dense", str(typ), tuple(values))
        if key not in self._consts:
            self._consts[key] = self.op(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(typ, list(values))))
        return self._consts[key]


def read(e: Emit, source: SSAValue, indices: Sequence[SSAValue], typ: VectorType) -> SSAValue:
    """`vector.transfer_read` of a 1-D vector along the last dimension, within bounds."""
    element = typ.element_type
    pad_attr = FloatAttr(0.0, element) if isinstance(element, Float16Type | Float32Type) else IntegerAttr(0, element)
    pad = e.op(arith.ConstantOp(pad_attr))  # type: ignore[arg-type]
    source_type = source.type
    assert isinstance(source_type, TensorType)
    rank = len(source_type.get_shape())
    perm = AffineMapAttr(AffineMap(rank, 0, (AffineExpr.dimension(rank - 1),)))
    in_bounds = ArrayAttr([BoolAttr.from_bool(True)])
    return e.op(vector.TransferReadOp(source, indices, pad, typ, in_bounds, perm))


def write(e: Emit, value: SSAValue, dest: SSAValue, indices: Sequence[SSAValue]) -> SSAValue:
    """`vector.transfer_write` of a 1-D vector along the last dimension of a tensor; the updated tensor."""
    dest_type = dest.type
    assert isinstance(dest_type, TensorType)
    rank = len(dest_type.get_shape())
    perm = AffineMapAttr(AffineMap(rank, 0, (AffineExpr.dimension(rank - 1),)))
    in_bounds = ArrayAttr([BoolAttr.from_bool(True)])
    return e.op(vector.TransferWriteOp(value, dest, indices, in_bounds, None, perm, dest_type))


REASSOC = arith.FastMathFlagsAttr([arith.FastMathFlag.REASSOC, arith.FastMathFlag.ALLOW_CONTRACT])


def reduction(e: Emit, value: SSAValue, kind: vector.CombiningKindFlag, acc: SSAValue | None = None) -> SSAValue:
    """`vector.reduction` of a 1-D vector to its element type (reassociable), optionally into `acc`.

    (Built with the result type given: xDSL 0.74's constructor gives the result the vector's type.)"""
    typ = value.type
    assert isinstance(typ, VectorType)
    properties = {"kind": vector.CombiningKindAttr(kind), "fastmath": REASSOC}
    operands: list[SSAValue | list[SSAValue]] = [value, [acc] if acc is not None else []]
    return e.op(vector.ReductionOp.build(operands=operands, result_types=[typ.element_type], properties=properties))
