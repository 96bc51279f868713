"""The q35 dialect: quantization schemes, packed weight types and the graph ops of LLaMA-family decoders.

A model enters the compiler as a module of `q35` graph ops on static-shaped tensors. Weights are named
`q35.weight` values of type `!q35.packed<NxK, #q35.scheme<...>>`, whose storage follows exactly from the
scheme (see `q35c.ir.schemes`). Identical decoder blocks are one `func.func`, called once per layer.

    %w = q35.weight "layers.0.mlp.up_proj" : !q35.packed<11008x4096, #q35.scheme<q3p5, g = 128, container = dense>>
    %y = q35.linear %x, %w : (tensor<1x4096xf16>, !q35.packed<11008x4096, #q35.scheme<q3p5, g = 128, ...>>)
        -> tensor<1x11008xf16>

Activations are `tensor<T x D x f16>` (or f32): T tokens in flight, D features. Attention reads a KV cache of
C tokens given as `tensor<C x (Hkv*hd)>` operands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    Float32Type,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from q35c.ir.schemes import Scheme, parse_scheme

_f32 = Float32Type()


# --------------------------------------------------------------------------------------------------------------
# Attributes and types
# --------------------------------------------------------------------------------------------------------------


@irdl_attr_definition
class SchemeAttr(ParametrizedAttribute):
    """A quantization scheme: name, group size along K, and (for q3p5) the container.

    Bits per weight and symmetry follow from these (see `q35c.ir.schemes.Scheme`).

        #q35.scheme<q3p5, g = 128, container = dense>
        #q35.scheme<int4, g = 128>
        #q35.scheme<int8>           // per output channel
        #q35.scheme<q4_0>
        #q35.scheme<fp16>
    """

    name = "q35.scheme"

    scheme_name: StringAttr
    group: IntAttr  # 0: none (fp16) or per output channel (int8)
    container: StringAttr  # "" unless q3p5

    def __init__(self, scheme_name: str, group: int | None = None, container: str | None = None) -> None:
        super().__init__(StringAttr(scheme_name), IntAttr(group or 0), StringAttr(container or ""))

    @staticmethod
    def from_scheme(scheme: Scheme) -> SchemeAttr:
        # Only keys that the spec string spells out are stored (q4_0's fixed block of 32 is not a key).
        options = dict(part.split("=") for part in str(scheme).split(":")[1:])
        group = int(options["g"]) if "g" in options else None
        return SchemeAttr(scheme.name, group, options.get("container"))

    @staticmethod
    def from_spec(spec: str) -> SchemeAttr:
        """Build from a spec string such as `q3p5:g=64`; raises ValueError for an invalid spec."""
        return SchemeAttr.from_scheme(parse_scheme(spec))

    @property
    def scheme(self) -> Scheme:
        return parse_scheme(self.spec)

    @property
    def spec(self) -> str:
        """The canonical spec string, e.g. `q3p5:g=128:container=dense`."""
        parts = [self.scheme_name.data]
        if self.group.data:
            parts.append(f"g={self.group.data}")
        if self.container.data:
            parts.append(f"container={self.container.data}")
        return ":".join(parts)

    def verify(self) -> None:
        try:
            canonical = parse_scheme(self.spec)
        except ValueError as err:
            raise VerifyException(str(err)) from None
        if self.spec != str(canonical):
            raise VerifyException(f"scheme {self.spec} is not in canonical form (expected {canonical})")

    def print_parameters(self, printer: Printer) -> None:
        text = self.scheme_name.data
        if self.group.data:
            text += f", g = {self.group.data}"
        if self.container.data:
            text += f", container = {self.container.data}"
        printer.print_string(f"<{text}>")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        with parser.in_angle_brackets():
            scheme_name = parser.parse_identifier("scheme name")
            options: dict[str, str] = {}
            while parser.parse_optional_punctuation(",") is not None:
                key = parser.parse_identifier("scheme option (g or container)")
                parser.parse_punctuation("=")
                if key == "g":
                    value = str(parser.parse_integer(allow_boolean=False, allow_negative=False))
                else:
                    value = parser.parse_identifier(f"value for {key}")
                options[key] = value
        spec = ":".join([scheme_name, *(f"{k}={v}" for k, v in options.items())])
        try:
            scheme = parse_scheme(spec)
        except ValueError as err:
            parser.raise_error(str(err))
        attr = SchemeAttr.from_scheme(scheme)
        return [attr.scheme_name, attr.group, attr.container]


@irdl_attr_definition
class PackedType(ParametrizedAttribute, TypeAttribute):
    """A weight tensor of logical shape [N, K] stored in a quantization scheme.

    Its storage (code array, scales, offsets) follows from the scheme; `storage_bytes()` is exact.
    Rank 1 is allowed for unquantized (fp16) vectors such as norm gains.

        !q35.packed<4096x4096, #q35.scheme<q3p5, g = 128, container = dense>>
        !q35.packed<4096, #q35.scheme<fp16>>
    """

    name = "q35.packed"

    shape: ArrayAttr[IntAttr]
    scheme_attr: SchemeAttr

    def __init__(self, shape: Sequence[int], scheme: SchemeAttr | Scheme | str) -> None:
        if isinstance(scheme, str):
            scheme = SchemeAttr.from_spec(scheme)
        elif isinstance(scheme, Scheme):
            scheme = SchemeAttr.from_scheme(scheme)
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), scheme)

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    @property
    def scheme(self) -> Scheme:
        return self.scheme_attr.scheme

    @property
    def num_elements(self) -> int:
        total = 1
        for d in self.get_shape():
            total *= d
        return total

    def storage_bytes(self) -> int:
        """Exact bytes of codes plus metadata."""
        shape = self.get_shape()
        if len(shape) == 1:
            return self.scheme.storage_bytes(1, shape[0])
        return self.scheme.storage_bytes(shape[0], shape[1])

    def verify(self) -> None:
        shape = self.get_shape()
        if len(shape) not in (1, 2):
            raise VerifyException(f"!q35.packed must have rank 1 or 2, got shape {list(shape)}")
        if any(d <= 0 for d in shape):
            raise VerifyException(f"!q35.packed dimensions must be positive, got {list(shape)}")
        scheme = self.scheme
        if len(shape) == 1:
            if scheme.is_quantized:
                raise VerifyException(f"rank-1 !q35.packed must use fp16, got {scheme}")
            return
        try:
            scheme.check_shape(shape[0], shape[1])
        except ValueError as err:
            raise VerifyException(str(err)) from None

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<" + "x".join(str(d) for d in self.get_shape()) + ", ")
        printer.print_attribute(self.scheme_attr)
        printer.print_string(">")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        with parser.in_angle_brackets():
            dims = parser.parse_dimension_list()
            parser.parse_punctuation(",")
            attr = parser.parse_attribute()
        if not isinstance(attr, SchemeAttr):
            parser.raise_error(f"expected a #q35.scheme attribute, got {attr}")
        return [ArrayAttr([IntAttr(d) for d in dims]), attr]


# --------------------------------------------------------------------------------------------------------------
# Helpers for verifiers
# --------------------------------------------------------------------------------------------------------------


def _tensor(value: SSAValue | Attribute, what: str) -> TensorType[Attribute]:
    typ = value.type if isinstance(value, SSAValue) else value
    if not isinstance(typ, TensorType):
        raise VerifyException(f"{what} must be a ranked tensor, got {typ}")
    return typ  # type: ignore[return-value]


def _shape2(value: SSAValue | Attribute, what: str) -> tuple[int, int]:
    shape = _tensor(value, what).get_shape()
    if len(shape) != 2:
        raise VerifyException(f"{what} must be a 2-D tensor [tokens, features], got shape {list(shape)}")
    return shape[0], shape[1]


_ActivationT = TensorType[AnyFloat]


# --------------------------------------------------------------------------------------------------------------
# Ops
# --------------------------------------------------------------------------------------------------------------


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named model parameter.

    %w = q35.weight "model.layers.0.self_attn.q_proj.weight" : !q35.packed<4096x4096, #q35.scheme<int4, g = 128>>
    """

    name = "q35.weight"

    param_name = prop_def(StringAttr, prop_name="name")
    result = result_def(PackedType)

    assembly_format = "$name attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def __init__(self, name: str, result_type: PackedType) -> None:
        super().__init__(properties={"name": StringAttr(name)}, result_types=[result_type])


