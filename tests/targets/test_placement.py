"""Placement over devices: the rule, its refusals, links between nodes, Groq's pipeline, and the property that
spreading a model over more devices never moves fewer bytes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.predict.predictor import Predictor, Scenario, compare
from q35c.targets.target import get_target
from q35c.util.errors import Q35Error

DECODE_ONLY = Scenario(1, 0, 4)


def test_a_degree_that_divides_nothing_is_refused_with_the_valid_counts() -> None:
    predictor = Predictor("llama-2-70b", "q3p5", DECODE_ONLY)
    with pytest.raises(Q35Error) as err:
        predictor.placement(get_target("h100-sxm"), devices=3)
    message = err.value.message
    assert "64 query heads do not divide over 3" in message
    assert "device counts that can: 1, 2, 4, 8" in message


def test_tensor_parallel_stays_in_a_node_and_stages_cross_the_network() -> None:
    report = compare("llama-2-70b", "q3p5", "h100-sxm", prompt=0, gen=4, tp=8, pp=2)
    result = report.targets[0]
    assert (result.devices, result.tp, result.pp) == (16, 8, 2)
    assert result.decode is not None
    limits = dict(result.decode.limits)
    assert limits["infiniband-ndr stage transfers"] > 0 and limits["nvlink4 all-reduce"] > 0
    assert len(result.decode.stage_seconds) == 2
    assert result.pipeline_tok_s is not None and result.decode_tok_s is not None
    assert result.pipeline_tok_s > result.decode_tok_s
    with pytest.raises(Q35Error, match="within a node of 8"):
        compare("llama-2-70b", "q3p5", "h100-sxm", prompt=0, gen=4, tp=16)


def test_apple_runs_on_one_device_and_says_so() -> None:
    report = compare("tiny", "int8", "m2-max,h100-sxm", prompt=0, gen=4, devices=2)
    apple, gpu = report.targets
    assert apple.error is not None and apple.bottleneck == "device limit" and "one Mac" in apple.error
    assert gpu.error is None and gpu.tp == 2


def test_groq_spreads_70b_int8_over_576_chips_as_a_pipeline_of_nodes() -> None:
    report = compare("llama-2-70b", "int8", "groq-lpu", prompt=0, gen=4, devices=576)
    result = report.targets[0]
    assert result.error is None, result.error
    assert (result.tp, result.pp) == (8, 72)
    assert result.decode is not None and "c2c all-reduce" in result.decode.limits
    assert result.pipeline_tok_s is not None and result.decode_tok_s is not None
    assert result.pipeline_tok_s > 10 * result.decode_tok_s  # 72 stages, each busy with another sequence
    assert result.pipeline_joules_per_token is not None and result.joules_per_token is not None
    assert result.pipeline_joules_per_token < result.joules_per_token
    low, high = result.decode_tok_s_low, result.decode_tok_s_high  # the MXM install readings show in the range
    assert low is not None and high is not None and high > 2 * low


def test_a_model_no_placement_holds_says_what_the_widest_one_needs() -> None:
    with pytest.raises(Q35Error) as err:  # one target: its refusal is the error
        compare("llama-3.1-405b", "q3p5", "groq-lpu", prompt=0, gen=4)
    message = err.value.message
    assert "even spread the widest way, over 1008 devices" in message
    assert "tensor parallel over 8 x 126 pipeline stages (1 layer each)" in message
    fullest = float(message.split("the fullest device would need ")[1].split(" MB")[0])
    assert fullest > 219  # more than a chip's usable SRAM: the embedding's and lm_head's stages stay too large


@pytest.mark.parametrize("name", ["h100-sxm", "groq-lpu"])
def test_adding_devices_never_lowers_the_bytes_moved(name: str) -> None:
    target = get_target(name)
    predictor = Predictor("tiny", "int8", DECODE_ONLY)
    totals = []
    for tp, pp in ((1, 1), (2, 1), (1, 2), (2, 2), (4, 2)):
        result = predictor.predict(target, tp=tp, pp=pp, with_ranges=False)
        assert result.decode is not None, result.error
        moved = sum(v for k, v in result.decode.bytes.items() if k != "link") * tp + result.decode.bytes.get("link", 0)
        totals.append((tp * pp, moved))
    for (fewer, less), (more, most) in itertools.pairwise(totals):
        if more > fewer:
            assert most >= less * (1 - 1e-9), (fewer, less, more, most)


def test_a_sharded_dump_shows_its_collectives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ir"
    argv = ["build", "tiny", "--quant", "int8", "--target", "h100-sxm", "--tp", "2", "--pp", "2"]
    assert main([*argv, "--prompt", "0", "--gen", "2", "--dump-ir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "01 shard" in text
    final = sorted((out / "decode").iterdir())[-1].read_text()
    assert "q35.all_reduce" in final and "q35.transfer" in final and "q35.placement" in final
    assert main(["cost", str(sorted((out / "decode").iterdir())[-1]), "--target", "h100-sxm"]) == 0
    assert "4 device(s)" in capsys.readouterr().out


def test_replicated_kv_heads_are_said() -> None:
    result = compare("tiny", "int8", "h100-sxm", prompt=0, gen=4, tp=4).targets[0]
    assert "KV heads replicated: each is held by 2 of the 4 devices" in result.notes[0]
