"""The model graph in plain Python: what every front end (model language, config.json, GGUF) produces.

A `Graph` is a typed dataflow program with resolved shapes. It is small on purpose: `emit.py` turns it into
the q35 dialect, and `q35c info` reads its weight list. Values are SSA: each `Value` is defined once.

    main:     inputs (token ids, positions), caches, params, steps (ops and repeated blocks), outputs
    a block:  inputs (tensors it reads from outside), caches and params (one set per repetition), ops,
              outputs (the tensors it updates, carried from one repetition to the next)

Weights are declared by shape only; their schemes are chosen per instance (`Graph.weights`), so a block whose
layers are stored differently is still one block here (emit makes one func per distinct weight signature).

>>> TensorType((1, 64)).mlir()
'tensor<1x64xf16>'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from q35c.ir.schemes import Scheme
from q35c.util.errors import Location

DTYPES = ("f16", "f32", "i32")


@dataclass(frozen=True)
class TensorType:
    """A static-shaped activation tensor, e.g. tokens x features of f16."""

    shape: tuple[int, ...]
    dtype: str = "f16"

    def mlir(self) -> str:
        return "tensor<" + "".join(f"{d}x" for d in self.shape) + self.dtype + ">"

    def __str__(self) -> str:
        return self.mlir()


@dataclass(frozen=True)
class WeightType:
    """A weight declared by shape ([N, K] for matrices, [D] for gain vectors); the scheme comes later."""

    shape: tuple[int, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class Value:
    """An SSA value: `id` is unique within its body, `name` is the source name (empty for temporaries)."""

    id: int
    name: str
    type: TensorType | WeightType
    loc: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Node:
    """One graph op: `op` is the q35 op name without the prefix (linear, rmsnorm, ...)."""

    op: str
    operands: tuple[Value, ...]
    attrs: tuple[tuple[str, int | float], ...]
    result: Value
    loc: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Repeat:
    """`count` repetitions of a block in main.

    `inputs` are main's values for the block's inputs in the first repetition. `feeds[j]` is the index of the
    block input that output j replaces in the next repetition (None: nothing reads it back). `outputs` are
    main's values for the block's outputs after the last repetition.
    """

    block: str
    count: int
    inputs: tuple[Value, ...]
    feeds: tuple[int | None, ...]
    outputs: tuple[Value, ...]
    loc: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Body:
    """The body of main or of a block; params and caches of a block exist once per repetition."""

    inputs: tuple[Value, ...]
    caches: tuple[Value, ...]
    params: tuple[Value, ...]
    steps: tuple[Node | Repeat, ...]
    outputs: tuple[Value, ...]


@dataclass(frozen=True)
class Block:
    name: str
    body: Body
    loc: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WeightDesc:
    """One weight instance of the model: `name` is unique (`decoder.3.q_proj`), `kind` its declared name
    (`q_proj`), `layer` the repetition it belongs to (`decoder.3`, or None outside blocks)."""

    name: str
    kind: str
    layer: str | None
    shape: tuple[int, ...]
    scheme: Scheme

    @property
    def params(self) -> int:
        total = 1
        for d in self.shape:
            total *= d
        return total


@dataclass(frozen=True)
class Graph:
    """A whole model: main, its blocks, every weight instance with its scheme, and build parameters.

    `seq` is T (tokens in flight), `context` is C (tokens already in the KV cache), each per sequence; `batch`
    is B, the sequences run together (tensors have B*T and B*C rows); `max_context` is the context length the
    model declares, if any.
    """

    name: str
    source: str
    main: Body
    blocks: tuple[Block, ...]
    weights: tuple[WeightDesc, ...]
    dims: tuple[tuple[str, int], ...]
    seq: int
    context: int
    max_context: int | None = None
    notes: tuple[str, ...] = ()
    batch: int = 1

    def block(self, name: str) -> Block:
        return next(b for b in self.blocks if b.name == name)


def instance_name(layer: str | None, name: str) -> str:
    """The unique name of a param or cache: `decoder.3.q_proj` inside repetition 3 of block decoder.

    >>> instance_name("decoder.3", "q_proj"), instance_name(None, "lm_head")
    ('decoder.3.q_proj', 'lm_head')
    """
    return name if layer is None else f"{layer}.{name}"


def weight_uses(main: Body, blocks: tuple[Block, ...]) -> list[tuple[str | None, Value]]:
    """Every weight instance as (layer or None, declared param), in the order the graph first uses them.

    Main's params come where an op first reads them (unused ones last); a repetition's params come together
    at that repetition, in declaration order.
    """
    by_name = {b.name: b for b in blocks}
    result: list[tuple[str | None, Value]] = []
    seen: set[int] = set()
    for step in main.steps:
        if isinstance(step, Repeat):
            params = by_name[step.block].body.params
            result.extend((f"{step.block}.{i}", p) for i in range(step.count) for p in params)
            continue
        for operand in step.operands:
            if isinstance(operand.type, WeightType) and operand.id not in seen:
                seen.add(operand.id)
                result.append((None, operand))
    result.extend((None, p) for p in main.params if p.id not in seen)
    return result
