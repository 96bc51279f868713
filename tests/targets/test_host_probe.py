"""The host probe runs several times and keeps the medians; runs that disagree by more than 20% make it noisy,
which is measured again, warned about and marked in the cache, never cached silently; `q35c targets host` shows
the probe's date and spread."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.targets import host_probe
from q35c.targets.host_probe import NOISY, HostMeasurement

MEASURE = host_probe.measure


def tiny(runs: int = 3) -> HostMeasurement:
    return MEASURE(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0, runs=runs)


def with_samples(m: HostMeasurement, copy: tuple[float, ...]) -> HostMeasurement:
    """`m` with these copy rates per run (the other figures' runs all equal: no spread)."""
    flat = (m.fp32_flops,) * len(copy)
    triad = (m.triad_bytes_per_s,) * len(copy)
    return dataclasses.replace(
        m, copy_samples=copy, copy_bytes_per_s=statistics.median(copy), triad_samples=triad, fp32_samples=flat
    )


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("Q35C_CACHE_DIR", str(tmp_path))
    yield tmp_path


def test_every_figure_is_the_median_of_its_runs() -> None:
    m = tiny(runs=5)
    assert m.runs == 5 and len(m.copy_samples) == len(m.triad_samples) == 5
    assert m.copy_bytes_per_s == statistics.median(m.copy_samples)
    assert m.triad_bytes_per_s == statistics.median(m.triad_samples)
    assert m.fp32_flops == statistics.median(m.fp32_samples)


def test_spread_is_max_minus_min_over_the_median() -> None:
    quiet = with_samples(tiny(), (100.0, 105.0, 110.0))
    assert quiet.spreads["copy"] == pytest.approx(10 / 105) and not quiet.noisy
    busy = with_samples(tiny(), (50.0, 100.0, 110.0))
    assert busy.spread == pytest.approx(60 / 100) and busy.spread > NOISY and busy.noisy
    assert "NOISY" in busy.describe_spread() and "NOISY" not in quiet.describe_spread()


def test_a_noisy_probe_is_measured_again_and_cached_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    base = tiny()
    results = iter([with_samples(base, (50.0, 100.0, 110.0)), with_samples(base, (80.0, 100.0, 110.0))])
    monkeypatch.setattr(host_probe, "measure", lambda **_: next(results))
    warnings: list[str] = []
    m = host_probe.measurement(refresh=True, warn=warnings.append)
    assert m.spread == pytest.approx(0.3)  # the quieter of the two, still noisy
    assert len(warnings) == 1 and "runs disagree by 30%" in warnings[0] and "marked noisy" in warnings[0]
    cached = host_probe.load_cached()
    assert cached == m and cached.noisy
    assert "NOISY" in host_probe.runtime_values(cached)["probe:bandwidth_bytes_per_s"][1]  # type: ignore[index]


def test_a_quiet_probe_is_cached_without_a_word(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def quiet(**_: object) -> HostMeasurement:
        calls.append(1)
        return with_samples(tiny(), (100.0, 101.0, 102.0))

    monkeypatch.setattr(host_probe, "measure", quiet)
    warnings: list[str] = []
    m = host_probe.measurement(refresh=True, warn=warnings.append)
    assert warnings == [] and len(calls) == 1 and host_probe.load_cached() == m


def test_a_cache_from_the_single_run_probe_is_measured_again(cache: Path) -> None:
    path = host_probe.save(tiny())
    data = json.loads(path.read_text())
    data["schema"] = 1
    for key in ("copy_samples", "triad_samples", "fp32_samples"):
        del data[key]
    path.write_text(json.dumps(data))
    assert host_probe.load_cached() is None


def test_targets_host_shows_the_probes_date_and_spread(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = with_samples(tiny(), (50.0, 100.0, 110.0))
    host_probe.save(m)
    assert main(["targets", "host"]) == 0
    out = capsys.readouterr().out
    assert f"measured {m.measured_at} (median of 3 run(s); spread (max-min)/median: copy 60%" in out
    assert "NOISY" in out
    assert main(["targets"]) == 0
    assert f"host: measured {m.measured_at} (median of 3 run(s)" in capsys.readouterr().out
    monkeypatch.setattr(host_probe, "measure", lambda **_: with_samples(m, (100.0, 100.0, 100.0)))
    assert main(["targets", "host", "--probe"]) == 0
    err = capsys.readouterr().err
    assert "host probe: copy" in err and "copy 0%" in err and "warning" not in err
