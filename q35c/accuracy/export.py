"""Writing a GGUF model requantized into a scheme: a GGUF file where ggml has the type, else q35c's .npz.

    summary = quantize_file("model.gguf", "q4_0", "out.gguf")     # ggml types: a GGUF file llama.cpp reads
    summary = quantize_file("model.gguf", "q3p5:g=64", "out.npz")  # any scheme: q35c's container
    weights = load_npz("out.npz")                                  # {name: QuantizedTensor}, as written

Every linear layer's weights are decoded bit-exactly from the file and encoded in the scheme by q35c's encoder
(`q35c.formats`); the token embeddings (and a separate lm_head) keep their stored encoding unless `embeddings`;
vectors are copied.

Containers. A `.gguf` output keeps the source's metadata (tokenizer, chat template, hyperparameters) and its
tensor names and row order; it is only possible when ggml has the scheme's type (f32, fp16, q4_0, q4_1, q5_0,
q5_1, q8_0, the K-quants, iq4_nl, iq4_xs): q3p5 and q35c's int4/int8 (separate float16 scale and offset arrays)
have none, so they go in `.npz`, which holds any scheme. The `.npz` has, per weight (model-language names,
`decoder.3.q_proj`), `NAME.packed` and, where the scheme has them, `NAME.scale` and `NAME.offset`, plus
`__meta__`: JSON with each weight's scheme and shape, the decoder's config and the source file. Its q_proj and
k_proj rows are in q35's rotate-half order (`q35c.frontend.gguf_dense`), not llama.cpp's interleaved one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from q35c import formats
from q35c.accuracy.requant import LINEARS, codec, kind_of
from q35c.formats import QuantizedTensor
from q35c.frontend.gguf_dense import gguf_config, rope_rows_to_halves
from q35c.frontend.gguf_file import _architecture, gguf_tensors
from q35c.frontend.gguf_reader import GgufFile, TensorInfo, read_gguf
from q35c.frontend.gguf_tensors import tensor_weight
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error

CONTAINERS = (".gguf", ".npz")
# q35c scheme name -> ggml type name, for the schemes a GGUF file can hold.
GGML_TYPES = {
    "f32": "F32",
    "fp16": "F16",
    **{n: n.upper() for n in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k")},
    **{n: n.upper() for n in ("iq4_nl", "iq4_xs")},
}
META = "__meta__"


@dataclass(frozen=True)
class Summary:
    """What was written: the container, weights requantized and the bytes they take."""

    path: str
    container: str
    scheme: str
    requantized: int
    weights: int
    weight_bytes: int


def _requantized(name: str, embeddings: bool) -> bool:
    return kind_of(name) in LINEARS or (embeddings and name in ("embed_tokens", "lm_head"))


def _tensors(
    gguf: GgufFile, spec: str, embeddings: bool, on_tensor: Callable[[str], None] | None
) -> Iterator[tuple[str, TensorInfo, QuantizedTensor, bool]]:
    """(name, source tensor, tensor to write, requantized?) for every tensor, in file order (rows as stored)."""
    scheme = parse_scheme(spec)
    fmt = formats.get(scheme)
    for name, info in gguf_tensors(gguf, _architecture(gguf)).items():
        qt = tensor_weight(gguf, info)
        if len(info.dims) == 2 and _requantized(name, embeddings):
            w = np.asarray(formats.get(qt.scheme).dequantize(qt), dtype=np.float32)
            scheme.check_shape(*w.shape)
            qt = fmt.quantize(w)
            if on_tensor is not None:
                on_tensor(name)
            yield name, info, qt, True
        else:
            yield name, info, qt, False


def _check_spec(spec: str, container: str) -> None:
    chosen = codec(spec)
    if chosen.simulated:
        raise Q35Error(f"{chosen.spec} is simulated for accuracy studies only: it has no storage layout")
    scheme = parse_scheme(spec)
    if container == ".gguf" and scheme.name not in GGML_TYPES:
        raise Q35Error(
            f"{scheme} has no ggml tensor type, so a GGUF file cannot hold it: write .npz (q35c's container, "
            f"any scheme), or pick one of {', '.join(GGML_TYPES)} for GGUF"
        )


def quantize_file(
    source: str,
    spec: str,
    output: str,
    *,
    embeddings: bool = False,
    on_tensor: Callable[[str], None] | None = None,
) -> Summary:
    """Requantize the GGUF file `source` into `spec` and write `output` (.gguf or .npz), atomically."""
    container = Path(output).suffix
    if container not in CONTAINERS:
        raise Q35Error(f"unknown output container '{container}' (expected .gguf or .npz)", Location(output))
    _check_spec(spec, container)
    gguf = read_gguf(source)
    scheme = parse_scheme(spec)
    for name, info in gguf_tensors(gguf, _architecture(gguf)).items():
        if len(info.dims) == 2 and _requantized(name, embeddings):
            try:
                scheme.check_shape(*info.shape)
            except Q35Error as err:
                raise Q35Error(f"weight {name} {list(info.shape)} cannot be stored as {err.message}") from None
    target = Path(output)
    if target.is_dir():
        raise Q35Error("is a directory: give a file name", Location(output))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{container}")
    try:
        if container == ".gguf":
            counts = _write_gguf(source, gguf, spec, tmp, embeddings, on_tensor)
        else:
            counts = _write_npz(source, gguf, spec, tmp, embeddings, on_tensor)
        os.replace(tmp, target)
    except OSError as err:
        raise Q35Error(f"cannot write {output}: {err.strerror}", Location(output)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return Summary(str(target), container, str(parse_scheme(spec)), *counts)


def _write_gguf(
    source: str, gguf: GgufFile, spec: str, path: Path, embeddings: bool, on_tensor: Callable[[str], None] | None
) -> tuple[int, int, int]:
    import gguf as gguf_py

    reader = gguf_py.GGUFReader(source)
    arch = _architecture(gguf)
    writer = gguf_py.GGUFWriter(str(path), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue  # the header is the writer's; the file type would no longer be true
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf_py.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub)
    requantized = weights = nbytes = 0
    for _name, info, qt, changed in _tensors(gguf, spec, embeddings, on_tensor):
        ggml = GGML_TYPES[qt.scheme.name] if changed else info.ggml.name
        if changed:
            raw = np.ascontiguousarray(qt.packed).view(np.uint8)
        else:  # the stored bytes, in ggml's shape (rows, bytes per row)
            raw = gguf.tensor_data(info).reshape(*reversed(info.dims[1:]), -1)
        writer.add_tensor(info.name, raw, raw_shape=raw.shape, raw_dtype=gguf_py.GGMLQuantizationType[ggml])
        requantized += qt.shape[0] * qt.shape[1] if changed else 0
        weights += qt.shape[0] * qt.shape[1]
        nbytes += raw.nbytes
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return requantized, weights, nbytes


def _write_npz(
    source: str, gguf: GgufFile, spec: str, path: Path, embeddings: bool, on_tensor: Callable[[str], None] | None
) -> tuple[int, int, int]:
    cfg = gguf_config(gguf)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    meta: dict[str, Any] = {"source": os.path.basename(source), "config": asdict(cfg), "weights": {}}
    meta["rope_rows"] = "halves"
    requantized = weights = nbytes = 0
    for name, info, qt, changed in _tensors(gguf, spec, embeddings, on_tensor):
        parts = {"packed": qt.packed, "scale": qt.scale, "offset": qt.offset}
        if name.endswith((".q_proj", ".k_proj")):
            heads = cfg.heads if name.endswith(".q_proj") else cfg.kv_heads
            parts = {k: None if a is None else rope_rows_to_halves(a, heads) for k, a in parts.items()}
        for part, array in parts.items():
            if array is not None:
                arrays[f"{name}.{part}"] = np.ascontiguousarray(array)
        meta["weights"][name] = {"scheme": str(qt.scheme), "shape": list(qt.shape), "vector": len(info.dims) == 1}
        requantized += qt.shape[0] * qt.shape[1] if changed else 0
        weights += qt.shape[0] * qt.shape[1]
        nbytes += qt.nbytes
    arrays[META] = np.array(json.dumps(meta, sort_keys=True))
    with path.open("wb") as out:
        np.savez(out, allow_pickle=False, **arrays)
    return requantized, weights, nbytes


def load_npz(path: str) -> tuple[dict[str, QuantizedTensor], dict[str, Any]]:
    """The weights of a q35c .npz (as QuantizedTensors, checked against their schemes) and its metadata."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise Q35Error(f"not a q35c .npz file: {err}", Location(path)) from None
    with data:
        if META not in data.files:
            raise Q35Error(f"not a q35c .npz file: no {META}", Location(path))
        meta = json.loads(str(data[META]))
        out: dict[str, QuantizedTensor] = {}
        for name, desc in meta["weights"].items():
            parts = [data[f"{name}.{p}"] if f"{name}.{p}" in data.files else None for p in ("scale", "offset")]
            shape = (int(desc["shape"][0]), int(desc["shape"][1]))
            try:
                out[name] = QuantizedTensor(data[f"{name}.packed"], *parts, shape, parse_scheme(desc["scheme"]))
            except (KeyError, ValueError) as err:
                raise Q35Error(f"weight {name}: {err}", Location(path)) from None
    return out, meta
