"""The group-affine formats (`q35c.formats.affine`): int4's word layout, and the error bounds, exact decoding and
constant groups of int8, int4 and q3p5's shared group machinery."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from format_cases import EPS32, FAST, fmt, raises, weights
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray


def test_int4_word_layout() -> None:
    # code j of a word sits in bits [4j, 4j+4) as a two's complement nibble: -1 -> 0xF, -8 -> 0x8
    f = fmt("int4")
    packed = f.pack(np.array([[1, 2, 3, 4, 5, 6, 7, -1, -8, 0, 0, 0, 0, 0, 0, -2]], dtype=np.int8))
    assert packed.tolist() == [[0xF7654321, 0xE0000008]]


# -- quantize / dequantize error bounds --


def _group_view(a: NDArray[Any], g: int) -> NDArray[Any]:
    return a.reshape(a.shape[0], -1, g)


def check_affine_bounds(spec: str, w: NDArray[np.float32]) -> None:
    """int4 / q3p5: scale and offset are the float16 min-max choice, and every weight is within its bound.

    With exact s = (hi - lo) / 15, o = lo + 8 s and stored S = fp16(s), O = fp16(o):
      - a weight inside its slot's grid [O - 8S, O + 7S] (3-bit slot: [O - 8S, O + 6S]) decodes to the nearest
        grid point: error <= S/2 (3-bit slot: step 2S, error <= S);
      - a clipped weight lies in [lo, hi] = [o - 8s, o + 7s], so its error is at most |o - O| + 8|s - S| (top of
        a 3-bit slot: hi - (O + 6S) <= S + |o - O| + 7|s - S|).
    Hence error <= half step + |o - O| + 8|s - S|, plus float32 rounding in the encoder and decoder.
    """
    f = fmt(spec)
    qt = f.quantize(w)
    g = f.scheme.group_size(w.shape[1])
    groups = _group_view(w.astype(np.float64), g)
    lo, hi = groups.min(axis=-1), groups.max(axis=-1)
    s = (hi - lo) / 15
    o = lo + 8 * s
    assert qt.scale is not None and qt.offset is not None
    np.testing.assert_array_equal(qt.scale, s.astype(np.float16))
    np.testing.assert_array_equal(qt.offset, o.astype(np.float16))
    big_s, big_o = qt.scale.astype(np.float64)[..., None], qt.offset.astype(np.float64)[..., None]
    is_q3p5 = spec.startswith("q3p5")
    half_step = np.where(np.arange(g) % 2 == 1, 1.0, 0.5) if is_q3p5 else np.full(g, 0.5)
    bound = half_step * big_s + np.abs(o - big_o[..., 0])[..., None] + 8 * np.abs(s - big_s[..., 0])[..., None]
    slack = 4 * EPS32 * (np.abs(groups) + np.abs(big_o) + 8 * big_s) + 1e-45
    w_hat = _group_view(f.dequantize(qt).astype(np.float64), g)
    err = np.abs(w_hat - groups)
    assert np.all(err <= bound + slack), float(np.max(err - bound - slack))
    # Nearest grid point: no other code of the slot would have been closer.
    step = np.where(np.arange(g) % 2 == 1, 2.0, 1.0) if is_q3p5 else np.ones(g)
    codes = _group_view(f.codes(qt).astype(np.float64), g)
    (lo0, hi0), (lo1, hi1) = f.code_ranges
    lo_c = np.where(np.arange(g) % 2 == 1, lo1, lo0)
    hi_c = np.where(np.arange(g) % 2 == 1, hi1, hi0)
    for delta in (-1, 1):
        other = codes + delta
        ok = (other >= lo_c) & (other <= hi_c) & (big_s > 0)
        alt = np.abs(big_o + big_s * step * other - groups)
        assert np.all(~ok | (err <= alt + slack))
    # Decode rule, exactly: float32(O + S * step * code), computed in float64 (exact) then rounded once.
    exact = (big_o + big_s * step * codes).astype(np.float32)
    np.testing.assert_array_equal(w_hat.astype(np.float32), exact)


@pytest.mark.parametrize("spec", ["int4", "int4:g=32", "q3p5", "q3p5:g=64", "q3p5:container=byte"])
@FAST
@given(data=st.data())
def test_affine_error_bound(spec: str, data: st.DataObject) -> None:
    check_affine_bounds(spec, data.draw(weights(spec)))


@pytest.mark.parametrize("spec", ["int8", "int8:g=64"])
@FAST
@given(data=st.data())
def test_int8_error_bound(spec: str, data: st.DataObject) -> None:
    # S = fp16(max|w| / 127); inside [-127 S, 127 S] the error is <= S/2; beyond (S rounded down) the
    # clipped error is max|w| - 127 S <= 127 |s - S|.
    f = fmt(spec)
    w = data.draw(weights(spec))
    qt = f.quantize(w)
    assert qt.offset is None and qt.scale is not None
    g = f.scheme.group_size(w.shape[1])
    groups = _group_view(w.astype(np.float64), g)
    s = np.abs(groups).max(axis=-1) / 127
    np.testing.assert_array_equal(qt.scale, s.astype(np.float16))
    big_s = qt.scale.astype(np.float64)[..., None]
    bound = big_s / 2 + 127 * np.abs(s[..., None] - big_s)
    slack = 4 * EPS32 * (np.abs(groups) + 127 * big_s) + 1e-45
    w_hat = _group_view(f.dequantize(qt).astype(np.float64), g)
    assert np.all(np.abs(w_hat - groups) <= bound + slack)
    codes = _group_view(f.codes(qt).astype(np.float64), g)
    np.testing.assert_array_equal(w_hat.astype(np.float32), (big_s * codes).astype(np.float32))


@pytest.mark.parametrize("spec", ["int4", "q3p5", "q3p5:container=byte", "q3p5:g=2:container=byte"])
@pytest.mark.parametrize("value", [0.0, 0.1, -3.7, 1e-30, 5e4, -6e4])
def test_constant_groups_decode_to_the_offset(spec: str, value: float) -> None:
    f = fmt(spec)
    w = np.full((2, 256), value, dtype=np.float32)
    qt = f.quantize(w)
    assert qt.scale is not None and qt.offset is not None
    assert not qt.scale.any()
    assert not f.codes(qt).any()
    np.testing.assert_array_equal(f.dequantize(qt), np.full(w.shape, np.float16(value), dtype=np.float32))


@pytest.mark.parametrize("value", [0.1, -3.7, 1e-30, 5e4, -6e4])
def test_int8_constant_groups(value: float) -> None:
    # symmetric: the constant becomes +-127 (or the nearest code) times S = fp16(|value| / 127)
    f = fmt("int8")
    qt = f.quantize(np.full((1, 64), value, dtype=np.float32))
    assert qt.scale is not None
    big_s = float(qt.scale[0, 0])
    assert big_s == float(np.float16(abs(value) / 127))
    bound = big_s / 2 + 127 * abs(abs(value) / 127 - big_s) + 1e-6 * abs(value)
    assert np.all(np.abs(f.dequantize(qt) - np.float32(value)) <= bound)


def test_group_metadata_out_of_fp16_range() -> None:
    with raises("2 group offsets overflow float16 (max 65504); first in row 0, group 0"):
        fmt("q3p5").quantize(np.full((1, 256), 1e5, dtype=np.float32))
