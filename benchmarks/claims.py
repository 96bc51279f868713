"""Published claims about 3.5-bit inference, recomputed with q35c: writes docs/claims.md.

    python benchmarks/claims.py            # write docs/claims.md
    python benchmarks/claims.py --check    # exit 1 when docs/claims.md is not what this script writes now
    python benchmarks/claims.py --stdout   # print instead of writing
    python benchmarks/claims.py --measure-accuracy   # first rerun the accuracy study (benchmarks/results/*.json)

Every number on the page is computed here by q35c's library: weight bytes from the storage types of each
model's q35 IR (`q35c info`'s summary), predictions from `q35c.predict.predictor.compare` (the cost model run on the IR
each target's pipeline produces), hardware figures from the target specs (`HardwareSpec.source_of`). The
claims and the inputs they were computed from are quoted from the documents named in `DOCUMENTS`; nothing
else is typed in. The `host` target is left out: it is measured on the machine that runs the script, and this
page must read the same everywhere.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q35c.frontend import load_model
from q35c.frontend.summary import Summary, summarize
from q35c.predict.predictor import Report, TargetResult, compare
from q35c.targets.spec import load_spec, spec_names

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "claims.md"
GB = 1e9
EFFICIENCY = 0.7  # the documents' "70% hardware efficiency"
NOMINAL = {"LLaMA-70B": 70e9, "LLaMA-405B": 405e9}
BITS = (16, 8, 4, 3.5)
MODELS = ("llama-2-70b", "llama-3.1-405b")
FORMATS = ("fp16", "int8", "q8_0", "q4_0", "int4:g=128", "q3p5:container=byte", "q3p5")
SCHEME_NAMES = {"q3p5": "q3p5 (dense, g=128)", "q3p5:container=byte": "q3p5 (byte, g=128)"}
# The measured section: `q35c accuracy` on a real model, recorded by `--measure-accuracy` (minutes of numpy).
ACCURACY_JSON = Path(__file__).resolve().parent / "results" / "smollm2-135m-accuracy.json"
ACCURACY_PLOT = OUTPUT.parent / "images" / "smollm2-135m-accuracy.png"
ACCURACY_MODEL = "smollm2-135m"
ACCURACY_SCHEMES = ("q3p5:g=64", "int3:g=64", "int3:g=32", "int4:g=64", "q4_0", "int8", "q4_1", "int4:g=32")

# The documents the claims are quoted from (published notes around a "3.5-bit dynamic asymmetric quantization"
# scheme for LLaMA-70B on a Groq LPU).
DOCUMENTS = {
    "data": "Paper 1 Benchmark Data (a benchmark README)",
    "status": "Paper 1 Status: NeurIPS 2026 Submission",
    "report": "3.5-bit vs INT4 Benchmark Report",
    "plan": "Paper 1: Next Steps - Detailed Action Plan",
}


@dataclass(frozen=True)
class Claimed:
    """A row of the documents' performance table (LLaMA-70B, 3.5-bit) and the inputs quoted for it."""

    hardware: str
    target: str  # the q35c target it names
    bandwidth_gb_s: float  # "Hardware Specifications" of the benchmark README
    power_w: float  # the table's Power (W) column
    tok_s: float
    ms_per_token: float
    energy_mj: float


# From "Paper 1 Benchmark Data": Table 2 (Throughput, Latency, Power, Energy) and its "Hardware Specifications".
CLAIMED = (
    Claimed("Groq LPU", "groq-lpu", 4800, 300, 110, 9.1, 2734),
    Claimed("H100", "h100-sxm", 3350, 700, 77, 13.1, 9142),
    Claimed("MI210", "mi210", 1638, 300, 37, 26.7, 8013),
    Claimed("M2 Max", "m2-max", 400, 38, 9, 109.4, 4156),
)
NOMINAL_GB_3P5 = NOMINAL["LLaMA-70B"] * 3.5 / 8 / GB  # 30.6, the documents' "LLaMA-70B @ 3.5-bit"


def gb(n: float, digits: int = 1) -> str:
    return f"{n / GB:,.{digits}f}"


def num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    if x != 0 and abs(x) < 10 ** (-digits):
        return f"{x:.2g}"
    return f"{x:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, text: Sequence[int] = ()) -> list[str]:
    """A Markdown table: the first `left` columns and those in `text` left-aligned, the others right-aligned."""
    align = ["---" if i < left or i in text else "---:" for i in range(len(headers))]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


