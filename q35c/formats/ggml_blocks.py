"""The byte layouts of llama.cpp's q4_1, q5_0, q5_1, K-quants (q2_k .. q6_k) and iq4_nl/iq4_xs blocks.

Each layout turns the blocks of a row into `Fields` and back, bit for bit as ggml stores them (ggml-common.h;
docs/formats.md draws them):

    fields = unpack_fields("q4_k", packed)     # packed: uint8 [N, K/256 * 144]
    fields.codes                               # int8 [N, K]: the stored codes (iq4: the 4-bit table index)
    fields.d, fields.dmin                      # float16 [N, blocks]: block (super-block) scale and min scale
    fields.sc, fields.mn                       # int [N, K/g]: sub-block scales and mins as stored (K-quants)
    scale, offset = sub_block_scales("q4_k", fields)   # float32 [N, K/g]: w = scale * e + offset

`e` is the code itself except for iq4_nl/iq4_xs, where it is `IQ4_VALUES[code]`. Every sub-block product is
exact in float32 (an 11-bit float16 significand times a scale of at most 8 bits, times a code of at most 7
bits), so `scale * e + offset` rounds once, as ggml's (and gguf-py's) dequantization does.
Codes: q4_1 [0, 15], q5_0 [-16, 15], q5_1 [0, 31], q2_k [0, 3], q3_k [-4, 3], q4_k [0, 15], q5_k [0, 31],
q6_k [-32, 31], iq4 indices [0, 15].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from q35c.formats.base import F16, F32, I8, U8
from q35c.ir.schemes import GGML_BLOCKS

IQ4_VALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)
CODE_RANGES: dict[str, tuple[int, int]] = {
    "q4_1": (0, 15),
    "q5_0": (-16, 15),
    "q5_1": (0, 31),
    "q2_k": (0, 3),
    "q3_k": (-4, 3),
    "q4_k": (0, 15),
    "q5_k": (0, 31),
    "q6_k": (-32, 31),
    "iq4_nl": (0, 15),
    "iq4_xs": (0, 15),
}
# Range of the stored sub-block scale and min integers (K-quants, iq4_xs), as the decode reads them.
SUB_SCALE_RANGES: dict[str, tuple[int, int]] = {
    "q2_k": (0, 15),
    "q3_k": (-32, 31),
    "q4_k": (0, 63),
    "q5_k": (0, 63),
    "q6_k": (-128, 127),
    "iq4_xs": (-32, 31),
}
WITH_MIN = ("q4_1", "q5_1", "q2_k", "q4_k", "q5_k")


@dataclass(frozen=True, eq=False)
class Fields:
    """The decoded fields of [N, K] weights in one of these formats (see the module docstring)."""

    codes: I8
    d: F16
    dmin: F16 | None = None  # q4_1/q5_1: the block min m (w = d q + m); K-quants: the min scale
    sc: NDArray[np.int16] | None = None  # sub-block scales (q3_k, iq4_xs: minus 32; q6_k: signed)
    mn: NDArray[np.int16] | None = None  # sub-block mins (q2_k, q4_k, q5_k)


def _f16_at(blocks: U8, at: int) -> F16:
    return np.ascontiguousarray(blocks[..., at : at + 2]).view("<f2")[..., 0].astype(np.float16)


def _put_f16(out: U8, at: int, values: F16) -> None:
    out[..., at : at + 2] = np.ascontiguousarray(values, dtype="<f2")[..., None].view(np.uint8)


def _nibbles(qs: U8) -> U8:
    """16 bytes -> 32 values: byte i's low nibble is value i, its high nibble value i + 16."""
    return np.concatenate([qs & np.uint8(15), qs >> np.uint8(4)], axis=-1)


def _join_nibbles(v: U8) -> U8:
    half = v.shape[-1] // 2
    return (v[..., :half] & np.uint8(15)) | (v[..., half:] << np.uint8(4))


def _bits(data: U8, count: int) -> U8:
    """Bit t of byte l, as [..., count, bytes]: row t holds bit t of every byte."""
    shifts = np.arange(count, dtype=np.uint8).reshape((1,) * (data.ndim - 1) + (count, 1))
    return (data[..., None, :] >> shifts) & np.uint8(1)


def _set_bits(bits: U8) -> U8:
    """The inverse of `_bits`: [..., count, bytes] of 0/1 -> bytes."""
    count = bits.shape[-2]
    shifts = np.arange(count, dtype=np.uint8).reshape((1,) * (bits.ndim - 2) + (count, 1))
    return np.bitwise_or.reduce(bits.astype(np.uint8) << shifts, axis=-2).astype(np.uint8)


