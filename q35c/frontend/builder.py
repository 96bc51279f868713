"""Build a graph `Body` op by op, type-checking each op as it is added.

Both the model language and the Python importers (config.json, GGUF) build graphs with this, so they share
one set of typing rules and produce identical graphs for identical models.

>>> b = BodyBuilder()
>>> x = b.input("x", TensorType((1, 64)))
>>> w = b.param("up", (128, 64))
>>> y = b.op("silu", [b.op("linear", [x, w])], name="y")
>>> y.type.mlir(), len(b.build([y]).steps)
('tensor<1x128xf16>', 2)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from q35c.frontend.graph import Block, Body, Node, Repeat, TensorType, Value, WeightType
from q35c.frontend.ops import OPS, infer
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_LAYERS, elements_error, integer_error


def located(message: str, loc: Location | None, lines: Sequence[str] = ()) -> Q35Error:
    """A Q35Error at `loc`, with the source line as context when the line is known."""
    context = None
    if loc is not None and loc.line is not None and 0 < loc.line <= len(lines):
        context = lines[loc.line - 1]
    return Q35Error(message, loc, context)


class BodyBuilder:
    """Collects the inputs, caches, params and steps of one body (main or a block).

    `dtype` is the activation element type (f16 or f32); `lines` the source text for error context.
    Value ids come from `ids`, shared by all builders of one graph.
    """

    def __init__(self, dtype: str = "f16", lines: Sequence[str] = (), ids: itertools.count[int] | None = None) -> None:
        self.dtype = dtype
        self.lines = lines
        self.ids = ids if ids is not None else itertools.count()
        self.inputs: list[Value] = []
        self.caches: list[Value] = []
        self.params: list[Value] = []
        self.steps: list[Node | Repeat] = []

    def _value(self, name: str, typ: TensorType | WeightType, loc: Location | None) -> Value:
        problem = elements_error(typ.shape, f"{name or 'a result'} {typ}")
        if problem is not None:
            raise self.error(problem, loc)
        return Value(next(self.ids), name, typ, loc)

    def error(self, message: str, loc: Location | None) -> Q35Error:
        return located(message, loc, self.lines)

    def input(self, name: str, typ: TensorType, loc: Location | None = None) -> Value:
        value = self._value(name, typ, loc)
        self.inputs.append(value)
        return value

    def cache(self, name: str, typ: TensorType, loc: Location | None = None) -> Value:
        value = self._value(name, typ, loc)
        self.caches.append(value)
        return value

    def param(self, name: str, shape: Sequence[int], loc: Location | None = None) -> Value:
        if len(shape) not in (1, 2) or any(d <= 0 for d in shape):
            raise self.error(f"param {name} must have shape [D] or [N, K] of positive sizes, got {list(shape)}", loc)
        value = self._value(name, WeightType(tuple(shape)), loc)
        self.params.append(value)
        return value

    def op(
        self,
        op: str,
        operands: Sequence[Value],
        attrs: Mapping[str, int | float] | None = None,
        *,
        name: str = "",
        loc: Location | None = None,
    ) -> Value:
        """Append `op` and return its result; a type error becomes a Q35Error at `loc`."""
        if op not in OPS:
            raise self.error(f"unknown op '{op}' (known: {', '.join(sorted(OPS))})", loc)
        try:
            typ, full_attrs = infer(op, [v.type for v in operands], attrs or {}, self.dtype)
        except ValueError as err:
            raise self.error(str(err), loc) from None
        result = self._value(name, typ, loc)
        self.steps.append(Node(op, tuple(operands), full_attrs, result, loc))
        return result

    def repeat(
        self,
        block: Block,
        count: int,
        inputs: Sequence[Value],
        feeds: Sequence[int | None],
        loc: Location | None = None,
    ) -> list[Value]:
        """Append `count` repetitions of `block`; returns main's values for the block's outputs."""
        problem = integer_error(count, f"block {block.name}'s repetition count", MAX_LAYERS)
        if problem is not None:
            raise self.error(problem, loc)
        body = block.body
        for outer, inner in zip(inputs, body.inputs, strict=True):
            if outer.type != inner.type:
                raise self.error(f"block {block.name} input {inner.name} is {inner.type}, got {outer.type}", loc)
        for j, i in enumerate(feeds):
            if i is not None and body.outputs[j].type != body.inputs[i].type:
                out = body.outputs[j]
                raise self.error(
                    f"block {block.name} updates {out.name} to {out.type}, but the next repetition reads it as "
                    f"{body.inputs[i].type}; a repeated block must keep the types of what it carries",
                    out.loc or loc,
                )
        outputs = [self._value(v.name, v.type, loc) for v in body.outputs]
        self.steps.append(Repeat(block.name, count, tuple(inputs), tuple(feeds), tuple(outputs), loc))
        return outputs

    def build(self, outputs: Sequence[Value]) -> Body:
        return Body(tuple(self.inputs), tuple(self.caches), tuple(self.params), tuple(self.steps), tuple(outputs))