@dataclass(frozen=True)
class Facts:
    """What q35c computes for the page."""

    summaries: dict[tuple[str, str], Summary]
    report: Report
    int8_groq: TargetResult
    targets: tuple[str, ...]

    def summary(self, model: str, scheme: str) -> Summary:
        return self.summaries[(model, scheme)]

    def result(self, target: str) -> TargetResult:
        return next(r for r in self.report.targets if r.target == target)


def weight_summaries() -> dict[tuple[str, str], Summary]:
    """`q35c info MODEL --quant SCHEME` for every model and format of the weights tables."""
    return {(m, f): summarize(load_model(m, quant=f)) for m in MODELS for f in FORMATS}


def gather() -> Facts:
    targets = tuple(name for name in spec_names() if name != "host")
    report = compare("llama-2-70b", "q3p5", targets)
    int8 = compare("llama-2-70b", "int8", ["groq-lpu"]).targets[0]
    return Facts(weight_summaries(), report, int8, targets)


# -- sections ------------------------------------------------------------------------------------------------


def weights_section(summaries: dict[tuple[str, str], Summary]) -> list[str]:
    """Weights only: the ideal figures at nominal sizes, the exact counts, and the real formats with metadata."""
    lines = ["## Weights only", ""]
    lines.append(
        "Ideal sizes: parameters x bits / 8, no scales or offsets, at the nominal 70B and 405B parameters the "
        "documents use (GB = 10^9 bytes):"
    )
    lines.append("")
    rows = [[name, *(gb(n * bits / 8) for bits in BITS)] for name, n in NOMINAL.items()]
    lines += table(["model", *(f"{b:g} bits" for b in BITS)], rows)
    lines.append("")
    exact = {m: summaries[(m, "fp16")].params for m in MODELS}
    lines.append(
        "The bundled examples have exact parameter counts: "
        + ", ".join(f"{m} has {exact[m]:,}" for m in MODELS)
        + " (`q35c info MODEL`). At those counts, still ideal:"
    )
    lines.append("")
    rows = [[m, f"{exact[m]:,}", *(gb(exact[m] * bits / 8) for bits in BITS)] for m in MODELS]
    lines += table(["model", "parameters", *(f"{b:g} bits" for b in BITS)], rows)
    lines.append("")
    lines.append(
        "Real formats store more than the codes: a scale (and an offset) per group of weights, or llama.cpp's "
        "per-block scale; norm gains stay fp16. From the storage types of each model's q35 IR "
        "(`q35c info MODEL --quant SCHEME`), GB and bits per weight, metadata included:"
    )
    lines.append("")
    headers = ["format", *(f"{m} GB" for m in MODELS), *(f"{m} bits/weight" for m in MODELS)]
    rows = []
    for f in FORMATS:
        s = [summaries[(m, f)] for m in MODELS]
        rows.append(
            [SCHEME_NAMES.get(f, f), *(gb(x.weight_bytes, 2) for x in s), *(f"{x.bits_per_weight:.3f}" for x in s)]
        )
    lines += table(headers, rows)
    lines.append("")
    return lines


def _quote(text: str, document: str) -> str:
    return f'"{text}" ({DOCUMENTS[document]})'


