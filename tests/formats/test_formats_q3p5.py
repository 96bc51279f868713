"""q3p5 (`q35c.formats.q3p5`): the dense and byte containers by hand and against a bit-by-bit model, and its
encoder on known groups."""

from __future__ import annotations

import numpy as np
from format_cases import fmt
from numpy.typing import NDArray


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
    # Independent check of the dense container against a bit-by-bit model of docs/formats.md.
    rng = np.random.default_rng(7)
    pairs = rng.integers(0, 128, size=(2, 64), dtype=np.uint8)
    codes = fmt("q3p5:container=byte").unpack(pairs)
    packed = fmt("q3p5:g=2").pack(codes)
    for row in range(2):
        bits = [(int(pairs[row, p]) >> i) & 1 for p in range(64) for i in range(7)]
        words = [sum(bits[32 * w + b] << b for b in range(32)) for w in range(14)]
        assert packed[row].tolist() == words


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
