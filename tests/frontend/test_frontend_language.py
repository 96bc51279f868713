"""The q35 model language: syntax, names, shapes, blocks, quantization policy, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.frontend import Model, load_model
from q35c.frontend.graph import Graph, Repeat
from q35c.frontend.language import load_text
from q35c.util.errors import Q35Error

BASE = """\
dim d = 64
input x: [T, d]
param w: [d, d]
output y = linear(x, w)
"""

# A small decoder-shaped model with a repeated block, used by several tests.
BLOCKS = """\
dim d = 64
dim ffn = 128
input ids: [T] i32
input pos: [T] i32
param table: [256, d]
x = embed(ids, table)
block layer x 3 {
    param norm: [d]
    param up: [ffn, d]
    param down: [d, ffn]
    cache k_cache: [C, d]
    h = rmsnorm(x, norm, eps = 1e-6)
    x = x + linear(silu(linear(h, up)), down)
}
param head: [256, d]
output logits = linear(x, head)
"""


def load(text: str, **kwargs: object) -> Graph:
    return load_text(text, "m.q35", **kwargs)  # type: ignore[arg-type]


def rendered(text: str, **kwargs: object) -> str:
    with pytest.raises(Q35Error) as info:
        load(text, **kwargs)
    return info.value.render()


def schemes(graph: Graph) -> dict[str, str]:
    return {w.name: str(w.scheme) for w in graph.weights}


# -- what the language can say ----------------------------------------------------------------------------


def test_dims_with_arithmetic_and_builtin_t_and_c() -> None:
    text = "dim h = 4\ndim hd = 64 / h * 2\ninput x: [T, h * hd]\ncache kc: [C, hd + hd]\nparam w: [8, hd * h]\n"
    graph = load(text + "output y = linear(x, w)\n", seq=3, context=5)
    assert dict(graph.dims) == {"h": 4, "hd": 32}
    assert graph.main.inputs[0].type.mlir() == "tensor<3x128xf16>"
    assert graph.main.caches[0].type.mlir() == "tensor<5x64xf16>"
    assert graph.main.outputs[0].type.mlir() == "tensor<3x8xf16>"


def test_comments_blank_lines_and_x_as_a_tensor_name() -> None:
    text = '# header\n\nmodel "m1"   # a name\n\ndim d = 64\ninput x: [T, d]\n\n  # indented comment\n'
    text += "param w: [d, d]\nx = linear(x, w)\noutput y = silu(x)\n"
    graph = load(text)
    assert graph.name == "m1"
    assert [s.op for s in graph.main.steps] == ["linear", "silu"]  # type: ignore[union-attr]


def test_model_name_defaults_to_the_file_stem() -> None:
    assert load(BASE).name == "m"


def test_tensor_plus_and_times_are_add_and_mul() -> None:
    graph = load(BASE.replace("output y = linear(x, w)", "output y = linear(x, w) * x + x"))
    assert [s.op for s in graph.main.steps] == ["linear", "mul", "add"]  # type: ignore[union-attr]


def test_a_block_reads_outer_tensors_and_carries_what_it_assigns() -> None:
    graph = load(BLOCKS)
    (repeat,) = [s for s in graph.main.steps if isinstance(s, Repeat)]
    body = graph.block("layer").body
    assert (repeat.count, [v.name for v in body.inputs], [v.name for v in body.outputs]) == (3, ["x"], ["x"])
    assert repeat.feeds == (0,)
    assert [w.name for w in graph.weights][:4] == ["table", "layer.0.norm", "layer.0.up", "layer.0.down"]
    assert [w.name for w in graph.weights][-1] == "head"
    assert len(graph.weights) == 2 + 3 * 3


def test_block_emits_one_func_called_per_repetition(tmp_path: Path) -> None:
    model = load_model_text(BLOCKS, tmp_path)
    funcs = {f.sym_name.data: f for f in model.module.ops}  # type: ignore[attr-defined]
    assert list(funcs) == ["main", "layer"]
    calls = [op for op in funcs["main"].body.block.ops if op.name == "func.call"]
    assert len(calls) == 3
    # main: ids, pos and one k cache per repetition
    assert [a.name_hint for a in funcs["main"].body.block.args] == [
        "ids",
        "pos",
        *(f"layer.{i}.k_cache" for i in range(3)),
    ]
    # the block func: activations, then caches, then weights
    assert [a.name_hint for a in funcs["layer"].body.block.args] == ["x", "k_cache", "norm", "up", "down"]


def load_model_text(text: str, tmp: Path) -> Model:
    path = tmp / "m.q35"
    path.write_text(text)
    return load_model(str(path))


def test_dtype_f32_makes_activations_and_caches_f32() -> None:
    text = "dtype f32\n" + BLOCKS
    graph = load(text)
    assert graph.main.outputs[0].type.mlir() == "tensor<1x256xf32>"
    assert graph.block("layer").body.caches[0].type.mlir() == "tensor<0x64xf32>"


# -- quantization policy ----------------------------------------------------------------------------------


def test_default_scheme_and_overrides_last_match_wins() -> None:
    text = 'quant q3p5:g=32\nquant "layer.*" = int8\nquant "up" = int4:g=32\nquant "layer.2.up" = q8_0\n' + BLOCKS
    s = schemes(load(text))
    assert s["table"] == "q3p5:g=32:container=dense"
    assert s["layer.0.down"] == "int8"
    assert s["layer.0.up"] == "int4:g=32"  # matches the declared name
    assert s["layer.2.up"] == "q8_0"
    assert s["layer.1.norm"] == "fp16"  # vectors are always fp16


def test_cli_quant_replaces_the_default_but_keeps_overrides() -> None:
    text = 'quant q3p5:g=32\nquant "head" = int8\n' + BLOCKS
    s = schemes(load(text, quant="int4:g=64"))
    assert (s["table"], s["layer.1.up"], s["head"]) == ("int4:g=64", "int4:g=64", "int8")


def test_no_quant_line_means_fp16() -> None:
    assert set(schemes(load(BLOCKS)).values()) == {"fp16"}


def test_layers_with_other_schemes_get_their_own_func_variant(tmp_path: Path) -> None:
    model = load_model_text('quant "layer.0.*" = int8\n' + BLOCKS, tmp_path)
    names = [f.sym_name.data for f in model.module.ops]  # type: ignore[attr-defined]
    assert names == ["main", "layer", "layer_1"]
    calls = [op.callee.string_value() for op in model.module.ops.first.body.block.ops if op.name == "func.call"]  # type: ignore[union-attr]
    assert calls == ["layer", "layer_1", "layer_1"]


# -- errors: each located, with the source line and a caret -------------------------------------------------


def test_syntax_error_shows_file_line_col_and_caret() -> None:
    assert rendered("dim d = 64\nparam w: [d, d\n") == (
        "q35c: error: m.q35:2:15: syntax error: unexpected end of line (expected ',' or ']')\n"
        "param w: [d, d\n"
        "              ^"
    )


def test_unexpected_character() -> None:
    assert (
        rendered("dim d = 64 $\n")
        == "q35c: error: m.q35:1:12: syntax error: unexpected character '$'\ndim d = 64 $\n           ^"
    )


def test_undefined_tensor_suggests_a_close_name() -> None:
    assert rendered(BASE.replace("linear(x, w)", "linear(xx, w)")) == (
        "q35c: error: m.q35:4:19: undefined tensor 'xx'; did you mean 'x'?\n"
        "output y = linear(xx, w)\n"
        "                  ^"
    )


def test_shape_mismatch() -> None:
    text = BASE.replace("param w: [d, d]", "param w: [d, 32]")
    assert rendered(text) == (
        "q35c: error: m.q35:4:12: linear input has 64 features but the weight is [64, 32] (N x K, K = input)\n"
        "output y = linear(x, w)\n"
        "           ^"
    )


def test_unknown_op() -> None:
    assert rendered(BASE.replace("linear(x, w)", "lineer(x, w)")).startswith(
        "q35c: error: m.q35:4:12: unknown op 'lineer'; did you mean 'linear'? (known ops: add, attention, embed"
    )


def test_unknown_scheme() -> None:
    assert rendered("quant q9\n" + BASE) == (
        "q35c: error: m.q35:1:7: unknown quantization scheme 'q9' (valid: fp16, f32, int8, int4, q3p5, q4_0, q8_0, "
        "q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs; for sizes only, the other ggml types: "
        "iq2_xxs, tq1_0, bf16, ...)\n"
        "quant q9\n"
        "      ^"
    )


def test_group_size_must_divide_k() -> None:
    assert rendered("quant int4:g=48\n" + BASE) == (
        "q35c: error: m.q35:4:7: weight w [64, 64] cannot be stored as int4:g=48 (from the default at line 1): "
        "K=64 is not divisible by the group size g=48; group sizes that fit K=64: 16, 32, 64 (e.g. int4:g=64)\n"
        "param w: [d, d]\n"
        "      ^"
    )


def test_group_size_error_names_the_override_it_came_from() -> None:
    assert '(from the override "w" at line 2): K=64 is not divisible by the group size g=128' in rendered(
        'quant q3p5:g=64\nquant "w" = q3p5\n' + BASE
    )


def test_cli_quant_group_size_error_is_located_at_the_param() -> None:
    assert rendered(BASE, quant="q3p5").startswith("q35c: error: m.q35:3:7: weight w [64, 64] cannot be stored as")


def test_dense_container_needs_k_multiple_of_64() -> None:
    text = "dim d = 32\ninput x: [T, d]\nparam w: [d, d]\noutput y = linear(x, w)\n"
    assert "K=32 must be a multiple of 64 for the dense container" in rendered(text, quant="q3p5:g=32")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dim d = 64 / 3\n", "m.q35:1:9: 64 / 3 is not a whole number"),
        ("dim T = 4\n", "m.q35:1:5: 'T' is built in: the number of token rows in flight (batch x seq)"),
        ("dim d = 4\ndim d = 5\n", "m.q35:2:5: 'd' is already defined"),
        ("dim d = 0\n", "m.q35:1:9: dim d must be a positive integer, got 0"),
        ("dim d = e\n", "m.q35:1:9: undefined name 'e'"),
        (BASE + "z = x - x\n", "m.q35:5:5: '-' is not defined on tensors (only + and *)"),
        (BASE + "z = 3\n", "m.q35:5:5: a number is not a tensor; a tensor expression is expected here"),
        (BASE + "w = silu(x)\n", "m.q35:5:1: cannot assign to 'w': it is a param or cache"),
        (BASE + "param w: [d]\n", "m.q35:5:7: 'w' is already defined"),
        (BASE + "z = silu(d)\n", "m.q35:5:10: 'd' is a number; a tensor is expected here"),
        (BASE + "z = silu(x, w)\n", "m.q35:5:5: silu takes 1 tensors (silu(x)), got 2"),
        (BASE + "z = silu(x, eps = 1)\n", "m.q35:5:5: silu has no attribute 'eps' (valid: none)"),
        (BASE + "input p: [T] i32\nz = rope(x, p)\n", "m.q35:6:5: rope needs the attribute head_dim="),
        (BASE + "input p: [T] i32\nz = rope(x, p, head_dim = 3)\n", "rope head_dim=3 must be even and divide"),
        (BASE + "z = embed(x, w)\n", "m.q35:5:5: embed ids must be a 1-D i32 tensor [T] i32, got tensor<1x64xf16>"),
        ("dim d = 64\ninput x: [T, d]\n", "m.q35: the model has no output"),
        ('quant "nope*" = int8\n' + BASE, 'm.q35:1:7: quant override "nope*" matches no weight matrix'),
        ("quant fp16\nquant int8\n" + BASE, "m.q35:2:1: default scheme given twice (first at line 1)"),
        ("dtype i32\n" + BASE, "m.q35:1:1: the activation dtype must be f16 or f32"),
    ],
)
def test_semantic_errors_are_located(text: str, message: str) -> None:
    assert message in rendered(text)


def test_attention_head_counts_must_match_the_tensors() -> None:
    text = BASE + (
        "input k: [T, 32]\ncache kc: [C, 32]\nz = attention(x, k, k, kc, kc, head_dim = 16, num_heads = 8)\n"
    )
    assert "attention num_heads=8 but the tensors give 4 (width / head_dim=16)" in rendered(text)


def test_block_must_keep_the_type_of_what_it_carries() -> None:
    text = BLOCKS.replace("x = x + linear(silu(linear(h, up)), down)", "x = linear(h, up)")
    assert rendered(text) == (
        "q35c: error: m.q35:13:5: block assigns x a tensor<1x128xf16>, but x is a tensor<1x64xf16> outside the "
        "block (a repeated block must keep the types of what it carries)\n"
        "    x = linear(h, up)\n"
        "    ^"
    )


def test_block_that_updates_nothing_is_an_error() -> None:
    text = BLOCKS.replace("    x = x + linear(silu(linear(h, up)), down)\n", "    y = linear(h, up)\n")
    assert "m.q35:7:7: block layer assigns no tensor defined before it" in rendered(text)


def test_block_locals_are_not_visible_after_the_block() -> None:
    text = BLOCKS.replace("output logits = linear(x, head)", "output logits = linear(h, head)")
    assert "m.q35:16:24: undefined tensor 'h': it is local to block layer" in rendered(text)


def test_block_cannot_read_a_param_declared_outside() -> None:
    text = BLOCKS.replace("linear(silu(linear(h, up)), down)", "linear(silu(linear(h, up)), down) + embed(ids, table)")
    assert "param 'table' is declared outside this block; declare params inside the block" in rendered(text)


# -- the command line -------------------------------------------------------------------------------------


def test_cli_reports_a_syntax_error_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.q35"
    path.write_text("dim d = 64\nparam w [d]\n")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"q35c: error: {path}:2:9: syntax error: unexpected '[' (expected ':')\nparam w [d]\n        ^\n"
    assert "Traceback" not in err


def test_cli_reports_a_semantic_error_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.q35"
    path.write_text(BASE.replace("linear(x, w)", "linear(x, v)"))
    assert main(["build", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"q35c: error: {path}:4:22: undefined tensor 'v'")


def test_cli_group_size_error_from_quant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "tiny", "--quant", "q3p5"]) == 2
    err = capsys.readouterr().err
    assert "examples/tiny.q35:31:11: weight decoder.0.q_proj [64, 64] cannot be stored as" in err
    assert "K=64 is not divisible by the group size g=128" in err


def test_cli_invalid_quant_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "tiny", "--quant", "q3p5:g=3"]) == 2
    assert capsys.readouterr().err == (
        "q35c: error: invalid quantization scheme 'q3p5:g=3': q3p5 group size g must be even "
        "(weights pair up along K), got 3\n"
    )