def _crumbs(data: U8) -> U8:
    """2-bit fields: [..., bytes] -> [..., 4, bytes], row s = bits [2s, 2s+2) of every byte."""
    shifts = (np.arange(4, dtype=np.uint8) * 2).reshape((1,) * (data.ndim - 1) + (4, 1))
    return (data[..., None, :] >> shifts) & np.uint8(3)


def _set_crumbs(values: U8) -> U8:
    shifts = (np.arange(4, dtype=np.uint8) * 2).reshape((1,) * (values.ndim - 2) + (4, 1))
    return np.bitwise_or.reduce((values & np.uint8(3)) << shifts, axis=-2).astype(np.uint8)


def _k_scales_unpack(s: U8) -> tuple[U8, U8]:
    """q4_k/q5_k: 12 bytes -> 8 six-bit scales and 8 six-bit mins."""
    lo_s, lo_m, mix = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    sc = np.concatenate([lo_s & 63, (mix & 15) | ((lo_s >> 6) << 4)], axis=-1)
    mn = np.concatenate([lo_m & 63, (mix >> 4) | ((lo_m >> 6) << 4)], axis=-1)
    return sc, mn


def _k_scales_pack(sc: U8, mn: U8) -> U8:
    s0 = (sc[..., :4] & 63) | ((sc[..., 4:] >> 4) << 6)
    s1 = (mn[..., :4] & 63) | ((mn[..., 4:] >> 4) << 6)
    s2 = (sc[..., 4:] & 15) | ((mn[..., 4:] & 15) << 4)
    return np.concatenate([s0, s1, s2], axis=-1).astype(np.uint8)


def _q3_scales_unpack(s: U8) -> U8:
    """q3_k: 12 bytes -> 16 six-bit scales (0..63, 32 meaning zero)."""
    low = _nibbles(s[..., 0:8])  # value t < 16: bits of byte t % 8, nibble t // 8
    high = _crumbs(s[..., 8:12]).reshape(*s.shape[:-1], 16)  # value t: byte 8 + t % 4, bits 2 (t // 4)
    return low | (high << 4)


def _q3_scales_pack(u: U8) -> U8:
    low = _join_nibbles(u & 15)
    high = _set_crumbs((u >> 4).reshape(*u.shape[:-1], 4, 4))
    return np.concatenate([low, high], axis=-1)


