"""The format interface (`q35c.formats`, `q35c.formats.base`): pack/unpack of every scheme, sizes, names, the
agreement of every format with its Scheme's storage, and the errors every bad input raises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from format_cases import CODE_SPECS, FAST, all_codes, fmt, raises
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from q35c import formats
from q35c.formats import QuantizedTensor

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


def test_all_zero_weights() -> None:
    for spec in [*CODE_SPECS, "fp16"]:
        f = fmt(spec)
        k = max(128, f.scheme.k_alignment)
        qt = f.quantize(np.zeros((2, k), dtype=np.float32))
        w_hat = f.dequantize(qt)
        assert w_hat.dtype == np.float32
        np.testing.assert_array_equal(w_hat, np.zeros((2, k), dtype=np.float32))


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


def test_non_finite_weights_are_reported_with_count_and_index() -> None:
    w = np.zeros((3, 256), dtype=np.float32)
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
    with raises("unknown quantization scheme 'q5' (valid: fp16, f32, int8, int4, q3p5, q4_0, q8_0, q4_1, q5_0, "):
        formats.get("q5")
    with raises("unknown key 'container' for scheme int4 (valid keys: g)"):
        formats.get("int4:container=dense")


def test_non_numeric_weights() -> None:
    with raises("weights must be real numbers, got dtype complex64"):
        fmt("int8").quantize(np.zeros((1, 8), dtype=np.complex64))


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


# -- every format agrees with its Scheme --


def _arrays(qt: QuantizedTensor) -> list[tuple[str, tuple[int, ...], str]]:
    named = [("codes", qt.packed), ("scale", qt.scale), ("offset", qt.offset)]
    return [(role, a.shape, str(a.dtype)) for role, a in named if a is not None]


@pytest.mark.parametrize("spec", [*CODE_SPECS, "fp16", "int4:g=64", "q3p5:g=32"])
def test_quantized_arrays_are_the_scheme_storage_tensors(spec: str) -> None:
    f = fmt(spec)
    scheme = f.scheme
    qt = f.quantize(np.random.default_rng(1).standard_normal((3, 256)).astype(np.float32))
    expected = [(t.role, t.shape, t.dtype) for t in scheme.storage_tensors(3, 256)]
    if scheme.name in ("q4_0", "q8_0"):  # they keep a copy of their in-block scales, one per block
        expected.append(("scale", (3, 256 // scheme.storage_unit), "float16"))
    assert _arrays(qt) == expected
    assert f.pack_multiple == scheme.storage_unit
    assert qt.nbytes == scheme.storage_bytes(3, 256)


def _k_slice(qt: QuantizedTensor, k0: int, k1: int) -> QuantizedTensor:
    """Inputs [k0, k1) of a quantized weight: its code columns by `storage_ratio`, scale and offset columns by
    `metadata_ratio` (all of them for per-channel metadata)."""
    scheme = qt.scheme
    a, b = scheme.storage_ratio
    ratio = scheme.metadata_ratio

    def meta(m: NDArray[Any] | None) -> NDArray[Any] | None:
        if m is None or scheme.block_scales:  # q4_0/q8_0: the scales are in the code blocks
            return None
        return m if ratio is None else m[:, k0 // ratio[0] * ratio[1] : k1 // ratio[0] * ratio[1]]

    codes = qt.packed[:, k0 // a * b : k1 // a * b]
    return QuantizedTensor(codes, meta(qt.scale), meta(qt.offset), (qt.shape[0], k1 - k0), scheme)


@pytest.mark.parametrize("spec", [*CODE_SPECS, "fp16", "int4:g=64", "q3p5:g=32", "q3p5:g=256"])
def test_k_slices_at_the_scheme_alignment_are_weights_of_the_scheme(spec: str) -> None:
    # Stored arrays sliced along K at multiples of `k_alignment` are a valid tensor of the scheme, which decodes
    # to the slice of the decoded weight: what the tile pass relies on.
    f = fmt(spec)
    align = f.scheme.k_alignment
    k = 4 * max(64, align)
    qt = f.quantize(np.random.default_rng(2).standard_normal((3, k)).astype(np.float32))
    whole = f.dequantize(qt)
    for k0, k1 in [(0, align), (align, 3 * align), (k - align, k)]:
        np.testing.assert_array_equal(f.dequantize(_k_slice(qt, k0, k1)), whole[:, k0:k1])