def headline(facts: Facts) -> list[str]:
    q3p5 = facts.summary("llama-2-70b", "q3p5")
    int4 = facts.summary("llama-2-70b", "int4:g=128")
    groq = facts.result("groq-lpu")
    sram = load_spec("groq-lpu").main_memory
    implied_bits = 19 * GB * 8 / NOMINAL["LLaMA-70B"]
    rows = [
        [
            _quote("70B in 19GB", "plan"),
            f"19 GB x 8 / 70e9 = {implied_bits:.2f} bits per weight",
            f"70e9 x 3.5 / 8 = {NOMINAL_GB_3P5:.1f} GB",
            f"llama-2-70b q3p5: {gb(q3p5.weight_bytes, 2)} GB ({q3p5.bits_per_weight:.2f} bits/weight with scales "
            "and offsets)",
        ],
        [
            _quote("46% smaller than INT4", "plan"),
            f"1 - 19 / 35 = {100 * (1 - 19 / 35):.1f}%",
            f"1 - 3.5 / 4 = {100 * (1 - 3.5 / 4):.1f}%",
            f"{gb(q3p5.weight_bytes, 2)} vs {gb(int4.weight_bytes, 2)} GB (int4:g=128): "
            f"{100 * (1 - q3p5.weight_bytes / int4.weight_bytes):.1f}% smaller",
        ],
        [
            _quote("4800 GB/s memory bandwidth", "data"),
            f"4800 GB/s x {EFFICIENCY} / {NOMINAL_GB_3P5:.1f} GB = {4800 * EFFICIENCY / NOMINAL_GB_3P5:.0f} tok/s",
            f"a GroqChip has no DRAM or HBM: {sram.capacity_bytes / 1e6:.1f} MB of SRAM per chip at "
            f"{sram.bandwidth_bytes_per_s / 1e12:.1f} TB/s",
            f"llama-2-70b q3p5 needs {groq.devices} chips",
        ],
        [
            _quote("4188 tok/s", "report"),
            "19 GB / 80 GB/s = 237.5 ms per token, written as ~238 us; 1 / 238 us = 4,202 tok/s",
            "no chip holds 19 GB, and 237.5 ms per token is 4.2 tok/s",
            f"{num(groq.decode_tok_s)} tok/s on {groq.devices} chips",
        ],
        [
            _quote("Groq LPU: 110 tok/s @ 2.7 J/token", "status"),
            f"4800 GB/s x {EFFICIENCY} / {NOMINAL_GB_3P5:.1f} GB = {4800 * EFFICIENCY / NOMINAL_GB_3P5:.1f} "
            f"tok/s; 300 W x 9.1 ms = {300 * 9.1e-3:.2f} J",
            "a bandwidth the chip does not have, for a model one chip cannot hold",
            f"{num(groq.decode_tok_s)} tok/s, {num(groq.joules_per_token, 0)} J/token on {groq.devices} chips",
        ],
    ]
    lines = ["## Headline", ""]
    lines += table(["claim (document)", "the arithmetic it implies", "what holds", "q35c"], rows, left=4)
    lines.append("")
    return lines


