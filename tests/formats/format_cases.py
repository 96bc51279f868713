"""Shared by the tests of `q35c.formats`: the specs with integer codes, code arrays covering every code, random
weights of every kind a real layer and its corner cases have, and an exact-message `raises`."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from q35c import formats

CODE_SPECS = [
    "int8",
    "int8:g=64",
    "int4",
    "int4:g=32",
    "q3p5",
    "q3p5:g=64",
    "q3p5:container=byte",
    "q3p5:g=2:container=byte",
    "q4_0",
    "q8_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q2_k",
    "q3_k",
    "q4_k",
    "q5_k",
    "q6_k",
    "iq4_nl",
    "iq4_xs",
]
EPS32 = float(np.finfo(np.float32).eps)
FAST = settings(max_examples=80, deadline=None)


def fmt(spec: str) -> formats.Format:
    return formats.get(spec)


def all_codes(spec: str, n: int, k: int) -> NDArray[np.int8]:
    """An [n, k] code array cycling through every valid code (and, for q3p5, every pair) of the format."""
    f = fmt(spec)
    (lo0, hi0), (lo1, hi1) = f.code_ranges
    if spec.startswith("q3p5"):
        n1, n2 = np.meshgrid(np.arange(lo0, hi0 + 1), np.arange(lo1, hi1 + 1), indexing="ij")
        pairs = np.stack([n1.ravel(), n2.ravel()], axis=1).ravel()  # 128 pairs = 256 codes
    else:
        pairs = np.arange(lo0, hi0 + 1)
    reps = -(-n * k // pairs.size)
    return np.tile(pairs, reps)[: n * k].reshape(n, k).astype(np.int8)


@st.composite
def weights(draw: st.DrawFn, spec: str) -> NDArray[np.float32]:
    """Random [N, K] weights mixing magnitudes from 1e-30 to 6e4, shifted groups, constants and zeros."""
    f = fmt(spec)
    n = draw(st.integers(1, 3))
    g = f.scheme.group or 128
    k = int(np.lcm(g, f.pack_multiple)) * draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    magnitude = draw(st.sampled_from([1e-30, 1e-6, 1e-2, 1.0, 3.0, 100.0, 1e4, 3e4]))
    w = rng.standard_normal((n, k)) * magnitude
    kind = draw(st.sampled_from(["plain", "shifted", "constant", "zeros", "uniform"]))
    if kind == "shifted":
        w += draw(st.sampled_from([-1.0, 1.0])) * 3 * magnitude
    elif kind == "constant":
        w[:, :g] = w[0, 0]
    elif kind == "zeros":
        w[0] = 0.0
    elif kind == "uniform":
        w = rng.uniform(-magnitude, magnitude, (n, k))
    return np.clip(w, -6e4, 6e4).astype(np.float32)


def raises(message: str) -> Any:
    return pytest.raises(ValueError, match=re.escape(message))
