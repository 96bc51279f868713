"""The numeric formats of DESIGN section 3: bit layouts, round trips, encoder error bounds, llama.cpp parity."""

from __future__ import annotations

import re
from typing import Any

import gguf.quants
import numpy as np
import pytest
from gguf import GGMLQuantizationType
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from q35c import formats
from q35c.formats import QuantizedTensor

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
]
GROUP_SPECS = [s for s in CODE_SPECS if not s.startswith("q4_0") and not s.startswith("q8_0")]
GGUF_TYPES = {"q4_0": GGMLQuantizationType.Q4_0, "q8_0": GGMLQuantizationType.Q8_0}
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


# -- pack / unpack --


@pytest.mark.parametrize("spec", CODE_SPECS)
def test_pack_unpack_every_code(spec: str) -> None:
    f = fmt(spec)
    for shift in range(32):  # shifted pair by pair: every code meets every bit position within a word
        codes = np.roll(all_codes(spec, 3, 512), 2 * shift, axis=1)
        packed = f.pack(codes)
        assert packed.dtype == np.dtype(f.scheme.storage_dtype)
        assert packed.shape == f.scheme.storage_shape(3, 512)
        back = f.unpack(packed)
        assert back.dtype == np.int8
        np.testing.assert_array_equal(back, codes)