def unpack_fields(name: str, packed: U8) -> Fields:
    """Block bytes [N, K/block * bytes] -> the fields (no validation: the caller checks the array's shape)."""
    size = GGML_BLOCKS[name][1]
    n = packed.shape[0]
    b = np.ascontiguousarray(packed).reshape(n, -1, size)
    nb = b.shape[1]
    d = _f16_at(b, 0)
    if name == "q4_1":
        return Fields(_nibbles(b[..., 4:20]).view(np.int8).reshape(n, -1), d, _f16_at(b, 2))
    if name in ("q5_0", "q5_1"):
        qh_at = 2 if name == "q5_0" else 4
        high = _bits(b[..., qh_at : qh_at + 4], 8).transpose(0, 1, 3, 2).reshape(n, nb, 32)  # bit j of the u32
        u = _nibbles(b[..., qh_at + 4 : qh_at + 20]) | (high << 4)
        codes = u.view(np.int8) - np.int8(16) if name == "q5_0" else u.view(np.int8)
        return Fields(codes.reshape(n, -1), d, None if name == "q5_0" else _f16_at(b, 2))
    if name == "iq4_nl":
        return Fields(_nibbles(b[..., 2:18]).view(np.int8).reshape(n, -1), d)
    if name == "q2_k":
        codes = _crumbs(b[..., 16:80].reshape(n, nb, 2, 32))  # [a, s, l]: element 128 a + 32 s + l
        scales = b[..., 0:16]
        return Fields(
            codes.view(np.int8).reshape(n, -1),
            _f16_at(b, 80),
            _f16_at(b, 82),
            (scales & 15).astype(np.int16).reshape(n, -1),
            (scales >> 4).astype(np.int16).reshape(n, -1),
        )
    if name == "q3_k":
        low = _crumbs(b[..., 32:96].reshape(n, nb, 2, 32))  # [a, s, l]
        high = _bits(b[..., 0:32], 8).reshape(n, nb, 2, 4, 32)  # bit 4 a + s of hmask[l]
        u = low | (high << 2)
        sc = _q3_scales_unpack(b[..., 96:108]).astype(np.int16) - 32
        return Fields((u.view(np.int8) - np.int8(4)).reshape(n, -1), _f16_at(b, 108), None, sc.reshape(n, -1))
    if name in ("q4_k", "q5_k"):
        qs_at = 16 if name == "q4_k" else 48
        u = _nibbles_k(b[..., qs_at : qs_at + 128].reshape(n, nb, 4, 32))  # [c, h, l]: element 64 c + 32 h + l
        if name == "q5_k":
            u = u | (_bits(b[..., 16:48], 8).reshape(n, nb, 4, 2, 32) << 4)  # bit 2 c + h of qh[l]
        sc, mn = _k_scales_unpack(b[..., 4:16])
        return Fields(
            u.view(np.int8).reshape(n, -1),
            d,
            _f16_at(b, 2),
            sc.astype(np.int16).reshape(n, -1),
            mn.astype(np.int16).reshape(n, -1),
        )
    if name == "q6_k":
        ql = b[..., 0:128].reshape(n, nb, 2, 2, 32)  # [a, mm, l]: byte 64 a + 32 mm + l
        low = np.stack([ql & 15, ql >> 4], axis=3)  # [a, h, mm, l]
        high = _crumbs(b[..., 128:192].reshape(n, nb, 2, 32)).reshape(n, nb, 2, 2, 2, 32)  # [a, s = 2h + mm, l]
        u = low | (high << 4)
        sc = b[..., 192:208].view(np.int8).astype(np.int16)
        return Fields((u.view(np.int8) - np.int8(32)).reshape(n, -1), _f16_at(b, 208), None, sc.reshape(n, -1))
    if name == "iq4_xs":
        idx = _nibbles_k(b[..., 8:136].reshape(n, nb, 8, 16))  # [c, h, i]: element 32 c + 16 h + i
        low = _nibbles(b[..., 4:8]).reshape(n, nb, 2, 4).transpose(0, 1, 3, 2).reshape(n, nb, 8)
        sh = b[..., 2].astype(np.uint16) | (b[..., 3].astype(np.uint16) << 8)
        high = ((sh[..., None] >> (np.arange(8, dtype=np.uint16) * 2)) & 3).astype(np.uint8)
        ls = (low | (high << 4)).astype(np.int16) - 32
        return Fields(idx.view(np.int8).reshape(n, -1), d, None, ls.reshape(n, -1))
    raise AssertionError(name)


def _nibbles_k(qs: U8) -> U8:
    """[..., rows, bytes] -> [..., rows, 2, bytes]: row c's low nibbles, then its high nibbles."""
    return np.stack([qs & np.uint8(15), qs >> np.uint8(4)], axis=-2)


def _join_k(u: U8) -> U8:
    """The inverse of `_nibbles_k`."""
    return (u[..., 0, :] & np.uint8(15)) | (u[..., 1, :] << np.uint8(4))


