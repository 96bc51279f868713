"""An accuracy study as text: a table per metric, JSON, Markdown, and the rate-distortion plot.

    print(render_text(study))
    write_report(study, directory)     # accuracy.md, accuracy.json, accuracy.png (error vs bits per weight)

The plot's PNG metadata carries no software version or date, so the same study draws the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from q35c.accuracy.evaluate import Score
from q35c.accuracy.requant import LINEARS
from q35c.accuracy.study import Row, Study
from q35c.util.output import AtomicDirectory

KINDS = (*LINEARS, "embed_tokens", "lm_head")
DPI = 110


def _kinds(study: Study) -> list[str]:
    present = {k for row in study.rows for k in row.errors}
    return [k for k in KINDS if k in present]


def _notes(study: Study) -> list[str]:
    files = ", ".join(f"{s} ({n:,} weights)" for s, n in sorted(study.file_schemes.items(), key=lambda x: -x[1]))
    ref = study.reference.score
    notes = [
        f"reference: the file's own weights, decoded bit-exactly ({files})",
        f"corpus: {study.tokens:,} tokens of public-domain English (data/corpus), {len(ref.chunks)} chunks of "
        f"{study.chunk}, each from an empty cache; reference perplexity {_num(ref.perplexity)} "
        f"(+- {_num(ref.perplexity_stderr)} over chunks)",
        "requantized: every linear layer (q/k/v/o, gate/up/down)"
        + ("; the embeddings too" if study.embeddings else "; embeddings keep the file's values"),
        "+- : standard error over chunks (perplexity: of the change from the reference, paired by chunk)",
    ]
    exact = [row.label for row in study.rows if row.exact]
    if exact:
        notes.append(
            f"{', '.join(exact)}: on the file's grid, {'reproduces' if len(exact) == 1 else 'reproduce'} its "
            "weights exactly (error 0, scores = reference)"
        )
    if any(row.slots for row in study.rows):
        notes.append(
            "+slots: q3p5 with input channels permuted so the most important (activation-weighted, calibrated "
            "on the corpus) take the 4-bit slots; the permutation alone leaves the logits unchanged"
        )
    for row in study.rows:
        base = next((b for b in study.rows if b.spec == row.spec and not b.slots), None)
        if row.slots and base is not None:
            gain = slot_gain(base, row)
            notes.append(
                f"slot assignment, {row.spec}: KL {base.score.kl:.4f} -> {row.score.kl:.4f}, paired change "
                f"{gain[0]:+.4f} +- {gain[1]:.4f} over {len(row.score.chunks)} chunks; perplexity "
                f"{_num(base.score.perplexity)} -> {_num(row.score.perplexity)}"
            )
    if any(row.variant.simulated for row in study.rows):
        notes.append("int3: MLX-style affine 3-bit (min-max, float16 scale and bias), simulated: no q35c layout")
    return notes


def slot_gain(base: Row, slotted: Row) -> tuple[float, float]:
    """The mean per-chunk change of KL from `base` to `slotted` (the same chunks) and its standard error."""
    pairs = zip(base.score.chunks, slotted.score.chunks, strict=True)
    diffs = np.array([s.kl / s.count - b.kl / b.count for b, s in pairs])
    stderr = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    return float(diffs.mean()), stderr


def _num(x: float) -> str:
    """Three decimals, or three significant digits in exponent form for the huge perplexities of random models."""
    return f"{x:.3f}" if abs(x) < 1e6 else f"{x:.3e}"


def _cells(study: Study, row: Row) -> list[str]:
    s = row.score
    ref = study.reference.score
    dppl = s.paired_stderr(ref) * s.perplexity
    cells = [
        row.label,
        f"{row.bits_per_weight:.3f}",
        f"{_num(s.perplexity)} +- {_num(dppl)}",
        f"{100 * (s.perplexity / ref.perplexity - 1):+.2f}%",
        f"{s.kl:.4f} +- {s.kl_stderr:.4f}",
        f"{100 * s.top1:.2f}% +- {100 * s.top1_stderr:.2f}",
    ]
    return cells + [f"{row.errors[k]:.4f}" if k in row.errors else "-" for k in _kinds(study)]


def _header(study: Study) -> list[str]:
    return ["scheme", "bits/w", "perplexity", "vs ref", "KL", "top-1", *(f"err {k}" for k in _kinds(study))]


def _aligned(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return "\n".join(line(r) for r in rows)


def render_text(study: Study) -> str:
    """The study as an aligned table with its notes (err: relative RMS weight error per tensor kind)."""
    ref = study.reference.score
    table = [_header(study), ["reference", "", _num(ref.perplexity), "", "0", "100%", *("" for _ in _kinds(study))]]
    table += [_cells(study, row) for row in study.rows]
    lines = [f"{study.model_name}: accuracy per scheme", "", _aligned(table), ""]
    return "\n".join(lines + [f"  {n}" for n in _notes(study)]) + "\n"


def render_markdown(study: Study) -> str:
    header = _header(study)
    lines = [f"# {study.model_name}: accuracy per scheme", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(_cells(study, row)) + " |" for row in study.rows]
    lines += ["", *(f"- {n}" for n in _notes(study)), "", "![error vs bits per weight](accuracy.png)", ""]
    return "\n".join(lines)


def _chunks_json(score: Score) -> dict[str, list[float]]:
    """Per-chunk means (for paired comparisons over the same chunks)."""
    return {
        "nll": [c.nll / c.count for c in score.chunks],
        "kl": [c.kl / c.count for c in score.chunks],
        "top1": [c.agree / c.count for c in score.chunks],
    }


def to_json(study: Study) -> dict[str, Any]:
    ref = study.reference.score

    def score(row: Row) -> dict[str, Any]:
        s = row.score
        return {
            "scheme": row.label,
            "spec": row.spec,
            "slots": row.slots,
            "simulated": row.variant.simulated,
            "bits_per_weight": row.bits_per_weight,
            "exact": row.exact,
            "perplexity": s.perplexity,
            "perplexity_change_stderr": s.paired_stderr(ref) * s.perplexity,
            "kl": s.kl,
            "kl_stderr": s.kl_stderr,
            "top1": s.top1,
            "top1_stderr": s.top1_stderr,
            "weight_relative_rms": row.errors,
            "chunks": _chunks_json(s),
        }

    return {
        "model": study.model_name,
        "file_schemes": study.file_schemes,
        "tokens": study.tokens,
        "chunk": study.chunk,
        "embeddings_requantized": study.embeddings,
        "reference": {
            "perplexity": ref.perplexity,
            "perplexity_stderr": ref.perplexity_stderr,
            "chunks": _chunks_json(ref),
        },
        "schemes": [score(row) for row in study.rows],
        "notes": _notes(study),
    }


def draw_plot(study: Study, path: Path) -> None:
    """The rate-distortion plot of a study (see `plot_json`)."""
    plot_json(to_json(study), path)


def plot_json(data: dict[str, Any], path: Path) -> None:
    """Rate-distortion from a study's JSON (`to_json`, or a recorded file): mean KL divergence (log axis, standard
    error bars) against bits per weight, one point per scheme, named in a legend; schemes whose KL is 0 (to
    1e-9: they reproduce the reference) are listed in the title, not drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    exact: list[str] = []
    for row in data["schemes"]:
        name = str(row["scheme"]).replace(":container=dense", "")
        if row["kl"] <= 1e-9:
            exact.append(name)
            continue
        marker = "s" if row["slots"] else ("^" if row["simulated"] else "o")
        ax.errorbar(row["bits_per_weight"], row["kl"], yerr=row["kl_stderr"], fmt=marker, capsize=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("bits per weight (metadata included)")
    ax.set_ylabel("mean KL(reference || scheme), nats")
    title = f"{data['model']}: next-token KL vs bits per weight ({data['tokens']:,} tokens)"
    ax.set_title(title + (f"\nKL 0 (the reference's weights): {', '.join(exact)}" if exact else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if len(exact) < len(data["schemes"]):
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


FILES = ("accuracy.md", "accuracy.json", "accuracy.png")


def write_files(study: Study, directory: Path) -> list[Path]:
    """accuracy.md, accuracy.json and accuracy.png into an existing `directory` (a report being written)."""
    (directory / FILES[0]).write_text(render_markdown(study), encoding="utf-8")
    (directory / FILES[1]).write_text(json.dumps(to_json(study), indent=2) + "\n", encoding="utf-8")
    draw_plot(study, directory / FILES[2])
    return [directory / n for n in FILES]


def render_section(study: Study) -> str:
    """The study as a section of a build's report.md (`q35c build ... -o DIR --accuracy`): its table and notes
    one heading level down, the plot beside it."""
    body = render_markdown(study).split("\n", 1)[1]
    return f"## Accuracy: {study.model_name}, requantized, against its own weights\n{body}"


def write_report(study: Study, directory: Path) -> list[Path]:
    """accuracy.md, accuracy.json and accuracy.png in `directory`, written whole or not at all."""
    with AtomicDirectory(directory) as out:
        write_files(study, out.tmp)
    return [directory / n for n in FILES]
