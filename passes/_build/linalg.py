"""Helpers for passes that build `linalg.generic` and `tensor` ops on tensors.

A pass describes each generic by its inputs, an output init tensor, one indexing map per operand (a Python
lambda over the loop dims, inputs first, output last), the iterator types, and a body: a function that gets a
`Scalar` emitter and the block arguments (inputs, then the output's current value) and returns the value to
yield. For example, y[t, n] = sum_k x[t, k] * w[n, k] in f32:

    init = zeros(rewriter, (t, n), "acc")
    maps = [lambda t, n, k: (t, k), lambda t, n, k: (n, k), lambda t, n, k: (t, n)]
    body = lambda s, a: s.addf(a[2], s.mulf(s.to_f32(a[0]), s.to_f32(a[1])))
    acc = generic(rewriter, [x, w], init, maps, (PARALLEL, PARALLEL, REDUCTION), body, "acc", ("x", "w", "acc"))

builds

    %acc_empty = tensor.empty() : tensor<TxNxf32>
    %acc_init = linalg.fill ins(%cst : f32) outs(%acc_empty : tensor<TxNxf32>) -> tensor<TxNxf32>
    %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>,
        affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>],
        iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%x, %w : tensor<TxKxf16>, tensor<NxKxf16>) outs(%acc_init : tensor<TxNxf32>) {
    ^bb0(%x_1: f16, %w_1: f16, %acc_1: f32):
      %0 = arith.extf %x_1 : f16 to f32
      %1 = arith.extf %w_1 : f16 to f32
      %2 = arith.mulf %0, %1 : f32
      %3 = arith.addf %acc_1, %2 : f32
      linalg.yield %3 : f32
    } -> tensor<TxNxf32>

`mark_kernel` tags the main linalg op of a lowered graph op with the discardable attribute
`q35.kernel = "<name>"` (KERNEL_ATTR), so later passes and cost models can tell kernels apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.builder import Builder
from xdsl.dialects import arith, math, tensor
from xdsl.dialects.builtin import (
    AffineMapAttr,
    AnyFloat,
    ArrayAttr,
    Float16Type,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    i32,
    i64,
)
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.linalg.ops import FillOp, GenericOp, IndexOp, YieldOp
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.ir.affine.affine_map import AffineMapBuilderT
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint
from q35c.ir.attrs import KERNEL_ATTR

f16 = Float16Type()
f32 = Float32Type()
PARALLEL = IteratorTypeAttr.parallel()
REDUCTION = IteratorTypeAttr.reduction()

"""The discardable attribute naming the kernel a linalg op implements ("linear", "attention", ...)."""


@dataclass(frozen=True)
class Scalar:
    """Emits the scalar arith/math ops of a generic's body; integer operands may be Python ints (constants)."""

    builder: Builder
    _constants: dict[tuple[int, IntegerType], SSAValue] = field(default_factory=dict[tuple[int, IntegerType], SSAValue])
    _float_constants: dict[tuple[float, Attribute], SSAValue] = field(
        default_factory=dict[tuple[float, Attribute], SSAValue]
    )

    def const(self, value: int, typ: IntegerType) -> SSAValue:
        """An integer constant, created once per body."""
        key = (value, typ)
        if key not in self._constants:
            self._constants[key] = self.builder.insert(arith.ConstantOp.from_int_and_width(value, typ)).result
        return self._constants[key]

    def fconst(self, value: float, typ: AnyFloat = f32) -> SSAValue:
        """A float constant, created once per body."""
        key = (value, typ)
        if key not in self._float_constants:
            self._float_constants[key] = self.builder.insert(arith.ConstantOp(FloatAttr(value, typ))).result
        return self._float_constants[key]

    def _int(self, value: SSAValue | int, like: SSAValue) -> SSAValue:
        if isinstance(value, int):
            assert isinstance(like.type, IntegerType)
            return self.const(value, like.type)
        return value

    def _float(self, value: SSAValue | float, like: SSAValue) -> SSAValue:
        if isinstance(value, float | int):
            assert isinstance(like.type, AnyFloat)
            return self.fconst(float(value), like.type)
        return value

    # Integers -------------------------------------------------------------------------------------------------

    def index(self, dim: int) -> SSAValue:
        """The loop index `dim` as i32."""
        idx = self.builder.insert(IndexOp(dim)).result
        return self.builder.insert(arith.IndexCastOp(idx, i32)).result

    def shrui(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.ShRUIOp(a, self._int(b, a))).result

    def shrsi(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.ShRSIOp(a, self._int(b, a))).result

    def shli(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.ShLIOp(a, self._int(b, a))).result

    def andi(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.AndIOp(a, self._int(b, a))).result

    def ori(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.builder.insert(arith.OrIOp(a, b)).result

    def xori(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.XOrIOp(a, self._int(b, a))).result

    def minui(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.MinUIOp(a, self._int(b, a))).result

    def addi(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.AddiOp(a, self._int(b, a))).result

    def muli(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.MuliOp(a, self._int(b, a))).result

    def subi(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.SubiOp(a, self._int(b, a))).result

    def cmpi(self, a: SSAValue, b: SSAValue | int, predicate: str) -> SSAValue:
        """`arith.cmpi` with a predicate name ("eq", "ne", "slt", "sle", "sgt", "sge", "ult", ...)."""
        return self.builder.insert(arith.CmpiOp(a, self._int(b, a), predicate)).result

    def is_odd(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(arith.CmpiOp(self.andi(a, 1), self.const(0, i32), "ne")).result

    def select(self, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.builder.insert(arith.SelectOp(cond, a, b)).result

    def extui(self, a: SSAValue, typ: IntegerType) -> SSAValue:
        return self.builder.insert(arith.ExtUIOp(a, typ)).result

    def trunci(self, a: SSAValue, typ: IntegerType) -> SSAValue:
        return self.builder.insert(arith.TruncIOp(a, typ)).result

    def bitcast(self, a: SSAValue, typ: Attribute) -> SSAValue:
        return self.builder.insert(arith.BitcastOp(a, typ)).result

    def divui(self, a: SSAValue, b: SSAValue | int) -> SSAValue:
        return self.builder.insert(arith.DivUIOp(a, self._int(b, a))).result

    def to_index(self, a: SSAValue) -> SSAValue:
        """An integer as `index` (for `tensor.extract`)."""
        return self.builder.insert(arith.IndexCastOp(a, IndexType())).result

    def extract(self, source: SSAValue, indices: Sequence[SSAValue]) -> SSAValue:
        """`tensor.extract` of one element of a tensor defined outside the body (a gather); `index` indices."""
        return self.builder.insert(tensor.ExtractOp(source, indices, element_type(source))).result

    # Floats ---------------------------------------------------------------------------------------------------

    def sitofp(self, a: SSAValue) -> SSAValue:
        """A signed integer as f32."""
        return self.builder.insert(arith.SIToFPOp(a, f32)).result

    def to_f32(self, a: SSAValue) -> SSAValue:
        """Extend a float to f32 (no-op for f32)."""
        return a if a.type == f32 else self.builder.insert(arith.ExtFOp(a, f32)).result

    def truncf(self, a: SSAValue, typ: AnyFloat) -> SSAValue:
        """Round a float to a narrower type (no-op when it already has that type)."""
        return a if a.type == typ else self.builder.insert(arith.TruncFOp(a, typ)).result

    def convert(self, a: SSAValue, typ: AnyFloat) -> SSAValue:
        """A float as `typ`: extended, rounded, or itself when it already has that type."""
        return a if a.type == typ else self.truncf(self.to_f32(a), typ)

    def addf(self, a: SSAValue, b: SSAValue | float) -> SSAValue:
        return self.builder.insert(arith.AddfOp(a, self._float(b, a))).result

    def subf(self, a: SSAValue, b: SSAValue | float) -> SSAValue:
        return self.builder.insert(arith.SubfOp(a, self._float(b, a))).result

    def mulf(self, a: SSAValue, b: SSAValue | float) -> SSAValue:
        return self.builder.insert(arith.MulfOp(a, self._float(b, a))).result

    def divf(self, a: SSAValue, b: SSAValue | float) -> SSAValue:
        return self.builder.insert(arith.DivfOp(a, self._float(b, a))).result

    def fma(self, a: SSAValue, b: SSAValue, c: SSAValue) -> SSAValue:
        """a * b + c with one rounding (`math.fma`): one multiply-add issue slot."""
        return self.builder.insert(math.FmaOp(a, b, c)).result

    def negf(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(arith.NegfOp(a)).result

    def maximumf(self, a: SSAValue, b: SSAValue | float) -> SSAValue:
        return self.builder.insert(arith.MaximumfOp(a, self._float(b, a))).result

    def exp(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(math.ExpOp(a)).result

    def rsqrt(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(math.RsqrtOp(a)).result

    def sqrt(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(math.SqrtOp(a)).result

    def cos(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(math.CosOp(a)).result

    def sin(self, a: SSAValue) -> SSAValue:
        return self.builder.insert(math.SinOp(a)).result


Body = Callable[[Scalar, Sequence[BlockArgument]], SSAValue]
MapFn = AffineMapBuilderT | AffineMap
"""An indexing map: a lambda from the loop dims to the operand's indices, or an AffineMap."""


def element_type(value: SSAValue) -> Attribute:
    """The element type of a tensor value."""
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def shape_of(value: SSAValue) -> tuple[int, ...]:
    """The static shape of a tensor value."""
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def named(value: SSAValue, name: str) -> SSAValue:
    """Give a value a name hint for the printed IR and return it."""
    value.name_hint = name
    return value


def identity(rank: int) -> AffineMap:
    """The identity indexing map over `rank` loops (`generic` takes it where it takes a lambda)."""
    return AffineMap.identity(rank)


def empty(rewriter: PatternRewriter, element: Attribute, shape: Sequence[int], name: str) -> SSAValue:
    """A `tensor.empty` of the given element type and shape."""
    op = rewriter.insert(tensor.EmptyOp([], TensorType(element, shape)))
    op.tensor.name_hint = name
    return op.tensor


def fill(rewriter: PatternRewriter, value: float, element: AnyFloat, shape: Sequence[int], name: str) -> SSAValue:
    """A tensor filled with one float constant (`tensor.empty` + `linalg.fill`), named `<name>_init`."""
    cst = rewriter.insert(arith.ConstantOp(FloatAttr(value, element))).result
    out = FillOp([cst], [empty(rewriter, element, shape, f"{name}_empty")], [TensorType(element, shape)])
    rewriter.insert(out)
    out.results[0].name_hint = f"{name}_init"
    return out.results[0]


def zeros(rewriter: PatternRewriter, shape: Sequence[int], name: str) -> SSAValue:
    """A zero-filled f32 accumulator."""
    return fill(rewriter, 0.0, f32, shape, name)


def generic(
    rewriter: PatternRewriter,
    inputs: Sequence[SSAValue],
    init: SSAValue,
    maps: Sequence[MapFn],
    iterators: Sequence[IteratorTypeAttr],
    body: Body,
    name: str,
    arg_names: Sequence[str] = (),
) -> SSAValue:
    """Insert a linalg.generic with one output; `maps` are lambdas over the loop dims (or AffineMaps), inputs first.

    `body` emits the scalar computation from the block arguments (inputs, then the output's current value)
    and returns the value to yield; `arg_names` name the block arguments in the printed IR.
    """
    block = Block(arg_types=[element_type(v) for v in (*inputs, init)])
    for arg, arg_name in zip(block.args, arg_names, strict=False):
        arg.name_hint = arg_name
    result = body(Scalar(Builder(InsertPoint.at_end(block))), block.args)
    block.add_op(YieldOp(result))
    op = rewriter.insert(
        GenericOp(
            inputs,
            [init],
            Region(block),
            [AffineMapAttr(m if isinstance(m, AffineMap) else AffineMap.from_callable(m)) for m in maps],
            iterators,
            [init.type],
        )
    )
    op.results[0].name_hint = name
    return op.results[0]


def _reassociation(groups: Sequence[Sequence[int]]) -> ArrayAttr[ArrayAttr[IntegerAttr]]:
    return ArrayAttr([ArrayAttr([IntegerAttr(d, i64) for d in group]) for group in groups])


def expand_shape(
    rewriter: PatternRewriter, value: SSAValue, groups: Sequence[Sequence[int]], shape: Sequence[int], name: str
) -> SSAValue:
    """`tensor.expand_shape`: source dim i becomes the result dims `groups[i]`, e.g. [T, H*hd] -> [T, H, hd]
    with groups [[0], [1, 2]]. Generics then index heads with plain loop dims (d0, d1, d2), which keeps every
    indexing map invertible as linalg requires."""
    typ = TensorType(element_type(value), shape)
    op = rewriter.insert(tensor.ExpandShapeOp(value, [], _reassociation(groups), shape, typ))
    return named(op.result, name)


def collapse_shape(
    rewriter: PatternRewriter, value: SSAValue, groups: Sequence[Sequence[int]], shape: Sequence[int], name: str
) -> SSAValue:
    """`tensor.collapse_shape`, the inverse of `expand_shape`: result dim i joins the source dims `groups[i]`."""
    typ = TensorType(element_type(value), shape)
    properties = {"reassociation": _reassociation(groups)}
    op = rewriter.insert(tensor.CollapseShapeOp(operands=[value], result_types=[typ], properties=properties))
    return named(op.results[0], name)


def mark_kernel(value: SSAValue, kernel: str) -> SSAValue:
    """Tag the op defining `value` with `q35.kernel = "<kernel>"` and return the value."""
    owner = value.owner
    assert isinstance(owner, Operation)
    owner.attributes[KERNEL_ATTR] = StringAttr(kernel)
    return value
