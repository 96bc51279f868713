"""Codes and sub-block scales of llama.cpp's q4_1, q5_0, q5_1, K-quants and iq4 blocks, as `linalg.generic`s.

The byte layouts are those of `q35c.formats.ggml_blocks` (docs/formats.md). As for q4_0, every generic iterates
over the units of its storage so that which byte holds a field, and at which shift, follows from static loop
indices (address arithmetic that unrolling folds away); the data work per code is one or two field extractions
(a left shift that drops the bits above the field, a right shift that brings it down), a join of the high bit(s)
where the code is split (q5_*, q3_k, q5_k, q6_k), and for the signed codes (q5_0, q3_k, q6_k) one `subi` of the
bias (the stored field is code + 2^(bits-1)):

| scheme  | loops                                   | bytes read (block b of `size` bytes)          |
|---------|-----------------------------------------|-----------------------------------------------|
| q4_1    | (n, b, h < 2, i < 16)                   | qs: 4 + i                                     |
| q5_0/1  | (n, b, h < 2, i < 16)                   | qs: 6 + i (q5_1: 8 + i); qh: 2 + 2h + i/8 (+2) |
| iq4_nl  | (n, b, h < 2, i < 16)                   | qs: 2 + i                                     |
| q2_k    | (n, b, a < 2, s < 4, l < 32)            | qs: 16 + 32a + l                              |
| q3_k    | (n, b, a < 2, s < 4, l < 32)            | qs: 32 + 32a + l; hmask: l                    |
| q4_k    | (n, b, c < 4, h < 2, l < 32)            | qs: 16 + 32c + l                              |
| q5_k    | (n, b, c < 4, h < 2, l < 32)            | qs: 48 + 32c + l; qh: 16 + l                  |
| q6_k    | (n, b, a < 2, h < 2, m < 2, l < 32)     | ql: 64a + 32m + l; qh: 128 + 32a + l          |
| iq4_xs  | (n, b, c < 8, h < 2, i < 16)            | qs: 8 + 16c + i                               |

The loops are in element order, so the output is the identity map and a `tensor.collapse_shape` gives [N, K].
iq4's effective code (with `steps`) is its 4-bit index looked up in the 16-value table: the table's bytes are
two i64 constants, and the value is (table >> 8 (q mod 8)) sign-extended from 8 bits, 6 ops per weight.

Sub-block scales (and mins) are one generic per weight over its sub-blocks: float16 `d` (and `m`) for the
blocks of 32; for the super-blocks, d (a float16 from two bytes) times the sub-block's integer scale, unpacked
from its 4-bit (q2_k), 6-bit packed (q3_k, q4_k, q5_k, iq4_xs) or int8 (q6_k) field, in f32 (exact), and for
the formats with a min, offset = -(dmin times the sub-block's min).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import Attribute, i16, i32, i64
from xdsl.ir import BlockArgument, SSAValue

from q35c.ir.schemes import GGML_BLOCKS
from q35c.passes._build.linalg import MapFn, Scalar, f16, f32, named

IQ4_VALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


def _byte(s: Scalar, arg: SSAValue) -> SSAValue:
    return s.extui(arg, i32)


def _field(s: Scalar, x: SSAValue, shift: SSAValue | int, bits: int) -> SSAValue:
    """Unsigned bits [shift, shift + bits) of an i32 whose bits above 8 are zero."""
    left = s.subi(s.const(32 - bits, i32), shift) if isinstance(shift, SSAValue) else s.const(32 - bits - shift, i32)
    return s.shrui(s.shli(x, left), 32 - bits)


def _signed(s: Scalar, code: SSAValue, bits: int) -> SSAValue:
    """An unsigned `bits`-wide field minus its bias 2^(bits-1), as i32 (one `subi`)."""
    return s.subi(code, 1 << (bits - 1))


def iq4_value(s: Scalar, index: SSAValue) -> SSAValue:
    """The iq4 table value of a 4-bit index (i32) as i32."""
    words = []
    for half in (0, 1):
        packed = sum((v & 0xFF) << (8 * i) for i, v in enumerate(IQ4_VALUES[8 * half : 8 * half + 8]))
        words.append(s.const(packed - (1 << 64) if packed >= 1 << 63 else packed, i64))
    table = s.select(s.cmpi(index, 8, "ult"), words[0], words[1])
    shift = s.extui(s.shli(s.andi(index, 7), 3), i64)
    value = s.shrsi(s.shli(table, s.subi(s.const(56, i64), shift)), 56)
    return s.trunci(value, i32)


def _nibble_at(s: Scalar, x: SSAValue, half_dim: int) -> SSAValue:
    """Nibble `half` (a loop index: 0 low, 1 high) of byte x (i32)."""
    return _field(s, x, s.shli(s.index(half_dim), 2), 4)


def code_body(name: str, s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    """The code (with `steps`, the effective code) of one weight, from the bytes the layout's maps read."""
    if name in ("q4_1", "iq4_nl", "q4_k", "iq4_xs"):
        code = named(_nibble_at(s, _byte(s, args[0]), 2 if name in ("q4_1", "iq4_nl") else 3), "nibble")
        return iq4_value(s, code) if steps and name.startswith("iq4") else code
    if name in ("q5_0", "q5_1"):
        low = _nibble_at(s, _byte(s, args[0]), 2)
        high = s.andi(s.shrui(_byte(s, args[1]), s.andi(s.index(3), 7)), 1)
        code = named(s.ori(low, s.shli(high, 4)), "code5")
        return _signed(s, code, 5) if name == "q5_0" else code
    if name in ("q2_k", "q3_k"):
        low = _field(s, _byte(s, args[0]), s.shli(s.index(3), 1), 2)
        if name == "q2_k":
            return low
        bit = s.addi(s.shli(s.index(2), 2), s.index(3))  # hmask bit 4a + s
        high = s.andi(s.shrui(_byte(s, args[1]), bit), 1)
        return _signed(s, s.ori(low, s.shli(high, 2)), 3)
    if name == "q5_k":
        low = _nibble_at(s, _byte(s, args[0]), 3)
        bit = s.addi(s.shli(s.index(2), 1), s.index(3))  # qh bit 2c + h
        return s.ori(low, s.shli(s.andi(s.shrui(_byte(s, args[1]), bit), 1), 4))
    if name == "q6_k":
        low = _nibble_at(s, _byte(s, args[0]), 3)
        crumb = s.shli(s.addi(s.shli(s.index(3), 1), s.index(4)), 1)  # qh bits 2 (2h + m)
        high = _field(s, _byte(s, args[1]), crumb, 2)
        return _signed(s, s.ori(low, s.shli(high, 4)), 6)
    raise AssertionError(name)


