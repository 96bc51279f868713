"""The front end: model files (q35 model language, Hugging Face config.json, GGUF) -> a verified q35 module.

`load_model` is the entry point. `model` is a file path or the name of a bundled example (see
`example_names()`); `quant` replaces the default scheme (for .q35 files their explicit overrides still apply;
for GGUF files it replaces every matrix's stored type); `seq` is T, the tokens in flight, and `context` is C,
the tokens already in the KV cache. C defaults to 0 (the first forward pass: an empty cache); T + C may not
exceed the context length the model declares. `batch` is B, independent sequences run together: activations
have B*T rows (sequence after sequence), the KV caches B*C rows, and every `q35.attention` gets `batch = B`, so
each sequence attends to its own cache and tokens only. The model language's `T` and `C` are these row counts
(B*T, B*C); B = 1 by default.

>>> model = load_model("tiny")
>>> model.name, [f.sym_name.data for f in model.module.ops]
('tiny', ['main', 'decoder'])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from q35c.frontend.emit import to_module
from q35c.frontend.examples import example_names, resolve_model
from q35c.frontend.graph import Graph
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_TOKENS, read_source

__all__ = ["Model", "example_names", "load_graph", "load_model", "resolve_model"]


@dataclass(frozen=True, eq=False)
class Model:
    """A loaded model: its name, the file it came from, the plain-Python graph and the q35 module."""

    name: str
    path: str
    graph: Graph
    module: ModuleOp


def load_graph(model: str, *, quant: str | None = None, seq: int = 1, context: int = 0, batch: int = 1) -> Graph:
    """The plain-Python graph of `model` (see load_model); no IR is built."""
    if batch < 1:
        raise Q35Error(f"batch (independent sequences) must be at least 1, got {batch}")
    if seq < 1:
        raise Q35Error(f"seq (tokens in flight) must be at least 1, got {seq}")
    if context < 0:
        raise Q35Error(f"context (cached tokens) must be at least 0, got {context}")
    for what, rows in (("batch x seq", batch * seq), ("batch x context", batch * context)):
        if rows > MAX_TOKENS:
            raise Q35Error(f"{what} = {rows:,} token rows is more than the limit of {MAX_TOKENS:,} (2^24)")
    if quant is not None:
        try:
            parse_scheme(quant)
        except ValueError as err:
            raise Q35Error(f"invalid quantization scheme '{quant}': {err}") from None
    path = resolve_model(model)
    suffix = Path(path).suffix
    if suffix == ".q35":
        from q35c.frontend.language import load_text

        graph = load_text(read_source(path), path, quant=quant, seq=batch * seq, context=batch * context)
    elif suffix == ".json":
        from q35c.frontend.hf_config import load_config

        graph = load_config(path, quant=quant, seq=batch * seq, context=batch * context)
    else:
        from q35c.frontend.gguf_file import load_gguf

        graph = load_gguf(path, quant=quant, seq=batch * seq, context=batch * context)
    if batch != 1:
        graph = replace(graph, seq=seq, context=context, batch=batch)
    if graph.max_context is not None and seq + context > graph.max_context:
        raise Q35Error(
            f"seq {seq} + context {context} exceeds the model's context length {graph.max_context}", Location(path)
        )
    return graph


def load_model(model: str, *, quant: str | None = None, seq: int = 1, context: int = 0, batch: int = 1) -> Model:
    """Load `model` (a .q35, .json or .gguf path, or a bundled example's name) as a verified q35 module.

    Bad input raises Q35Error, located in the file where possible.
    """
    graph = load_graph(model, quant=quant, seq=seq, context=context, batch=batch)
    return Model(graph.name, graph.source, graph, to_module(graph))
