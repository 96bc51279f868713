"""Named pipeline stages, the IR callbacks and the dump files."""

from __future__ import annotations

import io
from pathlib import Path

from xdsl.parser import Parser
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from q35c.driver.pipeline import (
    IRDumper,
    IRPrinter,
    Stage,
    chain,
    dump_header,
    make_context,
    module_text,
    run_stages,
    stage_names,
)

IR = """
func.func @f(%x: tensor<1x128xf16>) -> tensor<1x128xf16> {
  %w = q35.weight "unused" : !q35.packed<64x128, #q35.scheme<int4, g = 32>>
  %y = q35.silu %x : tensor<1x128xf16>
  func.return %y : tensor<1x128xf16>
}
"""
STAGES = (Stage("dce", (DeadCodeElimination(),)), Stage("again", ()))


def _module():
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
