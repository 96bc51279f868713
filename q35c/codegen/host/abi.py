"""The C ABI of a host library: the phases' final modules merged into one, each function an exported entry.

Every function of a phase's final module becomes a C entry named `q35_<phase>_<name>` (the phase's entry `main`
is `q35_<phase>_step`; a kernel `linear.1x64x64.q3p5_g32_dense.f16` of the decode step is
`q35_decode_linear_1x64x64_q3p5_g32_dense_f16`). Each is public and carries `llvm.emit_c_interface`, so after
bufferization (results become trailing output buffers) MLIR's lowering emits

    void _mlir_ciface_q35_decode_step(q35_memref_1 *ids, ..., q35_memref_2 *out0);

where a `q35_memref_R` is MLIR's ranked memref descriptor (allocated and aligned pointers, offset, R sizes, R
strides). `Entry` records each entry's arguments (name, shape, element type, and for weight storage the
parameter and role tagged by `materialize-weights`) and results; `header` writes the C declarations.

The memory spaces `schedule-memory` put on staging buffers name cache levels, which a CPU addresses like any
other memory: they are dropped here (an LLVM address space other than 0 means something else on x86).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Attribute

from q35c.ir.attrs import INTERLEAVE_ATTR, PARAM_ATTR, STORAGE_ATTR, kernel_kind

STEP = "main"  # a phase module's entry function
C_INTERFACE = "llvm.emit_c_interface"


@dataclass(frozen=True)
class Tensor:
    """One argument or result of an entry: its name, shape and MLIR element type (`f16`, `i32`, ...)."""

    name: str
    shape: tuple[int, ...]
    element: str
    param: str | None = None  # the weight this storage tensor belongs to
    role: str | None = None  # codes, scale or offset
    # Rows interleaved in storage: (R, G), the memory of rows R b .. R b + R - 1 holding, for each of the G
    # column groups of a row in turn, those R rows' runs of it (`q35.interleave`, `runtime.interleave_rows`).
    interleave: tuple[int, int] | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "shape": list(self.shape), "element": self.element}
        if self.param is not None:
            data["param"] = self.param
        if self.role is not None:
            data["role"] = self.role
        if self.interleave is not None:
            data["interleave"] = list(self.interleave)
        return data


@dataclass(frozen=True)
class Entry:
    """An exported function: its C name, what it is (`step` or a kernel kind), arguments and results."""

    symbol: str
    phase: str
    kind: str
    source: str  # the function's name in the phase's final module
    args: tuple[Tensor, ...]
    results: tuple[Tensor, ...]

    @property
    def c_name(self) -> str:
        return f"_mlir_ciface_{self.symbol}"

    def to_json(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "c_name": self.c_name,
            "phase": self.phase,
            "kind": self.kind,
            "source": self.source,
            "args": [t.to_json() for t in self.args],
            "results": [t.to_json() for t in self.results],
        }


def c_identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def symbol_for(phase: str, name: str) -> str:
    return f"q35_{phase}_step" if name == STEP else f"q35_{phase}_{c_identifier(name)}"


def _tensor(typ: Attribute, name: str, attrs: DictionaryAttr | None = None) -> Tensor:
    assert isinstance(typ, TensorType), f"{name}: only tensors cross the C ABI, got {typ}"
    param = role = None
    interleave = None
    if attrs is not None:
        p, r = attrs.data.get(PARAM_ATTR), attrs.data.get(STORAGE_ATTR)
        param = p.data if isinstance(p, StringAttr) else None
        role = r.data if isinstance(r, StringAttr) else None
        layout = attrs.data.get(INTERLEAVE_ATTR)
        if isinstance(layout, ArrayAttr):
            rows, groups = (v.value.data for v in layout.data)  # type: ignore[attr-defined]
            interleave = (rows, groups)
    return Tensor(name, tuple(typ.get_shape()), str(typ.element_type), param, role, interleave)


def _arg_names(fn: func.FuncOp) -> list[str]:
    block = fn.body.blocks.first
    names: list[str] = []
    for i, arg in enumerate(block.args if block is not None else ()):
        names.append(c_identifier(arg.name_hint) if arg.name_hint else f"arg{i}")
    return names


def _describe(fn: func.FuncOp, phase: str) -> Entry:
    name = fn.sym_name.data
    attrs = fn.arg_attrs.data if fn.arg_attrs is not None else (None,) * len(fn.function_type.inputs.data)
    args = tuple(_tensor(t, n, a) for t, n, a in zip(fn.function_type.inputs.data, _arg_names(fn), attrs, strict=True))
    results = tuple(_tensor(t, f"out{i}") for i, t in enumerate(fn.function_type.outputs.data))
    kind = "step" if name == STEP else (kernel_kind(fn) or "function")
    return Entry(symbol_for(phase, name), phase, kind, name, args, results)


def _rename_calls(fn: func.FuncOp, phase: str) -> None:
    for op in fn.walk():
        if isinstance(op, func.CallOp):
            op.callee = SymbolRefAttr(symbol_for(phase, op.callee.string_value()))


def _drop_memory_spaces(fn: func.FuncOp) -> None:
    for op in fn.walk():
        if op.name == "bufferization.alloc_tensor":
            op.attributes.pop("memory_space", None)


def merge_phases(modules: Mapping[str, ModuleOp]) -> tuple[ModuleOp, tuple[Entry, ...]]:
    """One module holding every phase's functions under their C names (the inputs are cloned, not changed),
    and the entries it exports, in order: each phase's step first, then its other functions."""
    ops: list[func.FuncOp] = []
    entries: list[Entry] = []
    for phase, module in modules.items():
        fns = [op.clone() for op in module.ops if isinstance(op, func.FuncOp)]
        fns.sort(key=lambda f: f.sym_name.data != STEP)
        for fn in fns:
            entries.append(_describe(fn, phase))
            fn.sym_name = StringAttr(symbol_for(phase, fn.sym_name.data))
            fn.sym_visibility = None
            fn.attributes[C_INTERFACE] = UnitAttr()
            _rename_calls(fn, phase)
            _drop_memory_spaces(fn)
            ops.append(fn)
    symbols = [e.symbol for e in entries]
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    assert not duplicates, f"functions map to the same C name: {', '.join(duplicates)}"
    return ModuleOp(ops), tuple(entries)