@irdl_op_definition
class LinearOp(IRDLOperation):
    """y = x @ W^T with a packed weight W of shape [N, K].

    %y = q35.linear %x, %w : (tensor<1x4096xf16>, !q35.packed<11008x4096, #q35.scheme<q3p5, g = 128,
        container = dense>>) -> tensor<1x11008xf16>
    """

    name = "q35.linear"

    x = operand_def(_ActivationT)
    weight = operand_def(PackedType)
    result = result_def(_ActivationT)

    assembly_format = "$x `,` $weight attr-dict `:` `(` type($x) `,` type($weight) `)` `->` type($result)"
    traits = traits_def(Pure())

    def __init__(self, x: SSAValue, weight: SSAValue) -> None:
        xt = _tensor(x, "linear input")
        wt = weight.type
        assert isinstance(wt, PackedType)
        rows = xt.get_shape()[0]
        super().__init__(operands=[x, weight], result_types=[TensorType(xt.element_type, [rows, wt.get_shape()[0]])])

    def verify_(self) -> None:
        t, k = _shape2(self.x, "linear input")
        wt = self.weight.type
        assert isinstance(wt, PackedType)
        wshape = wt.get_shape()
        if len(wshape) != 2:
            raise VerifyException(f"linear weight must be 2-D [N, K], got {list(wshape)}")
        n, wk = wshape
        if wk != k:
            raise VerifyException(f"linear input has K={k} features but the weight is [{n}, {wk}]")
        rt, rn = _shape2(self.result, "linear result")
        if (rt, rn) != (t, n):
            raise VerifyException(f"linear result must be [{t}, {n}], got [{rt}, {rn}]")
        if _tensor(self.result, "result").element_type != _tensor(self.x, "input").element_type:
            raise VerifyException("linear result element type must match the input's")