def pack_fields(name: str, f: Fields) -> U8:
    """The inverse of `unpack_fields`: fields (in range) -> block bytes [N, K/block * bytes]."""
    block, size, _, _ = GGML_BLOCKS[name]
    n, k = f.codes.shape
    nb = k // block
    out = np.zeros((n, nb, size), dtype=np.uint8)
    raw = f.codes.astype(np.int16).reshape(n, nb, block)
    if name in ("q4_1", "q5_0", "q5_1", "iq4_nl"):
        u = (raw + (16 if name == "q5_0" else 0)).astype(np.uint8)
        at = {"q4_1": 4, "q5_0": 6, "q5_1": 8, "iq4_nl": 2}[name]
        out[..., at : at + 16] = _join_nibbles(u)
        if name in ("q5_0", "q5_1"):
            bits = (u >> 4).reshape(n, nb, 4, 8).transpose(0, 1, 3, 2)  # bit j % 8 of byte j // 8
            out[..., at - 4 : at] = _set_bits(bits)
        _put_f16(out, 0, f.d)
        if name in ("q4_1", "q5_1"):
            assert f.dmin is not None
            _put_f16(out, 2, f.dmin)
        return out.reshape(n, -1)
    assert f.sc is not None
    sc = f.sc.reshape(n, nb, -1)
    if name == "q2_k":
        assert f.mn is not None and f.dmin is not None
        out[..., 0:16] = (sc.astype(np.uint8) & 15) | (f.mn.reshape(n, nb, -1).astype(np.uint8) << 4)
        out[..., 16:80] = _set_crumbs(raw.astype(np.uint8).reshape(n, nb, 2, 4, 32)).reshape(n, nb, 64)
        _put_f16(out, 80, f.d)
        _put_f16(out, 82, f.dmin)
    elif name == "q3_k":
        u = (raw + 4).astype(np.uint8).reshape(n, nb, 2, 4, 32)
        out[..., 32:96] = _set_crumbs(u & 3).reshape(n, nb, 64)
        out[..., 0:32] = _set_bits((u >> 2).reshape(n, nb, 8, 32))
        out[..., 96:108] = _q3_scales_pack((sc + 32).astype(np.uint8))
        _put_f16(out, 108, f.d)
    elif name in ("q4_k", "q5_k"):
        assert f.mn is not None and f.dmin is not None
        u = raw.astype(np.uint8).reshape(n, nb, 4, 2, 32)
        qs_at = 16 if name == "q4_k" else 48
        out[..., qs_at : qs_at + 128] = _join_k(u).reshape(n, nb, 128)
        if name == "q5_k":
            out[..., 16:48] = _set_bits((u >> 4).reshape(n, nb, 8, 32))
        out[..., 4:16] = _k_scales_pack(sc.astype(np.uint8), f.mn.reshape(n, nb, -1).astype(np.uint8))
        _put_f16(out, 0, f.d)
        _put_f16(out, 2, f.dmin)
    elif name == "q6_k":
        u = (raw + 32).astype(np.uint8).reshape(n, nb, 2, 2, 2, 32)  # [a, h, mm, l]
        out[..., 0:128] = ((u[:, :, :, 0] & 15) | ((u[:, :, :, 1] & 15) << 4)).reshape(n, nb, 128)
        high = (u >> 4).reshape(n, nb, 2, 4, 32)  # [a, s, l]
        out[..., 128:192] = _set_crumbs(high).reshape(n, nb, 64)
        out[..., 192:208] = sc.astype(np.int8).view(np.uint8)
        _put_f16(out, 208, f.d)
    elif name == "iq4_xs":
        u = raw.astype(np.uint8).reshape(n, nb, 8, 2, 16)
        out[..., 8:136] = _join_k(u).reshape(n, nb, 128)
        ls = (sc + 32).astype(np.uint16)
        low = (ls & 15).astype(np.uint8)
        out[..., 4:8] = low[..., 0::2] | (low[..., 1::2] << 4)
        sh = np.bitwise_or.reduce((ls >> 4) << (np.arange(8, dtype=np.uint16) * 2), axis=-1).astype(np.uint16)
        out[..., 2] = (sh & 0xFF).astype(np.uint8)
        out[..., 3] = (sh >> 8).astype(np.uint8)
        _put_f16(out, 0, f.d)
    else:
        raise AssertionError(name)
    return out.reshape(n, -1)


def effective_codes(name: str, codes: I8) -> I8:
    """What the scale multiplies: the code, or for iq4_nl/iq4_xs its value in the non-linear table."""
    if name.startswith("iq4"):
        return np.asarray(IQ4_VALUES, dtype=np.int8)[codes.astype(np.intp)]
    return codes


def sub_block_scales(name: str, f: Fields) -> tuple[F32, F32 | None]:
    """float32 scale and offset per sub-block [N, K/g] (offset None for the formats without a min)."""
    d = f.d.astype(np.float32)
    if f.sc is None:  # blocks of 32: one scale (and min) per block
        return d, None if f.dmin is None else f.dmin.astype(np.float32)
    n, subs = f.sc.shape
    per = subs // d.shape[1]
    scale = (d[:, :, None] * f.sc.reshape(n, -1, per).astype(np.float32)).reshape(n, subs)
    if f.mn is None:
        return scale, None
    assert f.dmin is not None
    offset = -(f.dmin.astype(np.float32)[:, :, None] * f.mn.reshape(n, -1, per).astype(np.float32))
    return scale, offset.reshape(n, subs)


def decode(name: str, packed: U8) -> F32:
    """Block bytes -> float32 weights [N, K]: w = scale * e + offset per sub-block, rounded once."""
    f = unpack_fields(name, packed)
    scale, offset = sub_block_scales(name, f)
    n, k = f.codes.shape
    g = k // scale.shape[1]
    e = effective_codes(name, f.codes).astype(np.float32).reshape(n, -1, g)
    w = scale[:, :, None] * e
    if offset is not None:
        w = w + offset[:, :, None]
    return w.reshape(n, k).astype(np.float32)