def claims_section(facts: Facts) -> list[str]:
    q3p5 = facts.summary("llama-2-70b", "q3p5")
    int4 = facts.summary("llama-2-70b", "int4:g=128")
    spec = load_spec("groq-lpu")
    sram = spec.main_memory
    groq = facts.result("groq-lpu")
    int8 = facts.int8_groq
    fp16 = facts.summary("llama-2-70b", "fp16")
    lines = ["## The claims, one by one", ""]

    lines += ["### 70B at 3.5 bits is 19 GB", ""]
    lines.append(
        f"Quoted: {_quote('Memory footprint: 19GB (calculated: 70B * 3.5 / 8)', 'plan')}; "
        f"{_quote('3.5-bit reduces 70B model from 35 GB → 19 GB (46% reduction)', 'report')}."
    )
    lines.append("")
    lines.append(
        f"70B x 3.5 / 8 is {NOMINAL_GB_3P5:.1f} GB, not 19 GB, as the same documents' own memory table says "
        f"({_quote('LLaMA-70B @ 3.5-bit: 30.6 GB', 'data')}). 19 GB would be "
        f"{19 * GB * 8 / NOMINAL['LLaMA-70B']:.2f} bits per weight. With the real format's scales and offsets "
        f"(fp16, one each per 128 weights) llama-2-70b ({q3p5.params:,} parameters) takes "
        f"{gb(q3p5.weight_bytes, 2)} GB at {q3p5.bits_per_weight:.3f} bits per weight."
    )
    lines.append("")

    lines += ["### 46% smaller than INT4", ""]
    lines.append(f"Quoted: {_quote('46% smaller than INT4, <2% accuracy loss', 'plan')}.")
    lines.append("")
    lines.append(
        f"46% is 1 - 19/35, the 19 GB above against INT4's 35 GB. Per weight, 3.5 bits against 4 is "
        f"{100 * (1 - 3.5 / 4):.1f}% smaller, as another of the documents notes "
        f"({_quote('Reduction vs INT4: 12.5% (not 46% - need to verify calculation)', 'data')}). "
        f"With metadata at groups of 128 (q3p5 dense 3.75 bits, int4 4.25): {100 * (1 - 3.75 / 4.25):.1f}%; "
        f"for llama-2-70b, {gb(q3p5.weight_bytes, 2)} GB against {gb(int4.weight_bytes, 2)} GB, "
        f"{100 * (1 - q3p5.weight_bytes / int4.weight_bytes):.1f}% smaller."
    )
    lines.append("")

    lines += ["### 4800 GB/s Groq memory bandwidth", ""]
    lines.append(
        f"Quoted: {_quote('Groq LPU achieves highest throughput due to 4800 GB/s memory bandwidth', 'data')}; "
        f"{_quote('Groq LPU: 750 TFLOPS, 4800 GB/s memory bandwidth (Groq datasheets)', 'data')}."
    )
    lines.append("")
    cap = f"memory.{sram.name}.capacity_bytes"
    bw = f"memory.{sram.name}.bandwidth_bytes_per_s"
    lines.append(
        f"A GroqChip has no DRAM or HBM at all: its only memory is on-chip SRAM, {sram.capacity_bytes:,.0f} bytes "
        f"({sram.capacity_bytes / 1e6:.1f} MB) per chip (`{cap}`: {spec.source_of(cap)}). Its bandwidth is tens of "
        f"TB/s per chip, not 4.8: `{bw}` = {sram.bandwidth_bytes_per_s / 1e12:.2f} TB/s ({spec.source_of(bw)}). "
        f"A model has to be spread over enough chips to hold it: llama-2-70b needs "
        f"{fp16.weight_bytes / sram.capacity_bytes:,.0f} chips' SRAM in fp16 and "
        f"{q3p5.weight_bytes / sram.capacity_bytes:,.0f} in q3p5 for its weights alone."
    )
    lines.append("")

    lines += ["### 4188 tok/s on a Groq LPU", ""]
    expected = _quote("Expected 4188 tok/s on Groq LPU (28% faster than INT4's 3124 tok/s)", "report")
    lines.append(
        f"Quoted: {expected}, with "
        f"{_quote('Memory bandwidth: ~80 GB/s per chip', 'report')} and "
        f"{_quote('Weight transfer time per token: ~238 μs', 'report')} for the 19 GB model."
    )
    lines.append("")
    lines.append(
        "19 GB at 80 GB/s is 19 / 80 = 0.2375 s = 237.5 ms per token, not ~238 us; the rate 1 / 238 us = "
        "4,202 tok/s is the claim, 1000 times too fast on its own inputs (237.5 ms is 4.2 tok/s). Reading 19 GB "
        f"per token 4188 times a second would take {4188 * 19 / 1000:.1f} TB/s; with the real "
        f"{gb(q3p5.weight_bytes, 2)} GB, {4188 * q3p5.weight_bytes / 1e12:.1f} TB/s, and no single chip holds the "
        f"weights. q35c: {num(groq.decode_tok_s)} tok/s on {groq.devices} chips (below)."
    )
    lines.append("")

    lines += ["### 110 tok/s for 70B on a Groq LPU", ""]
    lines.append(
        f"Quoted: {_quote('Groq LPU: 110 tok/s @ 2.7 J/token (highest throughput)', 'status')}, "
        f"{_quote('Assumes 70% hardware efficiency', 'status')}; Table 2 of {DOCUMENTS['data']}: 110 tok/s, "
        "9.1 ms/token, 300 W, 2734 mJ/token."
    )
    lines.append("")
    lines.append(
        f"The figure is 4800 GB/s x {EFFICIENCY} / {NOMINAL_GB_3P5:.1f} GB = "
        f"{4800 * EFFICIENCY / NOMINAL_GB_3P5:.1f} tok/s, and the energy 300 W x 9.1 ms = {300 * 9.1e-3:.2f} J: "
        "a memory-bound formula applied to a bandwidth a GroqChip does not have, for a model one chip cannot "
        f"hold. q35c compiles llama-2-70b for the chip (weights resident in SRAM over {groq.devices} chips in a "
        "pipeline, sub-8-bit weights unpacked to int8 on the vector unit every token) and predicts "
        f"{num(groq.decode_tok_s)} tok/s, {num(groq.joules_per_token, 0)} J/token ({groq.bottleneck}). In int8 "
        f"the weights take more chips but need no unpacking: {int8.devices} chips, {num(int8.decode_tok_s)} "
        f"tok/s, {num(int8.joules_per_token, 0)} J/token ({int8.bottleneck})."
    )
    lines.append("")
    return lines