@irdl_op_definition
class EmbedOp(IRDLOperation):
    """Gather rows of a packed [V, D] embedding table for each token id.

    %h = q35.embed %ids, %table : (tensor<1xi32>, !q35.packed<32000x4096, #q35.scheme<fp16>>)
        -> tensor<1x4096xf16>
    """

    name = "q35.embed"

    ids = operand_def(TensorType[IntegerType])
    table = operand_def(PackedType)
    result = result_def(_ActivationT)

    assembly_format = "$ids `,` $table attr-dict `:` `(` type($ids) `,` type($table) `)` `->` type($result)"
    traits = traits_def(Pure())

    def __init__(self, ids: SSAValue, table: SSAValue, result_type: Attribute) -> None:
        super().__init__(operands=[ids, table], result_types=[result_type])

    def verify_(self) -> None:
        ids = _tensor(self.ids, "embed ids")
        if len(ids.get_shape()) != 1 or ids.element_type != i32:
            raise VerifyException(f"embed ids must be tensor<Txi32>, got {ids}")
        tt = self.table.type
        assert isinstance(tt, PackedType)
        if len(tt.get_shape()) != 2:
            raise VerifyException(f"embed table must be 2-D [V, D], got {list(tt.get_shape())}")
        t, d = _shape2(self.result, "embed result")
        if t != ids.get_shape()[0] or d != tt.get_shape()[1]:
            raise VerifyException(f"embed result must be [{ids.get_shape()[0]}, {tt.get_shape()[1]}], got [{t}, {d}]")


