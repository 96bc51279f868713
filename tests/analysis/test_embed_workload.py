"""The embedding's gather in the workload every target costs: the T rows it looks up, not the whole table (the
pipelines' unpack stage ends with fuse-gather), while the table still counts in full as stored weights."""

from __future__ import annotations

from q35c.analysis.workload import KernelWork, Workload
from q35c.driver.cache import compile_key
from q35c.frontend import load_model
from q35c.targets.target import get_target

MODEL = "examples/hf/tiny.json"  # --quant applies to its embedding table too: 256 x 64
VOCAB, DIM = 256, 64
TARGETS = ("h100-sxm", "m2-max", "host", "groq-lpu")


def workloads(tokens: int, quant: str) -> dict[str, Workload]:
    return compile_key((MODEL, quant, tokens, 0, 1), {t: get_target(t).pipeline() for t in TARGETS})


def entry_kernels(work: Workload) -> list[KernelWork]:
    return [k for k in work.kernels if k.function == "main"]


def test_the_embedding_reads_and_unpacks_the_rows_it_looks_up() -> None:
    graph = load_model(MODEL, quant="q4_0").graph
    (table,) = [w for w in graph.weights if w.shape == (VOCAB, DIM) and "embed" in w.name]
    table_bytes = table.scheme.storage_bytes(VOCAB, DIM)  # 256 rows x 2 blocks x 18 bytes
    stored = sum(w.scheme.storage_bytes(*w.shape) if len(w.shape) == 2 else 2 * w.shape[0] for w in graph.weights)
    one, four = workloads(1, "q4_0"), workloads(4, "q4_0")
    for target in TARGETS:
        embeds = {}
        for tokens, work in ((1, one[target]), (4, four[target])):
            kernels = entry_kernels(work)
            assert not [k.name for k in kernels if k.name == "unpack"], target  # no unpacking of the whole table
            (embed,) = [k for k in kernels if k.name == "embed"]
            # the gather's body extracts one i8 storage element per output element (T x D), the codes' byte and
            # the block's scale bytes of the looked-up row: a row's worth, not the table
            assert embed.weight_bytes == tokens * DIM, target
            assert not embed.weight_alu and embed.token_alu, target  # unpacking T rows: work that grows with T
            assert work.weight_bytes == stored, target  # the table is still stored whole
            embeds[tokens] = embed
        assert embeds[4].weight_bytes < table_bytes / 32, target  # 4 of its 256 rows (64 bytes read for 36 stored)
        assert {k: 4 * v for k, v in embeds[1].token_alu.items()} == dict(embeds[4].token_alu), target
