"""Cost-model invariants: roofline bound, Groq chips, bandwidth, context, formats, power, layers, Cost arithmetic."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from q35c.analysis.workload import Counts, Workload
from q35c.predict.predictor import Predictor, Scenario, TargetResult
from q35c.targets.spec import SPEC_DIR, spec_names
from q35c.targets.target import Cost, Target, get_target

TARGETS = [name for name in spec_names() if name != "host"] + ["host"]
TINY = Scenario(batch=1, prompt=16, gen=8)


def predict(model: str, target: Target, scenario: Scenario = TINY, scheme: str | None = None) -> TargetResult:
    return Predictor(model, scheme, scenario).predict(target)


def workloads(model: str, target: Target, scenario: Scenario = TINY, scheme: str | None = None) -> list[Workload]:
    p = Predictor(model, scheme, scenario)
    return [w for w in (p.decode_workload(target), p.prefill_workload(target)) if w is not None]


def global_bound(target: Target, work: Workload, devices: int) -> float:
    """max(every main-memory byte / bandwidth, every MAC / the best matrix peak), spread over the devices."""
    spec = target.spec
    bandwidth = spec.main_memory.bandwidth_bytes_per_s or math.inf
    peak = max(q.value for unit in spec.compute for q in unit.peak_ops_per_s.values())
    memory = sum((k.weight_bytes + k.kv_read + k.kv_written) * k.calls for k in work.kernels) / devices
    return max(memory / bandwidth, 2 * work.total_macs / devices / peak)


@pytest.mark.parametrize("name", TARGETS)
def test_predicted_time_is_never_below_the_roofline_bound(name: str) -> None:
    target = get_target(name)
    for batch in (1, 4):
        for work in workloads("tiny", target, replace(TINY, batch=batch)):
            cost = target.estimate(work)
            assert cost.seconds >= cost.roofline_seconds > 0
            assert cost.roofline_seconds >= global_bound(target, work, 1) * (1 - 1e-12)


@pytest.mark.parametrize("name", TARGETS)
def test_average_power_never_exceeds_the_tdp(name: str) -> None:
    target = get_target(name)
    result = predict("tiny", target)
    assert result.avg_power_w is not None and result.avg_power_w <= target.spec.power.tdp.value * (1 + 1e-9)
    for cost in (result.decode, result.prefill):
        assert (
            cost is not None and cost.joules / cost.seconds <= result.devices * target.spec.power.tdp.value * 1.000001
        )


def copied_specs(tmp_path: Path) -> Path:
    directory = tmp_path / "specs"
    shutil.copytree(SPEC_DIR, directory)
    return directory


def scale_value(path: Path, key: str, factor: float) -> None:
    """Multiply the first `key = { value = ... }` quantity of a spec file by `factor`."""
    text = path.read_text()
    match = re.search(rf"{key} = {{ value = ([0-9.e+]+)", text)
    assert match is not None, key
    new = float(match.group(1)) * factor
    path.write_text(text[: match.start(1)] + repr(new) + text[match.end(1) :])


@pytest.mark.parametrize("name", ["h100-sxm", "m2-max", "groq-lpu", "mi300x"])
def test_more_bandwidth_is_never_slower(tmp_path: Path, name: str) -> None:
    directory = copied_specs(tmp_path)
    scale_value(directory / f"{name}.toml", "bandwidth_bytes_per_s", 2.0)
    slow, fast = get_target(name), get_target(name, directory)
    assert fast.spec.main_memory.bandwidth_bytes_per_s == 2 * slow.spec.main_memory.bandwidth_bytes_per_s
    for work in workloads("tiny", slow):
        assert fast.estimate(work).seconds <= slow.estimate(work).seconds


def test_a_tdp_too_low_stretches_time_and_says_power_limited(tmp_path: Path) -> None:
    directory = copied_specs(tmp_path)
    path = directory / "h100-sxm.toml"
    text = path.read_text().replace("tdp_w = { value = 700,", "tdp_w = { value = 140.5,")
    text = text.replace("value = 140, low = 70, high = 280,", "value = 140, low = 70, high = 140,")  # static_w
    path.write_text(text)
    capped, free = get_target("h100-sxm", directory), get_target("h100-sxm")
    work = workloads("tiny", free, Scenario(1, 256, 0))[0]
    slow, fast = capped.estimate(work), free.estimate(work)
    assert slow.seconds > fast.seconds and slow.bottleneck == "power (TDP)"
    assert slow.joules / slow.seconds <= 140.5 * 1.000001


@pytest.mark.parametrize("name", ["h100-sxm", "m2-max", "groq-lpu", "host"])
def test_decode_time_grows_as_the_context_grows(name: str) -> None:
    target = get_target(name)
    times = []
    for prompt in (0, 64, 256):
        work = Predictor("tiny", None, Scenario(1, prompt, 16)).decode_workload(target)
        assert work is not None
        times.append(target.estimate(work).seconds)
    assert times[0] < times[1] < times[2]


def test_decode_is_exact_at_the_mean_context() -> None:
    """G steps at contexts P..P+G-1 cost what G steps at their mean cost: linear in context. With G odd the
    mean is an integer and the compiled step is exact; with G even it is compiled at the mean + 1/2."""
    target = get_target("h100-sxm")
    steps = [predict("tiny", target, Scenario(1, c, 1)).ms_per_token for c in range(10, 15)]
    mean = predict("tiny", target, Scenario(1, 10, 5)).ms_per_token
    assert mean == pytest.approx(sum(s for s in steps if s is not None) / 5, rel=1e-12)
    assert predict("tiny", target, Scenario(1, 10, 4)).ms_per_token == steps[2]  # mean 11.5 -> C = 12


def test_groq_chips_hold_the_weights_in_sram() -> None:
    target = get_target("groq-lpu")
    for scheme in ("fp16", "q4_0"):
        result = predict("llama-2-7b", target, Scenario(1, 0, 2), scheme)
        sram = target.spec.main_memory.capacity_bytes
        assert result.devices >= math.ceil(result.weight_bytes / sram) > 1


def test_a_smaller_format_never_needs_more_devices() -> None:
    for name in ("groq-lpu", "h100-sxm"):
        target = get_target(name)
        counts = [predict("llama-2-7b", target, Scenario(1, 0, 2), s).devices for s in ("q4_0", "q8_0", "fp16")]
        assert counts == sorted(counts)


def layered_model(tmp_path: Path, layers: int) -> str:
    text = (Path(__file__).parents[2] / "examples" / "tiny.q35").read_text()
    text = text.replace("dim layers   = 2", f"dim layers   = {layers}").replace('model "tiny"', f'model "tiny{layers}"')
    text = text.replace("dim vocab    = 256", "dim vocab    = 64").replace("dim hidden   = 64", "dim hidden   = 256")
    path = tmp_path / f"tiny{layers}.q35"
    path.write_text(text)
    return str(path)


def test_twice_the_layers_cost_twice_the_decode_time(tmp_path: Path) -> None:
    target = get_target("h100-sxm")
    scenario = Scenario(1, 32, 2)
    times = {n: predict(layered_model(tmp_path, n), target, scenario).ms_per_token for n in (4, 8, 16)}
    assert times[4] is not None and times[8] is not None and times[16] is not None
    assert times[16] - times[8] == pytest.approx(2 * (times[8] - times[4]), rel=1e-9)  # linear in layers
    assert times[16] / times[8] == pytest.approx(2.0, rel=0.1)


def test_costs_add_and_scale() -> None:
    a = Cost(1.0, 0.5, 2, Counts({"hbm": 10}), Counts({"tensor.fp16": 4}), Counts({"hbm": 1.0}), Counts({"x": 1}))
    b = Cost(2.0, 1.0, 1, Counts({"hbm": 5, "l2": 1}), Counts(), Counts({"static": 2.0}), Counts({"y": 2}))
    total = a + b * 2
    assert total.seconds == 5.0 and total.roofline_seconds == 2.5 and total.kernels == 4
    assert dict(total.bytes) == {"hbm": 20.0, "l2": 2.0}
    assert total.joules == 5.0 and total.bottleneck == "y"
    assert 3 * a == a * 3
