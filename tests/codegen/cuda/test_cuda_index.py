"""The CUDA printer's index expressions (`q35c.codegen.cuda.index`): simplified by the ranges of the indices,
never changed where the ranges do not prove a rule. Each expression is checked against direct evaluation at
every (or random) index values, as C evaluates it (non-negative operands: / and % are floor division and
remainder)."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from q35c.codegen.cuda.cexpr import index_width
from q35c.codegen.cuda.index import Ix, delinear, linear


def evaluate(ix: Ix, values: dict[str, int]) -> int:
    text = ix.text().replace("/", "//")
    return int(eval(text, {}, dict(values)))  # the expression is ours, over integer names


def digits(flat: int, shape: list[int]) -> list[int]:
    out: list[int] = []
    for size in reversed(shape):
        out.append(flat % size)
        flat //= size
    return out[::-1]


def test_a_weight_tile_read_through_its_reshapes_is_its_indices() -> None:
    with index_width(False):
        n, k = Ix.var("n", 48), Ix.var("k", 4096)
        groups = delinear(linear([n, k], [48, 4096]), [48, 32, 128])
        assert [g.text() for g in groups] == ["n", "(k / 128)", "(k % 128)"]
        pairs = delinear(linear(groups, [48, 32, 128]), [48, 2048, 2])
        assert [p.text() for p in pairs] == ["n", "(k / 2)", "(k % 2)"]
        # Two neighbouring columns k = 2 kk + u: the pair index and the slot, with no division left.
        kk = Ix.var("kk", 2048)
        for u in (0, 1):
            pair = delinear(linear([n, kk.scale(2) + u], [48, 4096]), [48, 2048, 2])
            assert [p.text() for p in pair] == ["n", "kk", str(u)]


def test_without_a_range_nothing_is_assumed() -> None:
    with index_width(False):
        n, k = Ix.var("n", 48), Ix.var("k")  # k's bound unknown: it may carry into n's digit
        found = delinear(linear([n, k], [48, 4096]), [48, 32, 128])
        assert found[0].text() == "((n + (k / 4096)) % 48)"
        shifted = Ix.var("a", 10) + (-3)  # may be negative: printed as written
        assert shifted.floordiv(4).text() == "((a + -3) / 4)"


def test_64_bit_literals_in_a_wide_kernel() -> None:
    with index_width(True):
        assert linear([Ix.var("i", 8), Ix.var("j", 16)], [8, 16]).text() == "(i * 16LL + j)"
    with index_width(False):
        assert linear([Ix.var("i", 8), Ix.var("j", 16)], [8, 16]).text() == "(i * 16 + j)"


@pytest.mark.parametrize("seed", range(4))
def test_reshapes_of_scaled_and_shifted_indices_keep_their_values(seed: int) -> None:
    rng = random.Random(seed)
    with index_width(False):
        for _ in range(150):
            bounds = [rng.choice([1, 2, 3, 4, 6, 16, 48]) for _ in range(rng.randint(1, 3))]
            names = [f"x{i}" for i in range(len(bounds))]
            indices = [
                Ix.var(name, bound).scale(rng.choice([1, 2, 4])) + rng.choice([0, 1, 3])
                if rng.random() < 0.5
                else Ix.var(name, bound)
                for name, bound in zip(names, bounds, strict=True)
            ]
            shape = [4 * b + 4 for b in bounds]
            total = 1
            for size in shape:
                total *= size
            target: list[int] = []
            rest = total
            while rest > 1:
                divisor = rng.choice([d for d in range(2, rest + 1) if rest % d == 0][:4])
                target.append(divisor)
                rest //= divisor
            flat = linear(indices, shape)
            out = delinear(flat, target or [1])
            back = linear(out, target or [1])
            cases = list(itertools.product(*[range(b) for b in bounds]))
            for case in rng.sample(cases, min(len(cases), 12)):
                values = dict(zip(names, case, strict=True))
                offset = evaluate(flat, values)
                assert [evaluate(o, values) for o in out] == digits(offset, target or [1])
                assert evaluate(back, values) == offset


def test_printed_expressions_have_no_division_the_ranges_remove() -> None:
    with index_width(False):
        t, k = Ix.var("t", 1), Ix.var("k", 4096)
        text = " ".join(i.text() for i in delinear(linear([t, k], [1, 4096]), [1, 4096]))
        assert not re.search(r"[/%]", text)
