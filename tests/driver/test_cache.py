"""The compile cache: keyed by the stages a target's pipeline runs, never by its family, so a target's figures do
not depend on which other targets are built beside it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from q35c.cli.main import main
from q35c.driver.cache import CACHE, Key, WorkloadCache, compile_key, compile_trees
from q35c.driver.pipeline import Stage
from q35c.targets.target import Target, get_target

TINY = ("tiny", "q3p5:g=32", 1, 4, 1)
SMALL = ["--prompt", "16", "--gen", "8"]


def report_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, targets: str, target: str) -> dict[str, Any]:
    """`target`'s entry of report.json, built with `targets` by a run that starts with an empty cache."""
    monkeypatch.setattr(CACHE, "found", {})
    out = tmp_path / targets.replace(",", "+")
    assert main(["build", "tiny", "--quant", "q3p5:g=32", "--target", targets, *SMALL, "-o", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    (entry,) = [t for t in data["targets"] if t["target"] == target]
    return entry


@pytest.mark.parametrize("others", ["a100-sxm,mi300x", "mi300x,a100-sxm,h100-sxm"])
def test_a_targets_figures_do_not_depend_on_the_targets_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, others: str
) -> None:
    # mi300x and a100-sxm are both GPUs; when the cache was keyed by family, mi300x built after a100-sxm was
    # costed from a100-sxm's IR (its tiles staged in "smem", which mi300x does not have: no LDS energy).
    alone = report_entry(tmp_path, monkeypatch, "mi300x", "mi300x")
    beside = report_entry(tmp_path, monkeypatch, others, "mi300x")
    assert beside == alone
    assert "lds" in alone["decode_cost"]["bytes"] and "smem" not in alone["decode_cost"]["bytes"]


def test_targets_of_one_family_get_their_own_workloads() -> None:
    cache = WorkloadCache()
    a100, mi300x = get_target("a100-sxm"), get_target("mi300x")
    cache.prepare([(TINY, a100), (TINY, mi300x)])
    spaces = {
        name: {s for k in cache.get(TINY, t).kernels for s in k.moved} for name, t in (("a", a100), ("m", mi300x))
    }
    assert spaces == {"a": {"smem"}, "m": {"lds"}}
    assert cache.get(TINY, mi300x) == compile_key(TINY, {"mi300x": mi300x.pipeline()})["mi300x"]
    assert len(cache.found) == 2


class Alias:
    """A target under another name whose pipeline is another target's (equal stages)."""

    def __init__(self, name: str, target: Target) -> None:
        self.name = name
        self.target = target

    def pipeline(self, options: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
        return self.target.pipeline(options)


def test_targets_whose_stages_are_equal_share_one_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    import q35c.driver.cache as cache_module

    calls: list[int] = []
    extract = cache_module.extract

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return extract(*args, **kwargs)

    monkeypatch.setattr(cache_module, "extract", counting)
    h100 = get_target("h100-sxm")
    cache = WorkloadCache()
    twin: Any = Alias("twin", h100)
    cache.prepare([(TINY, h100), (TINY, twin)])
    assert len(calls) == 1 and len(cache.found) == 1
    assert cache.get(TINY, twin) is cache.get(TINY, h100)
    cache.prepare([(TINY, twin)])
    assert len(calls) == 1  # cached


def test_pipeline_options_are_part_of_the_key() -> None:
    cache = WorkloadCache()
    h100 = get_target("h100-sxm")
    plain = cache.get(TINY, h100)
    fixed = cache.get(TINY, h100, (("tile-n", "8"),))
    assert len(cache.found) == 2
    assert plain.peak_bytes != fixed.peak_bytes  # smaller tiles stage fewer bytes at once


def test_trees_given_later_for_a_key_compile_the_model_as_loaded() -> None:
    # The stages the first tree's targets share run on the loaded module, in this process; the trees `more`
    # gives for the same key (two of them: a copy for the first, the copy kept itself for the last) start from
    # the model as loaded.
    key: Key = TINY
    first = {name: get_target(name).pipeline() for name in ("a100-sxm", "h100-sxm")}
    later = [{"m2-max": get_target("m2-max").pipeline()}, {"host": get_target("host").pipeline()}]
    for parallel in (True, False):
        found = compile_trees([(key, first)], more=lambda: [(key, pipelines) for pipelines in later], parallel=parallel)
        for pipelines, result in zip([first, *later], found, strict=True):
            for name, stages in pipelines.items():
                assert result[name][0] == compile_key(key, {name: stages})[name]
