"""A tiny LLaMA GGUF with real tensor types, random weights and a byte-level BPE tokenizer, written with the
`gguf` package: Q4_1 linear layers, Q8_0 tied embeddings, F32 norm gains (the layout of SmolLM2's file)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as GGML

from q35c.frontend.tokenizer import byte_alphabet

HIDDEN, FFN, HEADS, KV_HEADS, LAYERS = 128, 256, 4, 2, 2
HEAD_DIM = HIDDEN // HEADS
CONTROL = ("<|endoftext|>", "<|im_start|>")
# Merges over GPT-2's byte alphabet ("Ġ" is a space).
MERGES = ("t h", "th e", "Ġ th", "Ġth e", "i n", "a n", "an d", "Ġ and", "e r", "o n", "Ġ o", "Ġo f")


def vocabulary() -> list[str]:
    tokens = [*CONTROL, *byte_alphabet()]
    for merge in MERGES:
        left, right = merge.split(" ")
        tokens.append(left + right)
    return tokens


def write_tiny_llama(path: Path, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    tokens = vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(1024)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in CONTROL else 1 for t in tokens])
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)

    def matrix(name: str, n: int, k: int, ggml: GGML, scale: float) -> None:
        w = (rng.standard_normal((n, k)) * scale).astype(np.float32)
        writer.add_tensor(name, gguf.quants.quantize(w, ggml), raw_dtype=ggml)

    matrix("token_embd.weight", len(tokens), HIDDEN, GGML.Q8_0, 0.1)
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        for name, n, k in (
            ("attn_q", HIDDEN, HIDDEN),
            ("attn_k", KV_HEADS * HEAD_DIM, HIDDEN),
            ("attn_v", KV_HEADS * HEAD_DIM, HIDDEN),
            ("attn_output", HIDDEN, HIDDEN),
        ):
            matrix(f"blk.{i}.{name}.weight", n, k, GGML.Q4_1, k**-0.5)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        for name, n, k in (("ffn_gate", FFN, HIDDEN), ("ffn_up", FFN, HIDDEN), ("ffn_down", HIDDEN, FFN)):
            matrix(f"blk.{i}.{name}.weight", n, k, GGML.Q4_1, k**-0.5)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)
