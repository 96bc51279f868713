"""A target family is a spec, a `Target` subclass and a registry entry: a toy family defined here (its spec in a
temporary directory, its class in this file, registered at run time) loads, compiles `tiny` through its own
pipeline with its own tile level and code choice, and gets a cost and its own notes -- without any code outside
`targets/` knowing its name. Also: the target facts the passes receive as options (`targets.pass_options`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr

from q35c.driver.cache import WorkloadCache
from q35c.driver.pipeline import make_context, run_stages
from q35c.frontend import load_model
from q35c.ir.attrs import KERNEL_ATTR, TILE_LEVEL_ATTR, memory_spaces
from q35c.passes.schedule_memory import ScheduleMemoryPass
from q35c.passes.tile import TilePass
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.predict.predictor import Predictor, Scenario
from q35c.report.sources import cited_paths
from q35c.targets import registry
from q35c.targets.levels import OnChipLevel
from q35c.targets.pass_options import expand, schedule_options, tile_options
from q35c.targets.spec import SPEC_DIR
from q35c.targets.target import Target, get_target

TOY_BUDGET = 16 * 1024
NOTE = "toy: a made-up accelerator that stages tiles in its L2, 16 KiB per core"


@dataclass(frozen=True)
class ToyTarget(Target):
    """A made-up family: integer codes kept, tiles sized for a fixed 16 KiB share of the L2 per core."""

    keeps_int_codes: ClassVar[bool] = True

    def tile_level(self, budget_bytes: int = 0) -> OnChipLevel:
        index = [m.name for m in self.spec.memory].index("l2")
        return OnChipLevel("l2", index, budget_bytes or TOY_BUDGET, "core")

    def notes(self) -> tuple[str, ...]:
        return (NOTE, *super().notes())

    def cited_figures(self) -> tuple[str, ...]:
        return ("compute_units.count",)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Iterator[Path]:
    """A spec directory holding `toy-npu` (an H100's figures under another name and family), with the family
    registered while the test runs."""
    for shared in SPEC_DIR.glob("_*.toml"):
        shutil.copy(shared, tmp_path / shared.name)
    text = (SPEC_DIR / "h100-sxm.toml").read_text()
    text = text.replace('name = "h100-sxm"', 'name = "toy-npu"', 1).replace('family = "gpu"', 'family = "toy"', 1)
    (tmp_path / "toy-npu.toml").write_text(text)
    registry.register("toy", ToyTarget)
    try:
        yield tmp_path
    finally:
        registry.unregister("toy")


def test_an_unregistered_family_is_rejected(toy_dir: Path) -> None:
    registry.unregister("toy")
    with pytest.raises(ValueError, match=r"unknown family 'toy' \(expected: groq, gpu, apple, host\)"):
        get_target("toy-npu", toy_dir)


def test_a_toy_family_compiles_tiny_and_gets_a_cost(toy_dir: Path) -> None:
    target = get_target("toy-npu", toy_dir)
    assert isinstance(target, ToyTarget) and target.family == "toy"
    stages = target.pipeline()
    assert [s.name for s in stages] == ["materialize", "lower-graph", "tile", "unpack", "schedule"]
    assert "16,384 B of l2 per core" in stages[2].description
    unpack = stages[3].passes[0]
    assert isinstance(unpack, UnpackBitsPass) and unpack.keep_int_codes

    module = run_stages(load_model("tiny").module, stages, make_context())
    module.verify()
    assert module.attributes[TILE_LEVEL_ATTR] == StringAttr("l2")
    assert memory_spaces(module) == ["hbm", "l2", "smem"]
    assert any(isinstance(op, func.FuncOp) and KERNEL_ATTR in op.attributes for op in module.ops)

    result = Predictor("tiny", None, Scenario(1, 16, 16), cache=WorkloadCache()).predict(target)
    assert result.error is None and result.decode is not None and result.decode.seconds > 0
    assert result.decode_tok_s is not None and result.decode_tok_s > 0
    assert result.family == "toy" and NOTE in result.notes
    assert "l2" in result.decode.bytes  # tiles staged in the toy's tile level
    assert "compute_units.count" in cited_paths(target.spec, result)  # the family's own cited figure


# --------------------------------------------------------------------------------------------------------------
# Target facts as pass options
# --------------------------------------------------------------------------------------------------------------


def test_pass_options_carry_the_target_facts() -> None:
    groq = get_target("groq-lpu")
    tile = TilePass(**tile_options(groq))
    assert (tile.align_n, tile.max_n, tile.max_k, tile.weight_buffers, tile.keep_int_codes) == (1, 320, 320, 1, True)
    assert tile.policy() == groq.tile_policy()
    m2 = schedule_options(get_target("m2-max"), budget_bytes=8192)
    assert m2 == {
        "spaces": ("dram", "slc", "threadgroup"),
        "tile_space": 2,
        "budget_bytes": 8192,
        "per": "threadgroup",
    }
    ScheduleMemoryPass(**m2)  # the options are the pass's fields


def test_expand_replaces_target_and_keeps_explicit_options() -> None:
    assert expand("tile", {"tile_n": (64,)}) == {"tile_n": (64,)}
    assert expand("unpack-bits", {"target": ("groq-lpu",)}) == {"target": ("groq-lpu",)}  # nothing to expand
    groq = expand("tile", {"target": ("groq-lpu",), "budget_bytes": (4096,), "max_n": (64,)})
    assert "target" not in groq and groq["budget_bytes"] == (4096,) and groq["max_n"] == (64,)
    assert groq["keep_int_codes"] == (True,)
    assert expand("tile", {"target": ("groq-lpu",), "keep_int_codes": (False,)})["keep_int_codes"] == (False,)
    h100 = expand("schedule-memory", {"target": ("h100-sxm",)})
    assert h100["spaces"] == ("hbm", "l2", "smem") and h100["tile_space"] == (2,)
    assert h100["budget_bytes"] == (228_000,) and "target" not in h100
    with pytest.raises(ValueError, match=r"unknown target 'tpu' \(valid targets: .*h100-sxm"):
        expand("tile", {"target": ("tpu",)})
    with pytest.raises(ValueError, match="option keep-int-codes takes true or false, got 3"):
        expand("tile", {"target": ("host",), "keep_int_codes": (3,)})


def test_schedule_memory_without_its_memory_says_what_it_needs() -> None:
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.utils.exceptions import PassFailedException

    with pytest.raises(PassFailedException, match=r"needs a target, e\.g\. schedule-memory\{target=h100-sxm\}"):
        ScheduleMemoryPass().apply(make_context(), ModuleOp([]))
