"""llama.cpp's q4_0 and q8_0 (`q35c.formats.llama`): byte for byte against gguf-py, and the block layout."""

from __future__ import annotations

import gguf.quants
import numpy as np
import pytest
from format_cases import FAST, all_codes, fmt, weights
from gguf import GGMLQuantizationType
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from q35c.formats import QuantizedTensor

GGUF_TYPES = {"q4_0": GGMLQuantizationType.Q4_0, "q8_0": GGMLQuantizationType.Q8_0}


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
