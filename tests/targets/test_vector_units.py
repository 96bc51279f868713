"""Every op costs time where it runs, in the dtype it runs: GPU vector units, MAC dtypes, calibration bounds."""

from __future__ import annotations

import pytest

from q35c.analysis.workload import extract
from q35c.driver.compile import compile_model
from q35c.predict.predictor import compare
from q35c.targets.calibration import BOUNDS, FITTED, within_bounds
from q35c.targets.target import MAC_ENERGY, get_target

GPUS = ("a100-sxm", "h100-sxm", "h100-pcie", "mi210", "mi300x")


@pytest.fixture(scope="module")
def llama_q3p5() -> object:
    return compare("llama-2-7b", "q3p5", "all", batch=1)


def test_no_target_leaves_an_op_kind_untimed(llama_q3p5: object) -> None:
    for result in llama_q3p5.targets:  # type: ignore[attr-defined]
        for cost in (result.decode, result.prefill):
            if cost is not None:
                assert not [k for k in cost.to_dict()["ops"] if k.startswith("untimed")], result.target


def test_h100_decode_q3p5_unpacking_is_timed_and_shows_in_limits(llama_q3p5: object) -> None:
    (h100,) = [r for r in llama_q3p5.targets if r.target == "h100-sxm"]  # type: ignore[attr-defined]
    limits = h100.decode.to_dict()["limits_s"]
    assert limits.get("vector unpacking", 0.0) > 0
    assert h100.decode.to_dict()["ops"]["vector.int32"] > 0


@pytest.mark.parametrize("name", GPUS)
def test_gpu_specs_have_a_vector_unit_with_fp32_int32_and_fp16(name: str) -> None:
    vector = get_target(name).vector_unit()
    assert vector is not None
    assert {"fp32", "int32", "fp16"} <= set(vector.peak_ops_per_s)


def test_quantized_prefill_macs_are_fp16_for_time_and_energy() -> None:
    target = get_target("h100-sxm")
    module = compile_model("tiny", "h100-sxm", quant="q3p5:g=64", seq=512).module
    work = extract(module)
    linears = [k for k in work.kernels if k.name == "linear"]
    assert linears and all(set(k.macs) == {"fp16"} for k in linears)
    assert target.mac_dtype("fp16") == "fp16" and MAC_ENERGY[target.mac_dtype("fp16")] == "fp16_mac"
    ops = target.estimate(work).to_dict()["ops"]
    assert "tensor.fp16" in ops and "tensor.fp32" not in ops


def test_a_mac_costs_energy_in_the_dtype_it_is_timed_in() -> None:
    groq = get_target("groq-lpu")  # the MXM takes int8 or fp16: an fp32 MAC runs, and costs, as fp16
    assert groq.mac_dtype("fp32") == "fp16"


@pytest.mark.parametrize("family", sorted(FITTED))
def test_calibration_constants_lie_within_their_physical_bounds(family: str) -> None:
    assert within_bounds(FITTED[family]), (family, FITTED[family], BOUNDS)
