"""A comparison compiles what its figures read, in one run: every target's decode step as is (what it must hold),
the prefill as is only for targets on one device, and both phases sharded for targets placed on several; its
figures are those of costing each target alone, compiling as needed."""

from __future__ import annotations

import pytest

import q35c.driver.tree as tree
from q35c.driver.cache import CACHE, WorkloadCache
from q35c.predict.predictor import Predictor, Scenario, compare
from q35c.targets.registry import get_target

MODEL, SCHEME = "tiny", "q3p5:g=32"


def test_a_placed_target_is_not_compiled_unsharded_for_the_prefill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CACHE, "found", {})
    report = compare(MODEL, SCHEME, "h100-sxm,m2-ultra", prompt=16, gen=8, tp=1, pp=2)
    placed = {r.target: r.devices for r in report.targets}
    assert placed == {"h100-sxm": 2, "m2-ultra": 0}  # one Mac: two devices cannot be used
    h100 = get_target("h100-sxm")
    compiled = {(key[2], stages) for key, stages in CACHE.found}
    decode, prefill = 1, 16
    assert (decode, h100.pipeline()) in compiled  # its size
    assert (prefill, h100.pipeline()) not in compiled  # read by nothing
    sharded = h100.pipeline({"tp": 1, "pp": 2, "layers": "1,1"})
    assert {(decode, sharded), (prefill, sharded)} <= compiled


@pytest.mark.parametrize(("targets", "workers"), [("h100-sxm,m2-max,host", 2), ("groq-lpu,a100-sxm", 1)])
def test_the_figures_are_those_of_each_target_costed_alone(
    monkeypatch: pytest.MonkeyPatch, targets: str, workers: int
) -> None:
    monkeypatch.setattr(CACHE, "found", {})
    monkeypatch.setattr(tree, "_workers", lambda tasks: min(tasks, workers))
    report = compare(MODEL, SCHEME, targets, prompt=16, gen=8)
    for result in report.targets:
        alone = Predictor(MODEL, SCHEME, Scenario(1, 16, 8), cache=WorkloadCache()).predict(get_target(result.target))
        assert alone == result
