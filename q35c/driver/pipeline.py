"""Pipelines: a target's ordered, named stages of passes, and the one runner that applies them.

`Runner.run` applies stages to a module in place with a callback after each stage, which is how
`--print-ir-after-all`, `--print-ir-after=STAGE` and `--dump-ir DIR` work: stage 0 is the graph IR as imported
(named `graph`), stage i the IR after the i-th stage, and the last one the final IR. It is the only place passes
are applied (`q35c.driver.tree` runs several pipelines over one module through it), so every compile follows
the same two rules:

- verification: `verify=True` verifies the module after every stage, `verify=False` only runs the passes;
- errors: a pass that rejects the module (`DiagnosticException`: `PassFailedException`, `VerifyException`)
  becomes `Q35Error("stage 'tile' failed for h100-sxm: <first line>", Location(source))`.

    stages = (Stage("unpack", (UnpackBitsPass(),)), Stage("tile", (TilePass(),)))
    seconds = Runner(target="host").run(module, stages, IRPrinter(sys.stderr, after_all=True))
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp
from xdsl.dialects.utils.format import _print_func_outputs as print_func_outputs  # pyright: ignore[reportPrivateUsage]
from xdsl.dialects.utils.format import print_func_argument
from xdsl.ir import Attribute, BlockArgument, Operation, TypeAttribute
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException

from q35c.driver.slice_text import plain as plain_slice
from q35c.driver.slice_text import print_slice
from q35c.targets.stage import Stage  # targets declare their stages; the driver runs them
from q35c.util.errors import Location, Q35Error

GRAPH_STAGE = "graph"

# Called after each stage with (index, stage name, module); index 0 is the imported graph.
StageCallback = Callable[[int, str, ModuleOp], None]


def make_context() -> Context:
    """A context with every dialect q35c reads or writes: q35 and the upstream ones lowering produces."""
    from xdsl.dialects import get_all_dialects

    from q35c.universe import DIALECTS

    ctx = Context()
    for name, factory in {**get_all_dialects(), **DIALECTS}.items():
        ctx.register_dialect(name, factory)
    return ctx


# Functions with at least this many arguments have their printed argument lists kept (`_TextPrinter`).
LONG_SIGNATURE = 64
SIGNATURES_KEPT = 4


@dataclass(frozen=True, eq=False)
class _Signature:
    """A function's argument list as printed: what it was printed from (the attributes and types compared by
    identity: a module's copies and later stages share them), the naming state before and after, the text and
    each argument's name. An entry function's thousands of weight arguments print the same after every stage."""

    arg_attrs: ArrayAttr[DictionaryAttr]
    types: tuple[Attribute, ...]
    hints: tuple[str | None, ...]
    state: tuple[tuple[tuple[str, int], ...], int]
    text: str
    names: tuple[str, ...]
    names_after: tuple[tuple[str, int], ...]
    next_after: int

    def matches(
        self,
        args: Sequence[BlockArgument],
        attrs: ArrayAttr[DictionaryAttr],
        hints: tuple[str | None, ...],
        state: tuple[tuple[tuple[str, int], ...], int],
    ) -> bool:
        return (
            attrs is self.arg_attrs
            and len(args) == len(self.types)
            and all(arg.type is typ for arg, typ in zip(args, self.types, strict=True))
            and hints == self.hints
            and state == self.state
        )


_SIGNATURES: list[_Signature] = []  # the most recent first


@dataclass(eq=False, repr=False)
class _TextPrinter(Printer):
    """xDSL's printer, writing the same text with fewer calls: a string without a line break goes straight to the
    stream, a string literal (a weight's name in every argument attribute) is escaped whole, not byte by byte,
    each distinct type is printed once, then copied, and so is a long argument list printed before (`_Signature`);
    slices are printed without the generic route (`q35c.driver.slice_text`). A report directory prints every
    stage's module, so printing is much of its time."""

    _types: dict[Attribute, str] = field(default_factory=dict[Attribute, str], init=False)

    def print_attribute(self, attribute: Attribute) -> None:
        if not isinstance(attribute, TypeAttribute) or self.stream is None:
            super().print_attribute(attribute)
            return
        if (text := self._types.get(attribute)) is not None:
            self.print_string(text)
            return
        stream, self.stream = self.stream, io.StringIO()
        try:
            super().print_attribute(attribute)  # keeps the line and column up to date
            text = self.stream.getvalue()
        finally:
            self.stream = stream
        stream.write(text)
        if "\n" not in text:
            self._types[attribute] = text

    def print_string(self, text: str, *, indent: int | None = None) -> None:
        if self.stream is None or "\n" in text:
            super().print_string(text, indent=indent)
            return
        self._current_column += len(text)
        self.stream.write(text)

    def print_op(self, op: Operation) -> None:
        if isinstance(op, func.FuncOp) and self._long_signature(op):
            self._print_func(op)
        elif self.stream is not None and plain_slice(self, op):
            print_slice(self, op)  # type: ignore[arg-type]
        else:
            super().print_op(op)

    def _long_signature(self, op: func.FuncOp) -> bool:
        """A function defined with many arguments (an entry function taking every weight's storage), printed in
        the custom form without debug information or messages: its argument list may come from `_SIGNATURES`."""
        block = op.body.blocks.first
        return (
            self.stream is not None
            and not self.print_generic_format
            and not self.print_debuginfo
            and block is not None
            and len(block.args) >= LONG_SIGNATURE
            and op.arg_attrs is not None
            and op not in self.diagnostic.op_messages
        )

    def _print_func(self, op: func.FuncOp) -> None:
        # As Printer.print_op (a func.func has no results and is isolated from above: a scope of its own), then
        # FuncOp.print and print_func_op_like for a definition, the argument list aside (`_print_arguments`).
        self.enter_scope()
        self.print_string(op.name)
        if op.sym_visibility:
            self.print_string(" ")
            self.print_string(op.sym_visibility.data)
        self.print_string(" ")
        self.print_symbol_name(op.sym_name.data)
        self.print_string("(")
        self._print_arguments(op)
        self.print_string(")")
        print_func_outputs(self, op.function_type.outputs.data, op.res_attrs)
        self.print_op_attributes(
            op.attributes,
            reserved_attr_names=("sym_name", "function_type", "sym_visibility", "arg_attrs"),
            print_keyword=True,
        )
        self.print_string(" ", indent=0)
        self.print_region(op.body, False, False)
        self.exit_scope()

    def _print_arguments(self, op: func.FuncOp) -> None:
        """A function's arguments as print_func_op_like prints them; an argument list printed before (the same
        types, attributes and names, from the same naming state) is copied, and its names given to these."""
        block = op.body.blocks.first
        assert block is not None and op.arg_attrs is not None and self.stream is not None
        args, attrs = block.args, op.arg_attrs
        hints = tuple(arg.name_hint for arg in args)
        state = (tuple(self.ssa_names.items()), self._next_valid_name_id[-1])
        for known in _SIGNATURES:
            if known.matches(args, attrs, hints, state):
                self.print_string(known.text)
                self._ssa_values.update(zip(args, known.names, strict=True))
                self._ssa_names[-1] = dict(known.names_after)
                self._next_valid_name_id[-1] = known.next_after
                return
        stream, self.stream = self.stream, io.StringIO()
        try:
            self.print_list(zip(args, attrs, strict=False), lambda pair: print_func_argument(self, pair[0], pair[1]))
            text = self.stream.getvalue()
        finally:
            self.stream = stream
        stream.write(text)
        if "\n" not in text:
            names = tuple(self._ssa_values[arg] for arg in args)
            after = (tuple(self.ssa_names.items()), self._next_valid_name_id[-1])
            _SIGNATURES.insert(0, _Signature(attrs, tuple(a.type for a in args), hints, state, text, names, *after))
            del _SIGNATURES[SIGNATURES_KEPT:]

    def print_bytes_literal(self, bytestring: bytes) -> None:
        # As Printer.print_bytes_literal: backslash doubled, control bytes, '"' and non-ASCII as \XX.
        escaped = "".join(
            "\\\\" if byte == 0x5C else f"\\{byte:02X}" if byte < 0x20 or byte > 0x7E or byte == 0x22 else chr(byte)
            for byte in bytestring
        )
        self.print_string(f'"{escaped}"')


def module_text(module: Operation) -> str:
    """A module (or any op) as MLIR text in the custom (pretty) form, which mlir-opt reads too."""
    out = io.StringIO()
    _TextPrinter(stream=out).print_op(module)
    return out.getvalue()


def stage_names(stages: Sequence[Stage]) -> list[str]:
    return [GRAPH_STAGE, *(stage.name for stage in stages)]


def first_line(err: Exception) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True, eq=False)
class Runner:
    """Applies stages to a module: the one rule for verification and errors of every compile.

    `verify` verifies the module after each stage. The cost model's compiles (`q35c.driver.cache`) and the
    report's IR dumps (`q35c.report.ir`) run without it for speed: they run every target's pipeline on
    full-size models (verifying a 70B model's IR after every stage of every target costs seconds per build),
    and the IR they run is the IR these verified runs produce. `q35c build --target`, `q35c opt`, `q35c verify`
    and the tests verify after every stage, so a pass that produces invalid IR fails there, at its stage.

    Errors name the `unit` ("stage", or "pass" for `q35c opt`'s one-pass stages), the `target` the stages
    compile for (when given) and point at `source` (the input file, when given).
    """

    verify: bool = True
    target: str | None = None
    source: str | None = None
    unit: str = "stage"
    ctx: Context = field(default_factory=make_context)

    def apply(self, stage: Stage, module: ModuleOp, target: str | None = None) -> float:
        """Run one stage's passes over `module` in place (then verify, if `verify`); the seconds it took.

        `target` overrides the runner's in an error's message."""
        start = time.perf_counter()
        try:
            for p in stage.passes:
                p.apply(self.ctx, module)
            if self.verify:
                module.verify()
        except DiagnosticException as err:
            who = target or self.target
            message = f"{self.unit} '{stage.name}' failed{f' for {who}' if who else ''}: {first_line(err)}"
            raise Q35Error(message, None if self.source is None else Location(self.source)) from None
        return time.perf_counter() - start

    def run(
        self, module: ModuleOp, stages: Sequence[Stage], callback: StageCallback | None = None
    ) -> tuple[float, ...]:
        """Run `stages` over `module` in place, calling `callback(index, stage, module)` first for the graph
        (index 0) and then after every stage; the seconds of each stage (callbacks not counted)."""
        if callback is not None:
            callback(0, GRAPH_STAGE, module)
        seconds: list[float] = []
        for index, stage in enumerate(stages, start=1):
            seconds.append(self.apply(stage, module))
            if callback is not None:
                callback(index, stage.name, module)
        return tuple(seconds)


