"""The q35_storage dialect: the bridge between a `!q35.packed` weight and the tensors that store it.

A `!q35.packed<NxK, #scheme>` value is opaque to upstream MLIR. Its storage, though, is fixed by the bit layouts
of docs/formats.md and `q35c.ir.schemes`: a code array of the scheme's storage dtype and, for the schemes with
separate metadata, float16 scale (and offset) arrays of shape [N, K/g]. Lowering works on those tensors.

The compiler never invents where the bytes live: `materialize-weights` turns every `q35.weight` into
arguments of its function (one per storage tensor) and re-forms the packed value with `assemble`, so the
graph ops keep their operand types while everything below them sees plain tensors:

    func.func @f(%x: tensor<2x128xf16>, %w.codes: tensor<16x14xi32>, %w.scale: tensor<16x1xf16>,
                 %w.offset: tensor<16x1xf16>) -> tensor<2x16xf16> {
      %w = q35_storage.assemble %w.codes, %w.scale, %w.offset : (tensor<16x14xi32>, tensor<16x1xf16>,
          tensor<16x1xf16>) -> !q35.packed<16x128, #q35.scheme<q3p5, g = 128, container = dense>>
      %y = q35.linear %x, %w : (...) -> tensor<2x16xf16>
      ...

`unpack-bits` then rewrites the users of the packed value (`q35.linear`, `q35_storage.unpack`) into linalg and
arith on those storage tensors, after which the `assemble` ops are dead and erased: the final host IR is
upstream dialects only. `unpack` exposes the integer codes as a value of their own, so that they can be
inspected (and compared bit for bit, as `q35c verify` does) or consumed by a target whose matrix unit
takes integers.

Storage element types are MLIR's signless integers: numpy uint32 -> i32, uint8 and int8 -> i8, float16 -> f16,
float32 -> f32.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, TensorType, i8, i32
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def, traits_def, var_operand_def
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from q35c.dialects.q35 import PackedType

_f16 = Float16Type()

_ELEMENT_TYPES: dict[str, Attribute] = {
    "float16": _f16,
    "float32": Float32Type(),
    "int8": i8,
    "uint8": i8,
    "uint32": i32,
}

CODES, SCALE, OFFSET = "codes", "scale", "offset"


@dataclass(frozen=True)
class StorageTensor:
    """One tensor of a packed weight's storage: its role (`codes`, `scale` or `offset`) and its type."""

    role: str
    type: TensorType[Attribute]


@functools.lru_cache(maxsize=4096)  # passes ask this of the same few types thousands of times per compile
def storage_tensors(packed: PackedType) -> tuple[StorageTensor, ...]:
    """The tensors that store a packed weight, in `assemble` operand order: codes, then scale, then offset.

    fp16 and the llama.cpp block formats (whose scales sit inside the blocks) have the code array only;
    int8 adds a scale; int4 and q3p5 add a scale and an offset.

        !q35.packed<16x128, #q35.scheme<int4, g = 32>>
            -> codes tensor<16x16xi32>, scale tensor<16x4xf16>, offset tensor<16x4xf16>
    """
    scheme = packed.scheme
    shape = packed.get_shape()
    element = _ELEMENT_TYPES[scheme.storage_dtype]
    if len(shape) == 1:
        return (StorageTensor(CODES, TensorType(element, shape)),)
    n, k = shape
    tensors = [StorageTensor(CODES, TensorType(element, scheme.storage_shape(n, k)))]
    meta = scheme.metadata_shape(n, k)
    if meta is not None:
        tensors.append(StorageTensor(SCALE, TensorType(_f16, meta)))
        if not scheme.symmetric:
            tensors.append(StorageTensor(OFFSET, TensorType(_f16, meta)))
    return tuple(tensors)


@irdl_op_definition
class AssembleOp(IRDLOperation):
    """View storage tensors (codes, then scale and offset where the scheme has them) as a packed weight.

    %w = q35_storage.assemble %codes, %scale, %offset : (tensor<16x16xi32>, tensor<16x4xf16>,
        tensor<16x4xf16>) -> !q35.packed<16x128, #q35.scheme<int4, g = 32>>
    %v = q35_storage.assemble %blocks : (tensor<16x72xi8>) -> !q35.packed<16x128, #q35.scheme<q4_0>>
    """

    name = "q35_storage.assemble"

    storage = var_operand_def(TensorType)
    result = result_def(PackedType)

    assembly_format = "$storage attr-dict `:` `(` type($storage) `)` `->` type($result)"
    traits = traits_def(Pure())

    def __init__(self, storage: Sequence[SSAValue], result_type: PackedType) -> None:
        super().__init__(operands=[storage], result_types=[result_type])

    @property
    def packed_type(self) -> PackedType:
        assert isinstance(self.result.type, PackedType)
        return self.result.type

    def operand_for(self, role: str) -> SSAValue | None:
        """The storage operand with the given role (`codes`, `scale`, `offset`), or None if the scheme has none."""
        for tensor, value in zip(storage_tensors(self.packed_type), self.storage, strict=True):
            if tensor.role == role:
                return value
        return None

    def verify_(self) -> None:
        expected = storage_tensors(self.packed_type)
        got = [value.type for value in self.storage]
        if len(got) != len(expected):
            roles = ", ".join(t.role for t in expected)
            raise VerifyException(
                f"{self.packed_type.scheme} storage is {len(expected)} tensor(s) ({roles}), got {len(got)}"
            )
        for tensor, typ in zip(expected, got, strict=True):
            if typ != tensor.type:
                raise VerifyException(f"{tensor.role} of {self.packed_type} must be {tensor.type}, got {typ}")


@irdl_op_definition
class UnpackOp(IRDLOperation):
    """The integer codes of a quantized [N, K] weight, one int8 per weight, exactly as `q35c.formats.unpack`.

    q3p5 gives n1 at even k and n2 at odd k; q4_0 gives nibble - 8. fp16 weights have no codes.

        %c = q35_storage.unpack %w : !q35.packed<16x128, #q35.scheme<q4_0>> -> tensor<16x128xi8>
    """

    name = "q35_storage.unpack"

    weight = operand_def(PackedType)
    result = result_def(TensorType[IntegerType])

    assembly_format = "$weight attr-dict `:` type($weight) `->` type($result)"
    traits = traits_def(Pure())

    def __init__(self, weight: SSAValue) -> None:
        wt = weight.type
        assert isinstance(wt, PackedType)
        super().__init__(operands=[weight], result_types=[TensorType(i8, wt.get_shape())])

    def verify_(self) -> None:
        wt = self.weight.type
        assert isinstance(wt, PackedType)
        if not wt.scheme.is_quantized or len(wt.get_shape()) != 2:
            raise VerifyException(f"unpack needs a quantized 2-D weight, got {wt}")
        expected = TensorType(i8, wt.get_shape())
        if self.result.type != expected:
            raise VerifyException(f"unpack of {wt} gives {expected}, got {self.result.type}")


Q35_STORAGE = Dialect("q35_storage", [AssembleOp, UnpackOp], [])