@st.composite
def random_codes(draw: st.DrawFn, spec: str) -> NDArray[np.int8]:
    f = fmt(spec)
    n = draw(st.integers(1, 4))
    k = f.pack_multiple * draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    (lo0, hi0), (lo1, hi1) = f.code_ranges
    codes = rng.integers(lo0, hi0 + 1, size=(n, k))
    codes[:, 1::2] = rng.integers(lo1, hi1 + 1, size=(n, k // 2))
    return codes.astype(np.int8)


@pytest.mark.parametrize("spec", CODE_SPECS)
@FAST
@given(data=st.data())
def test_pack_unpack_random(spec: str, data: st.DataObject) -> None:
    f = fmt(spec)
    codes = data.draw(random_codes(spec))
    np.testing.assert_array_equal(f.unpack(f.pack(codes)), codes)
    # int64 codes pack like int8 ones
    np.testing.assert_array_equal(f.pack(codes.astype(np.int64)), f.pack(codes))


def test_int4_word_layout() -> None:
    # code j of a word sits in bits [4j, 4j+4) as a two's complement nibble: -1 -> 0xF, -8 -> 0x8
    f = fmt("int4")
    packed = f.pack(np.array([[1, 2, 3, 4, 5, 6, 7, -1, -8, 0, 0, 0, 0, 0, 0, -2]], dtype=np.int8))
    assert packed.tolist() == [[0xF7654321, 0xE0000008]]


def _q3p5_codes_for_layout_test() -> NDArray[np.int8]:
    """One row of K = 64 (32 pairs) with non-zero pairs at 0, 4, 9, 22 and 31 only."""
    codes = np.zeros((1, 64), dtype=np.int8)
    for pair, (n1, n2) in {0: (1, -1), 4: (-8, 3), 9: (-1, 1), 22: (-7, -2), 31: (7, -4)}.items():
        codes[0, 2 * pair] = n1
        codes[0, 2 * pair + 1] = n2
    return codes


def test_q3p5_dense_layout_by_hand() -> None:
    # Pair codes c = ((n1 & 0xF) << 3) | (n2 & 7), and pair p at stream bits [7p, 7p+7):
    #   pair 0:  n1=1,  n2=-1 -> 0001 111 = 0x0F at bits 0..6         -> word 0 |= 0x0000000F
    #   pair 4:  n1=-8, n2=3  -> 1000 011 = 0x43 at bits 28..34 (straddles words 0 and 1):
    #            low 4 bits 0011 -> word 0 bits 28..31 |= 0x30000000; high 3 bits 100 -> word 1 |= 0x4
    #   pair 9:  n1=-1, n2=1  -> 1111 001 = 0x79 at bits 63..69 (straddles words 1 and 2):
    #            bit 0 = 1 -> word 1 bit 31 |= 0x80000000; 0x79 >> 1 = 0x3C -> word 2 |= 0x0000003C
    #   pair 22: n1=-7, n2=-2 -> 1001 110 = 0x4E at bits 154..160 (straddles words 4 and 5):
    #            low 6 bits 001110 -> word 4 bits 26..31 |= 0x38000000; 0x4E >> 6 = 1 -> word 5 |= 0x1
    #   pair 31: n1=7,  n2=-4 -> 0111 100 = 0x3C at bits 217..223 -> word 6 bits 25..31 |= 0x78000000
    f = fmt("q3p5:g=64")
    codes = _q3p5_codes_for_layout_test()
    expected = [0x3000000F, 0x80000004, 0x0000003C, 0, 0x38000000, 0x00000001, 0x78000000]
    packed = f.pack(codes)
    assert packed.dtype == np.uint32
    assert packed.tolist() == [expected]
    np.testing.assert_array_equal(f.unpack(np.array([expected], dtype=np.uint32)), codes)
    # A second chunk of 32 pairs starts again at a word boundary: word 7 holds pair 32.
    two = np.concatenate([codes, codes], axis=1)
    assert f.pack(two).tolist() == [expected * 2]


def test_q3p5_byte_layout_by_hand() -> None:
    f = fmt("q3p5:g=64:container=byte")
    packed = f.pack(_q3p5_codes_for_layout_test())
    assert packed.dtype == np.uint8
    expected = [0] * 32
    expected[0], expected[4], expected[9], expected[22], expected[31] = 0x0F, 0x43, 0x79, 0x4E, 0x3C
    assert packed.tolist() == [expected]


def test_q3p5_dense_is_the_byte_codes_as_a_bit_stream() -> None:
    # Independent check of the dense container against a bit-by-bit model of DESIGN section 3.
    rng = np.random.default_rng(7)
    pairs = rng.integers(0, 128, size=(2, 64), dtype=np.uint8)
    codes = fmt("q3p5:container=byte").unpack(pairs)
    packed = fmt("q3p5:g=2").pack(codes)
    for row in range(2):
        bits = [(int(pairs[row, p]) >> i) & 1 for p in range(64) for i in range(7)]
        words = [sum(bits[32 * w + b] << b for b in range(32)) for w in range(14)]
        assert packed[row].tolist() == words


# -- quantize / dequantize error bounds --


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


def test_all_zero_weights() -> None:
    for spec in [*CODE_SPECS, "fp16"]:
        f = fmt(spec)
        qt = f.quantize(np.zeros((2, 128), dtype=np.float32))
        w_hat = f.dequantize(qt)
        assert w_hat.dtype == np.float32
        np.testing.assert_array_equal(w_hat, np.zeros((2, 128), dtype=np.float32))


def test_known_q3p5_group() -> None:
    # One group of 4: lo = -1, hi = 2 -> s = 0.2, o = 0.6; float16 S = 0.19995117, O = 0.60009766.
    f = fmt("q3p5:g=4:container=byte")
    qt = f.quantize(np.array([[-1.0, 2.0, 0.6, 0.0]], dtype=np.float32))
    assert qt.scale is not None and qt.offset is not None
    assert qt.scale[0, 0] == np.float16(0.2) and qt.offset[0, 0] == np.float16(0.6)
    # n1 = round((-1 - O) / S) = round(-8.0) = -8; n2 = clip(round((2 - O) / 2S), -4, 3) = clip(3.5 -> 4) = 3
    # n1 = round(-0.0005) = 0; n2 = round(-0.60009766 / 0.39990234) = round(-1.5006) = -2
    assert f.codes(qt).tolist() == [[-8, 3, 0, -2]]
    assert qt.packed.tolist() == [[(8 << 3) | 3, (0 << 3) | 6]]


def test_q3p5_codes_use_the_full_4bit_and_3bit_ranges() -> None:
    w = np.linspace(-1, 1, 128, dtype=np.float32)[None, :]
    codes = fmt("q3p5").codes(fmt("q3p5").quantize(w))
    assert codes[0, 0::2].min() == -8 and codes[0, 0::2].max() == 7
    assert codes[0, 1::2].min() == -4 and codes[0, 1::2].max() == 3


def test_fp16_round_trip() -> None:
    f = fmt("fp16")
    w = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    qt = f.quantize(w)
    assert qt.packed.dtype == np.float16 and qt.scale is None and qt.offset is None
    np.testing.assert_array_equal(f.dequantize(qt), w.astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="fp16 has no integer codes to pack"):
        f.pack(np.zeros((1, 8), dtype=np.int8))
    with pytest.raises(ValueError, match="fp16 has no integer codes to unpack"):
        f.unpack(qt.packed)


# -- llama.cpp block formats against gguf-py --


def _gguf_cases() -> list[NDArray[np.float32]]:
    rng = np.random.default_rng(2024)
    cases = []
    for scale in (1e-30, 1e-4, 0.02, 1.0, 50.0, 3e4):
        w = rng.standard_normal((6, 256)) * scale
        w[1] = 0.0  # a row of zeros
        w[2, :32] = 0.0  # a block of zeros
        w[3, 40] = -10 * scale  # a negative peak
        w[4, 70] = 10 * scale  # a positive peak
        w[5, :32] = scale  # a constant block
        cases.append(w.astype(np.float32))
    cases.append(rng.integers(-8, 8, size=(2, 64)).astype(np.float32))  # exact ties at x.5 for q8_0
    cases.append((rng.integers(-254, 255, size=(2, 64)) / 2).astype(np.float32))
    return cases


@pytest.mark.parametrize("spec", ["q4_0", "q8_0"])
@pytest.mark.parametrize("case", range(8))
def test_llama_blocks_match_gguf(spec: str, case: int) -> None:
    w = _gguf_cases()[case]
    f = fmt(spec)
    qt = f.quantize(w)
    expected = gguf.quants.quantize(w, GGUF_TYPES[spec])
    assert qt.packed.dtype == np.uint8 and qt.packed.shape == expected.shape
    np.testing.assert_array_equal(qt.packed, expected)
    np.testing.assert_array_equal(f.dequantize(qt), gguf.quants.dequantize(expected, GGUF_TYPES[spec]))
    assert qt.scale is not None
    blocks = expected.reshape(w.shape[0], w.shape[1] // 32, -1)
    np.testing.assert_array_equal(qt.scale, blocks[:, :, :2].copy().view("<f2")[:, :, 0])
    # codes re-pack with the block scales into the same bytes
    np.testing.assert_array_equal(f.pack(f.codes(qt), qt.scale), qt.packed)


@pytest.mark.parametrize("spec", ["q4_0", "q8_0"])
@FAST
@given(data=st.data())
def test_llama_blocks_match_gguf_random(spec: str, data: st.DataObject) -> None:
    w = data.draw(weights(spec))
    np.testing.assert_array_equal(fmt(spec).quantize(w).packed, gguf.quants.quantize(w, GGUF_TYPES[spec]))


def test_llama_pack_default_scale_is_one() -> None:
    f = fmt("q4_0")
    codes = all_codes("q4_0", 1, 32)
    packed = f.pack(codes)
    assert packed[0, :2].tolist() == [0x00, 0x3C]  # float16 1.0, little-endian
    # byte i holds element i (low nibble) and i + 16 (high nibble), each as code + 8
    assert packed[0, 2] == ((codes[0, 0] + 8) | ((codes[0, 16] + 8) << 4))
    qt = QuantizedTensor(packed, None, None, (1, 32), f.scheme)
    np.testing.assert_array_equal(f.dequantize(qt), codes.astype(np.float32))


# -- bits per weight --


@pytest.mark.parametrize(
    ("spec", "bits"),
    [
        ("q3p5", 3.75),
        ("q3p5:container=byte", 4.25),
        ("int4:g=128", 4.25),
        ("q4_0", 4.5),
        ("q8_0", 8.5),
        ("fp16", 16.0),
        ("int8", 8 + 16 / 4096),
    ],
)
def test_bits_per_weight(spec: str, bits: float) -> None:
    assert fmt(spec).bits_per_weight(4096) == pytest.approx(bits)


@pytest.mark.parametrize("spec", [*CODE_SPECS, "fp16"])
def test_stored_bytes_match_bits_per_weight(spec: str) -> None:
    f = fmt(spec)
    qt = f.quantize(np.random.default_rng(0).standard_normal((3, 256)).astype(np.float32))
    assert qt.nbytes * 8 == pytest.approx(f.bits_per_weight(256) * 3 * 256)


def test_name_is_canonical() -> None:
    assert fmt("q3p5").name == "q3p5:g=128:container=dense"
    assert fmt("int4").name == "int4:g=128"
    assert formats.get(fmt("q8_0").scheme).name == "q8_0"


# -- errors --


def raises(message: str) -> Any:
    return pytest.raises(ValueError, match=re.escape(message))


def test_non_finite_weights_are_reported_with_count_and_index() -> None:
    w = np.zeros((3, 128), dtype=np.float32)
    w[1, 5] = np.nan
    w[2, 0] = np.inf
    for spec in [*CODE_SPECS, "fp16"]:
        with raises("weights contain 2 non-finite values (NaN or Inf as float32); first at [1, 5] = nan"):
            fmt(spec).quantize(w)


@pytest.mark.parametrize(
    ("spec", "shape", "message"),
    [
        ("q3p5", (2, 3, 128), "weights must be 2-D [N, K], got shape (2, 3, 128) (ndim 3)"),
        ("int8", (128,), "weights must be 2-D [N, K], got shape (128,) (ndim 1)"),
        ("q3p5", (2, 100), "K=100 is not divisible by the group size g=128"),
        ("q3p5:g=32", (2, 96), "K=96 must be a multiple of 64 for the dense container"),
        ("int4:g=64", (2, 96), "K=96 is not divisible by the group size g=64"),
        ("q4_0", (2, 48), "K=48 is not divisible by the group size g=32"),
    ],
)
def test_bad_weight_shapes(spec: str, shape: tuple[int, ...], message: str) -> None:
    with raises(message):
        fmt(spec).quantize(np.zeros(shape, dtype=np.float32))


def test_unknown_schemes() -> None:
    with raises("unknown quantization scheme 'q5' (valid: fp16, int8, int4, q3p5, q4_0, q8_0)"):
        formats.get("q5")
    with raises("unknown key 'container' for scheme int4 (valid keys: g)"):
        formats.get("int4:container=dense")


def test_non_numeric_weights() -> None:
    with raises("weights must be real numbers, got dtype complex64"):
        fmt("int8").quantize(np.zeros((1, 8), dtype=np.complex64))


def test_out_of_fp16_range() -> None:
    with raises("1 weights overflow float16 (max 65504); first at [0, 3] = 100000"):
        fmt("fp16").quantize(np.array([[0, 0, 0, 1e5]], dtype=np.float32))
    with raises("2 group offsets overflow float16 (max 65504); first in row 0, group 0"):
        fmt("q3p5").quantize(np.full((1, 256), 1e5, dtype=np.float32))


@pytest.mark.parametrize(
    ("spec", "index", "value", "message"),
    [
        ("q3p5", (0, 1), 4, "1 codes at odd k outside [-4, 3]; first at [0, 1] = 4"),
        ("q3p5", (1, 6), -9, "1 codes at even k outside [-8, 7]; first at [1, 6] = -9"),
        ("q3p5:container=byte", (0, 3), -5, "1 codes at odd k outside [-4, 3]; first at [0, 3] = -5"),
        ("int4", (0, 2), 8, "1 codes at even k outside [-8, 7]; first at [0, 2] = 8"),
        ("int8", (1, 1), -128, "1 codes at odd k outside [-127, 127]; first at [1, 1] = -128"),
        ("q4_0", (0, 0), 8, "1 codes at even k outside [-8, 7]; first at [0, 0] = 8"),
        ("q8_0", (0, 5), 200, "1 codes at odd k outside [-128, 127]; first at [0, 5] = 200"),
    ],
)
def test_codes_out_of_range(spec: str, index: tuple[int, int], value: int, message: str) -> None:
    codes = np.zeros((2, 64), dtype=np.int16)
    codes[index] = value
    with raises(message):
        fmt(spec).pack(codes)


def test_bad_codes_arrays() -> None:
    with raises("codes must be an integer array, got dtype float32"):
        fmt("int4").pack(np.zeros((1, 8), dtype=np.float32))
    with raises("codes must be 2-D [N, K], got shape (8,)"):
        fmt("int4").pack(np.zeros(8, dtype=np.int8))
    with raises("codes of shape [1, 32]: K must be a positive multiple of 64"):
        fmt("q3p5").pack(np.zeros((1, 32), dtype=np.int8))
    with raises("codes of shape [1, 12]: K must be a positive multiple of 8"):
        fmt("int4").pack(np.zeros((1, 12), dtype=np.int8))
    with raises("pack takes a scale only for q4_0 and q8_0"):
        fmt("int4").pack(np.zeros((1, 8), dtype=np.int8), np.ones((1, 1), dtype=np.float16))
    with raises("scale must be float of shape (1, 1), got float16 (1, 2)"):
        fmt("q8_0").pack(np.zeros((1, 32), dtype=np.int8), np.ones((1, 2), dtype=np.float16))


@pytest.mark.parametrize(
    ("spec", "packed", "message"),
    [
        ("q3p5", np.zeros((2, 7), dtype=np.int32), "packed array must be 2-D uint32"),
        ("q3p5", np.zeros((2, 8), dtype=np.uint32), "positive multiple of 7 elements per row, got uint32 of shape"),
        ("q3p5", np.zeros(7, dtype=np.uint32), "got uint32 of shape (7,)"),
        (
            "q3p5:container=byte",
            np.full((1, 4), 0x80, dtype=np.uint8),
            "4 bytes have bit 7 set (pair codes are 7 bits); first at [0, 0] = 0x80",
        ),
        ("int4", np.zeros((2, 3), dtype=np.uint8), "packed array must be 2-D uint32"),
        ("int8", np.full((1, 4), -128, dtype=np.int8), "4 codes are -128 (valid: [-127, 127]); first at [0, 0]"),
        ("q4_0", np.zeros((1, 17), dtype=np.uint8), "positive multiple of 18 elements per row"),
        ("q8_0", np.zeros((1, 34), dtype=np.int8), "packed array must be 2-D uint8"),
    ],
)
def test_bad_packed_arrays(spec: str, packed: NDArray[Any], message: str) -> None:
    with raises(message):
        fmt(spec).unpack(packed)


def test_quantized_tensor_is_checked() -> None:
    f = fmt("q3p5")
    qt = f.quantize(np.ones((2, 128), dtype=np.float32))
    with raises("packed must be uint32 of shape (2, 14), got uint32 of shape (2, 7)"):
        QuantizedTensor(qt.packed[:, :7], qt.scale, qt.offset, (2, 128), f.scheme)
    with raises("needs a float16 offset of shape (2, 1)"):
        QuantizedTensor(qt.packed, qt.scale, None, (2, 128), f.scheme)
    with raises("scale must be float16 of shape (2, 1), got float32"):
        QuantizedTensor(qt.packed, qt.scale.astype(np.float32), qt.offset, (2, 128), f.scheme)
    with raises("int8 has no offset"):
        QuantizedTensor(np.zeros((2, 128), np.int8), qt.scale, qt.offset, (2, 128), fmt("int8").scheme)
    with raises("tensor is quantized as q3p5:g=128:container=dense, not int4:g=128"):
        fmt("int4").dequantize(qt)
