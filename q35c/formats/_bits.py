"""Bit packing for the sub-byte layouts of DESIGN section 3: int4 nibbles and q3p5 pair codes.

Pure numpy, no validation: `q35c.formats` checks shapes and code ranges before calling these, so they
only move bits. Every layout is little-endian: the first code sits in the lowest bits of the first word.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
I8 = NDArray[np.int8]

# Dense q3p5: 8 pair codes of 7 bits fill exactly 56 bits = 7 bytes, so a row's bit stream splits into
# byte-aligned chunks of 8 pairs. Within a chunk, pair j starts at bit 7j, i.e. j bits below the start
# of byte j, so byte j (j < 7) holds pair j's bits [j, 7) in its low 7-j bits and pair j+1's bits
# [0, j+1) on top:
#   byte[j] = (c[j] >> j) | (c[j+1] << (7 - j))  (mod 256)
# and conversely pair j = ((byte[j-1] >> (8 - j)) | (byte[j] << j)) & 0x7F, with byte[-1] = byte[7] = 0.
_PAIRS_PER_CHUNK = 8
_CHUNK_BYTES = 7


def sign_extend(values: U8, bits: int) -> I8:
    """Read values in [0, 2**bits) as `bits`-wide two's complement numbers (0xF -> -1 for bits=4)."""
    half = np.uint8(1 << (bits - 1))
    return (values ^ half).view(np.int8) - np.int8(half)


def bytes_to_words(data: U8) -> U32:
    """View [N, 4M] bytes as [N, M] little-endian uint32 words (byte 4i is the low byte of word i)."""
    return np.ascontiguousarray(data).view("<u4").astype(np.uint32, copy=False)


def words_to_bytes(words: U32) -> U8:
    """The inverse of `bytes_to_words`: [N, M] uint32 words as their [N, 4M] little-endian bytes."""
    return np.ascontiguousarray(words, dtype="<u4").view(np.uint8)


def pack_nibbles(codes: I8) -> U32:
    """int4: codes [N, K] in [-8, 7] -> [N, K/8] uint32, code j of a word in bits [4j, 4j+4).

    Two nibbles per byte (the even code low) and little-endian bytes give exactly that word layout.
    """
    nib = np.ascontiguousarray(codes, dtype=np.int8).view(np.uint8) & np.uint8(0xF)
    return bytes_to_words(nib[:, 0::2] | (nib[:, 1::2] << np.uint8(4)))


def unpack_nibbles(words: U32) -> I8:
    """int4: [N, M] uint32 words -> codes [N, 8M] in [-8, 7]."""
    data = words_to_bytes(words)
    nib = np.empty((data.shape[0], data.shape[1] * 2), dtype=np.uint8)
    nib[:, 0::2] = data & np.uint8(0xF)
    nib[:, 1::2] = data >> np.uint8(4)
    return sign_extend(nib, 4)


def pair_codes(codes: I8) -> U8:
    """q3p5: codes [N, K] (n1 at even k, n2 at odd k) -> pair codes c = ((n1 & 0xF) << 3) | (n2 & 0x7)."""
    raw = np.ascontiguousarray(codes, dtype=np.int8).view(np.uint8)
    return ((raw[:, 0::2] & np.uint8(0xF)) << np.uint8(3)) | (raw[:, 1::2] & np.uint8(0x7))


def split_pair_codes(pairs: U8) -> I8:
    """q3p5: pair codes [N, K/2] -> codes [N, K], n1 = the signed high 4 bits, n2 = the signed low 3 bits."""
    codes = np.empty((pairs.shape[0], pairs.shape[1] * 2), dtype=np.int8)
    codes[:, 0::2] = sign_extend(pairs >> np.uint8(3), 4)
    codes[:, 1::2] = sign_extend(pairs & np.uint8(0x7), 3)
    return codes


def pack_dense(pairs: U8) -> U32:
    """q3p5 dense: pair codes [N, P] (P % 32 == 0) -> [N, 7P/32] uint32 words.

    Pair p occupies bits [7p, 7p+7) of the row's bit stream; stream bit b is bit b % 32 of word b // 32.
    """
    n, p = pairs.shape
    c = pairs.reshape(n, p // _PAIRS_PER_CHUNK, _PAIRS_PER_CHUNK)
    data = np.empty((n, c.shape[1], _CHUNK_BYTES), dtype=np.uint8)
    for j in range(_CHUNK_BYTES):
        data[:, :, j] = (c[:, :, j] >> np.uint8(j)) | (c[:, :, j + 1] << np.uint8(7 - j))
    return bytes_to_words(data.reshape(n, -1))


def unpack_dense(words: U32) -> U8:
    """q3p5 dense: [N, M] uint32 words (M % 7 == 0) -> pair codes [N, 32M/7]."""
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
