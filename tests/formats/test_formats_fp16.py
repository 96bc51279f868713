"""fp16 (`q35c.formats.fp16`): the weights as float16, no codes."""

from __future__ import annotations

import numpy as np
import pytest
from format_cases import fmt, raises


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


def test_out_of_fp16_range() -> None:
    with raises("1 weights overflow float16 (max 65504); first at [0, 3] = 100000"):
        fmt("fp16").quantize(np.array([[0, 0, 0, 1e5]], dtype=np.float32))
