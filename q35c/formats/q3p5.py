"""q3p5, the 3.5-bit pair format: a 4-bit code (step s) and a 3-bit code (step 2 s) per pair of weights, joined
into a 7-bit pair code, stored one per uint8 (container `byte`) or as a uint32 bit stream per row (`dense`).

The bit layout is in docs/formats.md; group scale and offset, rounding and decoding are `GroupFormat`'s
(`q35c.formats.affine`). The packing functions are pure numpy without validation: `Q3p5Format` checks shapes and
code ranges before calling them. Every layout is little-endian: the first code sits in the lowest bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.formats.affine import GroupFormat
from q35c.formats.base import I8, U8, U32, CodeRange, bytes_to_words, first_index, sign_extend, words_to_bytes

# Dense q3p5: 8 pair codes of 7 bits fill exactly 56 bits = 7 bytes, so a row's bit stream splits into
# byte-aligned chunks of 8 pairs. Within a chunk, pair j starts at bit 7j, i.e. j bits below the start
# of byte j, so byte j (j < 7) holds pair j's bits [j, 7) in its low 7-j bits and pair j+1's bits
# [0, j+1) on top:
#   byte[j] = (c[j] >> j) | (c[j+1] << (7 - j))  (mod 256)
# and conversely pair j = ((byte[j-1] >> (8 - j)) | (byte[j] << j)) & 0x7F, with byte[-1] = byte[7] = 0.
_PAIRS_PER_CHUNK = 8
_CHUNK_BYTES = 7


def pair_codes(codes: I8) -> U8:
    """Codes [N, K] (n1 at even k, n2 at odd k) -> pair codes c = ((n1 & 0xF) << 3) | (n2 & 0x7)."""
    raw = np.ascontiguousarray(codes, dtype=np.int8).view(np.uint8)
    return ((raw[:, 0::2] & np.uint8(0xF)) << np.uint8(3)) | (raw[:, 1::2] & np.uint8(0x7))


def split_pair_codes(pairs: U8) -> I8:
    """Pair codes [N, K/2] -> codes [N, K], n1 = the signed high 4 bits, n2 = the signed low 3 bits."""
    codes = np.empty((pairs.shape[0], pairs.shape[1] * 2), dtype=np.int8)
    codes[:, 0::2] = sign_extend(pairs >> np.uint8(3), 4)
    codes[:, 1::2] = sign_extend(pairs & np.uint8(0x7), 3)
    return codes


def pack_dense(pairs: U8) -> U32:
    """Dense container: pair codes [N, P] (P % 32 == 0) -> [N, 7P/32] uint32 words.

    Pair p occupies bits [7p, 7p+7) of the row's bit stream; stream bit b is bit b % 32 of word b // 32.
    """
    n, p = pairs.shape
    c = pairs.reshape(n, p // _PAIRS_PER_CHUNK, _PAIRS_PER_CHUNK)
    data = np.empty((n, c.shape[1], _CHUNK_BYTES), dtype=np.uint8)
    for j in range(_CHUNK_BYTES):
        data[:, :, j] = (c[:, :, j] >> np.uint8(j)) | (c[:, :, j + 1] << np.uint8(7 - j))
    return bytes_to_words(data.reshape(n, -1))


def unpack_dense(words: U32) -> U8:
    """Dense container: [N, M] uint32 words (M % 7 == 0) -> pair codes [N, 32M/7]."""
    data = words_to_bytes(words)
    n = data.shape[0]
    b = data.reshape(n, -1, _CHUNK_BYTES)
    pairs = np.empty((n, b.shape[1], _PAIRS_PER_CHUNK), dtype=np.uint8)
    mask = np.uint8(0x7F)
    pairs[:, :, 0] = b[:, :, 0] & mask
    for j in range(1, _CHUNK_BYTES):
        pairs[:, :, j] = ((b[:, :, j - 1] >> np.uint8(8 - j)) | (b[:, :, j] << np.uint8(j))) & mask
    pairs[:, :, 7] = b[:, :, 6] >> np.uint8(1)
    return pairs.reshape(n, -1)


@dataclass(frozen=True)
class Q3p5Format(GroupFormat):
    """q3p5: pairs of a 4-bit code (step s) and a 3-bit code (step 2 s), as 7-bit pair codes.

    Container `byte` stores one pair code per uint8; `dense` packs them into a uint32 bit stream per row.
    """

    @property
    def dense(self) -> bool:
        return self.scheme.container == "dense"

    @property
    def code_ranges(self) -> tuple[CodeRange, CodeRange]:
        return (-8, 7), (-4, 3)

    def _pack_raw(self, codes: I8) -> NDArray[Any]:
        pairs = pair_codes(codes)
        return pack_dense(pairs) if self.dense else pairs

    def unpack(self, packed: NDArray[Any]) -> I8:
        p = self._packed(packed)
        if self.dense:
            return split_pair_codes(unpack_dense(p))
        bad = p > 0x7F
        if bad.any():
            i, j = first_index(bad)
            raise ValueError(
                f"{self.name}: {int(bad.sum())} bytes have bit 7 set (pair codes are 7 bits); "
                f"first at [{i}, {j}] = {int(p[i, j]):#04x}"
            )
        return split_pair_codes(p)
