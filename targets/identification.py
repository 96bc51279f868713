"""How well a family's calibration rows identify its efficiency constants: leave-one-out errors and flags.

For a family with rows R and constants e = fit(R) (`targets.calibration.fit`, within `BOUNDS`):

- **leave-one-out**: for each row r, the constants are fitted again without it, e_-r = fit(R - {r}) (started
  from e), and r is predicted with e_-r. Its error is how well the other rows predict r: a row the rest cannot
  predict carries information no other row has.
- **a constant rests on a single row** (a flag) when either
  (a) at most one row *exercises* it: a row exercises an efficiency when its prediction moves with it, an
      elasticity |d log(predicted) / d log(eta)| >= `EXERCISED` at e (a 10% step); it exercises the overhead
      when a step of `OVERHEAD_STEP` (a tenth of its bound) moves its prediction by `EXERCISED_SHIFT` or more; or
  (b) leaving one row out moves it by more than `SINGLE_ROW_SHIFT` of its value (for the overhead, of its value
      or of `OVERHEAD_STEP`, whichever is larger): the fit of that constant is that row's.

Both are printed by `benchmarks/fidelity.py --loo`; the definitions and the GPU table are in docs/cost-model.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from q35c.targets.calibration import BOUNDS, KNOBS, Efficiency, Row, fit

EXERCISED = 0.1
"""Elasticity of a row's prediction to an efficiency above which the row exercises it (10% of the row's time)."""
OVERHEAD_STEP = BOUNDS["kernel_overhead_s"][1] / 10
EXERCISED_SHIFT = 0.01
"""A row exercises the overhead when a step of OVERHEAD_STEP moves its prediction by 1% or more."""
SINGLE_ROW_SHIFT = 0.25
"""Leaving one row out may move a constant by at most a quarter of its value before it is flagged."""

Predict = Callable[[Row, Efficiency], float]


@dataclass(frozen=True)
class LeftOut:
    """One row left out: the constants fitted without it, and its prediction with them and with all rows."""

    row: Row
    without: Efficiency
    predicted: float
    in_sample: float

    @property
    def error(self) -> float:
        """The leave-one-out error, predicted / measured - 1."""
        return self.predicted / self.row.measured_tok_s - 1

    @property
    def in_sample_error(self) -> float:
        return self.in_sample / self.row.measured_tok_s - 1


@dataclass(frozen=True)
class Identification:
    """A family's constants, the leave-one-out result of each row, which rows exercise each constant, and the
    flags (`constant: reason`) of constants that rest on a single row."""

    family: str
    fitted: Efficiency
    left_out: tuple[LeftOut, ...]
    exercised: dict[str, tuple[str, ...]]
    flags: tuple[str, ...]


def _step(e: Efficiency, knob: str) -> Efficiency:
    """`e` with one constant stepped inside its bounds: efficiencies by 10% (down, or up at the lower bound),
    the overhead by OVERHEAD_STEP (up, or down at the upper bound)."""
    value, (lo, hi) = getattr(e, knob), BOUNDS[knob]
    if knob == "kernel_overhead_s":
        return replace(e, **{knob: value + OVERHEAD_STEP if value + OVERHEAD_STEP <= hi else value - OVERHEAD_STEP})
    return replace(e, **{knob: value * 0.9 if value * 0.9 >= lo else value * 1.1})


def exercises(row: Row, e: Efficiency, knob: str, predict: Predict, base: float | None = None) -> bool:
    """Whether `row`'s prediction moves with constant `knob` at `e` (the module docstring's rule (a))."""
    base = predict(row, e) if base is None else base
    stepped = _step(e, knob)
    shift = abs(math.log(predict(row, stepped) / base))
    if knob == "kernel_overhead_s":
        return shift >= EXERCISED_SHIFT
    return shift / abs(math.log(getattr(stepped, knob) / getattr(e, knob))) >= EXERCISED


def moved_too_far(knob: str, fitted: float, without: float) -> bool:
    """Whether leaving a row out moved constant `knob` from `fitted` to `without` by more than the threshold."""
    scale = max(fitted, OVERHEAD_STEP) if knob == "kernel_overhead_s" else fitted
    return abs(without - fitted) > SINGLE_ROW_SHIFT * scale


def identify(family: str, rows: Sequence[Row], predict: Predict, fitted: Efficiency | None = None) -> Identification:
    """Leave-one-out over `rows` and the single-row flags of `family`'s constants (`fitted`: fit(rows) if not
    given)."""
    e = fitted if fitted is not None else fit(rows, predict)
    base = {r.id: predict(r, e) for r in rows}
    left: list[LeftOut] = []
    for r in rows:
        others = [o for o in rows if o is not r]
        without = fit(others, predict, start=e) if others else e
        left.append(LeftOut(r, without, predict(r, without), base[r.id]))
    exercised = {k: tuple(r.id for r in rows if exercises(r, e, k, predict, base[r.id])) for k in KNOBS}
    flags: list[str] = []
    for knob in KNOBS:
        ids = exercised[knob]
        if len(ids) == 1:
            flags.append(f"{knob}: only {ids[0]} exercises it")
        elif not ids:
            flags.append(f"{knob}: no row exercises it (it keeps its start value)")
        for lo in left:
            value = getattr(lo.without, knob)
            if moved_too_far(knob, getattr(e, knob), value):
                flags.append(f"{knob}: leaving out {lo.row.id} moves it {getattr(e, knob):.3g} -> {value:.3g}")
    return Identification(family, e, tuple(left), exercised, tuple(flags))
