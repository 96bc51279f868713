"""materialize-weights: a weight that calls alone read becomes their storage arguments and nothing else; one that
an op of its own function also reads keeps an `assemble` for that op, and the call passes the storage; a packed
argument the function only passes on leaves nothing."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from q35c.driver.pipeline import make_context, module_text
from q35c.passes.materialize_weights import MaterializeWeightsPass

PACKED = "!q35.packed<16x64, #q35.scheme<int4, g = 32>>"
IR = f"""
func.func @inner(%x: tensor<2x64xf16>, %w: {PACKED}) -> tensor<2x16xf16> {{
  %y = q35.linear %x, %w : (tensor<2x64xf16>, {PACKED}) -> tensor<2x16xf16>
  func.return %y : tensor<2x16xf16>
}}
func.func @outer(%x: tensor<2x64xf16>, %w: {PACKED}) -> tensor<2x16xf16> {{
  %y = func.call @inner(%x, %w) : (tensor<2x64xf16>, {PACKED}) -> tensor<2x16xf16>
  func.return %y : tensor<2x16xf16>
}}
func.func @main(%x: tensor<2x64xf16>) -> (tensor<2x16xf16>, tensor<2x16xf16>, tensor<2x16xf16>) {{
  %shared = q35.weight "shared" : {PACKED}
  %called = q35.weight "called" : {PACKED}
  %unread = q35.weight "unread" : {PACKED}
  %a = func.call @outer(%x, %shared) : (tensor<2x64xf16>, {PACKED}) -> tensor<2x16xf16>
  %b = q35.linear %x, %shared : (tensor<2x64xf16>, {PACKED}) -> tensor<2x16xf16>
  %c = func.call @inner(%x, %called) : (tensor<2x64xf16>, {PACKED}) -> tensor<2x16xf16>
  func.return %a, %b, %c : tensor<2x16xf16>, tensor<2x16xf16>, tensor<2x16xf16>
}}
"""


def _materialized() -> str:
    module = Parser(make_context(), IR).parse_module()
    MaterializeWeightsPass().apply(make_context(), module)
    module.verify()
    return module_text(module)


def test_only_weights_an_op_of_their_function_reads_keep_an_assemble() -> None:
    text = _materialized()
    main = text[text.index("func.func @main") :]
    assert main.count("q35_storage.assemble") == 1
    assert "%shared = q35_storage.assemble %shared.codes, %shared.scale, %shared.offset" in main
    assert "q35.linear %x, %shared" in main
    assert "func.call @outer(%x, %shared.codes, %shared.scale, %shared.offset)" in main
    assert "func.call @inner(%x, %called.codes, %called.scale, %called.offset)" in main
    assert '%unread.codes: tensor<16x8xi32> {q35.param = "unread", q35.storage = "codes"}' in main
    assert "q35.weight" not in text


def test_a_packed_argument_only_passed_on_leaves_no_assemble() -> None:
    text = _materialized()
    outer = text[text.index("func.func @outer") : text.index("func.func @main")]
    inner = text[text.index("func.func @inner") : text.index("func.func @outer")]
    assert "assemble" not in outer
    assert "func.call @inner(%x, %w.codes, %w.scale, %w.offset)" in outer
    assert "%w = q35_storage.assemble %w.codes, %w.scale, %w.offset" in inner


def test_the_module_is_the_same_whatever_order_the_functions_come_in() -> None:
    module = Parser(make_context(), IR).parse_module()
    functions = list(module.ops)
    for fn in functions:
        fn.detach()
    reordered = ModuleOp([functions[2], functions[1], functions[0]])
    MaterializeWeightsPass().apply(make_context(), reordered)
    reordered.verify()
    text = module_text(reordered)
    for name in ("@main", "@outer", "@inner"):
        start = text.index(f"func.func {name}")
        assert text[start : text.index("\n  }", start)] in _materialized()
