"""The numpy reference for every weight format of docs/formats.md: quantize, pack, unpack, dequantize.

    fmt = get("q3p5")                       # dense container, g = 128
    qt = fmt.quantize(w)                    # w: float [N, K]
    qt.packed, qt.scale, qt.offset          # uint32 [N, 7K/64]; float16 [N, K/128] twice
    w_hat = fmt.dequantize(qt)              # float32 [N, K]
    fmt.unpack(qt.packed)                   # int8 codes [N, K], the integers before packing

Codes are int8 arrays [N, K], one per weight: int4 and q4_0 in [-8, 7], int8 in [-127, 127], q8_0 any
int8, q3p5 n1 in [-8, 7] at even k and n2 in [-4, 3] at odd k. `pack` turns codes into the stored array and
`unpack` gives them back. fp16 has no codes (its stored array is the weights): its pack/unpack raise.

This package owns the public API (`get`, `Format`, `QuantizedTensor`) and which class implements which scheme;
each format family lives in a module of its own: `base` (the `Format` interface, `QuantizedTensor`, validation),
`fp16` (fp16, f32), `affine` (int8, int4 and the group machinery), `q3p5`, `llama` (q4_0, q8_0), `ggml_blocks`
and `ggml` (q4_1, q5_0, q5_1, the K-quants q2_k .. q6_k, iq4_nl, iq4_xs; the other ggml types as opaque,
size-only formats), and `explain` (the
`q35c formats` table and bit-layout walkthroughs). Shapes and sizes come from `q35c.ir.schemes.Scheme`.
"""

from __future__ import annotations

from q35c.formats.affine import GroupFormat, Int4Format, Int8Format
from q35c.formats.base import CodeRange, Format, QuantizedTensor
from q35c.formats.fp16 import F32Format, Fp16Format
from q35c.formats.ggml import GgmlFormat, OpaqueFormat
from q35c.formats.llama import LlamaBlockFormat
from q35c.formats.q3p5 import Q3p5Format
from q35c.ir.schemes import GGML_BLOCKS, OPAQUE_BLOCKS, Scheme, parse_scheme

__all__ = [
    "CodeRange",
    "F32Format",
    "Format",
    "Fp16Format",
    "GgmlFormat",
    "GroupFormat",
    "Int4Format",
    "Int8Format",
    "LlamaBlockFormat",
    "OpaqueFormat",
    "Q3p5Format",
    "QuantizedTensor",
    "get",
]

_FORMATS: dict[str, type[Format]] = {
    "fp16": Fp16Format,
    "int8": Int8Format,
    "int4": Int4Format,
    "q3p5": Q3p5Format,
    "f32": F32Format,
    **{name: GgmlFormat for name in GGML_BLOCKS},
    **{name: OpaqueFormat for name in OPAQUE_BLOCKS},
    "q4_0": LlamaBlockFormat,
    "q8_0": LlamaBlockFormat,
}


def get(spec: str | Scheme) -> Format:
    """The format for a spec string such as `q3p5:g=64` (or a parsed Scheme); ValueError if unknown."""
    scheme = spec if isinstance(spec, Scheme) else parse_scheme(spec)
    return _FORMATS[scheme.name](scheme)
