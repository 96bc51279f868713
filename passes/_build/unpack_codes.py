"""The integer codes of packed weights, per scheme: one `linalg.generic` over the storage's natural units.

Each scheme iterates over the units its storage is made of, so that where a code lives (the word, the shift)
follows from static loop indices, and what depends on the stored bits alone is computed once per unit:

| scheme     | loops                         | storage element read                  | output           |
|------------|-------------------------------|---------------------------------------|------------------|
| int4       | (n, word, i < 8)              | word (n, word)                        | [N, K/8, 8]      |
| q3p5 byte  | (n, pair, slot < 2)           | byte (n, pair)                        | [N, K/2, 2]      |
| q3p5 dense | (n, pair, slot < 2)           | words (n, 7p/32) and (n, (7p+6)/32)   | [N, K/2, 2]      |
| q4_0       | (n, block, i < 16, half < 2)  | byte (n, 18 block + 2 + i)            | [N, K/32, 2, 16] |
| q8_0       | (n, block, i < 32)            | byte (n, 34 block + 2 + i)            | [N, K/32, 32]    |

(llama.cpp's q4_1, q5_*, K-quants and iq4: `passes/_build/ggml_codes.py`, in element order; the opaque ggml types
have no layout and fail with a PassFailedException naming them.)

and `tensor.collapse_shape` makes the result [N, K]. Field extraction is a left shift that puts the field at
the top of an i32 and one arithmetic right shift that brings it down sign-extended (no mask). int4, code i of
a word in bits [4i, 4i+4):

    %codes_grid = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>,
        affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%words : tensor<4x8xi32>) outs(%codes_init : tensor<4x8x8xi8>) {
    ^bb0(%word: i32, %0: i8):
      %i = linalg.index 2 : index                     // address arithmetic: folds away once i is unrolled
      ...                                             // %left = 28 - 4 i
      %1 = arith.shli %word, %left : i32
      %2 = arith.shrsi %1, %c28 : i32
      %3 = arith.trunci %2 : i32 to i8
      linalg.yield %3 : i8
    } -> tensor<4x8x8xi8>
    %codes = tensor.collapse_shape %codes_grid [[0], [1, 2]] : tensor<4x8x8xi8> into tensor<4x64xi8>

q3p5 joins its 7-bit pair code once per pair (the slot loop is innermost, so the join does not depend on it):
pair p sits at stream bits [7p, 7p+7), from bit o = 7p mod 32 of word `lo` = 7p/32 on, into word `hi` =
(7p+6)/32 when it straddles a boundary (else hi is lo). c = (lo >> o) | (hi << min(32 - o, 31)) has the pair in
its bits [0, 7) (when hi is lo, its shifted copy lands at bit 7 or above; the shift stays below 32). Then
n1 = (c << 25) >>s 28 and n2 = (c << 29) >>s 29: the left shift also drops the bits above the pair. In the
byte container c is the byte. q4_0's byte i of a block holds element i (low nibble) and i + 16 (high
nibble), each stored as code + 8: flipping bit 3 of both nibbles (xor 0x88, once per byte) makes each a 4-bit
two's-complement code, and half h is (x << (28 - 4h)) >>s 28. q8_0's codes are its bytes.

`steps=True` gives what w = offset + scale * e multiplies instead of the code itself: q3p5's odd 3-bit slot
has twice the step, and (c << 29) >>s 28 is 2 n2 at no extra cost (the bit the shift brings in is zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import i8, i32
from xdsl.ir import BlockArgument, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.utils.exceptions import PassFailedException

from q35c.ir.schemes import GGML_BLOCKS, Scheme
from q35c.passes._build.ggml_codes import code_body, code_layout
from q35c.passes._build.linalg import (
    PARALLEL,
    MapFn,
    Scalar,
    collapse_shape,
    empty,
    generic,
    identity,
    mark_kernel,
    named,
)

CodeBody = Callable[[Scalar, Sequence[BlockArgument], bool], SSAValue]


def _slot_code(s: Scalar, pair: SSAValue, slot: SSAValue, steps: bool) -> SSAValue:
    """q3p5: the code of `slot` (0: n1 in bits [3, 7), 1: n2 in bits [0, 3)) of the pair code in `pair`'s bits
    [0, 7), as i32; with `steps`, n2 doubled."""
    left = named(s.addi(s.shli(slot, 2), 25), "left")  # 25 + 4 slot: the field's top bit to bit 31
    up = s.shli(pair, left)
    right = s.const(28, i32) if steps else named(s.addi(slot, 28), "right")  # 4-bit: 28; 3-bit: 29 (2 n2: 28)
    return s.shrsi(up, right)


def _int4(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    left = named(s.subi(s.const(28, i32), s.shli(s.index(2), 2)), "left")  # 28 - 4 i
    return s.shrsi(s.shli(args[0], left), 28)


def _q3p5_byte(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    return _slot_code(s, named(s.extui(args[0], i32), "pair"), s.index(2), steps)


def _q3p5_dense(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    lo, hi = args[0], args[1]
    bit = named(s.andi(s.muli(s.index(1), 7), 31), "bit")  # 7p mod 32: where pair p starts in `lo`
    wrap = named(s.minui(s.subi(s.const(32, i32), bit), 31), "wrap")  # where `hi` continues the pair
    pair = named(s.ori(s.shrui(lo, bit), s.shli(hi, wrap)), "pair")
    return _slot_code(s, pair, s.index(2), steps)


def _q4_0(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    flipped = named(s.xori(s.extui(args[0], i32), 0x88), "flipped")  # nibble ^ 8 = a two's-complement code
    left = named(s.subi(s.const(28, i32), s.shli(s.index(3), 2)), "left")  # 28 - 4 half
    return s.shrsi(s.shli(flipped, left), 28)


def _q8_0(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
    return args[0]


@dataclass(frozen=True)
class CodeLayout:
    """A scheme's codes generic: its loop ranges, one map per storage operand, the output's map and shape, the
    `tensor.collapse_shape` groups that make the output [N, K], and the body."""

    loops: tuple[int, ...]
    maps: tuple[MapFn, ...]
    arg_names: tuple[str, ...]
    out_shape: tuple[int, ...]
    out_map: MapFn
    collapse: tuple[tuple[int, ...], ...]
    body: CodeBody


def _ggml_layout(name: str, n: int, k: int) -> CodeLayout:
    loops, maps, names = code_layout(name, n, k)
    collapse = ((0,), tuple(range(1, len(loops))))

    def body(s: Scalar, args: Sequence[BlockArgument], steps: bool) -> SSAValue:
        return code_body(name, s, args, steps)

    return CodeLayout(loops, maps, names, loops, identity(len(loops)), collapse, body)


def layout(scheme: Scheme, n: int, k: int) -> CodeLayout:
    """The codes generic of a quantized scheme other than int8 (whose storage is its codes)."""
    if scheme.opaque:
        raise PassFailedException(
            f"cannot unpack {scheme} weights: q35c knows this ggml type's size ({scheme.code_bits:g} bits per "
            "weight) but not its bit layout (choose another scheme with --quant)"
        )
    if scheme.name in GGML_BLOCKS and scheme.name not in ("q4_0", "q8_0"):
        return _ggml_layout(scheme.name, n, k)
    if scheme.name == "int4":
        shape = (n, k // 8, 8)
        return CodeLayout(shape, (lambda n, w, i: (n, w),), ("word",), shape, identity(3), ((0,), (1, 2)), _int4)
    if scheme.name == "q3p5":
        shape = (n, k // 2, 2)
        if scheme.container == "byte":
            maps: tuple[MapFn, ...] = (lambda n, p, s: (n, p),)
            return CodeLayout(shape, maps, ("pair_byte",), shape, identity(3), ((0,), (1, 2)), _q3p5_byte)
        first = lambda n, p, s: (n, p * 7 // 32)  # noqa: E731
        last = lambda n, p, s: (n, (p * 7 + 6) // 32)  # noqa: E731
        return CodeLayout(shape, (first, last), ("lo", "hi"), shape, identity(3), ((0,), (1, 2)), _q3p5_dense)
    block, size = scheme.storage_ratio  # weights and bytes per block
    blocks = k // block
    if scheme.name == "q4_0":
        half = block // 2
        byte = lambda n, b, i, h: (n, b * size + 2 + i)  # noqa: E731
        out = lambda n, b, i, h: (n, b, h, i)  # noqa: E731
        loops = (n, blocks, half, 2)
        return CodeLayout(loops, (byte,), ("byte",), (n, blocks, 2, half), out, ((0,), (1, 2, 3)), _q4_0)
    shape = (n, blocks, block)
    byte8 = lambda n, b, i: (n, b * size + 2 + i)  # noqa: E731
    return CodeLayout(shape, (byte8,), ("byte",), shape, identity(3), ((0,), (1, 2)), _q8_0)


def codes_generic(
    rewriter: PatternRewriter, scheme: Scheme, storage: SSAValue, n: int, k: int, steps: bool
) -> SSAValue:
    """The int8 codes [N, K] of packed `storage` (tagged `q35.kernel = "unpack"`), or with `steps` the codes
    times their slot's step."""
    lay = layout(scheme, n, k)
    out = empty(rewriter, i8, lay.out_shape, "codes_init")
    iterators = (PARALLEL,) * len(lay.loops)

    def body(s: Scalar, args: Sequence[BlockArgument]) -> SSAValue:
        code = lay.body(s, args, steps)
        return code if code.type == i8 else s.trunci(code, i8)

    inputs = [storage] * len(lay.maps)
    maps = [*lay.maps, lay.out_map]
    name = "steps" if steps and scheme.slot_steps != (1,) else "codes"  # elsewhere every step is 1
    result = generic(rewriter, inputs, out, maps, iterators, body, f"{name}_grid", lay.arg_names)
    mark_kernel(result, "unpack")
    return collapse_shape(rewriter, result, lay.collapse, (n, k), name)