def code_layout(name: str, n: int, k: int) -> tuple[tuple[int, ...], tuple[MapFn, ...], tuple[str, ...]]:
    """Loop ranges (in element order), one map per byte operand, and the operands' names."""
    block, size, _, _ = GGML_BLOCKS[name]
    nb = k // block
    if name in ("q4_1", "iq4_nl", "q5_0", "q5_1"):
        at = {"q4_1": 4, "iq4_nl": 2, "q5_0": 6, "q5_1": 8}[name]
        qs: MapFn = lambda n, b, h, i: (n, b * size + at + i)  # noqa: E731
        if name in ("q4_1", "iq4_nl"):
            return (n, nb, 2, 16), (qs,), ("qs",)
        qh: MapFn = lambda n, b, h, i: (n, b * size + at - 4 + h * 2 + i // 8)  # noqa: E731
        return (n, nb, 2, 16), (qs, qh), ("qs", "qh")
    if name in ("q2_k", "q3_k"):
        at = 16 if name == "q2_k" else 32
        qs = lambda n, b, a, s, j: (n, b * size + at + a * 32 + j)  # noqa: E731
        if name == "q2_k":
            return (n, nb, 2, 4, 32), (qs,), ("qs",)
        hmask: MapFn = lambda n, b, a, s, j: (n, b * size + j)  # noqa: E731
        return (n, nb, 2, 4, 32), (qs, hmask), ("qs", "hmask")
    if name in ("q4_k", "q5_k"):
        at = 16 if name == "q4_k" else 48
        qs = lambda n, b, c, h, j: (n, b * size + at + c * 32 + j)  # noqa: E731
        if name == "q4_k":
            return (n, nb, 4, 2, 32), (qs,), ("qs",)
        qh = lambda n, b, c, h, j: (n, b * size + 16 + j)  # noqa: E731
        return (n, nb, 4, 2, 32), (qs, qh), ("qs", "qh")
    if name == "q6_k":
        ql: MapFn = lambda n, b, a, h, m, j: (n, b * size + a * 64 + m * 32 + j)  # noqa: E731
        qh = lambda n, b, a, h, m, j: (n, b * size + 128 + a * 32 + j)  # noqa: E731
        return (n, nb, 2, 2, 2, 32), (ql, qh), ("ql", "qh")
    if name == "iq4_xs":
        qs = lambda n, b, c, h, i: (n, b * size + 8 + c * 16 + i)  # noqa: E731
        return (n, nb, 8, 2, 16), (qs,), ("qs",)
    raise AssertionError(name)


# -- sub-block scales and mins --

WITH_MIN = ("q4_1", "q5_1", "q2_k", "q4_k", "q5_k")


def _f16_bytes(s: Scalar, lo: SSAValue, hi: SSAValue) -> SSAValue:
    return s.bitcast(s.ori(s.extui(lo, i16), s.shli(s.extui(hi, i16), 8)), f16)


def scale_layout(name: str, n: int, k: int, want_min: bool) -> tuple[tuple[int, ...], tuple[MapFn, ...]]:
    """Loops over the sub-blocks (in order) and the byte maps that the scale (or min) body reads."""
    block, size, _, _ = GGML_BLOCKS[name]
    nb = k // block
    at = 2 if want_min else 0  # d, or the min (m or dmin), at bytes [at, at + 2) ...
    if name == "q2_k":
        at = 82 if want_min else 80
    elif name == "q3_k":
        at = 108
    elif name == "q6_k":
        at = 208

    def f16_pair(rank: int) -> tuple[MapFn, MapFn]:
        def lo(*d: object) -> tuple[object, ...]:
            return (d[0], d[1] * size + at)  # type: ignore[operator]

        def hi(*d: object) -> tuple[object, ...]:
            return (d[0], d[1] * size + at + 1)  # type: ignore[operator]

        return (_callable(lo, rank), _callable(hi, rank))

    if block == 32:
        return (n, nb), f16_pair(2)
    if name in ("q2_k", "q6_k"):
        first = 0 if name == "q2_k" else 192
        return (n, nb, 16), (*f16_pair(3), lambda n, b, t: (n, b * size + first + t))
    if name == "q3_k":
        low = lambda n, b, h, q, r: (n, b * size + 96 + q * 4 + r)  # noqa: E731
        high = lambda n, b, h, q, r: (n, b * size + 104 + r)  # noqa: E731
        return (n, nb, 2, 2, 4), (*f16_pair(5), low, high)
    if name in ("q4_k", "q5_k"):  # sub-block 4u + r: byte 4 + r (scales) or 8 + r (mins), and byte 12 + r
        first_at = 8 if want_min else 4
        first = lambda n, b, u, r: (n, b * size + first_at + r)  # noqa: E731
        mixed = lambda n, b, u, r: (n, b * size + 12 + r)  # noqa: E731
        return (n, nb, 2, 4), (*f16_pair(4), first, mixed)
    if name == "iq4_xs":
        low = lambda n, b, p, q, r: (n, b * size + 4 + p * 2 + q)  # noqa: E731
        high = lambda n, b, p, q, r: (n, b * size + 2 + p)  # noqa: E731
        return (n, nb, 2, 2, 2), (*f16_pair(5), low, high)
    raise AssertionError(name)


def _callable(fn: object, rank: int) -> MapFn:
    """A fixed-arity lambda for AffineMap.from_callable (which counts the parameters)."""
    if rank == 2:
        return lambda n, b: fn(n, b)  # type: ignore[operator,no-any-return]
    if rank == 3:
        return lambda n, b, t: fn(n, b, t)  # type: ignore[operator,no-any-return]
    if rank == 4:
        return lambda n, b, u, r: fn(n, b, u, r)  # type: ignore[operator,no-any-return]
    return lambda n, b, p, q, r: fn(n, b, p, q, r)  # type: ignore[operator,no-any-return]


def scale_body(name: str, s: Scalar, args: Sequence[BlockArgument], want_min: bool) -> SSAValue:
    """The sub-block's scale (or, with `want_min`, its offset) from the bytes `scale_layout` maps."""
    d = _f16_bytes(s, args[0], args[1])
    if GGML_BLOCKS[name][0] == 32:
        return d
    if name == "q2_k":
        x = _byte(s, args[2])
        sub = s.shrui(x, 4) if want_min else s.andi(x, 15)
    elif name == "q6_k":
        sub = s.shrsi(s.shli(_byte(s, args[2]), 24), 24)
    elif name == "q3_k":
        low = s.andi(s.shrui(_byte(s, args[2]), s.shli(s.index(2), 2)), 15)
        crumb = s.shli(s.addi(s.shli(s.index(2), 1), s.index(3)), 1)
        high = s.andi(s.shrui(_byte(s, args[3]), crumb), 3)
        sub = s.subi(s.ori(low, s.shli(high, 4)), 32)
    elif name in ("q4_k", "q5_k"):
        first, mixed = _byte(s, args[2]), _byte(s, args[3])  # S[r] (scales) or S[4 + r] (mins); S[8 + r]
        mixed_part = s.shrui(mixed, 4) if want_min else s.andi(mixed, 15)
        upper = s.ori(mixed_part, s.shli(s.shrui(first, 6), 4))
        sub = s.select(s.cmpi(s.index(2), 0, "eq"), s.andi(first, 63), upper)
    elif name == "iq4_xs":
        low = s.andi(s.shrui(_byte(s, args[2]), s.shli(s.index(4), 2)), 15)
        crumb = s.shli(s.addi(s.shli(s.index(3), 1), s.index(4)), 1)
        high = s.andi(s.shrui(_byte(s, args[3]), crumb), 3)
        sub = s.subi(s.ori(low, s.shli(high, 4)), 32)
    else:
        raise AssertionError(name)
    value = s.mulf(s.to_f32(d), s.sitofp(sub))
    return s.negf(value) if want_min else value


def scale_type(name: str) -> Attribute:
    """f16 for the blocks of 32 (the stored d or m), f32 for the super-blocks (d times a sub-block integer)."""
    return f16 if GGML_BLOCKS[name][0] == 32 else f32