@irdl_op_definition
class RMSNormOp(IRDLOperation):
    """RMS normalisation over the feature axis, scaled by a gain vector: y = x / rms(x) * g.

    %y = q35.rmsnorm %x, %g {eps = 1.0e-05 : f32} : (tensor<1x4096xf16>, !q35.packed<4096, #q35.scheme<fp16>>)
        -> tensor<1x4096xf16>
    """

    name = "q35.rmsnorm"

    x = operand_def(_ActivationT)
    gamma = operand_def(PackedType)
    eps = prop_def(FloatAttr)
    result = result_def(_ActivationT)

    assembly_format = "$x `,` $gamma attr-dict `:` `(` type($x) `,` type($gamma) `)` `->` type($result)"
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, gamma: SSAValue, eps: float) -> None:
        super().__init__(operands=[x, gamma], properties={"eps": FloatAttr(eps, _f32)}, result_types=[x.type])

    def verify_(self) -> None:
        _, d = _shape2(self.x, "rmsnorm input")
        gt = self.gamma.type
        assert isinstance(gt, PackedType)
        if gt.get_shape() != (d,):
            raise VerifyException(f"rmsnorm gain must have shape [{d}], got {list(gt.get_shape())}")
        if self.result.type != self.x.type:
            raise VerifyException("rmsnorm result type must equal the input type")
        if not self.eps.value.data > 0:
            raise VerifyException(f"rmsnorm eps must be positive, got {self.eps.value.data}")


@irdl_op_definition
class RopeOp(IRDLOperation):
    """Rotary position embedding applied per head of size `head_dim` (rotate-half convention).

    %y = q35.rope %x, %pos {head_dim = 128 : i64, theta = 1.0e+04 : f32} : (tensor<1x4096xf16>, tensor<1xi32>)
        -> tensor<1x4096xf16>
    """

    name = "q35.rope"

    x = operand_def(_ActivationT)
    positions = operand_def(TensorType[IntegerType])
    head_dim = prop_def(IntegerAttr[IntegerType])
    theta = prop_def(FloatAttr)
    result = result_def(_ActivationT)

    assembly_format = "$x `,` $positions attr-dict `:` `(` type($x) `,` type($positions) `)` `->` type($result)"
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, positions: SSAValue, head_dim: int, theta: float) -> None:
        super().__init__(
            operands=[x, positions],
            properties={"head_dim": IntegerAttr(head_dim, i64), "theta": FloatAttr(theta, _f32)},
            result_types=[x.type],
        )

    def verify_(self) -> None:
        t, d = _shape2(self.x, "rope input")
        hd = self.head_dim.value.data
        if hd <= 0 or hd % 2 != 0 or d % hd != 0:
            raise VerifyException(f"rope head_dim={hd} must be even and divide the {d} features")
        pos = _tensor(self.positions, "rope positions")
        if pos.get_shape() != (t,) or pos.element_type != i32:
            raise VerifyException(f"rope positions must be tensor<{t}xi32>, got {pos}")
        if self.result.type != self.x.type:
            raise VerifyException("rope result type must equal the input type")


