"""Host verification of a whole model: random weights and inputs, the compiled program on real MLIR, and the
numpy reference (`q35c.verify.reference`) of the same graph.

    report = verify_model(ModelCase("tiny", quant="int4:g=32", seq=3, context=5))
    print("\\n".join(report.lines()))

Data, all from `case.seed`: every `q35.weight` gets random values quantized with `q35c.formats` in its own
scheme, N(0, 1/sqrt(K)) for [N, K] matrices (embedding tables included) and 1 + N(0, 0.1^2) for vector
gains, so that activations stay O(1) and far from float16's range; token ids are uniform in [0, vocab);
positions are C..C+T-1 for each sequence of a batch (C from the attention ops' caches); KV caches (and any
other float input) are N(0, 1).
The graph is lowered with `q35c.verify.linear.host_passes()` (the host target's pipeline), run by
mlir-opt + mlir-runner, and its first result (the logits) compared with the reference.

Tolerance. The program and the reference evaluate the same float32 formulas and round every op's result to
float16 at the same points; they differ only in float32 summation order and in libm's versus numpy's exp,
sin and cos, relative differences of order 1e-6 at most, far below a float16 ulp (2^-10 relative at most).
So each rounded element of the program is the reference's value or one of its float16 neighbours, and the
logits differ by the propagated effect of such one-ulp differences. We bound that by one float16 ulp of the
largest logit per rounding on the longest path from the inputs to the logits:

    tolerance = depth * 2^-10 * max |logits_ref|          (depth = `reference.rounding_depth`, 27 for tiny)

which assumes one-ulp differences do not grow through the ops, relative to the output scale (rmsnorm
rescales, softmax averages). The report checks that assumption each run: it evaluates the reference again
with every rounded element of every op moved one ulp up or down at random (a far larger perturbation than
the rare rounding flips of a real run) and prints the largest deviation of the logits, the "rounding
sensitivity"; for tiny it is about a quarter of the tolerance, while the measured errors are smaller still.
The argmax of every token's logits must also equal the reference's, unless the reference's own top two are
within the tolerance of each other (a tie at this precision, reported as such).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, ModuleOp, StringAttr, TensorType
from xdsl.ir import BlockArgument, SSAValue

from q35c import formats
from q35c.dialects.q35 import AttentionOp, EmbedOp, PackedType, WeightOp
from q35c.driver.mlir_input import read_module
from q35c.formats import QuantizedTensor
from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_VERIFY_ELEMENTS
from q35c.verify.linear import BitFlip, arguments_for, lower_for_host, run_on_host
from q35c.verify.mlir_tools import MlirTools, find_tools
from q35c.verify.reference import PerturbedRounding, evaluate, rounding_depth

F16_ULP_RELATIVE = 2.0**-10  # ulp(y) <= 2^-10 |y| for normal float16 y
SENSITIVITY_RUNS = 4
ENTRY = "main"
RENAMED_ENTRY = "forward"  # the harness owns @main
GAIN_NOISE = 0.1
# Memory of a verify run: measured peaks (the Python process plus mlir-runner, `ru_maxrss`) were about 190 MB
# for tiny (0.1 M elements) and 15 bytes per element more at 3-4 M elements; twice that, to be safe.
BASE_BYTES = 256 * 2**20
BYTES_PER_ELEMENT = 32


@dataclass(frozen=True)
class ModelCase:
    """A model to verify: a bundled example's name, a model file, or an `.mlir` file of q35 graph IR."""

    model: str
    quant: str | None = None
    seed: int = 0
    seq: int = 1
    context: int = 0
    batch: int = 1


@dataclass(frozen=True)
class WeightFlip:
    """A deliberate fault: flip a bit of one weight's packed storage (vectors are stored as [1, D])."""

    param: str
    flip: BitFlip

    def apply(self, params: Mapping[str, QuantizedTensor]) -> dict[str, QuantizedTensor]:
        if self.param not in params:
            raise Q35Error(f"no weight '{self.param}' to flip a bit of (weights: {', '.join(params)})")
        qt = params[self.param]
        flipped = QuantizedTensor(self.flip.apply(qt.packed), qt.scale, qt.offset, qt.shape, qt.scheme)
        return {**params, self.param: flipped}


# --------------------------------------------------------------------------------------------------------------
# The graph and its data
# --------------------------------------------------------------------------------------------------------------


