"""The q35 dialect's Python API: building ops, types and their storage sizes."""

from __future__ import annotations

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, Float16Type, ModuleOp, TensorType, i32
from xdsl.dialects.func import Func, FuncOp, ReturnOp
from xdsl.ir import Block, Region
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from q35c.dialects.q35 import Q35, EmbedOp, LinearOp, PackedType, SchemeAttr, SiluOp, WeightOp
from q35c.ir.schemes import parse_scheme

SPECS = ["fp16", "int8", "int8:g=64", "int4:g=32", "q3p5", "q3p5:g=64:container=byte", "q4_0", "q8_0"]


@pytest.mark.parametrize("spec", SPECS)
def test_scheme_attr_round_trips_its_spec(spec: str) -> None:
    attr = SchemeAttr.from_spec(spec)
    assert attr.spec == str(parse_scheme(spec))
    assert attr.scheme == parse_scheme(spec)


@pytest.mark.parametrize("spec", SPECS)
def test_packed_type_storage_bytes_follow_the_scheme(spec: str) -> None:
    typ = PackedType([256, 512], spec)
    scheme = parse_scheme(spec)
    assert typ.storage_bytes() == scheme.storage_bytes(256, 512)
    assert typ.storage_bytes() * 8 == pytest.approx(256 * 512 * scheme.bits_per_weight(512))


def test_q3p5_dense_is_3p75_bits_at_g128() -> None:
    assert PackedType([4096, 4096], "q3p5").storage_bytes() * 8 / (4096 * 4096) == 3.75


def test_packed_type_rejects_indivisible_k() -> None:
    with pytest.raises(VerifyException, match="K=96 must be a multiple of 64"):
        PackedType([8, 96], "q3p5:g=32")


def _module(x_features: int, spec: str) -> ModuleOp:
    f16 = Float16Type()
    block = Block(arg_types=[TensorType(f16, [2, x_features]), TensorType(i32, [2])])
    w = WeightOp("w", PackedType([64, 128], spec))
    table = WeightOp("emb", PackedType([256, 128], "fp16"))
    emb = EmbedOp(block.args[1], table.result, TensorType(f16, [2, 128]))
    block.add_ops([w, table, emb])
    lin = LinearOp(block.args[0], w.result)
    act = SiluOp(lin.result)
    block.add_ops([lin, act, ReturnOp(act.result)])
    func = FuncOp("f", ((TensorType(f16, [2, x_features]), TensorType(i32, [2])), (act.result.type,)), Region(block))
    return ModuleOp([func])


def test_built_module_verifies_and_reparses() -> None:
    module = _module(128, "q3p5:g=64")
    module.verify()
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Q35)
    ctx.load_dialect(Func)
    reparsed = Parser(ctx, str(module)).parse_module()
    assert str(reparsed) == str(module)
    lin = next(op for op in reparsed.walk() if isinstance(op, LinearOp))
    assert isinstance(lin.result.type, TensorType) and lin.result.type.get_shape() == (2, 64)


def test_linear_with_wrong_k_fails_verification() -> None:
    with pytest.raises(VerifyException, match="K=96 features but the weight is"):
        _module(96, "int8").verify()