def run_stages(
    module: ModuleOp, stages: Sequence[Stage], ctx: Context | None = None, callback: StageCallback | None = None
) -> ModuleOp:
    """Run `stages` over `module` in place, verifying after each stage (`Runner`), and return it."""
    Runner(ctx=ctx if ctx is not None else make_context()).run(module, stages, callback)
    return module


def dump_header(stage: str) -> str:
    """The MLIR-style header printed before a stage's IR."""
    return f"// -----// IR Dump After {stage} //----- //"


@dataclass
class IRPrinter:
    """Prints the IR after all stages, or after the named ones, to a stream (stderr on the command line)."""

    stream: TextIO
    after_all: bool = False
    after: frozenset[str] = frozenset()

    def __call__(self, index: int, stage: str, module: ModuleOp) -> None:
        if self.after_all or stage in self.after:
            self.stream.write(f"{dump_header(stage)}\n{module_text(module)}\n\n")


@dataclass
class IRDumper:
    """Writes `NN-<stage>.mlir` for every stage into `directory` (created if needed)."""

    directory: Path
    written: list[Path] = field(default_factory=list[Path])

    def __call__(self, index: int, stage: str, module: ModuleOp) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = self.directory / f"{index:02d}-{stage}.mlir"
        path.write_text(module_text(module) + "\n")
        self.written.append(path)


def chain(*callbacks: StageCallback | None) -> StageCallback:
    """One callback that calls each of the given ones in turn."""
    active = [c for c in callbacks if c is not None]

    def call(index: int, stage: str, module: ModuleOp) -> None:
        for c in active:
            c(index, stage, module)

    return call
