"""Running lowered upstream MLIR on the host: a program around an entry function, run by real MLIR tools.

`harness(module, entry, arguments)` is the lowered module plus one `memref.global` constant per entry argument
(hex-encoded dense data; `arguments_for` finds each argument's data: activations by position, weight storage by
the arguments' `q35.param`/`q35.storage` tags) and a `main` that calls the entry and prints every result:

    memref.global "private" constant @arg0 : memref<2x64xf16> = dense<"0x...">
    func.func @main() {
      %v1 = memref.get_global @arg0 : memref<2x64xf16>
      %v2 = bufferization.to_tensor %v1 restrict : memref<2x64xf16> to tensor<2x64xf16>
      %r:2 = func.call @linear(%v2, ...) : (...) -> (tensor<2x16xf16>, tensor<16x64xi8>)
      ... printMemrefF32 and printMemrefI32 of each result ...
    }

Float results are printed twice: with `printMemrefF32` for people, and as their f32 bit patterns (`arith.bitcast`
to i32) with `printMemrefI32` for the comparison, because printMemrefF32 prints 6 significant digits, far coarser
than f32 rounding. Integer results are sign-extended to i32 and printed with `printMemrefI32`. `run_on_host`
lowers the program with mlir-opt, runs it with mlir-runner and decodes the printed memrefs (`HostResult`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    AnyFloat,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute

from q35c.dialects.q35_storage import CODES, OFFSET, SCALE
from q35c.driver.pipeline import module_text
from q35c.formats import QuantizedTensor
from q35c.ir.attrs import PARAM_ATTR, STORAGE_ATTR
from q35c.verify.mlir_tools import MlirTools

_f16 = Float16Type()
_f32 = Float32Type()
ACTIVATIONS: dict[str, AnyFloat] = {"f16": _f16, "f32": _f32}

_MLIR_ELEMENTS: dict[str, str] = {
    "float16": "f16",
    "float32": "f32",
    "int8": "i8",
    "uint8": "i8",
    "int32": "i32",
    "uint32": "i32",
}


def _tensor_text(typ: TensorType[Attribute]) -> str:
    dims = "x".join(str(d) for d in typ.get_shape())
    return f"tensor<{dims}x{typ.element_type}>"


def _memref_text(typ: TensorType[Attribute]) -> str:
    return _tensor_text(typ).replace("tensor<", "memref<", 1)


def dense_hex(array: NDArray[np.generic]) -> str:
    """A dense elements literal of the array's little-endian bytes: `dense<"0x...">`."""
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return f'dense<"0x{data.tobytes().hex().upper()}">'


def arguments_for(
    fn: func.FuncOp, inputs: Sequence[NDArray[np.generic]], params: Mapping[str, QuantizedTensor]
) -> list[NDArray[np.generic]]:
    """The data of every argument of a lowered entry: untagged ones take `inputs` in order, weight storage
    arguments (tagged `q35.param`, `q35.storage`) the matching array of `params` (a vector such as a norm
    gain is a QuantizedTensor of shape [1, D] for the argument tensor<D>)."""
    attrs = fn.arg_attrs.data if fn.arg_attrs is not None else [DictionaryAttr({})] * len(fn.args)
    pending = list(inputs)
    out: list[NDArray[np.generic]] = []
    for arg, attr in zip(fn.args, attrs, strict=True):
        typ = arg.type
        assert isinstance(typ, TensorType)
        param, role = attr.data.get(PARAM_ATTR), attr.data.get(STORAGE_ATTR)
        if isinstance(param, StringAttr) and isinstance(role, StringAttr):
            qt = params[param.data]
            array = {CODES: qt.packed, SCALE: qt.scale, OFFSET: qt.offset}[role.data]
            assert array is not None, f"{param.data} has no {role.data}"
            if array.shape == (1, *typ.get_shape()):  # a vector, kept as [1, D]
                array = array.reshape(typ.get_shape())
        elif pending:
            array = pending.pop(0)
        else:
            raise ValueError(f"@{fn.sym_name.data} takes more inputs than the {len(inputs)} given")
        element = _MLIR_ELEMENTS[array.dtype.name]
        if tuple(array.shape) != typ.get_shape() or element != str(typ.element_type):
            raise ValueError(f"argument {arg.index} is {_tensor_text(typ)}, got {array.dtype} {array.shape}")
        out.append(array)
    return out


@dataclass
class _MainWriter:
    """Accumulates the lines of `main` with fresh SSA names."""

    lines: list[str] = field(default_factory=list[str])
    counter: int = 0

    def fresh(self) -> str:
        self.counter += 1
        return f"%v{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append(f"    {line}")

    def elementwise(self, src: str, typ: TensorType[Attribute], element: str, body: str) -> tuple[str, str]:
        """A generic applying `body` ({in} -> {out}) to every element; returns (value, its tensor type)."""
        rank = len(typ.get_shape())
        dims = ", ".join(f"d{i}" for i in range(rank))
        identity = f"affine_map<({dims}) -> ({dims})>"
        loops = ", ".join(['"parallel"'] * rank)
        out_type = _tensor_text(TensorType(_parse_element(element), typ.get_shape()))
        init, result, scalar = self.fresh(), self.fresh(), self.fresh()
        self.emit(f"{init} = tensor.empty() : {out_type}")
        self.emit(
            f"{result} = linalg.generic {{indexing_maps = [{identity}, {identity}], iterator_types = [{loops}]}} "
            f"ins({src} : {_tensor_text(typ)}) outs({init} : {out_type}) {{"
        )
        self.emit(f"^bb0(%in: {typ.element_type}, %out: {element}):")
        self.emit(f"  {scalar} = {body.format(x='%in')}")
        self.emit(f"  linalg.yield {scalar} : {element}")
        self.emit(f"}} -> {out_type}")
        return result, out_type

    def print_memref(self, value: str, tensor_type: str, element: str) -> None:
        memref_type = tensor_type.replace("tensor<", "memref<", 1)
        buf, unranked = self.fresh(), self.fresh()
        self.emit(f"{buf} = bufferization.to_buffer {value} : {tensor_type} to {memref_type}")
        self.emit(f"{unranked} = memref.cast {buf} : {memref_type} to memref<*x{element}>")
        self.emit(f"func.call @printMemref{element.upper()}({unranked}) : (memref<*x{element}>) -> ()")


