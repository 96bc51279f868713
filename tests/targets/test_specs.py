"""Hardware specs: every file loads, every number is sourced, key figures match the hardware reference, the loader
rejects malformed files clearly, the host probe measures and caches, and `q35c targets` prints them."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from q35c.cli.main import main
from q35c.targets import host_probe
from q35c.targets.registry import families
from q35c.targets.spec import CONFIDENCES, SPEC_DIR, load_spec, spec_names

TARGETS = [
    "a100-sxm",
    "groq-lpu",
    "h100-pcie",
    "h100-sxm",
    "h200",
    "host",
    "m1-max",
    "m2-max",
    "m2-ultra",
    "m3-max",
    "m4-max",
    "mi210",
    "mi300x",
]
MiB = 2**20
MEASURE = host_probe.measure  # the real probe, kept before tests replace it

# (target, quantity path, value from the hardware reference)
KEY_FIGURES: list[tuple[str, str, float]] = [
    ("groq-lpu", "memory.sram.capacity_bytes", 220 * MiB),
    ("groq-lpu", "memory.sram.capacity_bytes", 230.686720e6),
    ("groq-lpu", "clock_hz", 900e6),
    ("groq-lpu", "process_nm", 14),
    ("groq-lpu", "compute_units.count", 320),
    ("groq-lpu", "compute.mxm.count", 409_600),
    ("groq-lpu", "compute.mxm.peak_ops_per_s.int8", 750e12),
    ("groq-lpu", "compute.mxm.peak_ops_per_s.fp16", 188e12),
    ("groq-lpu", "compute.vxm.count", 5120),
    ("groq-lpu", "interconnect.bandwidth_bytes_per_s", 480e9),
    ("groq-lpu", "interconnect.links", 16),
    ("groq-lpu", "system.devices_per_node", 8),
    ("groq-lpu", "system.devices_per_rack", 72),
    ("groq-lpu", "system.max_devices", 10_440),
    ("groq-lpu", "details.mem_slices", 88),
    ("groq-lpu", "details.mem_slice_bytes", 2.5 * MiB),
    ("h100-sxm", "memory.hbm.capacity_bytes", 80e9),
    ("h100-sxm", "memory.hbm.bandwidth_bytes_per_s", 3.35e12),
    ("h100-sxm", "compute.tensor.peak_ops_per_s.fp16", 989e12),
    ("h100-sxm", "compute.tensor.peak_ops_per_s.int8", 1979e12),
    ("h100-sxm", "memory.l2.capacity_bytes", 50e6),
    ("h100-sxm", "memory.smem.capacity_per_unit_bytes", 228e3),
    ("h100-sxm", "compute_units.count", 132),
    ("h100-sxm", "power.tdp_w", 700),
    ("h100-sxm", "interconnect.bandwidth_bytes_per_s", 900e9),
    ("h100-pcie", "memory.hbm.capacity_bytes", 80e9),
    ("h100-pcie", "memory.hbm.bandwidth_bytes_per_s", 2.0e12),
    ("h100-pcie", "compute.tensor.peak_ops_per_s.fp16", 756e12),
    ("h100-pcie", "compute.tensor.peak_ops_per_s.int8", 1513e12),
    ("h100-pcie", "compute_units.count", 114),
    ("h100-pcie", "power.tdp_w", 350),
    ("a100-sxm", "memory.hbm.capacity_bytes", 80e9),
    ("a100-sxm", "memory.hbm.bandwidth_bytes_per_s", 2.039e12),
    ("a100-sxm", "compute.tensor.peak_ops_per_s.fp16", 312e12),
    ("a100-sxm", "compute.tensor.peak_ops_per_s.int8", 624e12),
    ("a100-sxm", "memory.l2.capacity_bytes", 40e6),
    ("a100-sxm", "memory.smem.capacity_per_unit_bytes", 164e3),
    ("a100-sxm", "compute_units.count", 108),
    ("a100-sxm", "power.tdp_w", 400),
    ("a100-sxm", "interconnect.bandwidth_bytes_per_s", 600e9),
    ("mi210", "memory.hbm.capacity_bytes", 64e9),
    ("mi210", "memory.hbm.bandwidth_bytes_per_s", 1.6e12),
    ("mi210", "compute.matrix.peak_ops_per_s.fp16", 181e12),
    ("mi210", "compute.matrix.peak_ops_per_s.int8", 181e12),
    ("mi210", "memory.l2.capacity_bytes", 8 * MiB),
    ("mi210", "memory.lds.capacity_per_unit_bytes", 64 * 2**10),
    ("mi210", "compute_units.count", 104),
    ("mi210", "power.tdp_w", 300),
    ("mi300x", "memory.hbm.capacity_bytes", 192e9),
    ("mi300x", "memory.hbm.bandwidth_bytes_per_s", 5.3e12),
    ("mi300x", "compute.matrix.peak_ops_per_s.fp16", 1307e12),
    ("mi300x", "compute.matrix.peak_ops_per_s.int8", 2615e12),
    ("mi300x", "memory.l2.capacity_bytes", 32 * MiB),
    ("mi300x", "memory.infinity_cache.capacity_bytes", 256 * MiB),
    ("mi300x", "memory.lds.capacity_per_unit_bytes", 64 * 2**10),
    ("mi300x", "compute_units.count", 304),
    ("mi300x", "power.tdp_w", 750),
    ("m1-max", "memory.dram.bandwidth_bytes_per_s", 400e9),
    ("m1-max", "compute_units.count", 32),
    ("m1-max", "compute.gpu.peak_ops_per_s.fp16", 10.6e12),
    ("m2-max", "memory.dram.bandwidth_bytes_per_s", 400e9),
    ("m2-max", "compute_units.count", 38),
    ("m2-max", "compute.gpu.peak_ops_per_s.fp16", 13.6e12),
    ("m2-max", "compute.gpu.peak_ops_per_s.fp32", 13.6e12),
    ("m2-ultra", "memory.dram.bandwidth_bytes_per_s", 800e9),
    ("m2-ultra", "compute_units.count", 76),
    ("m2-ultra", "compute.gpu.peak_ops_per_s.fp16", 27.2e12),
    ("m3-max", "memory.dram.bandwidth_bytes_per_s", 400e9),
    ("m3-max", "compute_units.count", 40),
    ("m4-max", "memory.dram.bandwidth_bytes_per_s", 546e9),
    ("m4-max", "compute_units.count", 40),
    ("h100-sxm", "memory.hbm.energy_pj_per_bit", 3.9),
    ("h100-sxm", "energy.per_op_pj.int8_add", 0.03),
    ("h100-sxm", "energy.per_op_pj.int8_mul", 0.2),
    ("h100-sxm", "energy.per_op_pj.fp16_add", 0.4),
    ("h100-sxm", "energy.per_op_pj.fp16_mul", 1.1),
    ("h100-sxm", "energy.per_op_pj.fp32_mul", 3.7),
]


@pytest.fixture(autouse=True)
def host_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own cache directory, holding a tiny (fast) host measurement."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("Q35C_CACHE_DIR", str(cache))
    host_probe.save(tiny_measurement())
    yield cache


def tiny_measurement() -> host_probe.HostMeasurement:
    return MEASURE(array_bytes=1 << 16, matmul_n=32, min_seconds=0.0)


def test_spec_names_are_the_documented_targets() -> None:
    assert spec_names() == TARGETS


@pytest.mark.parametrize("name", TARGETS)
def test_every_spec_loads(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name
    assert spec.family in families()
    assert spec.memory and spec.compute
    assert spec.power.static.value <= spec.power.tdp.value
    assert all(level.capacity_bytes > 0 for level in spec.memory)


@pytest.mark.parametrize("name", TARGETS)
def test_every_number_has_a_source(name: str) -> None:
    spec = load_spec(name)
    assert spec.quantities
    for path, q in spec.quantities.items():
        assert q.source.strip(), path
        assert q.confidence in CONFIDENCES, path
        if q.confidence in ("derived", "uncertain"):
            assert q.note.strip(), f"{path}: {q.confidence} without a note"
        assert q.value >= 0, path


def _bare_numbers(node: Any, path: str = "") -> Iterator[str]:
    """Paths of numbers in raw TOML that are not the `value` of a quantity table."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key in ("value", "low", "high") and {"source", "confidence"} <= set(node):
                continue  # a quantity's value and an uncertain one's bounds
            yield from _bare_numbers(child, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _bare_numbers(child, f"{path}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path


@pytest.mark.parametrize("path", sorted(SPEC_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_no_number_in_a_spec_file_lacks_its_source(path: Path) -> None:
    raw = tomllib.loads(path.read_text())
    assert list(_bare_numbers(raw)) == []


@pytest.mark.parametrize(("name", "path", "expected"), KEY_FIGURES)
def test_key_figures_match_the_hardware_reference(name: str, path: str, expected: float) -> None:
    assert load_spec(name).quantity(path).value == pytest.approx(expected, rel=1e-12)


def test_groq_has_sram_only_and_no_invented_bandwidth() -> None:
    spec = load_spec("groq-lpu")
    assert [level.name for level in spec.memory] == ["sram"]
    assert all(level.on_chip for level in spec.memory)
    assert spec.main_memory.capacity_bytes == 220 * MiB == spec.on_chip_bytes
    assert spec.main_memory.bandwidth_bytes_per_s not in (4800e9, 80e9)


def test_groq_sram_bandwidth_is_derived_from_slices_width_and_clock() -> None:
    spec = load_spec("groq-lpu")
    d = spec.details
    derived = d["mem_slices"].value * d["vector_bytes"].value * spec.clock.value  # type: ignore[union-attr]
    bandwidth = spec.quantity("memory.sram.bandwidth_bytes_per_s")
    assert bandwidth.value == pytest.approx(derived)
    assert bandwidth.confidence == "derived"
    assert "Reading chosen" in bandwidth.note


def test_peaks_and_summary() -> None:
    h100 = load_spec("h100-sxm")
    assert h100.peak_ops_per_s("fp16") == 989e12
    assert h100.peak_ops_per_s("fp32") == 67e12  # the vector unit (CUDA cores): no fp32 tensor-core figure
    summary = h100.summary()
    assert summary["memory_bandwidth_bytes_per_s"] == 3.35e12
    assert summary["interconnect"] == {"kind": "nvlink4", "bandwidth_bytes_per_s": 900e9}
    assert h100.energy.op_pj("fp16_mac") == pytest.approx(1.5)


def test_source_of_cites_the_datasheet() -> None:
    spec = load_spec("h100-sxm")
    assert spec.source_of("memory.hbm.bandwidth_bytes_per_s") == "NVIDIA H100 datasheet [sourced]"
    assert "derived" in spec.source_of("memory.smem.capacity_bytes")
    with pytest.raises(ValueError, match=r"no value 'memory\.hbm\.speed'"):
        spec.source_of("memory.hbm.speed")


def test_unknown_target_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown target 'b200'") as err:
        load_spec("b200")
    for name in TARGETS:
        assert name in str(err.value)


TDP_LINE = 'tdp_w = { value = 700, source = "NVIDIA H100 datasheet", confidence = "sourced" }'
BAD_EDITS = [
    (
        "bandwidth_bytes_per_s = { value = 3.35e12",
        "bandwith_bytes_per_s = { value = 3.35e12",
        "'memory.hbm.bandwith_bytes_per_s': unknown key",
    ),
    (TDP_LINE, 'tdp_w = { value = 700, confidence = "sourced" }', "'power.tdp_w': has no source"),
    (TDP_LINE, 'tdp_w = { value = -700, source = "x", confidence = "sourced" }', "'power.tdp_w': value is negative"),
    (
        TDP_LINE,
        'tdp_w = { value = 700, source = "x", confidence = "derived" }',
        "'power.tdp_w': a derived value needs a note",
    ),
    (TDP_LINE, 'tdp_w = { value = 700, source = "x", confidence = "guessed" }', "'power.tdp_w': confidence must be"),
    (
        TDP_LINE,
        'tdp_w = { value = "700", source = "x", confidence = "sourced" }',
        "'power.tdp_w': value must be a finite number",
    ),
    (TDP_LINE, "tdp_w = 700", "'power.tdp_w': expected a table"),
    (
        TDP_LINE,
        'tdp_w = { value = 100, source = "x", confidence = "sourced" }',
        "'power.static_w': 140 W exceeds the TDP",
    ),
    ('name = "h100-sxm"', 'name = "h100"', "'name': is 'h100' but the file is h100-sxm.toml"),
    ('family = "gpu"', 'family = "tpu"', "'family': unknown family 'tpu'"),
    ("value = 30.096e6", "value = 31e6", "'memory.smem.capacity_bytes': is 31000000.0, but per unit x units"),
    ('kind = "matrix"', 'kind = "systolic"', "'compute.tensor.kind': unknown kind"),
    ('per_op = "horowitz-45nm"', 'per_op = "horowitz-7nm"', "'energy.per_op': no shared table _horowitz-7nm.toml"),
    ("[power]\n", "[power\n", "invalid TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_EDITS, ids=[m for _, _, m in BAD_EDITS])
def test_malformed_spec_gives_a_clear_error(
    load_error: Callable[[str, str], str], old: str, new: str, message: str
) -> None:
    assert message in load_error(old, new)


def test_spec_dir_override_lists_only_targets(spec_dir: Path) -> None:
    assert spec_names(spec_dir) == ["h100-sxm"]
    assert load_spec("h100-sxm", spec_dir=spec_dir).path == str(spec_dir / "h100-sxm.toml")


def test_host_probe_measures_positive_numbers_and_caches(host_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = tiny_measurement()
    assert result.copy_bytes_per_s > 0 and result.triad_bytes_per_s > 0 and result.fp32_flops > 0
    assert result.bandwidth_bytes_per_s == max(result.copy_bytes_per_s, result.triad_bytes_per_s)
    assert result.machine == host_probe.current_machine()
    path = host_probe.save(result)
    assert path == host_cache / "host.json"
    assert json.loads(path.read_text())["measured_at"] == result.measured_at
    assert host_probe.load_cached() == result

    def must_not_measure(**_: object) -> host_probe.HostMeasurement:
        raise AssertionError("measured although a cached result exists")

    monkeypatch.setattr(host_probe, "measure", must_not_measure)
    assert host_probe.measurement() == result
    monkeypatch.setattr(host_probe, "measure", lambda **_: tiny_measurement())
    assert host_probe.measurement(refresh=True) != result


def test_host_probe_remeasures_when_the_cache_is_absent_or_foreign(host_cache: Path) -> None:
    path = host_probe.cache_path()
    data = json.loads(path.read_text())
    data["machine"]["cpu_model"] = "another CPU"
    path.write_text(json.dumps(data))
    assert host_probe.load_cached() is None
    path.unlink()
    assert host_probe.load_cached() is None


def test_cache_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("Q35C_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert host_probe.cache_path() == tmp_path / "q35c" / "host.json"


def test_host_spec_merges_the_measurement() -> None:
    cached = host_probe.load_cached()
    assert cached is not None
    spec = load_spec("host")
    bandwidth = spec.quantity("memory.dram.bandwidth_bytes_per_s")
    assert bandwidth.value == cached.bandwidth_bytes_per_s
    assert bandwidth.confidence == "measured"
    assert "host probe" in bandwidth.source and cached.measured_at in bandwidth.source
    assert spec.peak_ops_per_s("fp32") == cached.fp32_flops
    assert spec.measured_at == cached.measured_at
    assert spec.compute_units.count.value == cached.machine.cpu_count


def test_cli_lists_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TARGET", "FAMILY", "MEMORY", "BANDWIDTH"]
    assert [row.split()[0] for row in rows[: len(TARGETS)]] == TARGETS
    assert "3.35 TB/s" in out and "989 TFLOPS" in out and "230.7 MB sram" in out
    assert "c2c 480 GB/s" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == TARGETS
    mi300x = next(d for d in data if d["name"] == "mi300x")
    assert mi300x["memory_bytes"] == 192e9 and mi300x["memory_bandwidth_bytes_per_s"] == 5.3e12


def test_cli_shows_one_target_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "groq-lpu"]) == 0
    out = capsys.readouterr().out
    assert "memory.sram.bandwidth_bytes_per_s" in out and "Reading chosen" in out
    assert "230.7 MB (220 MiB)" in out
    assert main(["targets", "h100-sxm", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["quantities"]["power.tdp_w"] == {
        "value": 700,
        "source": "NVIDIA H100 datasheet",
        "confidence": "sourced",
        "note": "",
    }


def test_cli_probe_measures_again(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    before = host_probe.load_cached()
    monkeypatch.setattr(host_probe, "measure", lambda **_: tiny_measurement())
    assert main(["targets", "host", "--probe", "--json"]) == 0
    captured = capsys.readouterr()
    assert "host probe:" in captured.err
    assert json.loads(captured.out)["measured_at"] is not None
    assert host_probe.load_cached() != before


def test_cli_unknown_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "tpu-v5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: unknown target 'tpu-v5'") and "h100-sxm" in err
