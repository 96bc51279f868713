"""Human-readable descriptions of the weight formats: the `q35c formats` table and `--explain` bit layouts.

Everything shown is computed by `q35c.formats` (sizes from the scheme, worked examples by really quantizing
and packing a few numbers), so the text cannot drift from the code it describes; the layouts themselves are
specified in docs/formats.md.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from q35c import formats
from q35c.ir.schemes import Scheme, parse_scheme

# The rows of `q35c formats`: every scheme with its defaults, plus common variants.
TABLE_SPECS = (
    "fp16",
    "int8",
    "int8:g=128",
    "int4:g=128",
    "int4:g=64",
    "int4:g=32",
    "q3p5",
    "q3p5:g=64",
    "q3p5:g=32",
    "q3p5:container=byte",
    "q3p5:g=64:container=byte",
    "q4_0",
    "q8_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q2_k",
    "q3_k",
    "q4_k",
    "q5_k",
    "q6_k",
    "iq4_nl",
    "iq4_xs",
    "f32",
)

# llama.cpp's block formats beyond q4_0/q8_0: the codes column of `q35c formats` and the block layout that
# `--explain` prints (docs/formats.md draws the same layouts).
_GGML_CODES = {
    "q4_1": "4-bit codes in 20-byte blocks",
    "q5_0": "5-bit codes in 22-byte blocks",
    "q5_1": "5-bit codes in 24-byte blocks",
    "q2_k": "2-bit codes in 84-byte super-blocks",
    "q3_k": "3-bit codes in 110-byte super-blocks",
    "q4_k": "4-bit codes in 144-byte super-blocks",
    "q5_k": "5-bit codes in 176-byte super-blocks",
    "q6_k": "6-bit codes in 210-byte super-blocks",
    "iq4_nl": "4-bit table indices in 18-byte blocks",
    "iq4_xs": "4-bit table indices in 136-byte super-blocks",
}
_GGML_METADATA = {
    "q4_1": "fp16 d and min m inside each block of 32",
    "q5_0": "fp16 d inside each block of 32",
    "q5_1": "fp16 d and min m inside each block of 32",
    "q2_k": "fp16 d, dmin per 256; 4-bit scale, min per 16",
    "q3_k": "fp16 d per 256; 6-bit scale per 16",
    "q4_k": "fp16 d, dmin per 256; 6-bit scale, min per 32",
    "q5_k": "fp16 d, dmin per 256; 6-bit scale, min per 32",
    "q6_k": "fp16 d per 256; int8 scale per 16",
    "iq4_nl": "fp16 d inside each block of 32",
    "iq4_xs": "fp16 d per 256; 6-bit scale per 32",
}
_GGML_LAYOUT = {
    "q4_1": ["bytes 0-1 d, 2-3 m (float16); 4-19: byte 4+i = q[i] | q[i+16] << 4", "w = d * q + m, q in [0, 15]"],
    "q5_0": [
        "bytes 0-1 d; 2-5 qh (uint32: bit j = bit 4 of q[j]); 6-21: low nibbles as q4_1",
        "w = d * (q - 16), q in [0, 31]",
    ],
    "q5_1": ["bytes 0-1 d, 2-3 m; 4-7 qh; 8-23 low nibbles", "w = d * q + m, q in [0, 31]"],
    "q2_k": [
        "bytes 0-15: sub-block t's scale (low nibble) and min (high nibble); 16-79 qs; 80-81 d; 82-83 dmin",
        "q[128a + 32s + l] = (qs[32a + l] >> 2s) & 3;  w = d * scale_t * q - dmin * min_t (t = k / 16)",
    ],
    "q3_k": [
        "bytes 0-31 hmask; 32-95 qs (2 low bits, as q2_k); 96-107 sixteen 6-bit scales; 108-109 d",
        "q = low | hmask bit (4a + s) << 2, less 4, in [-4, 3];  w = d * (scale_t - 32) * q (t = k / 16)",
    ],
    "q4_k": [
        "bytes 0-1 d, 2-3 dmin; 4-15 eight 6-bit scales and mins; 16-143 qs",
        "q[64c + 32h + l] = (qs[32c + l] >> 4h) & 15;  w = d * scale_t * q - dmin * min_t (t = k / 32)",
    ],
    "q5_k": [
        "bytes 0-1 d, 2-3 dmin; 4-15 scales and mins as q4_k; 16-47 qh; 48-175 qs",
        "q = low nibble (as q4_k) | (qh[l] >> (2c + h) & 1) << 4, in [0, 31];  w = d * scale_t * q - dmin * min_t",
    ],
    "q6_k": [
        "bytes 0-127 ql; 128-191 qh; 192-207 sixteen int8 scales; 208-209 d",
        "q[128a + 64h + 32m + l] = ((ql[64a + 32m + l] >> 4h) & 15 | ((qh[32a + l] >> 2(2h + m)) & 3) << 4) - 32",
        "w = d * scale_t * q (t = k / 16)",
    ],
    "iq4_nl": [
        "bytes 0-1 d; 2-17 as q4_1's nibbles: 4-bit indices i into the table",
        "w = d * T[i], T = -127 -104 -83 -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113",
    ],
    "iq4_xs": [
        "bytes 0-1 d; 2-3 scales_h (2 high bits per sub-block); 4-7 scales_l (4 low bits); 8-135 indices",
        "index[32c + 16h + i] = (qs[16c + i] >> 4h) & 15;  w = d * (scale_t - 32) * T[index] (t = k / 32)",
    ],
}

# Weights of a typical LLM layer (about N(0, 0.02)): the values of the worked examples.
_EXAMPLE_SEED = 24
_EXAMPLE_SIGMA = 0.02


def _codes_text(scheme: Scheme) -> str:
    return {
        "fp16": "float16 weight",
        "int8": "int8 code [-127,127]",
        "int4": "4-bit codes, 8 per uint32",
        "q3p5": "7-bit pair codes, dense uint32 stream" if scheme.container == "dense" else "7-bit pair code per uint8",
        "q4_0": "4-bit codes in 18-byte blocks",
        "q8_0": "int8 codes in 34-byte blocks",
        "f32": "float32 weight",
        **_GGML_CODES,
    }.get(scheme.name, f"opaque ggml blocks of {scheme.storage_unit}")


def _metadata_text(scheme: Scheme) -> str:
    if not scheme.is_quantized:
        return "none"
    if scheme.name in _GGML_METADATA:
        return _GGML_METADATA[scheme.name]
    if scheme.block_scales:
        return f"fp16 scale inside each block of {scheme.storage_unit}"
    what = "scale" if scheme.symmetric else "scale + offset"
    per = "row" if scheme.group is None else f"{scheme.group} weights"
    return f"fp16 {what} per {per}"


def _bits_cell(scheme: Scheme, k: int) -> str:
    """Bits per weight, or which divisibility rule a row of k breaks (K % g, or K % the storage unit: q3p5 dense
    64, int4 8)."""
    try:
        return f"{scheme.bits_per_weight(k):.4f}"
    except ValueError:
        rules = [scheme.group_size(k), scheme.storage_unit]
        return f"n/a (K % {next(m for m in rules if k % m != 0)} != 0)"


def format_table(k: int) -> str:
    """The `q35c formats` table: bits per weight (metadata included) for rows of length k."""
    header = ("scheme", "bits/weight", "storage", "codes", "metadata")
    rows: list[tuple[str, ...]] = []
    for spec in TABLE_SPECS:
        scheme = parse_scheme(spec)
        rows.append(
            (str(scheme), _bits_cell(scheme, k), scheme.storage_dtype, _codes_text(scheme), _metadata_text(scheme))
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"Weight formats for rows of K = {k} (bits per weight include scales and offsets)", ""]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    lines += ["", "Details of one format: q35c formats --explain SPEC (e.g. --explain q3p5)"]
    return "\n".join(lines)


def _example_weights(k: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(_EXAMPLE_SEED)
    return (rng.standard_normal((1, k)) * _EXAMPLE_SIGMA).astype(np.float32)


def _example_k(fmt: formats.Format) -> int:
    """The shortest row of at least 64 weights that the format can store."""
    unit = int(np.lcm(fmt.scheme.group or 32, fmt.pack_multiple))
    return unit * -(-64 // unit)


def _value_table(w: NDArray[np.float32], codes: NDArray[np.int8], w_hat: NDArray[np.float32], count: int) -> str:
    lines = ["     k    weight        code    decoded       error"]
    for i in range(count):
        value, decoded = float(w[0, i]), float(w_hat[0, i]) + 0.0  # + 0.0: print -0.0 as 0.0
        lines.append(f"  {i:4d}  {value: .6f}  {codes[0, i]: 5d}    {decoded: .6f}  {decoded - value: .2e}")
    return "\n".join(lines)


def _group_header(qt: formats.QuantizedTensor, g: int) -> str:
    assert qt.scale is not None
    text = f"group 0 (k = 0..{g - 1}): scale = {float(qt.scale[0, 0]):.6g}"
    if qt.offset is not None:
        text += f", offset = {float(qt.offset[0, 0]):.6g}"
    return text + " (float16)"


def _dense_chunk() -> list[str]:
    """Which pairs land in which of the 7 words of a 32-pair chunk; * marks a pair straddling two words."""
    lines = []
    for word in range(7):
        parts = []
        for pair in range(32):
            start, end = 7 * pair, 7 * pair + 7
            lo, hi = max(start, 32 * word), min(end, 32 * word + 32)
            if lo >= hi:
                continue
            straddles = start // 32 != (end - 1) // 32
            label = f"p{pair}" if not straddles else f"p{pair}[{lo - start}:{hi - start}]*"
            parts.append(f"{label} @{lo - 32 * word}-{hi - 1 - 32 * word}")
        lines.append(f"  word {word}: " + " | ".join(parts))
    return lines


def _explain_q3p5(fmt: formats.Format) -> list[str]:
    scheme = fmt.scheme
    dense = scheme.container == "dense"
    g = scheme.group_size(128)
    lines = [
        "Weights pair up along K: pair p holds k = 2p (4-bit slot) and k = 2p+1 (3-bit slot).",
        "  n1 in [-8, 7] at even k:  w = offset + scale * n1",
        "  n2 in [-4, 3] at odd k:   w = offset + 2 * scale * n2   (twice the step, about the same range)",
        f"scale and offset: float16, one each per group of g = {g} weights along K.",
        "Encoder: lo, hi = group min, max; s = (hi - lo) / 15; scale = fp16(s); offset = fp16(lo + 8 s);",
        "  n1 = clip(round((w - offset) / scale), -8, 7); n2 = clip(round((w - offset) / (2 scale)), -4, 3);",
        "  a constant group (scale 0) gets all codes 0 and decodes to its offset.",
        "",
        "Pair code, 7 bits: c = ((n1 & 0xF) << 3) | (n2 & 0x7)",
        "  bit   6   5   4   3   2   1   0",
        "      [ n1 (4-bit two's compl.) | n2 (3-bit) ]",
        "",
    ]
    if dense:
        lines += [
            "Dense container: a row's pair codes form one bit stream, LSB first; pair p occupies stream bits",
            "[7p, 7p+7). The stream is stored as little-endian uint32 words: stream bit b is bit b % 32 of",
            "word b // 32. 32 pairs = 224 bits = 7 words (K % 64 == 0), and the pattern repeats every 7 words:",
            "(pN[a:b] = bits a..b-1 of pair N, @x-y = word bits x..y, * = the pair straddles two words)",
            *_dense_chunk(),
        ]
    else:
        lines += ["Byte container: one pair code per uint8 (bit 7 zero), storage [N, K/2] uint8."]
    k = _example_k(fmt)
    w = _example_weights(k)
    qt = fmt.quantize(w)
    codes = fmt.codes(qt)
    w_hat = fmt.dequantize(qt)
    lines += ["", f"Worked example: one row of K = {k} weights, the first 16 shown.", _group_header(qt, g)]
    lines.append(_value_table(w, codes, w_hat, 16))
    lines += ["", "  pair  n1   n2   c (binary)   c (hex)"]
    for p in range(8):
        n1, n2 = int(codes[0, 2 * p]), int(codes[0, 2 * p + 1])
        c = ((n1 & 0xF) << 3) | (n2 & 0x7)
        lines.append(f"  {p:4d}  {n1:3d}  {n2:3d}  {c:07b}      0x{c:02X}")
    lines.append("")
    if dense:
        words = [int(x) for x in qt.packed[0, :7]]
        lines.append("packed words 0..6 (pairs 0..31): " + " ".join(f"0x{x:08X}" for x in words))
        c4 = ((int(codes[0, 8]) & 0xF) << 3) | (int(codes[0, 9]) & 0x7)
        lines.append(
            f"pair 4 = {c4:07b} straddles: its low 4 bits {c4 & 0xF:04b} are bits 28..31 of word 0 "
            f"({words[0] >> 28:04b}), its high 3 bits {c4 >> 4:03b} bits 0..2 of word 1 ({words[1] & 7:03b})."
        )
    else:
        lines.append("packed bytes 0..7: " + " ".join(f"0x{int(x):02X}" for x in qt.packed[0, :8]))
    return lines


def _explain_int4(fmt: formats.Format) -> list[str]:
    g = fmt.scheme.group_size(128)
    lines = [
        "w = offset + scale * q, q in [-8, 7] (asymmetric, min-max like q3p5's 4-bit slot:",
        "scale = fp16((hi - lo) / 15), offset = fp16(lo + 8 scale)), float16 scale and offset per",
        f"group of g = {g} weights along K.",
        "Codes: 8 per uint32, LSB first: code j of a word in bits [4j, 4j+4), as a two's complement nibble.",
        "  bits  31..28 27..24 23..20 19..16 15..12 11..8  7..4   3..0",
        "        [ q7 ] [ q6 ] [ q5 ] [ q4 ] [ q3 ] [ q2 ] [ q1 ] [ q0 ]",
    ]
    k = _example_k(fmt)
    w = _example_weights(k)
    qt = fmt.quantize(w)
    codes, w_hat = fmt.codes(qt), fmt.dequantize(qt)
    lines += ["", f"Worked example: one row of K = {k} weights, the first 8 shown.", _group_header(qt, g)]
    lines.append(_value_table(w, codes, w_hat, 8))
    nibbles = " ".join(f"{int(c) & 0xF:X}" for c in codes[0, 7::-1])
    lines.append(f"nibbles q7..q0: {nibbles}  ->  word 0 = 0x{int(qt.packed[0, 0]):08X}")
    return lines


def _explain_int8(fmt: formats.Format) -> list[str]:
    per = "row (output channel)" if fmt.scheme.group is None else f"group of {fmt.scheme.group} weights"
    lines = [
        "w = scale * q, q in [-127, 127] (symmetric; -128 unused), one int8 per weight, storage [N, K].",
        f"scale = fp16(max |w| / 127), one float16 per {per}; q = clip(round(w / scale), -127, 127).",
    ]
    k = _example_k(fmt)
    w = _example_weights(k)
    qt = fmt.quantize(w)
    g = fmt.scheme.group_size(k)
    lines += ["", f"Worked example: one row of K = {k} weights, the first 8 shown.", _group_header(qt, g)]
    lines.append(_value_table(w, fmt.codes(qt), fmt.dequantize(qt), 8))
    return lines


def _explain_block(fmt: formats.Format) -> list[str]:
    q4 = fmt.scheme.name == "q4_0"
    block, size = fmt.scheme.storage_ratio
    lines = [
        f"llama.cpp block format: each block of {block} weights along K is {size} bytes, w = d * q.",
        "  bytes 0..1: d, float16 little-endian",
    ]
    if q4:
        lines += [
            "  bytes 2..17: byte 2+i = (q[i] + 8) | (q[i+16] + 8) << 4   (q in [-8, 7])",
            "Encoder (as ggml): m = the value of largest |w|; d = m / -8; q = min(15, trunc(w / d + 8.5)) - 8.",
        ]
    else:
        lines += [
            "  bytes 2..33: q[0..31] as int8",
            "Encoder (as ggml): d = max |w| / 127; q = round(w / d), halves away from zero.",
        ]
    w = _example_weights(block)
    qt = fmt.quantize(w)
    lines += ["", f"Worked example: one block of {block} weights, the first 8 shown."]
    lines.append(f"d = {float(qt.scale[0, 0]) if qt.scale is not None else 0:.6g} (float16)")
    lines.append(_value_table(w, fmt.codes(qt), fmt.dequantize(qt), 8))
    lines.append("block bytes: " + " ".join(f"{int(b):02X}" for b in qt.packed[0]))
    return lines


def _explain_fp16(fmt: formats.Format) -> list[str]:
    w = _example_weights(8)
    stored = fmt.quantize(w).packed
    single = stored.dtype == np.float32
    kind = "binary32 per weight: 1 sign bit, 8 exponent bits, 23" if single else "binary16 per weight: 1 sign bit, 5 "
    lines = [
        f"IEEE 754 {kind}{'' if single else 'exponent bits, 10'} fraction bits; no codes, no metadata.",
        "",
        "Worked example:",
        f"     weight        {'float32' if single else 'float16'} bits",
    ]
    bits, digits = (np.uint32, 8) if single else (np.uint16, 4)
    for i in range(4):
        lines.append(f"  {w[0, i]: .8f}  0x{int(stored[0, i : i + 1].view(bits)[0]):0{digits}X}")
    return lines


def _explain_ggml(fmt: formats.Format) -> list[str]:
    name = fmt.scheme.name
    block, size = fmt.scheme.storage_ratio
    lines = [f"llama.cpp block format: each block of {block} weights along K is {size} bytes (ggml-common.h).", ""]
    lines += [f"  {line}" for line in _GGML_LAYOUT[name]]
    exact = "as ggml's reference quantizer" if name in ("q4_1", "q5_0", "q5_1") else "q35c's (docs/formats.md)"
    lines += ["", f"Encoder: {exact}; decoding is bit-exact with ggml's."]
    w = _example_weights(block)
    qt = fmt.quantize(w)
    lines += ["", f"Worked example: one block of {block} weights, the first 8 shown."]
    lines.append(_value_table(w, fmt.codes(qt), fmt.dequantize(qt), 8))
    return lines


def explain(spec: str) -> str:
    """The bit layout of one format, with a worked example quantized by the library."""
    fmt = formats.get(spec)
    name = fmt.scheme.name
    if fmt.scheme.opaque:
        block, size = fmt.scheme.storage_ratio
        return (
            f"{name}: {fmt.scheme.code_bits:g} bits per weight ({size} bytes per block of {block}); a ggml type that "
            "q35c stores by size only: no bit layout, encoder or decoder"
        )
    k = 4096 if 4096 % _example_k(fmt) == 0 else _example_k(fmt)
    head = f"{fmt.name}: {fmt.bits_per_weight(k):g} bits per weight for rows of {k} (metadata included)"
    body = {
        "q3p5": _explain_q3p5,
        "int4": _explain_int4,
        "int8": _explain_int8,
        "q4_0": _explain_block,
        "q8_0": _explain_block,
        "fp16": _explain_fp16,
        "f32": _explain_fp16,
        **{n: _explain_ggml for n in _GGML_LAYOUT},
    }[name](fmt)
    return "\n".join([head, "", *body])