@irdl_op_definition
class AttentionOp(IRDLOperation):
    """Causal grouped-query attention of T new tokens over C cached tokens plus themselves, for B sequences.

    With `batch` = B (default 1, then omitted from the printed IR) the rows are B sequences one after another:
    q is [B*T, H*hd]; k and v are [B*T, Hkv*hd]; the caches are [B*C, Hkv*hd]. Query head h uses KV head
    h // (H / Hkv). New token t of sequence b sees that sequence's C cached tokens (cache rows b*C .. b*C+C-1)
    and its own new tokens 0..t (rows b*T .. b*T+t), nothing of the other sequences.

    With the optional `positions` operand (tensor<B*T x i32>, the new tokens' positions, as `q35.rope` takes
    them) the cache is a buffer of capacity C filled at run time: cache row j holds the token at position j, and
    new token t sees cache row j only when j + t < positions[t], i.e. below its sequence's first new position
    (positions run consecutively within a step). Rows at or past that position (not yet written, or stale) are
    masked. When the first new position is C (a full cache) every cache row is seen, as without the operand.

        %o = q35.attention %q, %k, %v, %kc, %vc positions %pos {num_heads = 32 : i64, num_kv_heads = 8 : i64,
                                                              head_dim = 128 : i64}
            : (tensor<1x4096xf16>, tensor<1x1024xf16>, tensor<1x1024xf16>, tensor<512x1024xf16>,
               tensor<512x1024xf16>, tensor<1xi32>) -> tensor<1x4096xf16>

        %o = q35.attention %q, %k, %v, %kc, %vc {num_heads = 32 : i64, num_kv_heads = 8 : i64, head_dim = 128 : i64}
            : (tensor<1x4096xf16>, tensor<1x1024xf16>, tensor<1x1024xf16>, tensor<512x1024xf16>,
               tensor<512x1024xf16>) -> tensor<1x4096xf16>
        %o = q35.attention %q, %k, %v, %kc, %vc {batch = 8 : i64, num_heads = 32 : i64, num_kv_heads = 8 : i64,
                                                 head_dim = 128 : i64}
            : (tensor<8x4096xf16>, tensor<8x1024xf16>, tensor<8x1024xf16>, tensor<4096x1024xf16>,
               tensor<4096x1024xf16>) -> tensor<8x4096xf16>
    """

    name = "q35.attention"

    q = operand_def(_ActivationT)
    k = operand_def(_ActivationT)
    v = operand_def(_ActivationT)
    k_cache = operand_def(_ActivationT)
    v_cache = operand_def(_ActivationT)
    positions = opt_operand_def(TensorType[IntegerType])
    num_heads = prop_def(IntegerAttr[IntegerType])
    num_kv_heads = prop_def(IntegerAttr[IntegerType])
    head_dim = prop_def(IntegerAttr[IntegerType])
    batch_size = opt_prop_def(IntegerAttr[IntegerType], prop_name="batch")
    result = result_def(_ActivationT)

    assembly_format = (
        "$q `,` $k `,` $v `,` $k_cache `,` $v_cache (`positions` $positions^)? attr-dict `:` `(` type($q) `,` "
        "type($k) `,` type($v) `,` type($k_cache) `,` type($v_cache) (`,` type($positions)^)? `)` `->` type($result)"
    )
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(
        self,
        q: SSAValue,
        k: SSAValue,
        v: SSAValue,
        k_cache: SSAValue,
        v_cache: SSAValue,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        batch: int = 1,
        positions: SSAValue | None = None,
    ) -> None:
        properties: dict[str, Attribute] = {
            "num_heads": IntegerAttr(num_heads, i64),
            "num_kv_heads": IntegerAttr(num_kv_heads, i64),
            "head_dim": IntegerAttr(head_dim, i64),
        }
        if batch != 1:
            properties["batch"] = IntegerAttr(batch, i64)
        operands = [q, k, v, k_cache, v_cache, [] if positions is None else [positions]]
        super().__init__(operands=operands, properties=properties, result_types=[q.type])

    @property
    def batch(self) -> int:
        """B, the independent sequences (1 when the property is absent)."""
        return 1 if self.batch_size is None else self.batch_size.value.data

    @property
    def seq_len(self) -> int:
        """T, the new tokens of each sequence."""
        return _shape2(self.q, "q")[0] // self.batch

    @property
    def cache_len(self) -> int:
        """C, the cached tokens of each sequence."""
        return _shape2(self.k_cache, "k cache")[0] // self.batch

    def verify_(self) -> None:
        h, hkv, hd = self.num_heads.value.data, self.num_kv_heads.value.data, self.head_dim.value.data
        if min(h, hkv, hd) <= 0 or h % hkv != 0:
            raise VerifyException(f"num_heads={h} must be a positive multiple of num_kv_heads={hkv}")
        b = self.batch
        if b <= 0:
            raise VerifyException(f"attention batch={b} must be positive")
        t, qd = _shape2(self.q, "attention q")
        if t % b != 0:
            raise VerifyException(f"attention q has {t} rows, not a multiple of batch={b} (B*T rows)")
        if qd != h * hd:
            raise VerifyException(f"attention q has {qd} features, expected num_heads*head_dim = {h * hd}")
        for value, what in ((self.k, "k"), (self.v, "v")):
            if _shape2(value, f"attention {what}") != (t, hkv * hd):
                raise VerifyException(f"attention {what} must be [{t}, {hkv * hd}] (T x num_kv_heads*head_dim)")
        c, cd = _shape2(self.k_cache, "attention k cache")
        if cd != hkv * hd or self.v_cache.type != self.k_cache.type:
            raise VerifyException(f"attention caches must both be [C, {hkv * hd}], got {self.k_cache.type}")
        if c % b != 0:
            raise VerifyException(f"attention caches have {c} rows, not a multiple of batch={b} (B*C rows)")
        element = _tensor(self.q, "q").element_type
        for value in (self.k, self.v, self.k_cache, self.v_cache):
            if _tensor(value, "operand").element_type != element:
                raise VerifyException("attention operands must share one element type")
        if self.result.type != self.q.type:
            raise VerifyException("attention result type must equal the type of q")
        if self.positions is not None:
            pos = _tensor(self.positions, "attention positions")
            if pos.get_shape() != (t,) or pos.element_type != i32:
                raise VerifyException(f"attention positions must be tensor<{t}xi32> (one per new row), got {pos}")


