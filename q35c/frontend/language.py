"""The model language: elaborate a parsed `.q35` file into a `Graph`, checking names, shapes and schemes.

Names live in two kinds: numbers (`dim`, `const`, and the built-in `T` tokens in flight and `C` cached
tokens) and tensors (`input`, `param`, `cache`, assignments). A `block NAME x COUNT { ... }` reads tensors
defined before it; every such tensor it assigns is carried to the next repetition and is visible after the
block. See docs/model-language.md.

>>> g = load_text('dim d = 64\\ninput x: [T, d]\\nparam w: [d, d]\\noutput y = linear(x, w)\\n', "m.q35")
>>> [w.name for w in g.weights], g.main.outputs[0].type.mlir()
(['w'], 'tensor<1x64xf16>')
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable
from pathlib import Path

from lark import Token, Tree

from q35c.frontend.builder import BodyBuilder, located
from q35c.frontend.graph import Block, Graph, TensorType, Value, WeightType, weight_uses
from q35c.frontend.ops import OPS
from q35c.frontend.parse import parse
from q35c.frontend.quant import Override, QuantPolicy, assign_schemes, unused_overrides
from q35c.ir.schemes import Scheme, parse_scheme
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import I64_MAX, MAX_DIM, MAX_LAYERS, integer_error, parse_int

Number = int | float
BUILTIN_DIMS = {
    "T": "the number of token rows in flight (batch x seq)",
    "C": "the number of cached token rows (batch x context)",
}
_TENSOR_OPS = ("add", "mul")  # `a + b` and `a * b`
_ARITHMETIC = ("add", "sub", "mul", "div")


def _tensor_operands(node: Tree[object]) -> list[Tree[object]]:
    """The tensor operands of `a + b`, `a * b` or an op call (whose positional arguments they are)."""
    if node.data in _TENSOR_OPS:
        return node.children  # type: ignore[return-value]
    return [a for a in node.children[1:] if isinstance(a, Tree) and a.data != "kwarg"]


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class _Scope:
    """Tensor names visible in main or in a block; a block captures what it reads from main."""

    def __init__(self, builder: BodyBuilder, outer: _Scope | None = None) -> None:
        self.builder = builder
        self.outer = outer
        self.values: dict[str, Value] = {}
        self.declared: set[str] = set()  # params and caches: not reassignable
        self.captured: list[tuple[Value, Value]] = []  # (value in main, block input)
        self.updated: list[str] = []  # main tensors this block assigns, in order

    def visible(self) -> set[str]:
        return set(self.values) | (self.outer.visible() if self.outer else set())


class _Elaborator:
    def __init__(self, path: str, text: str, seq: int, context: int) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.numbers: dict[str, Number] = {"T": seq, "C": context}
        self.dims: list[tuple[str, int]] = []
        self.name = Path(path).stem
        self.max_context: int | None = None
        self.default: tuple[Scheme, Location] | None = None
        self.overrides: list[Override] = []
        self.outputs: list[Value] = []
        self.blocks: list[Block] = []
        self.block_locals: dict[str, str] = {}  # name defined only inside a block -> that block
        self.ids = itertools.count()
        self.repetitions = 0  # of all blocks so far (at most MAX_LAYERS)

    # -- locations and errors ----------------------------------------------------------------------------

    def loc(self, node: Tree[object] | Token) -> Location:
        if isinstance(node, Token):
            return Location(self.path, node.line, node.column)
        return Location(self.path, node.meta.line, node.meta.column)

    def error(self, message: str, node: Tree[object] | Token) -> Q35Error:
        return located(message, self.loc(node), self.lines)

    # -- numbers -----------------------------------------------------------------------------------------

    def number(self, root: Tree[object] | Token, scope: _Scope | None = None) -> Number:
        """The value of a number expression, evaluated with an explicit stack (a long `1 + 1 + ...` is deep);
        every intermediate result stays an i64 or a finite float."""
        results: list[Number] = []
        stack: list[tuple[Tree[object], bool]] = [(root, False)]  # type: ignore[list-item]
        while stack:
            node, operands_done = stack.pop()
            if node.data not in _ARITHMETIC:
                results.append(self.number_leaf(node, scope))
            elif not operands_done:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.children))  # type: ignore[misc]
            else:
                b = results.pop()
                results.append(self.arithmetic(node, results.pop(), b))
        return results[0]

    def number_leaf(self, node: Tree[object], scope: _Scope | None) -> Number:
        kind = node.data
        if kind == "number":
            text = str(node.children[0])
            if any(c in text for c in ".eE"):
                return self.in_range(float(text), node)
            value = parse_int(text, "integer")
            if isinstance(value, str):
                raise self.error(value, node)
            return self.in_range(value, node)
        if kind == "ref":
            name = str(node.children[0])
            if name in self.numbers:
                return self.numbers[name]
            if scope is not None and name in scope.visible():
                raise self.error(f"'{name}' is a tensor; a number is expected here", node)
            raise self.error(f"undefined name '{name}'{_suggest(name, self.numbers)}", node)
        raise self.error("an op call is not allowed here; a number is expected", node)

    def arithmetic(self, node: Tree[object], a: Number, b: Number) -> Number:
        kind = node.data
        if kind == "add":
            return self.in_range(a + b, node)
        if kind == "sub":
            return self.in_range(a - b, node)
        if kind == "mul":
            return self.in_range(a * b, node)
        if b == 0:
            raise self.error("division by zero", node)
        if isinstance(a, int) and isinstance(b, int):
            if a % b != 0:
                raise self.error(f"{a} / {b} is not a whole number", node)
            return a // b
        return self.in_range(a / b, node)

    def in_range(self, value: Number, node: Tree[object]) -> Number:
        """`value` if it is an i64 or a finite float; otherwise a located error naming the limit."""
        if isinstance(value, int) and not -I64_MAX <= value <= I64_MAX:
            raise self.error(f"{value:.3e} is beyond the range of i64 (|n| <= {I64_MAX}, 2^63 - 1)", node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"number out of range: {value} (numbers must be finite)", node)
        return value

    def positive_int(self, node: Tree[object], what: str, scope: _Scope | None = None, maximum: int = MAX_DIM) -> int:
        value = self.number(node, scope)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or value < 0 or (value == 0 and what != "dimension"):
            raise self.error(f"{what} must be a positive integer, got {value}", node)
        problem = integer_error(value, what, maximum, 0)
        if problem is not None:
            raise self.error(problem, node)
        return value

    def shape(self, node: Tree[object], scope: _Scope) -> tuple[int, ...]:
        return tuple(self.positive_int(c, "dimension", scope) for c in node.children)  # type: ignore[arg-type]

    # -- tensors -----------------------------------------------------------------------------------------

    def lookup(self, token: Token, scope: _Scope) -> Value:
        name = str(token)
        if name in scope.values:
            return scope.values[name]
        if scope.outer is not None and name in scope.outer.values:
            outer = scope.outer.values[name]
            if isinstance(outer.type, WeightType):
                raise self.error(
                    f"param '{name}' is declared outside this block; declare params inside the block "
                    "(each repetition has its own)",
                    token,
                )
            inner = scope.builder.input(name, outer.type, self.loc(token))
            scope.captured.append((outer, inner))
            scope.values[name] = inner
            return inner
        if name in self.numbers:
            raise self.error(f"'{name}' is a number; a tensor is expected here", token)
        if name in self.block_locals:
            raise self.error(
                f"undefined tensor '{name}': it is local to block {self.block_locals[name]} (only tensors "
                "defined before a block and assigned in it are visible after it)",
                token,
            )
        raise self.error(f"undefined tensor '{name}'{_suggest(name, scope.visible())}", token)

    def tensor(self, root: Tree[object], scope: _Scope, name: str = "") -> Value:
        """The value of a tensor expression (`name` names its outermost op), evaluated with an explicit stack:
        operands first, left to right, so deep nesting costs no recursion."""
        results: list[Value] = []
        stack: list[tuple[Tree[object], bool]] = [(root, False)]
        while stack:
            node, operands_done = stack.pop()
            kind = node.data
            label = name if node is root else ""
            if kind in (*_TENSOR_OPS, "call") and not operands_done:
                stack.append((node, True))
                stack.extend((operand, False) for operand in reversed(_tensor_operands(node)))
            elif kind in _TENSOR_OPS:
                b = results.pop()
                results.append(scope.builder.op(kind, [results.pop(), b], name=label, loc=self.loc(node)))
            elif kind == "call":
                count = len(_tensor_operands(node))
                operands = results[len(results) - count :]
                del results[len(results) - count :]
                results.append(self.call(node, operands, scope, label))
            elif kind == "ref":
                results.append(self.lookup(node.children[0], scope))  # type: ignore[arg-type]
            elif kind in ("sub", "div"):
                sign = "-" if kind == "sub" else "/"
                raise self.error(f"'{sign}' is not defined on tensors (only + and *)", node)
            else:
                raise self.error("a number is not a tensor; a tensor expression is expected here", node)
        return results[0]

    def call(self, node: Tree[object], operands: list[Value], scope: _Scope, name: str) -> Value:
        """The op call `node` on its evaluated tensor operands; its attributes are evaluated here."""
        op_token, *args = node.children
        assert isinstance(op_token, Token)
        attrs: dict[str, Number] = {}
        for arg in args:
            if isinstance(arg, Tree) and arg.data == "kwarg":
                key, value = arg.children
                if str(key) in attrs:
                    raise self.error(f"attribute {key} given twice", key)  # type: ignore[arg-type]
                attrs[str(key)] = self.number(value, scope)  # type: ignore[arg-type]
        op = str(op_token)
        if op not in OPS:
            known = ", ".join(sorted(OPS))
            raise self.error(f"unknown op '{op}'{_suggest(op, OPS)} (known ops: {known})", op_token)
        return scope.builder.op(op, operands, attrs, name=name, loc=self.loc(op_token))

    # -- statements --------------------------------------------------------------------------------------

    def declare(self, token: Token, scope: _Scope) -> str:
        name = str(token)
        if name in BUILTIN_DIMS:
            raise self.error(f"'{name}' is built in: {BUILTIN_DIMS[name]}", token)
        if name in self.numbers:
            raise self.error(f"'{name}' is already defined as a number", token)
        if name in scope.values or (scope.outer is not None and name in scope.outer.values):
            raise self.error(f"'{name}' is already defined", token)
        return name

    def statement(self, item: Tree[object], scope: _Scope) -> None:
        kind = item.data
        children = item.children
        builder = scope.builder
        if kind in ("input", "cache"):
            token, shape, dtype = children
            name = self.declare(token, scope)  # type: ignore[arg-type]
            typ = TensorType(self.shape(shape, scope), str(dtype) if dtype else builder.dtype)  # type: ignore[arg-type]
            if kind == "input":
                scope.values[name] = builder.input(name, typ, self.loc(token))  # type: ignore[arg-type]
            else:
                scope.values[name] = builder.cache(name, typ, self.loc(token))  # type: ignore[arg-type]
                scope.declared.add(name)
        elif kind == "param":
            token, shape = children
            name = self.declare(token, scope)  # type: ignore[arg-type]
            scope.values[name] = builder.param(name, self.shape(shape, scope), self.loc(token))  # type: ignore[arg-type]
            scope.declared.add(name)
        elif kind in ("assign", "output"):
            self.assign(children[0], children[1], scope, output=kind == "output")  # type: ignore[arg-type]
        elif kind == "block":
            self.block(item, scope)
        else:
            self.header(item)

    def assign(self, token: Token, expr: Tree[object], scope: _Scope, *, output: bool) -> None:
        name = str(token)
        if name in self.numbers:
            raise self.error(f"'{name}' is already defined as a number", token)
        if name in scope.declared:
            raise self.error(f"cannot assign to '{name}': it is a param or cache", token)
        value = self.tensor(expr, scope, name)
        outer = scope.outer.values.get(name) if scope.outer is not None else None
        if outer is not None:
            if outer.type != value.type:
                raise self.error(
                    f"block assigns {name} a {value.type}, but {name} is a {outer.type} outside the block "
                    "(a repeated block must keep the types of what it carries)",
                    token,
                )
            if name not in scope.updated:
                scope.updated.append(name)
        scope.values[name] = value
        if output:
            self.outputs.append(value)

    def block(self, item: Tree[object], scope: _Scope) -> None:
        token, count_node, *body = item.children
        assert isinstance(token, Token)
        name = str(token)
        if name in {b.name for b in self.blocks} or name == "main":
            raise self.error(f"block '{name}' is already defined", token)
        count = self.positive_int(count_node, "the repetition count", scope, MAX_LAYERS)  # type: ignore[arg-type]
        self.repetitions += count
        if self.repetitions > MAX_LAYERS:
            raise self.error(
                f"the blocks repeat {self.repetitions} times in all, more than the limit of {MAX_LAYERS} "
                "(the most layers q35c builds)",
                count_node,  # type: ignore[arg-type]
            )
        inner = _Scope(BodyBuilder(scope.builder.dtype, self.lines, self.ids), scope)
        for stmt in body:
            self.statement(stmt, inner)  # type: ignore[arg-type]
        if not inner.updated:
            raise self.error(
                f"block {name} assigns no tensor defined before it, so its repetitions would have no effect "
                "(e.g. update the residual stream: x = x + ...)",
                token,
            )
        carried = inner.updated
        outputs = [inner.values[n] for n in carried]
        input_index = {v.name: i for i, (_, v) in enumerate(inner.captured)}
        block = Block(name, inner.builder.build(outputs), self.loc(token))
        self.blocks.append(block)
        results = scope.builder.repeat(
            block, count, [o for o, _ in inner.captured], [input_index.get(n) for n in carried], self.loc(token)
        )
        for local in inner.values:
            if local not in scope.values:
                self.block_locals.setdefault(local, name)
        scope.values.update(zip(carried, results, strict=True))

    def header(self, item: Tree[object]) -> None:
        kind = item.data
        children = item.children
        if kind == "model":
            self.name = str(children[0])[1:-1]
        elif kind == "context":
            self.max_context = self.positive_int(children[0], "the context length")  # type: ignore[arg-type]
        elif kind in ("dim", "const"):
            token, expr = children
            name = str(token)
            if name in BUILTIN_DIMS:
                raise self.error(f"'{name}' is built in: {BUILTIN_DIMS[name]}", token)  # type: ignore[arg-type]
            if name in self.numbers:
                raise self.error(f"'{name}' is already defined", token)  # type: ignore[arg-type]
            if kind == "dim":
                value: Number = self.positive_int(expr, f"dim {name}")  # type: ignore[arg-type]
                self.dims.append((name, value))
            else:
                value = self.number(expr)  # type: ignore[arg-type]
            self.numbers[name] = value
        elif kind == "quant":
            if self.default is not None:
                raise self.error(f"default scheme given twice (first at line {self.default[1].line})", item)
            self.default = (self.scheme(children[0]), self.loc(item))  # type: ignore[arg-type]
        elif kind == "override":
            pattern, spec = children
            scheme = self.scheme(spec)  # type: ignore[arg-type]
            self.overrides.append(Override(str(pattern)[1:-1], scheme, self.loc(pattern)))  # type: ignore[arg-type]

    def scheme(self, token: Token) -> Scheme:
        try:
            return parse_scheme(str(token))
        except ValueError as err:
            raise self.error(str(err), token) from None


def load_text(text: str, path: str, *, quant: str | None = None, seq: int = 1, context: int = 0) -> Graph:
    """Elaborate model-language `text` (from file `path`) into a Graph.

    `quant` replaces the file's default scheme; the file's explicit overrides still apply.
    """
    tree = parse(text, path)
    ela = _Elaborator(path, text, seq, context)
    items: list[Tree[object]] = tree.children  # type: ignore[assignment]
    dtype = "f16"
    for item in items:
        if item.data == "dtype":
            dtype = str(item.children[0])
            if dtype == "i32":
                raise ela.error("the activation dtype must be f16 or f32", item)
    main = _Scope(BodyBuilder(dtype, ela.lines, ela.ids))
    for item in items:
        if item.data != "dtype":
            ela.statement(item, main)
    if not ela.outputs:
        raise Q35Error("the model has no output (add e.g. `output logits = linear(x, lm_head)`)", Location(path))
    body = main.builder.build(ela.outputs)
    if quant is not None:
        policy = QuantPolicy(parse_scheme(quant), tuple(ela.overrides), "--quant")
    elif ela.default is not None:
        policy = QuantPolicy(ela.default[0], tuple(ela.overrides), f"the default at line {ela.default[1].line}")
    else:
        policy = QuantPolicy(parse_scheme("fp16"), tuple(ela.overrides), "the default (fp16)")
    weights = assign_schemes(weight_uses(body, tuple(ela.blocks)), policy, ela.lines)
    for override in unused_overrides(policy, weights):
        raise located(
            f'quant override "{override.pattern}" matches no weight matrix (vectors such as norm gains are '
            "always fp16)",
            override.loc,
            ela.lines,
        )
    return Graph(
        name=ela.name,
        source=path,
        main=body,
        blocks=tuple(ela.blocks),
        weights=weights,
        dims=tuple(ela.dims),
        seq=seq,
        context=context,
        max_context=ela.max_context,
    )
