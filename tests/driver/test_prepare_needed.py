"""A comparison compiles what its figures read, in one run: both phases as is for targets on one device, and both
sharded for targets placed on several (what those must hold comes from the graph IR, as their placement does);
its figures are those of costing each target alone, compiling as needed."""

from __future__ import annotations

import pytest

import q35c.driver.tree as tree
from q35c.driver.cache import CACHE, WorkloadCache
from q35c.predict.predictor import Predictor, Scenario, compare
from q35c.targets.registry import get_target

MODEL, SCHEME = "tiny", "q3p5:g=32"


def test_a_placed_target_is_compiled_sharded_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CACHE, "found", {})
    report = compare(MODEL, SCHEME, "h100-sxm,m2-ultra", prompt=16, gen=8, tp=1, pp=2)
    placed = {r.target: r.devices for r in report.targets}
    assert placed == {"h100-sxm": 2, "m2-ultra": 0}  # one Mac: two devices cannot be used
    h100 = get_target("h100-sxm")
    compiled = {(key[2], stages) for key, stages in CACHE.found}
    decode, prefill = 1, 16
    assert (decode, h100.pipeline()) not in compiled and (prefill, h100.pipeline()) not in compiled
    sharded = h100.pipeline({"tp": 1, "pp": 2, "layers": "1,1"})
    assert compiled == {(decode, sharded), (prefill, sharded)}
    need = Predictor(MODEL, SCHEME, Scenario(1, 16, 8)).graph_need()  # what it holds: the graph IR's, as placed
    (result,) = [r for r in report.targets if r.target == "h100-sxm"]
    assert (result.weight_bytes, result.kv_bytes) == (need.weight_bytes, need.kv_bytes)
    assert f"{need.total / 1e9:.2f} GB to hold" in result.notes[0]


def test_with_pipeline_options_a_placed_target_is_sized_from_its_module_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CACHE, "found", {})
    compare(MODEL, SCHEME, "h100-sxm", prompt=16, gen=8, tp=1, pp=2, options={"tile-t": "8"})
    h100 = get_target("h100-sxm")
    compiled = {(key[2], stages) for key, stages in CACHE.found}
    assert (1, h100.pipeline({"tile-t": "8"})) in compiled  # options may change storage: its size as compiled


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


def test_a_target_that_cannot_hold_the_model_on_its_one_device_is_not_compiled() -> None:
    predictor = Predictor("llama-3.1-405b", "q3p5", Scenario(1, 512, 128), cache=WorkloadCache())
    mac = get_target("m2-max")  # one device, 71 GB usable: the 190 GB model cannot fit
    predictor.prepare_needed([mac])
    assert predictor.cache.found == {}
    result = predictor.predict(mac)
    assert result.devices == 0 and result.error is not None and "m2-max" in result.error
    need = predictor.graph_need()
    assert (result.weight_bytes, result.kv_bytes) == (need.weight_bytes, need.kv_bytes)
    assert predictor.cache.found == {}  # costed from its size alone


@pytest.mark.parametrize("scheme", [SCHEME, None])
def test_compiling_changes_neither_the_weights_storage_nor_the_kv_cache(scheme: str | None) -> None:
    """Why a target that cannot hold the model may be sized from the graph IR: its compiled decode step would give
    the same weight bytes and KV-cache bytes, whatever the target's pipeline."""
    predictor = Predictor(MODEL, scheme, Scenario(2, 16, 8), cache=WorkloadCache())
    need = predictor.graph_need()
    targets = [get_target(name) for name in ("host", "m2-max", "h100-sxm", "groq-lpu", "mi300x")]
    predictor.prepare(targets)
    for target in targets:
        decode = predictor.decode_workload(target)
        assert decode is not None
        assert float(decode.weight_bytes) == need.weight_bytes, target.name
        assert decode.kv_bytes_per_token * (16 + 8) * 2 == need.kv_bytes, target.name
