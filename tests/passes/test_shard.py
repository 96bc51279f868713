"""The shard pass: tensor-parallel splits with their all-reduces, pipeline stages with their transfers, and
placements that cannot be realised refused with the valid choices."""

from __future__ import annotations

import pytest
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from q35c.dialects.q35 import AttentionOp, EmbedOp, LinearOp, PackedType, WeightOp
from q35c.dialects.q35_collectives import AllGatherOp, AllReduceOp, TransferOp
from q35c.frontend import load_model
from q35c.ir import attrs
from q35c.passes.shard import ShardError, ShardPass, split_stage_memory, stage_layers, stage_memory, valid_tp


def sharded(model: str, tp: int, pp: int = 1, quant: str | None = "int4:g=32", layers: str = "") -> ModuleOp:
    module = load_model(model, quant=quant).module
    ShardPass(tp=tp, pp=pp, layers=layers).apply(Context(), module)
    module.verify()
    return module


def weights(module: ModuleOp) -> dict[str, tuple[int, ...]]:
    found = {}
    for op in module.walk():
        if isinstance(op, WeightOp):
            assert isinstance(op.result.type, PackedType)
            found[op.param_name.data] = op.result.type.get_shape()
    return found


def test_tensor_parallel_splits_columns_then_rows_and_reduces_after_each_row_split() -> None:
    whole, split = weights(load_model("tiny", quant="int4:g=32").module), weights(sharded("tiny", 2))
    for name in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"):  # column split: N / 2
        n, k = whole[f"decoder.0.{name}"]
        assert split[f"decoder.0.{name}"] == (n // 2, k)
    for name in ("o_proj", "down_proj"):  # row split: K / 2
        n, k = whole[f"decoder.0.{name}"]
        assert split[f"decoder.0.{name}"] == (n, k // 2)
    assert split["embed_tokens"] == (whole["embed_tokens"][0] // 2, whole["embed_tokens"][1])  # vocabulary split
    assert split["decoder.0.input_layernorm"] == whole["decoder.0.input_layernorm"]  # replicated
    module = sharded("tiny", 2)
    block = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "decoder")
    reduced = [op for op in block.walk() if isinstance(op, AllReduceOp)]
    assert len(reduced) == 2 and all(op.group.value.data == 2 for op in reduced)
    assert all(isinstance(op.x.owner, LinearOp) for op in reduced)
    attention = next(op for op in block.walk() if isinstance(op, AttentionOp))
    assert (attention.num_heads.value.data, attention.num_kv_heads.value.data) == (2, 1)
    gathered = [op for op in module.walk() if isinstance(op, AllGatherOp)]
    assert len(gathered) == 1  # the vocabulary-split logits, gathered before they are returned
    assert next(op for op in module.walk() if isinstance(op, EmbedOp)).result.uses.get_length() == 1
    assert attrs.placement(module) == (2, 1)


def test_kv_heads_are_replicated_when_the_degree_exceeds_them() -> None:
    module = sharded("tiny", 4, quant="int8")  # tiny has 4 query heads and 2 KV heads
    attention = next(op for op in module.walk() if isinstance(op, AttentionOp))
    assert (attention.num_heads.value.data, attention.num_kv_heads.value.data) == (1, 1)
    assert isinstance(attention.k_cache.type, TensorType) and attention.k_cache.type.get_shape()[-1] == 16


def test_pipeline_stages_hand_the_hidden_state_over_in_transfers() -> None:
    module = sharded("llama-2-7b", 1, 4, quant="q3p5")
    transfers = [op for op in module.walk() if isinstance(op, TransferOp)]
    assert [(op.source.value.data, op.dest.value.data) for op in transfers] == [(0, 1), (1, 2), (2, 3)]
    memory = stage_memory(module)
    assert len(memory) == 4 and all(m.weight_bytes > 0 for m in memory)
    whole = stage_memory(load_model("llama-2-7b", quant="q3p5").module)[0]
    assert sum(m.weight_bytes for m in memory) == whole.weight_bytes  # pipelining replicates nothing
    assert sum(m.kv_bytes_per_token for m in memory) == whole.kv_bytes_per_token


@pytest.mark.parametrize(
    ("model", "quant", "tp", "pp", "layers"),
    [
        ("tiny", "int4:g=32", 1, 1, ""),
        ("tiny", "int4:g=32", 2, 2, ""),
        ("llama-2-7b", "q3p5", 1, 4, ""),
        ("llama-2-7b", "q3p5", 2, 3, "20,4,8"),
        ("llama-2-7b", "q3p5", 1, 32, ""),
    ],
)
def test_stage_memory_of_a_split_is_that_of_the_split_graph(
    model: str, quant: str, tp: int, pp: int, layers: str
) -> None:
    unsplit = sharded(model, tp, quant=quant)
    expected = stage_memory(sharded(model, tp, pp, quant=quant, layers=layers))
    assert len(expected) == pp
    assert split_stage_memory(unsplit, pp, layers) == expected


def test_extra_layers_go_between_the_first_and_last_stages() -> None:
    assert stage_layers(80, 72) == [1] + [2] * 8 + [1] * 63
    assert stage_layers(10, 3) == [3, 4, 3]
    assert stage_layers(5, 2, "4,1") == [4, 1]
    with pytest.raises(ShardError, match="summing to the 5 layers"):
        stage_layers(5, 2, "3,3")
    with pytest.raises(ShardError, match="every stage needs at least one layer"):
        stage_layers(2, 3)


def test_degrees_that_do_not_divide_the_heads_or_groups_are_refused() -> None:
    module = load_model("llama-2-70b", quant="q3p5").module
    assert valid_tp(module, 16) == [1, 2, 4, 8, 16]  # 64 heads, 8 KV heads (replicated at 16), FFN 28672
    with pytest.raises(ShardError, match="64 query heads do not divide over 3"):
        ShardPass(tp=3).apply(Context(), module)
    seven_b = load_model("llama-2-7b", quant="q3p5").module  # FFN 11008 / 4 = 2752: not whole groups of 128
    assert 4 not in valid_tp(seven_b, 8)
