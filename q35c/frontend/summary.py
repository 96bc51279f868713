"""What `q35c info` reports: parameters, weight bytes and KV-cache size, computed from a model's IR.

Sizes come from the `!q35.packed` types of main's `q35.weight` ops (codes plus scales and offsets, exactly as
`q35c.ir.schemes` stores them) and from the element types of main's KV-cache arguments; the graph only supplies
each weight's kind (`q_proj`) and layer (`decoder.3`).

>>> from q35c.frontend import load_model
>>> s = summarize(load_model("tiny"))
>>> s.params, s.kv_bytes_per_token
(106816, 256)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from xdsl.dialects.builtin import TensorType
from xdsl.dialects.func import FuncOp
from xdsl.ir import Attribute

from q35c.dialects.q35 import PackedType, WeightOp
from q35c.frontend import Model
from q35c.frontend.graph import Graph, WeightDesc


@dataclass(frozen=True)
class KindRow:
    """All weights of one kind (e.g. every layer's q_proj)."""

    kind: str
    count: int
    shape: tuple[int, ...]
    scheme: str  # when instances differ, the mix: "q4_k x18, q6_k x12" (most common first)
    params: int
    bytes: int


@dataclass(frozen=True)
class LayerRow:
    """`count` consecutive layers with identical weights (count 1 for main's own weights)."""

    layer: str
    count: int
    params: int  # per layer
    bytes: int  # per layer


@dataclass(frozen=True)
class Summary:
    name: str
    source: str
    params: int
    weight_bytes: int
    kv_bytes_per_token: int
    kinds: tuple[KindRow, ...]
    layers: tuple[LayerRow, ...]
    dims: tuple[tuple[str, int], ...]
    seq: int
    context: int
    max_context: int | None
    notes: tuple[str, ...]

    @property
    def bits_per_weight(self) -> float:
        return self.weight_bytes * 8 / self.params if self.params else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bits_per_weight"] = self.bits_per_weight
        data["dims"] = dict(self.dims)
        return data


def _main(model: Model) -> FuncOp:
    return next(op for op in model.module.ops if isinstance(op, FuncOp) and op.sym_name.data == "main")


@dataclass(frozen=True)
class _Weight:
    """A q35.weight op of main, with its kind and layer from the graph."""

    desc: WeightDesc
    params: int
    bytes: int
    scheme: str


def _weights(main: FuncOp, graph: Graph) -> list[_Weight]:
    descs = {w.name: w for w in graph.weights}
    result = []
    for op in main.body.block.ops:
        if isinstance(op, WeightOp):
            typ = op.result.type
            assert isinstance(typ, PackedType)
            desc = descs[op.param_name.data]
            result.append(_Weight(desc, typ.num_elements, typ.storage_bytes(), typ.scheme_attr.spec))
    return result


def _kind_rows(weights: list[_Weight]) -> tuple[KindRow, ...]:
    kinds: dict[str, KindRow] = {}
    mixes: dict[str, dict[str, int]] = {}
    for w in weights:
        mix = mixes.setdefault(w.desc.kind, {})
        mix[w.scheme] = mix.get(w.scheme, 0) + 1
        row = kinds.get(w.desc.kind)
        if row is None:
            kinds[w.desc.kind] = KindRow(w.desc.kind, 1, w.desc.shape, w.scheme, w.params, w.bytes)
            continue
        shape = row.shape if row.shape == w.desc.shape else ()
        kinds[w.desc.kind] = KindRow(
            w.desc.kind, row.count + 1, shape, row.scheme, row.params + w.params, row.bytes + w.bytes
        )
    return tuple(replace(row, scheme=_mix_text(mixes[kind])) for kind, row in kinds.items())


def _mix_text(mix: dict[str, int]) -> str:
    """One scheme's spec, or the mix of several: `q4_k x18, q6_k x12`, most common first."""
    if len(mix) == 1:
        return next(iter(mix))
    return ", ".join(f"{scheme} x{count}" for scheme, count in sorted(mix.items(), key=lambda item: -item[1]))


def _layer_rows(weights: list[_Weight]) -> tuple[LayerRow, ...]:
    """One row per layer (main's own weights: one row each); runs of identical layers of a block merge into
    one row `decoder.0-79` with a count."""
    groups: dict[str, list[_Weight]] = {}
    for w in weights:
        groups.setdefault(w.desc.layer or w.desc.name, []).append(w)
    rows: list[LayerRow] = []
    last: tuple[object, ...] | None = None
    for label, content in groups.items():
        block, _, index = label.rpartition(".")
        key = (block, *((w.desc.kind, w.desc.shape, w.scheme) for w in content)) if index.isdigit() else None
        if key is not None and key == last:
            first = rows[-1].layer.split("-")[0]
            rows[-1] = replace(rows[-1], layer=f"{first}-{index}", count=rows[-1].count + 1)
        else:
            rows.append(LayerRow(label, 1, sum(w.params for w in content), sum(w.bytes for w in content)))
        last = key
    return tuple(rows)


def _bytes_per_token(typ: Attribute) -> int:
    """Bytes one token adds to a cache of type tensor<C x W x dtype>."""
    assert isinstance(typ, TensorType)
    bits = getattr(typ.element_type, "bitwidth", None)
    assert isinstance(bits, int), typ
    return math.prod(typ.get_shape()[1:]) * ((bits + 7) // 8)


def summarize(model: Model) -> Summary:
    """The info of `model`, computed from its module."""
    main = _main(model)
    graph = model.graph
    weights = _weights(main, graph)
    caches = main.body.block.args[len(graph.main.inputs) :]
    return Summary(
        name=model.name,
        source=model.path,
        params=sum(w.params for w in weights),
        weight_bytes=sum(w.bytes for w in weights),
        kv_bytes_per_token=sum(_bytes_per_token(arg.type) for arg in caches),
        kinds=_kind_rows(weights),
        layers=_layer_rows(weights),
        dims=graph.dims,
        seq=graph.seq,
        context=graph.context,
        max_context=graph.max_context,
        notes=graph.notes,
    )


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Aligned plain-text table: the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  " + "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    raise AssertionError


def _sizes(params: int, size: int) -> list[str]:
    """Table cells: params, bytes, bits per weight."""
    return [f"{params:,}", f"{size:,}", f"{size * 8 / params:.3f}" if params else "-"]


def render_text(s: Summary) -> str:
    """The plain-text report of `q35c info`."""
    dims = ", ".join(f"{k} {v}" for k, v in s.dims)
    context = f"; context length {s.max_context:,}" if s.max_context is not None else ""
    out = [
        f"{s.name} ({s.source})",
        f"  dims: {dims}{context}" if dims else f"  {context.lstrip('; ')}",
        "",
        f"  parameters          {s.params:,}",
        f"  weight bytes        {s.weight_bytes:,} ({_size(s.weight_bytes)})",
        f"  bits per weight     {s.bits_per_weight:.3f}",
        f"  KV cache per token  {s.kv_bytes_per_token:,} bytes ({_size(s.kv_bytes_per_token)})",
        "",
        "weights by kind",
    ]
    kinds = [
        [k.kind, "x".join(map(str, k.shape)) or "mixed", k.scheme, str(k.count), *_sizes(k.params, k.bytes)]
        for k in s.kinds
    ]
    kinds.append(["total", "", "", "", *_sizes(s.params, s.weight_bytes)])
    out += _table(["kind", "shape", "scheme", "count", "params", "bytes", "bits/w"], kinds, left=3)
    out += ["", "weights by layer (identical consecutive layers share a row; params and bytes are per layer)"]
    layers = [[r.layer, str(r.count), *_sizes(r.params, r.bytes)] for r in s.layers]
    out += _table(["layer", "count", "params", "bytes", "bits/w"], layers)
    out += [f"note: {n}" for n in s.notes]
    return "\n".join(out)
