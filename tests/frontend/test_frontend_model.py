"""load_model and `q35c build --emit graph`: the module contract the passes rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from xdsl.dialects.func import CallOp, FuncOp
from xdsl.parser import Parser

from q35c.cli.main import main
from q35c.dialects.q35 import AttentionOp, PackedType, WeightOp
from q35c.driver.pipeline import make_context, module_text
from q35c.frontend import load_model
from q35c.frontend.examples import EXAMPLES_DIR, resolve_model
from q35c.util.errors import Q35Error


def funcs(model_name: str, **kwargs: object) -> dict[str, FuncOp]:
    module = load_model(model_name, **kwargs).module  # type: ignore[arg-type]
    return {op.sym_name.data: op for op in module.ops if isinstance(op, FuncOp)}


def test_module_has_main_and_one_block_func() -> None:
    f = funcs("llama-2-70b")
    assert list(f) == ["main", "decoder"]
    main_ops = list(f["main"].body.block.ops)
    calls = [op for op in main_ops if isinstance(op, CallOp)]
    assert len(calls) == 80 and {c.callee.string_value() for c in calls} == {"decoder"}
    weights = [op for op in main_ops if isinstance(op, WeightOp)]
    assert len(weights) == 2 + 80 * 9 + 1
    assert weights[1].param_name.data == "decoder.0.input_layernorm"
    # each call gets its own layer's weights and caches
    assert calls[7].arguments[-1].name_hint == "decoder.7.down_proj"
    assert calls[7].arguments[2].name_hint == "decoder.7.k_cache"


def test_main_signature_ids_positions_caches_logits() -> None:
    main_func = funcs("llama-3-8b", seq=4, context=100)["main"]
    inputs = [str(t) for t in main_func.function_type.inputs]
    assert inputs[:2] == ["tensor<4xi32>", "tensor<4xi32>"]
    assert inputs[2:] == ["tensor<100x1024xf16>"] * 64
    assert [str(t) for t in main_func.function_type.outputs] == ["tensor<4x128256xf16>"]


def test_block_func_takes_activations_positions_caches_then_weights() -> None:
    decoder = funcs("llama-3-8b")["decoder"]
    args = decoder.body.block.args
    assert [a.name_hint for a in args[:4]] == ["x", "pos", "k_cache", "v_cache"]
    assert all(isinstance(a.type, PackedType) for a in args[4:]) and len(args) == 13
    (attention,) = [op for op in decoder.body.block.ops if isinstance(op, AttentionOp)]
    assert (attention.num_heads.value.data, attention.num_kv_heads.value.data) == (32, 8)


def test_printed_ir_parses_back_identically() -> None:
    text = module_text(load_model("tiny", seq=2, context=3).module)
    module = Parser(make_context(), text).parse_module()
    module.verify()
    assert module_text(module) == text


def test_seq_and_context_are_checked() -> None:
    with pytest.raises(Q35Error, match="seq 1 \\+ context 4096 exceeds the model's context length 4096"):
        load_model("llama-2-7b", context=4096)
    with pytest.raises(Q35Error, match="seq \\(tokens in flight\\) must be at least 1"):
        load_model("tiny", seq=0)


def test_examples_resolve_by_name_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path(resolve_model("llama-2-7b")) == EXAMPLES_DIR / "llama-2-7b.q35"
    assert load_model("tiny").name == "tiny"


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("")
    with pytest.raises(Q35Error, match=r"unknown model file type '.txt' \(expected .q35, .json, .gguf\)"):
        load_model(str(path))


def test_build_prints_the_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "tiny", "--emit", "graph"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("builtin.module {\n  func.func @main(%ids: tensor<1xi32>, %pos: tensor<1xi32>,")
    assert "func.func @decoder(%x: tensor<1x64xf16>" in out


def test_build_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.mlir"
    assert main(["build", "tiny", "--quant", "q3p5:g=64", "--seq", "8", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text()
    assert "tensor<8x64xf16>" in text and "#q35.scheme<q3p5, g = 64, container = dense>" in text
    assert os.listdir(tmp_path) == ["tiny.mlir"]  # no temporary left behind


def test_build_rejects_an_unknown_emit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "tiny", "--emit", "ptx"])
    assert info.value.code == 2
    assert "argument --emit: invalid choice: 'ptx'" in capsys.readouterr().err


def test_build_cannot_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "tiny", "-o", "/nonexistent-dir/x.mlir"]) == 2
    assert capsys.readouterr().err == (
        "q35c: error: /nonexistent-dir/x.mlir: cannot write /nonexistent-dir/x.mlir: No such file or directory\n"
    )
