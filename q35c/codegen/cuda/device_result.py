"""What a device run asks for and what it found (`q35c.codegen.cuda.device`): per kernel measured and predicted
time, per phase tok/s and the numerics against the numpy reference, as printed lines and as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.codegen.cuda.libcuda import DeviceInfo
from q35c.codegen.timing import HEADER, PhaseTiming, row
from q35c.verify.model import F16_ULP_RELATIVE


@dataclass(frozen=True)
class DeviceRequest:
    model: str
    target: str
    quant: str | None
    prompt: int = 16
    gen: int = 16
    batch: int = 1
    seed: int = 0
    prefill_runs: int = 3
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])
    phases: tuple[str, ...] = ("decode", "prefill")
    check: bool = True  # compare with the numpy reference (where the graph is small enough)
    timed_steps: int | None = None  # timed decode steps (default: one per generated token, `gen`)


@dataclass(frozen=True)
class KernelTiming:
    """One kernel of a phase: launches per step, measured and predicted seconds per launch."""

    name: str
    kind: str
    function: str
    calls: int
    measured_s: float
    predicted_s: float | None

    @property
    def ratio(self) -> float | None:
        """measured / predicted time (above 1: slower than predicted)."""
        return None if not self.predicted_s else self.measured_s / self.predicted_s

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.name,
            "kind": self.kind,
            "function": self.function,
            "calls": self.calls,
            "measured_us": self.measured_s * 1e6,
            "predicted_us": None if self.predicted_s is None else self.predicted_s * 1e6,
            "measured_over_predicted": self.ratio,
        }


@dataclass(frozen=True)
class Numerics:
    """The device's first result against the numpy reference."""

    shape: tuple[int, ...]
    max_error: float
    tolerance: float
    depth: int
    scale: float
    argmax_equal: int
    ties: int
    rows: int

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance and self.argmax_equal + self.ties == self.rows

    def line(self) -> str:
        shape = "x".join(str(d) for d in self.shape)
        verdict = "match" if self.ok else "MISMATCH"
        ties = f", {self.ties} near tie(s)" if self.ties else ""
        return (
            f"logits [{shape}] against the numpy reference: max error {self.max_error:.3e}, tolerance "
            f"{self.tolerance:.3e} ({self.depth} roundings x 2^-10 x max|logit| {self.scale:.4g}); argmax equal "
            f"in {self.argmax_equal} of {self.rows} rows{ties}: {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "max_error": self.max_error,
            "tolerance": self.tolerance,
            "argmax_equal": self.argmax_equal,
            "rows": self.rows,
            "ties": self.ties,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class PhaseRun(PhaseTiming):
    """A phase on the device: `PhaseTiming` (its step times and prediction) and its launches, kernels and numerics."""

    launches: int
    kernels: tuple[KernelTiming, ...]
    numerics: Numerics | None
    skipped_check: str = ""
    held: int = 0  # timed runs whose whole step was queued before the hold ended
    nvcc_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        predicted = self.predicted_tok_s
        return {
            "phase": self.phase,
            "tokens": self.tokens,
            "launches": self.launches,
            "step_ms": self.median * 1e3,
            "predicted_step_ms": None if self.predicted_seconds is None else self.predicted_seconds * 1e3,
            "tok_s": self.tok_s,
            "predicted_tok_s": predicted,
            "measured_over_predicted_tok_s": self.ratio,
            "timed_runs": len(self.seconds),
            "held_runs": self.held,
            "numerics": None if self.numerics is None else self.numerics.to_json(),
            "kernels": [k.to_json() for k in self.kernels],
        }


@dataclass(frozen=True)
class DeviceRun:
    request: DeviceRequest
    device: DeviceInfo
    model: str
    weight_bytes: int
    build_seconds: float
    phases: tuple[PhaseRun, ...]

    @property
    def ok(self) -> bool:
        return all(p.numerics is None or p.numerics.ok for p in self.phases)

    def lines(self) -> list[str]:
        r = self.request
        out = [
            f"{self.model}, {r.quant or 'default scheme'} on {self.device.describe()}, predicted as {r.target}: "
            f"batch {r.batch}, prompt {r.prompt}, generate {r.gen}; weights {self.weight_bytes / 1e6:,.1f} MB, "
            f"compiled in {self.build_seconds:.1f} s"
        ]
        for p in self.phases:
            out.append("")
            out.append(
                f"{p.phase}: {len(p.kernels)} kernels, {p.launches} launches per step; nvcc {p.nvcc_seconds:.1f} s"
            )
            out.append(f"  {p.numerics.line() if p.numerics is not None else p.skipped_check}")
            out.append(
                f"  {'kernel':<44} {'kind':<18} {'calls':>5} {'measured us':>12} {'predicted us':>13} "
                f"{'time measured/predicted':>24}"
            )
            for k in p.kernels:
                predicted = "-" if k.predicted_s is None else f"{k.predicted_s * 1e6:,.2f}"
                ratio = "-" if k.ratio is None else f"{k.ratio:.2f}"
                out.append(
                    f"  {k.name[:44]:<44} {k.kind[:18]:<18} {k.calls:>5} {k.measured_s * 1e6:>12,.2f} "
                    f"{predicted:>13} {ratio:>24}"
                )
        out.append("")
        out.append(HEADER)
        for p in self.phases:
            held = "" if p.held == len(p.seconds) else f" (queued within the hold in {p.held} only)"
            out.append(row(p, held))
        if not self.ok:
            out.append("MISMATCH: the device's logits differ from the numpy reference beyond the tolerance")
        return out

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "model": self.model,
            "quant": r.quant,
            "target": r.target,
            "device": self.device.describe(),
            "arch": self.device.arch,
            "batch": r.batch,
            "prompt": r.prompt,
            "gen": r.gen,
            "weight_bytes": self.weight_bytes,
            "phases": [p.to_json() for p in self.phases],
        }


def compare(y: NDArray[Any], y_ref: NDArray[Any], depth: int) -> Numerics:
    """`q35c verify`'s comparison: max error against depth x 2^-10 x max|ref|, argmax per row (near ties)."""
    y64, ref = y.astype(np.float64), y_ref.astype(np.float64)
    scale = float(np.abs(ref).max())
    tolerance = depth * F16_ULP_RELATIVE * scale
    err = np.abs(y64 - ref)
    rows_y, rows_ref = y64.reshape(-1, y64.shape[-1]), ref.reshape(-1, ref.shape[-1])
    best = rows_ref.max(axis=-1)
    equal = ties = 0
    for t in range(rows_y.shape[0]):
        a = int(rows_y[t].argmax())
        if a == int(rows_ref[t].argmax()):
            equal += 1
        elif rows_ref[t, a] >= best[t] - tolerance:
            ties += 1
    max_error = float(np.where(np.isnan(err), np.inf, err).max())
    return Numerics(tuple(ref.shape), max_error, tolerance, depth, scale, equal, ties, rows_y.shape[0])
