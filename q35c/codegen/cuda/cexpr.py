"""CUDA C for the scalar part of the final IR: element types, literals, and linalg bodies (index expressions:
`index.py`).

A linalg body is printed as C statements, one local per op, in the body's order:

    ^bb0(%x: f16, %w: f32, %acc: f32):                 const float v1 = __half2float(a0);
      %0 = arith.extf %x : f16 to f32           ->     const float v2 = (v1 * a1);
      %1 = arith.mulf %0, %w : f32                     const float v3 = (a2 + v2);
      %2 = arith.addf %acc, %1 : f32
      linalg.yield %2 : f32

f16 arithmetic is done in f32 and rounded back (exact for add, sub and mul of two f16 values, so the result is
the correctly rounded f16 one). Integer ops wrap as in MLIR (shifts and arithmetic on the unsigned type).
An op this printer does not know is a bug of the pipeline or of this printer: `UnsupportedIR`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from xdsl.dialects.builtin import (
    AffineMapAttr,
    AnyFloat,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    TensorType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue


class UnsupportedIR(Exception):
    """IR the CUDA printer cannot express: an internal error (the pipeline's final IR is fixed)."""


# Index arithmetic: a kernel whose tensors all have fewer than NARROW_LIMIT elements computes its indices in
# 32-bit `int` (integer division and remainder by a constant are a few instructions there, tens in 64 bits);
# any other kernel in `long long`. Each kernel declares `using q35_i = ...;` (`index_using`) and every index
# variable is a `q35_i` (the printers write that name); index literals carry no suffix in 32 bits, so the
# arithmetic stays 32-bit.
NARROW_LIMIT = 2**30
_WIDE: ContextVar[bool] = ContextVar("q35c_cuda_wide_index", default=True)


def ilit(value: int) -> str:
    """An index literal of the kernel being printed."""
    return f"{value}LL" if _WIDE.get() else f"{value}"


def index_using() -> str:
    return f"using q35_i = {'long long' if _WIDE.get() else 'int'};"


def needs_wide(ops: Iterator[Operation], args: Sequence[SSAValue] = ()) -> bool:
    """Whether any tensor among `args` and the results of `ops` has NARROW_LIMIT elements or more."""
    values: list[SSAValue] = list(args)
    for op in ops:
        values += op.results
    for value in values:
        if isinstance(value.type, TensorType):
            count = 1
            for d in value.type.get_shape():
                count *= max(int(d), 1)
            if count >= NARROW_LIMIT:
                return True
    return False


@contextmanager
def index_width(wide: bool) -> Iterator[None]:
    """Print index arithmetic in 64 bits (`wide`) or 32 bits inside the block."""
    token = _WIDE.set(wide)
    try:
        yield
    finally:
        _WIDE.reset(token)


def ctype(typ: Attribute) -> str:
    """The C type of an MLIR element type."""
    if isinstance(typ, IndexType):
        return "long long"
    if isinstance(typ, IntegerType):
        width = typ.width.data
        if width == 1:
            return "bool"
        if width in (8, 16, 32, 64):
            return f"int{width}_t"
    if isinstance(typ, AnyFloat):
        if typ.bitwidth == 16:
            return "__nv_bfloat16" if "bf16" in typ.name else "__half"
        if typ.bitwidth in (32, 64):
            return "float" if typ.bitwidth == 32 else "double"
    raise UnsupportedIR(f"no C type for {typ}")


def element_size(typ: Attribute) -> int:
    """Bytes of one element in memory."""
    if isinstance(typ, IndexType):
        return 8
    if isinstance(typ, IntegerType):
        return max(1, typ.width.data // 8)
    if isinstance(typ, AnyFloat):
        return typ.bitwidth // 8
    raise UnsupportedIR(f"no element size for {typ}")


def is_half(typ: Attribute) -> bool:
    return isinstance(typ, AnyFloat) and typ.bitwidth == 16


def to_float(expr: str, typ: Attribute) -> str:
    """`expr` of element type `typ` as a float (f16 and bf16 widened)."""
    if is_half(typ):
        return f"q35_to_float({expr})"
    return f"(float)({expr})"


def from_float(expr: str, typ: Attribute) -> str:
    """A float expression as element type `typ`."""
    if is_half(typ):
        return f"({ctype(typ)})({expr})" if "bf16" in typ.name else f"__float2half_rn({expr})"
    return f"({ctype(typ)})({expr})"


def literal(attr: Attribute, typ: Attribute) -> str:
    """A scalar constant as a C expression of the element type."""
    if isinstance(attr, FloatAttr):
        value = float(attr.value.data)
        text = repr(value) if value == value and value not in (float("inf"), float("-inf")) else None
        if text is None:
            text = "__int_as_float(0x7fc00000)" if value != value else ("INFINITY" if value > 0 else "-INFINITY")
        else:
            text = f"{text}f" if "e" in text or "." in text else f"{text}.0f"
        return from_float(text, typ) if is_half(typ) else (text if ctype(typ) == "float" else f"(double){text}")
    if isinstance(attr, IntegerAttr):
        value = int(attr.value.data)
        if isinstance(typ, IntegerType) and typ.width.data == 1:
            return "true" if value & 1 else "false"
        return f"(({ctype(typ)}){value}LL)"
    raise UnsupportedIR(f"no literal for {attr}")


def dense_values(attr: DenseIntOrFPElementsAttr) -> list[str]:
    """The elements of a dense constant, as C literals of its element type."""
    elem = attr.get_element_type()
    values = attr.get_values()
    out: list[str] = []
    for v in values:
        if isinstance(elem, AnyFloat):
            out.append(literal(FloatAttr(float(v), elem), elem))  # type: ignore[arg-type]
        else:
            out.append(literal(IntegerAttr(int(v), elem), elem))  # type: ignore[arg-type]
    return out


_FLOAT_BINARY = {
    "arith.addf": "({a} + {b})",
    "arith.subf": "({a} - {b})",
    "arith.mulf": "({a} * {b})",
    "arith.divf": "({a} / {b})",
    "arith.maximumf": "fmaxf({a}, {b})",
    "arith.minimumf": "fminf({a}, {b})",
    "arith.maxnumf": "fmaxf({a}, {b})",
    "arith.minnumf": "fminf({a}, {b})",
    "arith.remf": "fmodf({a}, {b})",
    "math.powf": "powf({a}, {b})",
}
_FLOAT_UNARY = {
    "arith.negf": "(-{a})",
    "math.rsqrt": "rsqrtf({a})",
    "math.sqrt": "sqrtf({a})",
    "math.exp": "expf({a})",
    "math.log": "logf({a})",
    "math.cos": "cosf({a})",
    "math.sin": "sinf({a})",
    "math.tanh": "tanhf({a})",
    "math.absf": "fabsf({a})",
    "math.erf": "erff({a})",
}
_INT_BINARY = {
    "arith.addi": "({u})((({u}){a}) + (({u}){b}))",
    "arith.subi": "({u})((({u}){a}) - (({u}){b}))",
    "arith.muli": "({u})((({u}){a}) * (({u}){b}))",
    "arith.andi": "({a} & {b})",
    "arith.ori": "({a} | {b})",
    "arith.xori": "({a} ^ {b})",
    "arith.shli": "({u})((({u}){a}) << ({b}))",
    "arith.shrui": "({u})((({u}){a}) >> ({b}))",
    "arith.shrsi": "({a} >> ({b}))",
    "arith.divsi": "({a} / {b})",
    "arith.remsi": "({a} % {b})",
    "arith.divui": "({u})((({u}){a}) / (({u}){b}))",
    "arith.remui": "({u})((({u}){a}) % (({u}){b}))",
    "arith.minsi": "min({a}, {b})",
    "arith.maxsi": "max({a}, {b})",
    "arith.minui": "({u})min(({u}){a}, ({u}){b})",
    "arith.maxui": "({u})max(({u}){a}, ({u}){b})",
}
_CMP = {0: "==", 1: "!=", 2: "<", 3: "<=", 4: ">", 5: ">=", 6: "<", 7: "<=", 8: ">", 9: ">="}
_CMPF = {1: "==", 2: ">", 3: ">=", 4: "<", 5: "<=", 6: "!=", 8: "==", 9: ">", 10: ">=", 11: "<", 12: "<=", 13: "!="}


def _unsigned(typ: Attribute) -> str:
    if isinstance(typ, IndexType):
        return "unsigned long long"
    if isinstance(typ, IntegerType) and typ.width.data in (8, 16, 32, 64):
        return f"uint{typ.width.data}_t"
    return ctype(typ)


def _predicate(op: Operation) -> int:
    attr = op.properties.get("predicate", op.attributes.get("predicate"))
    if not isinstance(attr, IntegerAttr):
        raise UnsupportedIR(f"{op.name} without a predicate")
    return int(attr.value.data)


@dataclass
class BodyPrinter:
    """Prints the ops of a block as C statements into `lines`, naming each result `v<N>`.

    `names` maps values defined outside the block (block arguments, captured values) to C expressions;
    `index(dim)` gives the C expression of `linalg.index dim`; `extract(tensor, indices)` the C expression that
    reads a tensor element (`tensor.extract` in an embedding's body)."""

    names: dict[SSAValue, str]
    index: Callable[[int], str]
    extract: Callable[[SSAValue, list[str]], str]
    lines: list[str] = field(default_factory=list[str])
    counter: list[int] = field(default_factory=lambda: [0])

    def name(self, value: SSAValue) -> str:
        if value not in self.names:
            raise UnsupportedIR(f"value {value.name_hint or value} used before it is defined")
        return self.names[value]

    def fresh(self) -> str:
        self.counter[0] += 1
        return f"v{self.counter[0]}"

    def define(self, value: SSAValue, expr: str) -> None:
        var = self.fresh()
        self.lines.append(f"const {ctype(value.type)} {var} = {expr};")
        self.names[value] = var

    def block(self, block: Block) -> list[str]:
        """Print every op but the terminator; return the C expressions the terminator yields."""
        for op in block.ops:
            if op is block.last_op and op.name in ("linalg.yield", "scf.yield"):
                return [self.name(v) for v in op.operands]
            self.op(op)
        raise UnsupportedIR("a body without a yield")

    def op(self, op: Operation) -> None:
        name = op.name
        if name == "arith.constant":
            attr = op.properties.get("value", op.attributes.get("value"))
            if attr is None:
                raise UnsupportedIR("arith.constant without a value")
            self.names[op.results[0]] = literal(attr, op.results[0].type)
            return
        if name == "linalg.index":
            dim = op.properties.get("dim", op.attributes.get("dim"))
            if not isinstance(dim, IntegerAttr):
                raise UnsupportedIR("linalg.index without a dim")
            self.names[op.results[0]] = self.index(int(dim.value.data))
            return
        if name == "tensor.extract":
            indices = [self.name(v) for v in op.operands[1:]]
            self.define(op.results[0], self.extract(op.operands[0], indices))
            return
        self.define(op.results[0], self.expression(op))

    def expression(self, op: Operation) -> str:
        name = op.name
        result = op.results[0].type
        args = [self.name(v) for v in op.operands]
        types = [v.type for v in op.operands]
        if name in _FLOAT_BINARY or name in _FLOAT_UNARY or name == "math.fma":
            floats = [to_float(a, t) if is_half(t) else a for a, t in zip(args, types, strict=True)]
            if name == "math.fma":
                text = f"fmaf({floats[0]}, {floats[1]}, {floats[2]})"
            elif name in _FLOAT_BINARY:
                text = _FLOAT_BINARY[name].format(a=floats[0], b=floats[1])
            else:
                text = _FLOAT_UNARY[name].format(a=floats[0])
            return from_float(text, result) if is_half(result) else text
        if name in _INT_BINARY:
            return f"({ctype(result)})" + _INT_BINARY[name].format(a=args[0], b=args[1], u=_unsigned(result))
        if name == "arith.cmpi":
            pred = _predicate(op)
            a, b = args
            if pred >= 6:
                u = _unsigned(types[0])
                a, b = f"(({u}){a})", f"(({u}){b})"
            return f"({a} {_CMP[pred]} {b})"
        if name == "arith.cmpf":
            pred = _predicate(op)
            if pred not in _CMPF:
                return "true" if pred == 15 else "false"
            a, b = (to_float(x, t) if is_half(t) else x for x, t in zip(args, types, strict=True))
            return f"({a} {_CMPF[pred]} {b})"
        if name == "arith.select":
            return f"({args[0]} ? {args[1]} : {args[2]})"
        if name == "affine.apply":  # a storage position in a fused gather's body (fuse-gather)
            amap = op.properties.get("map", op.attributes.get("map"))
            if not isinstance(amap, AffineMapAttr) or len(amap.data.results) != 1 or amap.data.num_symbols:
                raise UnsupportedIR("affine.apply without a one-result map of dims")
            from q35c.codegen.cuda.index import Ix, affine_ix  # index.py prints with this module's literals

            return affine_ix(amap.data.results[0], [Ix.var(a) for a in args]).text()
        if name in ("arith.extf", "arith.truncf"):
            if is_half(types[0]):
                return (
                    from_float(to_float(args[0], types[0]), result) if is_half(result) else to_float(args[0], types[0])
                )
            return from_float(args[0], result)
        if name in ("arith.sitofp", "arith.uitofp"):
            source = args[0] if name == "arith.sitofp" else f"(({_unsigned(types[0])}){args[0]})"
            return from_float(f"(float){source}", result)
        if name in ("arith.fptosi", "arith.fptoui"):
            return f"(({ctype(result)})({to_float(args[0], types[0])}))"
        if name in ("arith.extsi", "arith.trunci", "arith.index_cast", "arith.index_castui"):
            return f"(({ctype(result)}){args[0]})"
        if name == "arith.extui":
            return f"(({ctype(result)})(({_unsigned(types[0])}){args[0]}))"
        if name == "arith.bitcast":
            if isinstance(result, AnyFloat) and result.bitwidth == 32:
                return f"__int_as_float({args[0]})"
            if isinstance(result, IntegerType) and result.width.data == 32:
                return f"__float_as_int({args[0]})"
            if is_half(result) and "bf16" not in result.name:
                return f"__ushort_as_half((unsigned short)({args[0]}))"
            if isinstance(result, IntegerType) and result.width.data == 16:
                return f"((int16_t)__half_as_ushort({args[0]}))"
        raise UnsupportedIR(f"no CUDA printing for {name}")