def _parse_element(text: str) -> Attribute:
    """`f16`, `f32` or `iN` as a type."""
    if text in ACTIVATIONS:
        return ACTIVATIONS[text]
    return IntegerType(int(text.removeprefix("i")))


def harness(module: ModuleOp, entry: str, arguments: Sequence[NDArray[np.generic]]) -> str:
    """MLIR text: the lowered module's ops, the arguments as constant globals, and a printing `main`."""
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == entry)
    arg_types = [t for t in fn.function_type.inputs.data if isinstance(t, TensorType)]
    result_types = [t for t in fn.function_type.outputs.data if isinstance(t, TensorType)]
    globals_text: list[str] = []
    main = _MainWriter()
    args: list[str] = []
    for i, (typ, data) in enumerate(zip(arg_types, arguments, strict=True)):
        memref = _memref_text(typ)
        globals_text.append(f'memref.global "private" constant @arg{i} : {memref} = {dense_hex(data)}')
        m, t = main.fresh(), main.fresh()
        main.emit(f"{m} = memref.get_global @arg{i} : {memref}")
        main.emit(f"{t} = bufferization.to_tensor {m} restrict : {memref} to {_tensor_text(typ)}")
        args.append(t)
    signature = (
        f"({', '.join(_tensor_text(t) for t in arg_types)}) -> ({', '.join(_tensor_text(t) for t in result_types)})"
    )
    main.emit(f"%r:{len(result_types)} = func.call @{entry}({', '.join(args)}) : {signature}")
    for i, typ in enumerate(result_types):
        value, element = f"%r#{i}", typ.element_type
        if isinstance(element, AnyFloat):
            wide, wide_type = (value, _tensor_text(typ))
            if element != _f32:
                wide, wide_type = main.elementwise(value, typ, "f32", "arith.extf {x} : " + f"{element} to f32")
            main.print_memref(wide, wide_type, "f32")
            f32_typ = TensorType(_f32, typ.get_shape())
            bits, bits_type = main.elementwise(wide, f32_typ, "i32", "arith.bitcast {x} : f32 to i32")
            main.print_memref(bits, bits_type, "i32")
        else:
            wide, wide_type = main.elementwise(value, typ, "i32", "arith.extsi {x} : " + f"{element} to i32")
            main.print_memref(wide, wide_type, "i32")
    kernel = [module_text(op) for op in module.ops]
    return "\n".join(
        [
            "module {",
            *globals_text,
            *kernel,
            "  func.func @main() {",
            *main.lines,
            "    return",
            "  }",
            "  func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}",
            "  func.func private @printMemrefI32(memref<*xi32>) attributes {llvm.emit_c_interface}",
            "}",
            "",
        ]
    )


_MEMREF_PRINT = re.compile(r"Unranked Memref base@ = \S+ rank = (\d+) offset = \d+ sizes = \[([\d, ]*)\]")
_NUMBER = re.compile(r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:e[-+]?\d+)?)")


def parse_memref_prints(stdout: str) -> list[NDArray[np.float64]]:
    """Every `printMemref*` in the output, as float64 arrays of the printed sizes (ints are exact)."""
    arrays: list[NDArray[np.float64]] = []
    matches = list(_MEMREF_PRINT.finditer(stdout))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(stdout)
        body = stdout[m.end() : end].split("data =", 1)[1]
        shape = tuple(int(d) for d in m.group(2).split(",") if d.strip())
        values = np.array([float(v) for v in _NUMBER.findall(body)], dtype=np.float64)
        if values.size != int(np.prod(shape)):
            raise ValueError(f"printed memref of sizes {list(shape)} has {values.size} values")
        arrays.append(values.reshape(shape))
    return arrays


@dataclass(frozen=True)
class HostResult:
    """A result of the entry as the program printed it: exact values, and floats' 6-digit text too."""

    values: NDArray[np.generic]
    printed: NDArray[np.float64] | None = None


def run_on_host(
    module: ModuleOp, entry: str, arguments: Sequence[NDArray[np.generic]], tools: MlirTools
) -> list[HostResult]:
    """Lower the harness with mlir-opt, run it with mlir-runner, and decode the entry's results."""
    program = harness(module, entry, arguments)
    printed = parse_memref_prints(tools.run(tools.opt(program)))
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == entry)
    results: list[HostResult] = []
    for typ in fn.function_type.outputs.data:
        assert isinstance(typ, TensorType)
        if isinstance(typ.element_type, AnyFloat):
            text, bits = printed.pop(0), printed.pop(0)
            values = bits.astype(np.int64).astype(np.uint32).view(np.float32)
            results.append(HostResult(values, text))
        else:
            results.append(HostResult(printed.pop(0).astype(np.int64)))
    return results
