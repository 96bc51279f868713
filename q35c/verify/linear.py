"""Host verification: lower q35 IR to upstream MLIR, run it with real MLIR tools, compare with numpy.

The pieces are general (any lowered module, any named parameters); `verify_linear` puts them together for
one quantized linear layer, and `q35c.verify.model` for whole models:

1. `linear_module`: the q35 graph. Its entry returns the layer's output and the weight's integer codes, so that
   the codes the compiled program unpacks can be compared bit for bit:

       func.func @linear(%x: tensor<2x64xf16>) -> (tensor<2x16xf16>, tensor<16x64xi8>) {
         %w = q35.weight "linear.weight" : !q35.packed<16x64, #q35.scheme<q4_0>>
         %y = q35.linear %x, %w : (tensor<2x64xf16>, !q35.packed<16x64, #q35.scheme<q4_0>>) -> tensor<2x16xf16>
         %c = q35_storage.unpack %w : !q35.packed<16x64, #q35.scheme<q4_0>> -> tensor<16x64xi8>
         func.return %y, %c : tensor<2x16xf16>, tensor<16x64xi8>
       }

2. `lower_for_host`: `host_passes()`, the host target's pipeline: `materialize-weights` (weights become
   storage-tensor arguments tagged with their parameter name and role), `lower-graph` (the other graph ops),
   `tile`, `unpack-bits` and `schedule-memory`; the result must be upstream dialects only.
3. `q35c.verify.harness`: the lowered module with its arguments as constant globals and a `main` that prints every
   result (floats also as their exact bit patterns), lowered by `mlir-opt` and run by `mlir-runner`
   (`run_on_host`), which decodes the printed results.

Tolerance of the outputs. The reference is y_ref = x @ w_ref^T in float64, from the same float16 activations
and the reference dequantized weights (`formats.dequantize`, float32), so its own error is negligible.
With u = 2^-24 (float32 unit roundoff) and gamma_m = m u / (1 - m u), the compiled kernel
  - dequantizes w = fl(offset + scale * e): scale * e is exact (11-bit scale times a code of at most 8
    bits), so one rounding; the keep-int-codes path instead multiplies each group's partial sum by the scale;
  - accumulates in float32: the default path adds K rounded products in sequence; the keep-int-codes path
    sums g products per group, scales them, and adds 2 K/g group terms.
Every product x_k w_k thus reaches y through at most m = K + 2 K/g + 2 roundings, each a factor (1 + d) with
|d| <= u, which bounds the float32 result by (Higham, Accuracy and Stability, section 3.1)
    |y32 - y| <= gamma_m * A,  A = sum_k |x_k| (|w_k - o_k| + |o_k|)
(A >= sum |x_k w_k|, and it also covers the keep-int-codes split w = o + s e into separately rounded
terms). A float16 output is that value rounded once more: + 2^-11 (|y_ref| + gamma_m A), plus 2^-25 for
results in float16's subnormal range. Codes have no tolerance: they must equal `formats.unpack` exactly.

Native host code (`q35c.codegen.host`, the `integer-matvec` pass) may quantize a linear kernel's activations
(each row's) to integers per group of g: with Q levels per sign, each x_k is replaced by a value within
delta_j = max_{k in group j} |x_k| (1 / (2 Q) + 2^-22) of it (half a level, and the float32 rounding of the scaled
value), and the integer sums are exact. `output_tolerance(...,
levels=Q)` adds that error, sum_j delta_j sum_{k in j} |w_k - o_k|, and bounds the float rounding with
|x_k| + delta_j in place of |x_k|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import AnyFloat, ModuleOp, TensorType
from xdsl.ir import Block, Region
from xdsl.passes import ModulePass

from q35c import formats
from q35c.dialects.q35 import LinearOp, PackedType, WeightOp
from q35c.dialects.q35_storage import UnpackOp
from q35c.driver.pipeline import Runner, Stage
from q35c.formats import QuantizedTensor
from q35c.ir.schemes import parse_scheme
from q35c.targets.registry import get_target
from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_DIM, MAX_VERIFY_ELEMENTS, clip, parse_int
from q35c.verify.harness import (
    ACTIVATIONS,
    HostResult,
    arguments_for,
    dense_hex,
    harness,
    parse_memref_prints,
    run_on_host,
)
from q35c.verify.mlir_tools import MlirTools, find_tools

__all__ = [
    "ACTIVATIONS",
    "LINEAR_ENTRY",
    "LINEAR_WEIGHT",
    "BitFlip",
    "HostResult",
    "LinearCase",
    "LinearReport",
    "arguments_for",
    "dense_hex",
    "foreign_ops",
    "harness",
    "host_passes",
    "linear_data",
    "linear_module",
    "lower_for_host",
    "output_tolerance",
    "parse_memref_prints",
    "run_on_host",
    "verify_linear",
]

F32_UNIT_ROUNDOFF = 2.0**-24
F16_UNIT_ROUNDOFF = 2.0**-11
F16_SUBNORMAL_HALF_SPACING = 2.0**-25
LINEAR_ENTRY = "linear"
LINEAR_WEIGHT = "linear.weight"
OUR_DIALECTS = ("q35", "q35_storage")
_f16 = ACTIVATIONS["f16"]


# --------------------------------------------------------------------------------------------------------------
# Building and lowering
# --------------------------------------------------------------------------------------------------------------


def linear_module(tokens: int, n: int, k: int, spec: str, activation: AnyFloat = _f16, codes: bool = True) -> ModuleOp:
    """The q35 graph of one linear layer [T, K] x [N, K]^T, returning y and (if quantized and `codes`) the codes
    (a second reader of the weight's storage, which keeps it in its plain layout on the host)."""
    packed = PackedType((n, k), spec)
    x_type = TensorType(activation, (tokens, k))
    block = Block(arg_types=[x_type])
    weight = WeightOp(LINEAR_WEIGHT, packed)
    linear = LinearOp(block.args[0], weight.result)
    block.add_ops([weight, linear])
    results = [linear.result]
    if packed.scheme.is_quantized and codes:
        unpack = UnpackOp(weight.result)
        block.add_op(unpack)
        results.append(unpack.result)
    block.add_op(func.ReturnOp(*results))
    fn = func.FuncOp(LINEAR_ENTRY, ([x_type], [r.type for r in results]), Region(block))
    return ModuleOp([fn])


def host_passes(keep_int_codes: bool = False) -> tuple[ModulePass, ...]:
    """The passes of the host target's pipeline, in order: what `q35c build --target host` runs.

    Weights become storage arguments, the graph ops other than linear become linalg/tensor/arith/math, linears
    become kernels over tiles that fit the host's L2, the bits are unpacked, and the tiles are staged in memory
    levels (double-buffered copies), so the program verified here is the one the host target compiles."""
    return tuple(p for stage in host_stages(keep_int_codes) for p in stage.passes)


def host_stages(keep_int_codes: bool = False) -> tuple[Stage, ...]:
    """The host target's pipeline (`host_passes`, as stages)."""
    options = {"keep-int-codes": "true" if keep_int_codes else "false"}
    return get_target("host").pipeline(options)


def foreign_ops(module: ModuleOp) -> list[str]:
    """Names of the ops left in q35c's own dialects (none may remain in host IR)."""
    return sorted({op.name for op in module.walk() if op.name.split(".")[0] in OUR_DIALECTS})


def lower_for_host(module: ModuleOp, keep_int_codes: bool = False) -> ModuleOp:
    """Run the host target's pipeline in place, verifying after every stage (`q35c.driver.pipeline.Runner`: a
    stage that fails is a Q35Error); RuntimeError if q35 ops remain (the passes could not lower them)."""
    Runner(verify=True, target="host").run(module, host_stages(keep_int_codes))
    if left := foreign_ops(module):
        raise RuntimeError(f"host lowering left non-upstream ops: {', '.join(left)}")
    return module


# --------------------------------------------------------------------------------------------------------------
# One linear layer
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BitFlip:
    """A deliberate fault: flip bit `bit` of element [row, col] of the packed storage before emission."""

    row: int
    col: int
    bit: int

    def apply(self, packed: NDArray[np.generic]) -> NDArray[np.generic]:
        rows, cols = packed.shape
        bits = packed.dtype.itemsize * 8
        if not (0 <= self.row < rows and 0 <= self.col < cols and 0 <= self.bit < bits):
            raise Q35Error(
                f"bit flip [{self.row}, {self.col}] bit {self.bit} is outside the packed storage "
                f"([{rows}, {cols}] of {bits}-bit {packed.dtype})"
            )
        out = packed.copy()
        raw = out.view(np.dtype(f"u{out.dtype.itemsize}"))
        raw[self.row, self.col] ^= raw.dtype.type(1 << self.bit)
        return out


@dataclass(frozen=True)
class LinearCase:
    """One linear layer to verify: y[T, N] = x[T, K] @ W[N, K]^T with W in scheme `spec`."""

    tokens: int
    n: int
    k: int
    spec: str
    seed: int = 0
    keep_int_codes: bool = False
    activation: str = "f16"  # f16 or f32: the element type of x and y

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise Q35Error(f"activation type must be one of {', '.join(ACTIVATIONS)}, got '{self.activation}'")

    @staticmethod
    def parse_shape(text: str) -> tuple[int, int, int]:
        """`TxNxK` -> (T, N, K); ValueError otherwise."""
        parts = text.lower().split("x")
        values = [parse_int(p, "a size") if p.isdigit() else "" for p in parts]
        if len(values) != 3 or not all(isinstance(v, int) and 0 < v <= MAX_DIM for v in values):
            raise Q35Error(
                f"--linear expects TxNxK, positive integers up to {MAX_DIM} (e.g. 2x32x128), got '{clip(text)}'"
            )
        t, n, k = (int(v) for v in values)
        elements = t * k + n * k + t * n
        if elements > MAX_VERIFY_ELEMENTS:
            raise Q35Error(
                f"--linear {text} needs {elements:,} weights, inputs and outputs, more than the limit of "
                f"{MAX_VERIFY_ELEMENTS:,} that verify runs through mlir-runner (try e.g. 2x32x128)"
            )
        return t, n, k


@dataclass(frozen=True)
class LinearReport:
    """What `verify_linear` found."""

    case: LinearCase
    max_error: float
    max_error_over_bound: float  # the largest |y - y_ref| / tolerance; <= 1 passes
    outputs_over: int
    worst: str  # a description of the worst output
    codes_checked: int
    code_mismatches: int
    first_code_mismatch: str

    @property
    def ok(self) -> bool:
        return self.outputs_over == 0 and self.code_mismatches == 0

    def lines(self) -> list[str]:
        c = self.case
        path = ", keep-int-codes" if c.keep_int_codes else ""
        out = [
            f"linear {c.tokens}x{c.n}x{c.k} {parse_scheme(c.spec)}, {c.activation} activations{path}, seed {c.seed}",
            f"max error: {self.max_error:.3e}",
            f"max error / tolerance: {self.max_error_over_bound:.3f} at {self.worst}",
        ]
        if self.outputs_over:
            out.append(f"outputs: {self.outputs_over} of {c.tokens * c.n} exceed the tolerance")
        if self.codes_checked == 0:
            out.append("codes: none (fp16 stores the weights themselves)")
        elif self.code_mismatches == 0:
            out.append(f"codes: bit-exact ({self.codes_checked} codes)")
        else:
            out.append(
                f"codes: {self.code_mismatches} of {self.codes_checked} differ; first {self.first_code_mismatch}"
            )
        return out


def output_tolerance(
    x: NDArray[np.floating],
    w_ref: NDArray[np.float32],
    offset: NDArray[np.float32],
    groups: int,
    half: bool,
    levels: int | None = None,
) -> NDArray[np.float64]:
    """The per-output bound of the module docstring: gamma_m A, plus the float16 rounding if `half`, plus (with
    `levels`, Q) the rounding of the activations to Q levels per sign and group."""
    k = x.shape[1]
    m = k + 2 * groups + 2
    gamma = m * F32_UNIT_ROUNDOFF / (1 - m * F32_UNIT_ROUNDOFF)
    ax = np.abs(x.astype(np.float64))
    spread = np.abs(w_ref.astype(np.float64) - offset)
    quantized = np.zeros((x.shape[0], w_ref.shape[0]))
    if levels is not None:
        per_group = ax.reshape(x.shape[0], groups, k // groups)
        # half a level, plus the float32 rounding of x * Q / max|x| (relative 2^-24 of each of two factors)
        amax = per_group.max(axis=2)
        delta = np.repeat(amax / (2 * levels) + amax * 2.0**-22, k // groups, axis=1)
        quantized = delta @ spread.T
        ax = ax + delta
    a = ax @ (spread + np.abs(offset)).T
    bound = gamma * a + quantized
    if half:
        y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
        bound = bound + F16_UNIT_ROUNDOFF * (np.abs(y_ref) + bound) + F16_SUBNORMAL_HALF_SPACING
    return bound


_NUMPY_FLOATS = {"f16": "float16", "f32": "float32"}


def linear_data(case: LinearCase) -> tuple[NDArray[np.floating], QuantizedTensor]:
    """Random activations (`case.activation`) and a weight quantized by the reference encoder, from `case.seed`."""
    rng = np.random.default_rng(case.seed)
    w = rng.standard_normal((case.n, case.k)).astype(np.float32)
    x = rng.standard_normal((case.tokens, case.k)).astype(np.dtype(_NUMPY_FLOATS[case.activation]))
    return x, formats.get(case.spec).quantize(w)


def verify_linear(case: LinearCase, tools: MlirTools | None = None, fault: BitFlip | None = None) -> LinearReport:
    """Compile, run and check one linear layer; `fault` corrupts the emitted storage (to test the checker)."""
    scheme = parse_scheme(case.spec)
    scheme.check_shape(case.n, case.k)
    tools = tools if tools is not None else find_tools()
    fmt = formats.get(scheme)
    x, qt = linear_data(case)
    emitted = qt if fault is None else QuantizedTensor(fault.apply(qt.packed), qt.scale, qt.offset, qt.shape, scheme)
    graph = linear_module(case.tokens, case.n, case.k, case.spec, ACTIVATIONS[case.activation])
    module = lower_for_host(graph, case.keep_int_codes)
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    results = run_on_host(module, LINEAR_ENTRY, arguments_for(fn, [x], {LINEAR_WEIGHT: emitted}), tools)

    w_ref = fmt.dequantize(qt)
    groups = scheme.n_groups(case.k) if scheme.is_quantized else 1
    offset = np.zeros_like(w_ref, dtype=np.float64)
    if qt.offset is not None:
        offset = np.repeat(qt.offset.astype(np.float64), case.k // groups, axis=1)
    y_ref = x.astype(np.float64) @ w_ref.astype(np.float64).T
    tol = output_tolerance(x, w_ref, offset, groups, half=case.activation == "f16")
    y = results[0].values.astype(np.float64)
    err = np.abs(y - y_ref)
    err = np.where(np.isnan(err), np.inf, err)
    ratio = err / tol
    t, n = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    worst = f"y[{t}, {n}] = {y[t, n]:.9g} (reference {y_ref[t, n]:.9g}, tolerance {tol[t, n]:.3e})"

    codes_checked = mismatches = 0
    first = ""
    if scheme.is_quantized:
        expected = fmt.unpack(qt.packed).astype(np.int64)
        got = results[1].values.astype(np.int64)
        codes_checked = expected.size
        bad = np.argwhere(got != expected)
        mismatches = len(bad)
        if mismatches:
            i, j = (int(v) for v in bad[0])
            first = f"at [{i}, {j}]: got {got[i, j]}, expected {expected[i, j]}"
    return LinearReport(
        case,
        float(err.max()),
        float(ratio.max()),
        int((ratio > 1).sum()),
        worst,
        codes_checked,
        mismatches,
        first,
    )
