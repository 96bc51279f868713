"""`CostSum` gives the very `Cost` that adding scaled costs one at a time gives: the same floats, the same keys."""

from __future__ import annotations

import random

from q35c.analysis.workload import Counts
from q35c.targets.cost import Cost, CostSum


def _random_cost(rng: random.Random, stages: int) -> Cost:
    def counts(names: tuple[str, ...]) -> Counts:
        return Counts({n: rng.choice((0.0, rng.random() * 10 ** rng.randint(-12, 12))) for n in names})

    return Cost(
        seconds=rng.random() * 1e-3,
        roofline_seconds=rng.random() * 1e-4,
        kernels=rng.choice((0.0, 1.0)),
        bytes=counts(("hbm", "l2", "smem", "link")),
        ops=counts(("tensor.f16", "vector.fp32")),
        energy_j=counts(("hbm", "compute", "static")),
        limits=counts(("hbm bandwidth", "vector unpacking", "overhead")),
        stage_seconds=tuple(rng.random() for _ in range(stages)),
        static_w=rng.choice((0.0, rng.random() * 100)),
    )


def test_a_sum_of_scaled_costs_is_the_costs_added_one_by_one() -> None:
    rng = random.Random(14)
    for trial in range(200):
        stages = trial % 3
        terms = [(_random_cost(rng, rng.choice((0, stages))), rng.choice((0.0, 1.0, 2.0, 126.0, rng.random() * 50)))]
        terms += [(_random_cost(rng, rng.choice((0, stages))), float(rng.randint(0, 80))) for _ in range(12)]
        expected = Cost()
        total = CostSum()
        for cost, count in terms:
            expected = expected + cost * count
            total.add(cost, count)
        found = total.total()
        assert found == expected
        for got, want in zip(
            (found.bytes, found.ops, found.energy_j, found.limits),
            (expected.bytes, expected.ops, expected.energy_j, expected.limits),
            strict=True,
        ):
            assert list(got.items()) == list(want.items())  # the same keys, in the same order


def test_an_empty_sum_is_no_cost() -> None:
    assert CostSum().total() == Cost()