def naive_section(facts: Facts) -> list[str]:
    q3p5 = facts.summary("llama-2-70b", "q3p5")
    lines = ["## The naive estimate beside q35c's model", ""]
    lines.append(
        f"The documents' performance table is one formula: tok/s = bandwidth x {EFFICIENCY} / "
        f"{NOMINAL_GB_3P5:.1f} GB, and J/token = power x ms/token. With their own inputs it reproduces every row:"
    )
    lines.append("")
    rows = []
    for c in CLAIMED:
        tok_s = c.bandwidth_gb_s * EFFICIENCY / NOMINAL_GB_3P5
        rows.append([c.hardware, f"{c.bandwidth_gb_s:,.0f}", f"{c.power_w:,.0f}", f"{tok_s:.1f}", f"{c.tok_s:g}",
                     f"{c.power_w / tok_s:.2f}", f"{c.energy_mj / 1e3:.2f}"])  # fmt: skip
    lines += table(["hardware", "quoted GB/s", "quoted W", "formula tok/s", "claimed tok/s", "formula J/token",
                    "claimed J/token"], rows)  # fmt: skip
    lines.append("")
    lines.append(
        f"The same formula on q35c's target specs (main-memory bandwidth, TDP) and the real q3p5 weights "
        f"({gb(q3p5.weight_bytes, 2)} GB), beside what q35c's cost model predicts for llama-2-70b in q3p5 "
        f"(batch 1, a {facts.report.scenario.prompt}-token prompt, {facts.report.scenario.gen} generated tokens; "
        "every target, one row each):"
    )
    lines.append("")
    rows = []
    for name in facts.targets:
        spec = load_spec(name)
        main = spec.main_memory
        bw = main.bandwidth_bytes_per_s or 0.0
        naive = bw * EFFICIENCY / q3p5.weight_bytes
        r = facts.result(name)
        rows.append([
            name,
            f"{main.name} {bw / 1e9:,.0f}",
            f"{spec.power.tdp.value:,.0f}",
            f"{naive:,.1f}",
            f"{spec.power.tdp.value / naive:.2f}",
            str(r.devices) if r.devices else "-",
            num(r.decode_tok_s),
            num(r.joules_per_token, 2),
            r.bottleneck,
        ])  # fmt: skip
    headers = ["target", "spec GB/s", "TDP W", "naive tok/s", "naive J/token", "q35c devices", "q35c tok/s",
               "q35c J/token", "q35c bottleneck"]  # fmt: skip
    lines += table(headers, rows, text=(8,))
    lines.append("")
    lines.append(
        "Where they part: the naive formula assumes one device holds the model and reads only weights at a fixed "
        "70% of peak; q35c counts the devices the model needs, the KV cache, the per-kernel overheads and the "
        "ALU work of unpacking sub-byte weights, from the compiled IR, with efficiencies fitted to published "
        "measurements (docs/cost-model.md), and energy from per-action energies plus static power, never above "
        "TDP."
    )
    lines.append("")
    return lines


def predictions_section(facts: Facts) -> list[str]:
    s = facts.report.scenario
    lines = ["## What q35c predicts for llama-2-70b", ""]
    lines.append(
        f"`q35c build llama-2-70b --quant q3p5 --target {','.join(facts.targets)}` (batch {s.batch}, prompt "
        f"{s.prompt}, gen {s.gen}), and int8 on the Groq LPU for the trade-off between chips and unpacking:"
    )
    lines.append("")
    rows = []
    for r in [*facts.report.targets, facts.int8_groq]:
        scheme = "int8" if r is facts.int8_groq else "q3p5"
        rows.append([r.target, scheme, str(r.devices) if r.devices else "-", num(r.decode_tok_s),
                     num(r.ms_per_token, 2), num(r.prefill_tok_s), num(r.joules_per_token, 2),
                     num(r.avg_power_w), r.bottleneck])  # fmt: skip
    headers = ["target", "scheme", "devices", "decode tok/s", "ms/token", "prefill tok/s", "J/token", "W/device",
               "bottleneck"]  # fmt: skip
    lines += table(headers, rows, left=2, text=(8,))
    lines.append("")
    return lines