def load_graph_module(case: ModelCase) -> tuple[str, ModuleOp]:
    """(name, verified q35 module) of the case; `.mlir` files are graph IR whose shapes fix T and C."""
    if not case.model.endswith(".mlir"):
        from q35c.frontend import load_model

        model = load_model(case.model, quant=case.quant, seq=case.seq, context=case.context, batch=case.batch)
        return model.name, model.module
    if case.quant is not None:
        raise Q35Error("--quant applies to model files, not to .mlir graph IR (its weight types fix the schemes)")
    path = Path(case.model)
    module = read_module(path)
    return path.stem, module


def count_elements(module: ModuleOp) -> int:
    """The random weights and inputs verifying `module` generates."""
    weights = {op.param_name.data: op.result.type for op in module.walk() if isinstance(op, WeightOp)}
    elements = sum(math.prod(typ.get_shape()) for typ in weights.values() if isinstance(typ, PackedType))
    for arg in _entry(module).args:
        if isinstance(arg.type, TensorType):
            elements += math.prod(arg.type.get_shape())
    return elements


def memory_needed(elements: int) -> int:
    """Bytes a verify run of `elements` random weights and inputs needs (see BYTES_PER_ELEMENT)."""
    return BASE_BYTES + BYTES_PER_ELEMENT * elements


def available_memory() -> int | None:
    """Bytes of memory available now (Linux `MemAvailable`, else physical memory); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(name: str, module: ModuleOp, available: int | None = None) -> None:
    """Q35Error, before any data is generated, if verifying `module` needs more memory than is available."""
    available = available if available is not None else available_memory()
    elements = count_elements(module)
    need = memory_needed(elements)
    if available is not None and need > available:
        raise Q35Error(
            f"verifying {name} needs about {need / 1e9:.3g} GB of memory ({elements:,} random weights and inputs "
            f"at ~{BYTES_PER_ELEMENT} bytes each, with the numpy reference and mlir-runner), but "
            f"{available / 1e9:.3g} GB is available; verify a small model such as tiny"
        )


def check_size(name: str, module: ModuleOp) -> None:
    """Q35Error if verifying `module` would generate more than MAX_VERIFY_ELEMENTS random weights and inputs."""
    elements = count_elements(module)
    if elements > MAX_VERIFY_ELEMENTS:
        raise Q35Error(
            f"verifying {name} needs {elements:,} random weights and inputs, more than the limit of "
            f"{MAX_VERIFY_ELEMENTS:,} that verify runs through mlir-runner (verify a small model such as tiny)"
        )


def _entry(module: ModuleOp, name: str = ENTRY) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise Q35Error(f"the graph has no entry function @{name}")


def _callee_arg(call: func.CallOp, index: int) -> BlockArgument | None:
    module = call.get_toplevel_object()
    assert isinstance(module, ModuleOp)
    callee = _entry(module, call.callee.string_value())
    block = callee.body.blocks.first
    return block.args[index] if block is not None else None


def _embed_fed(value: SSAValue) -> EmbedOp | None:
    """The embed op whose ids `value` is (through calls), if any."""
    for use in value.uses:
        op = use.operation
        if isinstance(op, EmbedOp) and use.index == 0:
            return op
        arg = _callee_arg(op, use.index) if isinstance(op, func.CallOp) else None
        if arg is not None and (found := _embed_fed(arg)) is not None:
            return found
    return None


def cache_length(module: ModuleOp) -> int:
    """C, the tokens in each sequence's KV caches of the graph's attention ops (0 without attention)."""
    return next((op.cache_len for op in module.walk() if isinstance(op, AttentionOp)), 0)


def batch_size(module: ModuleOp) -> int:
    """B, the sequences the graph's attention ops run together (1 without attention)."""
    return next((op.batch for op in module.walk() if isinstance(op, AttentionOp)), 1)


