"""Several pipelines over one module as a tree: shared stages run once, each pipeline's final IR is its own, and
running the branches in forked processes gives what running them here gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.parser import Parser
from xdsl.passes import ModulePass
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import PassFailedException

from q35c.driver.pipeline import Stage, make_context, module_text
from q35c.driver.tree import Tree, count_nodes, run_trees
from q35c.util.errors import Q35Error

IR = """
func.func @f(%x: tensor<1x128xf16>) -> tensor<1x128xf16> {
  %w = q35.weight "unused" : !q35.packed<64x128, #q35.scheme<int4, g = 32>>
  %y = q35.silu %x : tensor<1x128xf16>
  func.return %y : tensor<1x128xf16>
}
"""


@dataclass(frozen=True)
class Tag(ModulePass):
    """Marks the module with `value` (a stand-in for a target's tile stage)."""

    name = "tag"
    value: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        op.attributes["test.tag"] = StringAttr(op.attributes["test.tag"].data + self.value)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Fails(ModulePass):
    name = "fails"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        raise PassFailedException("no tile fits")


def _module() -> ModuleOp:
    module = Parser(make_context(), IR).parse_module()
    module.attributes["test.tag"] = StringAttr("")
    return module


DCE = Stage("dce", (DeadCodeElimination(),))
PIPELINES = {
    "a": (DCE, Stage("tile", (Tag(value="A"),)), Stage("end", (Tag(value="!"),))),
    "b": (DCE, Stage("tile", (Tag(value="B"),)), Stage("end", (Tag(value="!"),))),
    "twin": (DCE, Stage("tile", (Tag(value="A"),)), Stage("end", (Tag(value="!"),))),  # a's stages
    "short": (DCE,),
}


@dataclass
class Log:
    """What the tree callbacks saw."""

    visits: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list[tuple[int, str, tuple[str, ...]]])
    finished: list[str] = field(default_factory=list[str])

    def visit(self, index: int, stage: str, labels: tuple[str, ...], module: ModuleOp) -> None:
        self.visits.append((index, stage, labels))

    def finish(self, label: str, module: ModuleOp) -> str:
        self.finished.append(label)
        return module.attributes["test.tag"].data  # type: ignore[attr-defined]


def test_shared_stages_run_once_and_equal_pipelines_finish_once() -> None:
    log = Log()
    steps: list[tuple[tuple[str, ...], str]] = []
    tree = Tree(_module(), PIPELINES, log.finish, visit=log.visit)
    (found,) = run_trees(
        [tree], verify=True, parallel=False, on_step=lambda labels, stage: steps.append((labels, stage))
    )
    assert found == {"a": "A!", "twin": "A!", "b": "B!", "short": ""}
    assert sorted(log.finished) == ["a", "b", "short"]  # twin shares a's result
    assert log.visits[:2] == [(0, "graph", ("a", "b", "twin", "short")), (1, "dce", ("a", "b", "twin", "short"))]
    assert sorted(v for v in log.visits[2:]) == [
        (2, "tile", ("a", "twin")),
        (2, "tile", ("b",)),
        (3, "end", ("a", "twin")),
        (3, "end", ("b",)),
    ]
    assert len(steps) == len(log.visits) == count_nodes(PIPELINES.values())


def test_forked_branches_give_what_running_them_here_gives(tmp_path: Path) -> None:
    def finish(label: str, module: ModuleOp) -> str:
        return module_text(module)

    def trees(directory: Path) -> list[Tree[str]]:
        directory.mkdir()

        def write(index: int, stage: str, labels: tuple[str, ...], module: ModuleOp) -> None:
            for label in labels:
                (directory / f"{label}-{index}-{stage}.mlir").write_text(module_text(module))

        return [Tree(_module(), PIPELINES, finish, visit=write), Tree(_module(), {"c": PIPELINES["b"]}, finish)]

    steps: list[str] = []
    forked = run_trees(trees(tmp_path / "forked"), verify=False, on_step=lambda labels, stage: steps.append(stage))
    here = run_trees(trees(tmp_path / "here"), verify=False, parallel=False)
    assert forked == here
    assert forked[1]["c"] == forked[0]["b"] and forked[0]["a"] == forked[0]["twin"] != forked[0]["b"]
    files = {p.name: p.read_text() for p in (tmp_path / "forked").iterdir()}
    assert files == {p.name: p.read_text() for p in (tmp_path / "here").iterdir()}
    assert len(files) == 4 + 4 + 3 + 3  # graph and dce for all four labels, tile and end for a, twin and b
    assert sorted(steps) == sorted(["graph", "dce", "tile", "tile", "end", "end", "graph", "dce", "tile", "end"])


@pytest.mark.parametrize("parallel", [False, True])
def test_a_failing_branch_names_its_stage_and_first_label(parallel: bool) -> None:
    pipelines = {
        "ok": (DCE, Stage("tile", (Tag(value="A"),))),
        "m2-max": (DCE, Stage("tile", (Fails(),))),
        "m3-max": (DCE, Stage("tile", (Fails(),))),
    }
    tree = Tree(_module(), pipelines, lambda label, module: None, source="tiny.q35")
    with pytest.raises(Q35Error, match="stage 'tile' failed for m2-max: no tile fits") as caught:
        run_trees([tree], verify=False, parallel=parallel)
    assert str(caught.value.location) == "tiny.q35"


def test_branches_that_part_at_the_first_stage_each_start_from_the_module_as_given() -> None:
    # Every branch starts at the graph, from the one module: a worker that runs several of them runs each on
    # a copy (more branches than workers, so some worker runs two); a tree of one branch runs on its module.
    parted = {f"p{i}": (Stage("tile", (Tag(value=str(i)),)), Stage("end", (Tag(value="!"),))) for i in range(5)}
    trees = [Tree(_module(), parted, Log().finish), Tree(_module(), {"alone": PIPELINES["a"]}, Log().finish)]
    (found, alone) = run_trees(trees, verify=False)
    assert found == {f"p{i}": f"{i}!" for i in range(5)}
    assert alone == {"alone": "A!"}
