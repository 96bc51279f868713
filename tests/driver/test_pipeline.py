"""Named pipeline stages, the runner's rules (verification, errors, timing), the IR callbacks and the dump files."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.parser import Parser
from xdsl.passes import ModulePass
from xdsl.printer import Printer
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import PassFailedException, VerifyException

from q35c.driver.pipeline import (
    IRDumper,
    IRPrinter,
    Runner,
    Stage,
    chain,
    dump_header,
    make_context,
    module_text,
    run_stages,
    stage_names,
)
from q35c.frontend import load_model
from q35c.util.errors import Q35Error

IR = """
func.func @f(%x: tensor<1x128xf16>) -> tensor<1x128xf16> {
  %w = q35.weight "unused" : !q35.packed<64x128, #q35.scheme<int4, g = 32>>
  %y = q35.silu %x : tensor<1x128xf16>
  func.return %y : tensor<1x128xf16>
}
"""
STAGES = (Stage("dce", (DeadCodeElimination(),)), Stage("again", ()))


def _module() -> ModuleOp:
    return Parser(make_context(), IR).parse_module()


def test_stages_run_in_order_and_print_after_all() -> None:
    out = io.StringIO()
    module = run_stages(_module(), STAGES, make_context(), IRPrinter(out, after_all=True))
    text = out.getvalue()
    headers = [line for line in text.splitlines() if line.startswith("// -----// IR Dump After")]
    assert headers == [dump_header("graph"), dump_header("dce"), dump_header("again")]
    # The graph dump still has the dead weight; the dump after dce does not.
    graph_part, after_dce = text.split(dump_header("dce"))
    assert "q35.weight" in graph_part and "q35.weight" not in after_dce
    assert "q35.weight" not in module_text(module)


def test_print_after_one_stage_only() -> None:
    out = io.StringIO()
    run_stages(_module(), STAGES, make_context(), IRPrinter(out, after=frozenset({"dce"})))
    assert out.getvalue().count("// -----// IR Dump After") == 1
    assert dump_header("dce") in out.getvalue()


def test_dump_dir_gets_one_numbered_file_per_stage(tmp_path: Path) -> None:
    dumper = IRDumper(tmp_path / "ir")
    silent = IRPrinter(io.StringIO())
    run_stages(_module(), STAGES, make_context(), chain(dumper, silent, None))
    names = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert names == ["00-graph.mlir", "01-dce.mlir", "02-again.mlir"]
    assert stage_names(STAGES) == ["graph", "dce", "again"]
    # Each dump parses back.
    for path in (tmp_path / "ir").iterdir():
        Parser(make_context(), path.read_text()).parse_module().verify()


@dataclass(frozen=True)
class Fails(ModulePass):
    """A pass that rejects every module."""

    name = "fails"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        raise PassFailedException("no tile fits\nsecond line")


@dataclass(frozen=True)
class Breaks(ModulePass):
    """A pass that leaves invalid IR: a function without its terminator."""

    name = "breaks"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for inner in list(op.walk()):
            if isinstance(inner, func.ReturnOp):
                inner.detach()
                inner.erase()


def test_a_failing_stage_is_a_q35_error_naming_the_stage_and_target() -> None:
    runner = Runner(target="h100-sxm", source="tiny.q35")
    with pytest.raises(Q35Error) as caught:
        runner.run(_module(), (STAGES[0], Stage("tile", (Fails(),))))
    assert caught.value.message == "stage 'tile' failed for h100-sxm: no tile fits"
    assert str(caught.value.location) == "tiny.q35"
    with pytest.raises(Q35Error, match=r"^pass 'fails' failed: no tile fits$"):
        Runner(unit="pass").apply(Stage("fails", (Fails(),)), _module())


def test_verification_after_each_stage_is_one_flag() -> None:
    with pytest.raises(Q35Error, match="stage 'breaks' failed for host: "):
        Runner(target="host").run(_module(), (Stage("breaks", (Breaks(),)),))
    module = _module()
    Runner(verify=False).run(module, (Stage("breaks", (Breaks(),)),))  # not verified: no error
    with pytest.raises(VerifyException):
        module.verify()


def test_the_runner_times_each_stage_and_calls_back_after_it() -> None:
    seen: list[tuple[int, str]] = []
    seconds = Runner().run(_module(), STAGES, lambda index, stage, module: seen.append((index, stage)))
    assert len(seconds) == len(STAGES) and all(s >= 0 for s in seconds)
    assert seen == [(0, "graph"), (1, "dce"), (2, "again")]


def test_module_text_is_the_text_xdsl_prints() -> None:
    module = load_model("tiny", quant="q3p5:g=32").module
    names = ["plain", 'quote " and back\\slash', "tab\there\nnewline", "ünïcode ✓", "\x00\x7f"]
    module.attributes.update({f"q35.t{i}": StringAttr(name) for i, name in enumerate(names)})
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    assert module_text(module) == out.getvalue()