def model_inputs(module: ModuleOp, rng: np.random.Generator) -> list[NDArray[Any]]:
    """Data for the entry's arguments: token ids (they feed an embed), positions C..C+T-1 of each sequence
    (other integer inputs), and N(0, 1) float16 for float inputs (the KV caches)."""
    inputs: list[NDArray[Any]] = []
    c, batch = cache_length(module), batch_size(module)
    for arg in _entry(module).args:
        typ = arg.type
        assert isinstance(typ, TensorType)
        shape = typ.get_shape()
        if isinstance(typ.element_type, IntegerType):
            embed = _embed_fed(arg)
            if embed is not None:
                table = embed.table.type
                assert isinstance(table, PackedType)
                inputs.append(rng.integers(0, table.get_shape()[0], shape).astype(np.int32))
            else:
                rows = int(np.prod(shape))
                inputs.append((c + np.arange(rows) % max(1, rows // batch)).reshape(shape).astype(np.int32))
        else:
            dtype = np.float16 if str(typ.element_type) == "f16" else np.float32
            inputs.append(rng.standard_normal(shape).astype(dtype))
    return inputs


def random_weight(packed: PackedType, rng: np.random.Generator) -> QuantizedTensor:
    """One random weight of a `!q35.packed` type, quantized in its scheme: gains near 1 for vectors, N(0, 1/K)
    for matrices (see the module docstring)."""
    shape = packed.get_shape()
    if len(shape) == 1:
        w = (1.0 + GAIN_NOISE * rng.standard_normal(shape)).reshape(1, shape[0])
    else:
        w = rng.standard_normal(shape) / np.sqrt(shape[1])
    return formats.get(packed.scheme).quantize(w.astype(np.float32))


def model_params(module: ModuleOp, rng: np.random.Generator, *, per_shape: bool = False) -> dict[str, QuantizedTensor]:
    """Random weights for every `q35.weight`, quantized in its scheme (`random_weight`). With `per_shape`, one
    draw per (shape, scheme), copied into every weight of that shape (a 7B model's layers: drawing each would take
    minutes), so that each weight still has memory of its own."""
    params: dict[str, QuantizedTensor] = {}
    drawn: dict[tuple[tuple[int, ...], str], QuantizedTensor] = {}
    for op in module.walk():
        if not isinstance(op, WeightOp) or op.param_name.data in params:
            continue
        packed = op.result.type
        assert isinstance(packed, PackedType)
        if not per_shape:
            params[op.param_name.data] = random_weight(packed, rng)
            continue
        key = (tuple(packed.get_shape()), str(packed.scheme))
        if key not in drawn:
            drawn[key] = random_weight(packed, rng)
        qt = drawn[key]
        params[op.param_name.data] = QuantizedTensor(
            qt.packed.copy(),
            None if qt.scale is None else qt.scale.copy(),
            None if qt.offset is None else qt.offset.copy(),
            qt.shape,
            qt.scheme,
        )
    return params


def _schemes(params: Mapping[str, QuantizedTensor]) -> str:
    """`q3p5:g=32:container=dense x14, int8 x1, ...` over the matrices (vectors are always fp16)."""
    counts = Counter(str(qt.scheme) for qt in params.values() if qt.shape[0] > 1)
    return ", ".join(f"{scheme} x{n}" for scheme, n in counts.most_common())


# --------------------------------------------------------------------------------------------------------------
# Running and comparing
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelReport:
    """What `verify_model` found for the logits."""

    case: ModelCase
    name: str
    schemes: str
    shape: tuple[int, ...]
    context: int
    max_error: float
    tolerance: float
    depth: int
    scale: float  # max |logits_ref|
    sensitivity: float
    argmax: tuple[int, ...]
    argmax_ref: tuple[int, ...]
    ties: tuple[int, ...]  # tokens whose run argmax differs but is within the tolerance of the reference's max

    @property
    def argmax_ok(self) -> bool:
        pairs = zip(self.argmax, self.argmax_ref, strict=True)
        return all(a == r or t in self.ties for t, (a, r) in enumerate(pairs))

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance and self.argmax_ok

    def lines(self) -> list[str]:
        c = self.case
        quant = f", --quant {c.quant}" if c.quant else ""
        shape = "x".join(str(d) for d in self.shape)
        verdict = "match" if self.ok else "MISMATCH"
        batch = f"batch {c.batch}, " if c.batch != 1 else ""
        out = [
            f"model {self.name}{quant}: {batch}seq {self.shape[0] // c.batch}, context {self.context}, seed {c.seed}",
            f"weights: {self.schemes}",
            f"logits [{shape}]: max error {self.max_error:.3e}, tolerance {self.tolerance:.3e} "
            f"({self.depth} roundings x 2^-10 x max|logit| {self.scale:.4g})",
            f"rounding sensitivity: {self.sensitivity:.3e} (the reference with every rounded element one "
            f"float16 ulp off at random, worst of {SENSITIVITY_RUNS})",
        ]
        argmax = "equal" if self.argmax == self.argmax_ref else f"{list(self.argmax)}"
        out.append(f"argmax: {argmax} (reference {list(self.argmax_ref)})")
        if self.ties:
            out.append(f"near ties (argmax within the tolerance of the reference's maximum): tokens {list(self.ties)}")
        out.append(verdict)
        return out


def _ties(argmax: Sequence[int], rows_ref: NDArray[np.float64], tolerance: float) -> tuple[int, ...]:
    """Tokens whose run argmax differs from the reference's but scores within the tolerance of its maximum."""
    best = rows_ref.max(axis=-1)
    return tuple(
        t for t, a in enumerate(argmax) if a != int(rows_ref[t].argmax()) and rows_ref[t, a] >= best[t] - tolerance
    )


STEPS = (
    "random weights and inputs",
    "numpy reference",
    "lowering with the host pipeline",
    "mlir-opt + mlir-runner",
    *(f"rounding sensitivity {i + 1}/{SENSITIVITY_RUNS}" for i in range(SENSITIVITY_RUNS)),
)
"""What `verify_model` announces to its `progress` callback, in order, as it starts each."""


def verify_model(
    case: ModelCase,
    tools: MlirTools | None = None,
    fault: WeightFlip | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelReport:
    """Compile `case` for the host, run it, and compare its logits with the reference; `fault` corrupts the
    weights given to the compiled program only (to check that the comparison catches it). `progress` is called
    with each of STEPS as it starts."""
    step = progress or (lambda _: None)
    name, graph = load_graph_module(case)
    check_memory(name, graph)
    check_size(name, graph)
    tools = tools if tools is not None else find_tools()
    step(STEPS[0])
    rng = np.random.default_rng(case.seed)
    params = model_params(graph, rng)
    inputs = model_inputs(graph, rng)
    emitted = params if fault is None else fault.apply(params)

    step(STEPS[1])
    y_ref = evaluate(graph, inputs, params, ENTRY)[0].astype(np.float64)
    step(STEPS[2])
    lowered = lower_for_host(graph.clone())
    fn = _entry(lowered)
    fn.sym_name = StringAttr(RENAMED_ENTRY)
    step(STEPS[3])
    y = run_on_host(lowered, RENAMED_ENTRY, arguments_for(fn, inputs, emitted), tools)[0].values.astype(np.float64)

    depth = rounding_depth(graph, ENTRY)
    scale = float(np.abs(y_ref).max())
    tolerance = depth * F16_ULP_RELATIVE * scale
    err = np.abs(y - y_ref)
    rows_y, rows_ref = y.reshape(-1, y.shape[-1]), y_ref.reshape(-1, y_ref.shape[-1])
    argmax = tuple(int(i) for i in rows_y.argmax(axis=-1))
    return ModelReport(
        case=case,
        name=name,
        schemes=_schemes(params),
        shape=tuple(y_ref.shape),
        context=cache_length(graph),
        max_error=float(np.where(np.isnan(err), np.inf, err).max()),
        tolerance=tolerance,
        depth=depth,
        scale=scale,
        sensitivity=rounding_sensitivity(graph, inputs, params, y_ref, lambda i: step(STEPS[4 + i])),
        argmax=argmax,
        argmax_ref=tuple(int(i) for i in rows_ref.argmax(axis=-1)),
        ties=_ties(argmax, rows_ref, tolerance),
    )


def rounding_sensitivity(
    graph: ModuleOp,
    inputs: Sequence[NDArray[Any]],
    params: Mapping[str, QuantizedTensor],
    y_ref: NDArray[np.float64],
    starting: Callable[[int], None] | None = None,
) -> float:
    """The largest deviation of the reference's first result when every rounded element of every op is moved
    one float16 ulp at random (worst of SENSITIVITY_RUNS runs, seeded 0, 1, ...); `starting(run)` before each."""
    worst = 0.0
    for run in range(SENSITIVITY_RUNS):
        if starting is not None:
            starting(run)
        rounding = PerturbedRounding(np.random.default_rng(run))
        y = evaluate(graph, inputs, params, ENTRY, rounding)[0].astype(np.float64)
        worst = max(worst, float(np.abs(y - y_ref).max()))
    return worst
