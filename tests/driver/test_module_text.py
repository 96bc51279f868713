"""`module_text` prints what xDSL's printer prints, also where it copies an argument list printed before: after
every stage, on copies of a module, and with arguments that have no name or share one."""

from __future__ import annotations

import io

import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer

from q35c.driver.pipeline import LONG_SIGNATURE, Runner, make_context, module_text
from q35c.frontend import load_model
from q35c.ir.clone import clone
from q35c.targets.registry import get_target


def xdsl_text(module: ModuleOp) -> str:
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


@pytest.mark.parametrize(
    ("model", "quant", "target"), [("llama-2-7b", "q3p5", "h100-sxm"), ("tiny", "q3p5:g=32", "groq-lpu")]
)
def test_every_stage_prints_as_xdsl_prints_it(model: str, quant: str, target: str) -> None:
    module = load_model(model, quant=quant, seq=2, context=3).module
    runner = Runner(verify=False)
    for stage in get_target(target).pipeline():
        runner.apply(stage, module)
        for printed in (module, clone(module), module):
            assert module_text(printed) == xdsl_text(printed)


def test_an_argument_list_copied_names_its_arguments_as_printing_would() -> None:
    module = load_model("llama-2-7b", quant="q3p5").module
    Runner(verify=False).apply(get_target("host").pipeline()[0], module)  # materialize: weights become arguments
    main = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "main")
    args = main.body.blocks.first.args  # type: ignore[union-attr]
    assert len(args) >= LONG_SIGNATURE
    assert module_text(module) == xdsl_text(module)
    copy = clone(module)
    copied = next(op for op in copy.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "main")
    for index, arg in enumerate(copied.body.blocks.first.args):  # type: ignore[union-attr]
        arg.name_hint = None if index % 3 == 0 else "w" if index % 3 == 1 else arg.name_hint
    assert module_text(copy) == xdsl_text(copy)  # other names: printed afresh
    assert module_text(copy) == xdsl_text(copy)  # and then copied


SLICES = """
func.func @f(%t: tensor<8x16xf32>, %u: tensor<2x4xf32>, %i: index, %j: index) -> tensor<8x16xf32> {
  %a = tensor.extract_slice %t[%i, 0] [2, 4] [1, 1] : tensor<8x16xf32> to tensor<2x4xf32>
  %b = tensor.extract_slice %t[0, %j] [1, 4] [1, 1] : tensor<8x16xf32> to tensor<4xf32>
  %c = tensor.extract_slice %t[%i, %j] [2, 4] [1, 2] {q35.note = "kept"} : tensor<8x16xf32> to tensor<2x4xf32>
  %d = tensor.insert_slice %u into %t[%i, 4] [2, 4] [1, 1] : tensor<2x4xf32> into tensor<8x16xf32>
  %e = tensor.insert_slice %a into %d[0, 0] [2, 4] [1, 1] {q35.note = 3 : i64} : tensor<2x4xf32> into tensor<8x16xf32>
  func.return %e : tensor<8x16xf32>
}
"""


def test_slices_print_as_xdsl_prints_them() -> None:
    # Dynamic and static offsets, a rank-reducing slice, and slices with attributes (printed the generic way).
    module = Parser(make_context(), SLICES).parse_module()
    assert module_text(module) == xdsl_text(module)
    assert "tensor.extract_slice %t[%i, 0] [2, 4] [1, 1] : tensor<8x16xf32> to tensor<2x4xf32>" in module_text(module)