class _ElementwiseOp(IRDLOperation):
    T: ClassVar = VarConstraint("T", base(TensorType))


@irdl_op_definition
class SiluOp(_ElementwiseOp):
    """Elementwise SiLU: y = x * sigmoid(x).

    %y = q35.silu %x : tensor<1x11008xf16>
    """

    name = "q35.silu"

    x = operand_def(_ElementwiseOp.T)
    result = result_def(_ElementwiseOp.T)

    assembly_format = "$x attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def __init__(self, x: SSAValue) -> None:
        super().__init__(operands=[x], result_types=[x.type])

    def verify_(self) -> None:
        _shape2(self.x, "silu input")


class _BinaryOp(_ElementwiseOp):
    lhs = operand_def(_ElementwiseOp.T)
    rhs = operand_def(_ElementwiseOp.T)
    result = result_def(_ElementwiseOp.T)

    assembly_format = "$lhs `,` $rhs attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def __init__(self, lhs: SSAValue, rhs: SSAValue) -> None:
        super().__init__(operands=[lhs, rhs], result_types=[lhs.type])

    def verify_(self) -> None:
        _shape2(self.lhs, f"{self.name} operand")


@irdl_op_definition
class MulOp(_BinaryOp):
    """Elementwise product.

    %y = q35.mul %a, %b : tensor<1x11008xf16>
    """

    name = "q35.mul"


@irdl_op_definition
class AddOp(_BinaryOp):
    """Elementwise sum (residual connections).

    %y = q35.add %a, %b : tensor<1x4096xf16>
    """

    name = "q35.add"


GRAPH_OPS = (WeightOp, LinearOp, EmbedOp, RMSNormOp, RopeOp, AttentionOp, SiluOp, MulOp, AddOp)

from q35c.dialects.q35_collectives import COLLECTIVE_OPS  # noqa: E402  (ops of this dialect, in their own file)

Q35 = Dialect("q35", [*GRAPH_OPS, *COLLECTIVE_OPS], [SchemeAttr, PackedType])