def with_layouts(merged: ModuleOp, entries: Sequence[Entry]) -> tuple[Entry, ...]:
    """The entries described again from the merged module's functions, after the host passes: their arguments'
    storage layouts (`q35.interleave`) are the passes' choice."""
    functions = {op.sym_name.data: op for op in merged.ops if isinstance(op, func.FuncOp)}
    described: list[Entry] = []
    for e in entries:
        fn = functions[e.symbol]
        attrs = fn.arg_attrs.data if fn.arg_attrs is not None else (None,) * len(e.args)
        args = tuple(
            _tensor(t, spec.name, a) for t, spec, a in zip(fn.function_type.inputs.data, e.args, attrs, strict=True)
        )
        described.append(Entry(e.symbol, e.phase, e.kind, e.source, args, e.results))
    return tuple(described)


_C_TYPES = {"f16": "_Float16", "f32": "float", "f64": "double", "i8": "int8_t", "i32": "int32_t", "i64": "int64_t"}


def _describe_tensor(t: Tensor) -> str:
    dims = "x".join(str(d) for d in t.shape) or "scalar"
    words = " ".join(v for v in (t.param, t.role) if v)
    if t.interleave is not None:
        words += f"; rows interleaved by {t.interleave[0]} in {t.interleave[1]} column groups"
    tag = f" ({words})" if t.role is not None else ""
    return f"{t.name}: {dims} {t.element}{tag}"


def header(library: str, title: str, entries: Sequence[Entry]) -> str:
    """C declarations of every entry, with MLIR's memref descriptors per rank."""
    ranks = sorted({len(t.shape) for e in entries for t in (*e.args, *e.results)})
    guard = f"Q35_{c_identifier(library).upper()}_H"
    lines = [
        f"/* {title}",
        " * Generated by q35c. Each argument is a pointer to MLIR's ranked memref descriptor of its rank; results",
        " * are the trailing arguments, buffers the caller allocates. Elements: f16 = _Float16, f32 = float,",
        " * iN = intN_t. Threads: OpenMP (omp_set_num_threads or OMP_NUM_THREADS). */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stdint.h>",
        "",
    ]
    for rank in ranks:
        dims = f" int64_t sizes[{rank}]; int64_t strides[{rank}];" if rank else ""
        lines.append(f"typedef struct {{ void *allocated; void *aligned; int64_t offset;{dims} }} q35_memref_{rank};")
    for e in entries:
        lines.append("")
        lines.append(f"/* {e.phase} {e.kind} ({e.source}) */")
        for t in e.args:
            lines.append(f"/*   in  {_describe_tensor(t)} */")
        for t in e.results:
            lines.append(f"/*   out {_describe_tensor(t)} */")
        params = [f"q35_memref_{len(t.shape)} *{t.name}" for t in (*e.args, *e.results)]
        lines.append(f"void {e.c_name}({', '.join(params) or 'void'});")
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
