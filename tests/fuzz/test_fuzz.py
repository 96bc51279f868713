"""Generated inputs of every kind end with exit status 0 or 2, without a traceback, in under 10 s each.

A small budget per category keeps this under a minute (derandomized, so CI runs the same inputs every time);
`python benchmarks/fuzz.py --n 10000` runs the same strategies much longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_inputs import CATEGORIES, HANG_SECONDS, Case, run_case
from hypothesis import HealthCheck, given, settings

# Examples per category in CI (the cli category builds for a target now and then: fewer of those).
BUDGET = {"cli": 30, "ir": 30}
DEFAULT_BUDGET = 40
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example, HealthCheck.filter_too_much]


@pytest.fixture(scope="module")
def host_measured() -> None:
    """The host target's one-time bandwidth probe, done before any input is timed."""
    from q35c.targets.host_probe import measurement

    measurement()


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_every_generated_input_ends_cleanly(
    category: str, tmp_path_factory: pytest.TempPathFactory, host_measured: None
) -> None:
    @settings(
        max_examples=BUDGET.get(category, DEFAULT_BUDGET),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=SLOW,
    )
    @given(CATEGORIES[category]())
    def check(case: Case) -> None:
        directory: Path = tmp_path_factory.mktemp(category)
        outcome = run_case(case, directory)
        assert not outcome.traceback, f"{case.describe()}\n-> {outcome.summary()}\n{outcome.stderr[-2000:]}"
        assert not outcome.hang and outcome.seconds <= HANG_SECONDS, f"{case.describe()} took {outcome.seconds:.1f} s"

    check()