def recorded_accuracy() -> dict[str, Any] | None:
    """The recorded accuracy JSON, or None before it was measured."""
    import json

    return json.loads(ACCURACY_JSON.read_text(encoding="utf-8")) if ACCURACY_JSON.is_file() else None


def measure_accuracy() -> None:
    """Run `q35c accuracy smollm2-135m --quant ACCURACY_SCHEMES` and record its JSON in ACCURACY_JSON."""
    import json

    from q35c.accuracy.report import plot_json, to_json
    from q35c.accuracy.study import run_study
    from q35c.frontend import resolve_model

    study = run_study(resolve_model(ACCURACY_MODEL), list(ACCURACY_SCHEMES), model_name=ACCURACY_MODEL, slots=True)
    # `q35c accuracy` with the defaults (chunks of 256, the whole corpus, q3p5 with and without slot assignment)
    data = to_json(study)
    ACCURACY_JSON.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plot_json(data, ACCURACY_PLOT)
    print(f"wrote {ACCURACY_JSON} and {ACCURACY_PLOT}")


def _mean_error(row: dict[str, Any]) -> float:
    errors = row["weight_relative_rms"]
    return sum(errors.values()) / len(errors)


def _paired_kl(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """The mean per-chunk KL change from scheme a to scheme b (the same chunks) and its standard error."""
    diffs = [y - x for x, y in zip(a["chunks"]["kl"], b["chunks"]["kl"], strict=True)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) if len(diffs) > 1 else 0.0
    return mean, (var / len(diffs)) ** 0.5


def accuracy_section(data: dict[str, Any] | None) -> list[str]:
    """Measured: what each scheme costs in accuracy on SmolLM2-135M (the recorded `q35c accuracy` JSON)."""
    lines = ["## Measured: accuracy on a real model", ""]
    command = f"q35c accuracy {ACCURACY_MODEL} --quant {','.join(ACCURACY_SCHEMES)}"
    if data is None:
        return [*lines, f"Not measured yet: `python benchmarks/claims.py --measure-accuracy` runs `{command}`.", ""]
    ref = data["reference"]
    rows = {r["scheme"].replace(":container=dense", ""): r for r in data["schemes"]}
    lines.append(
        f"`{command}` (recorded in benchmarks/results/{ACCURACY_JSON.name} by `python benchmarks/claims.py "
        f"--measure-accuracy`): SmolLM2-135M-Instruct (30 layers, hidden 576), every linear layer requantized "
        f"from the file's own weights (Q4_1; embeddings kept), scored on {data['tokens']:,} tokens of "
        f"public-domain English in {data['tokens'] // data['chunk']} chunks of {data['chunk']} by q35c's numpy "
        f"forward pass. Reference perplexity {ref['perplexity']:.3f}. KL: mean KL divergence of the next-token "
        "distribution from the reference's, nats; top-1: share of positions with the reference's most likely "
        "token; error: relative RMS weight error, mean over the seven linear kinds; +- is the standard error "
        "over chunks (perplexity: of the change, paired by chunk). int3 is MLX-style affine 3-bit (simulated); "
        "+slots gives q3p5's 4-bit slots to the most important input channels (a function-preserving "
        "permutation, calibrated on the same text)."
    )
    lines.append("")
    order = sorted(rows.values(), key=lambda r: (r["bits_per_weight"], -r["kl"]))
    table_rows = [
        [
            r["scheme"].replace(":container=dense", ""),
            f"{r['bits_per_weight']:.3f}",
            f"{r['perplexity']:.3f} +- {r['perplexity_change_stderr']:.3f}",
            f"{100 * (r['perplexity'] / ref['perplexity'] - 1):+.1f}%",
            f"{max(0.0, r['kl']):.4f}",
            f"{100 * r['top1']:.1f}%",
            f"{_mean_error(r):.4f}",
        ]
        for r in order
    ]
    lines += table(["scheme", "bits/weight", "perplexity", "change", "KL", "top-1", "error"], table_rows)
    lines.append("")
    lines += [f"![KL vs bits per weight, SmolLM2-135M](images/{ACCURACY_PLOT.name})", ""]
    q3, slots = rows.get("q3p5:g=64"), rows.get("q3p5:g=64 +slots")
    int3, int3_eq, int4, q40 = rows.get("int3:g=64"), rows.get("int3:g=32"), rows.get("int4:g=64"), rows.get("q4_0")
    if q3 is None or int3 is None or int4 is None or int3_eq is None or q40 is None or slots is None:
        return lines
    change = 100 * (q3["perplexity"] / ref["perplexity"] - 1)
    gain, gain_se = _paired_kl(q3, slots)
    versus, versus_se = _paired_kl(int3_eq, q3)
    slotted, slotted_se = _paired_kl(int3_eq, slots)

    def verdict(change: float, stderr: float) -> str:
        if abs(change) <= 2 * stderr:
            return "the same within noise"
        return "lower" if change < 0 else "higher"

    def between(x: float, lo: float, hi: float) -> str:
        return "between" if min(lo, hi) <= x <= max(lo, hi) else "not between"

    lines.append(
        f"Same group size (64): q3p5's KL {q3['kl']:.4f} is {between(q3['kl'], int3['kl'], int4['kl'])} plain "
        f"3-bit's {int3['kl']:.4f} and plain 4-bit's {int4['kl']:.4f}, as its bits are (3.5 codes per weight "
        f"between 3 and 4). At equal bits per weight ({q3['bits_per_weight']:.2f}), int3 with twice the groups "
        f"has KL {int3_eq['kl']:.4f}; q3p5's is {verdict(versus, versus_se)} (paired change {versus:+.4f} +- "
        f"{versus_se:.4f} over chunks), and with the slot assignment {verdict(slotted, slotted_se)} "
        f"({slotted:+.4f} +- {slotted_se:.4f}). q4_0 ({q40['bits_per_weight']:.2f} bits, symmetric) has KL "
        f"{q40['kl']:.4f}."
    )
    lines.append("")
    lines.append(
        f'"<2% accuracy loss": q3p5 g=64 changes this model\'s perplexity by {change:+.1f}% '
        f"({'within' if abs(change) < 2 else 'far outside'} 2%), and with the slot assignment by "
        f"{100 * (slots['perplexity'] / ref['perplexity'] - 1):+.1f}% (KL {q3['kl']:.4f} -> {slots['kl']:.4f}, "
        f"a paired change of {gain:+.4f} +- {gain_se:.4f} over the {len(q3['chunks']['kl'])} chunks). "
        '"3.5-bit error '
        f"below INT4\": q3p5's weight error {_mean_error(q3):.4f} is "
        f"{'below' if _mean_error(q3) < _mean_error(int4) else 'above'} int4's {_mean_error(int4):.4f} at the same "
        "group size. These are one small model's numbers: a 135M-parameter model is known to be more sensitive "
        "to weight noise than a 70B one, so its losses say more about the order of the schemes than about a "
        "large model's absolute loss."
    )
    lines.append("")
    return lines


def render(facts: Facts) -> str:
    intro = [
        "# Published claims about 3.5-bit inference, recomputed",
        "",
        "Generated by `python benchmarks/claims.py`; do not edit by hand. Claims are quoted from published notes "
        f"on a 3.5-bit scheme for LLaMA-70B ({'; '.join(DOCUMENTS.values())}). Every other number is computed by "
        "q35c: weight bytes from the storage types of each model's q35 IR, predictions from its cost model on "
        "the IR each target's pipeline produces, hardware figures from the target specs with their sources. "
        "GB = 10^9 bytes. The host target is left out (it is measured on the machine that runs the script).",
        "",
    ]
    sections = [headline(facts), weights_section(facts.summaries), claims_section(facts), naive_section(facts),
                predictions_section(facts), accuracy_section(recorded_accuracy())]  # fmt: skip
    return "\n".join(intro + [line for section in sections for line in section]).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/claims.md is out of date")
    parser.add_argument("--stdout", action="store_true", help="print the page instead of writing it")
    parser.add_argument(
        "--measure-accuracy", action="store_true", help="first rerun the accuracy study (minutes; needs smollm2-135m)"
    )
    args = parser.parse_args(argv)
    if args.measure_accuracy:
        measure_accuracy()
    text = render(gather())
    if args.stdout:
        print(text, end="")
    elif args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is out of date: run python benchmarks/claims.py", file=sys.stderr)
            return 1
    else:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
