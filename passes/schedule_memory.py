"""schedule-memory: place every buffer in a memory level of the target, stage tiles on chip, report the peak.

The target's memory comes as pass options (`q35c.targets.pass_options` derives them from a target, and
`q35c opt -p 'schedule-memory{target=h100-sxm}'` expands to them): `spaces` names the memory spaces by number,
0 main memory (HBM, DRAM; on Groq the SRAM, its only memory), 1, 2, ... the levels after it (h100-sxm:
`spaces=hbm,l2,smem`), an assumed level last (Apple: `dram,threadgroup`); `tile-space` is the tile level, where
kernels stage their tiles (-1: the last space), `budget-bytes` one tile's share of it and `per` what shares it
(SM, threadgroup, chip; for messages). No target name: the module records the facts it was scheduled with, the
numbering `q35.memory_spaces = ["hbm", "l2", "smem"]`.

Inside each linear kernel (a function marked `q35.kernel`, made by `tile`), where weights stream from main memory:
- a slice of a kernel argument (weight storage, activations) read in an innermost tile loop, at an offset that
  moves with the loop, is double-buffered (equal slices, such as the activation tile that the N tiles of one
  token tile read, share one ring): a two-slot ring `bufferization.alloc_tensor` in the tile level is
  carried through the loop; each iteration first issues the copy of the next tile into the other slot
  (`linalg.copy`) and then computes on the current slot, so two tiles are live at once. The first copy is
  issued before the loop and the last iteration is peeled, so every tile is copied exactly once;
- any other slice, and an argument read whole, is copied once into a tile-level buffer where it is read;
- intermediate tensors (accumulators, rounded output tiles) are allocated in the tile level, except the values
  of elementwise generics that feed straight into another linalg op (decoded codes, dequantized weights,
  widened activations), which are marked `q35.fused`: they stream through registers and take no memory;
- output tiles are copied back to main memory (`linalg.copy` into the slice `tensor.insert_slice` writes).
Every copy between levels is a `linalg.copy` tagged `{q35.src_space = a, q35.dst_space = b}`:

    %codes_ring = bufferization.alloc_tensor() {memory_space = 2 : i64} : tensor<2x16x896xi32>
    ... copy of tile 0 into slot 0 ...
    %r:2 = scf.for %n = %c0 to %c28656 step %c16 iter_args(%y_n = %y, %codes_ring_n = %ring0) -> (...) {
      %slot = ..., %next = ...                     // (n / 16) mod 2 and its other slot
      %codes_next = tensor.extract_slice %codes[%n_next, 0] [16, 896] [1, 1] : ...
      %codes_slot = tensor.extract_slice %codes_ring_n[%next, 0, 0] [1, 16, 896] [1, 1, 1] : ... to tensor<16x896xi32>
      %copied = linalg.copy {q35.dst_space = 2 : i64, q35.src_space = 0 : i64}
          ins(%codes_next : tensor<16x896xi32>) outs(%codes_slot : tensor<16x896xi32>) -> tensor<16x896xi32>
      %ring = tensor.insert_slice %copied into %codes_ring_n[%next, 0, 0] [1, 16, 896] [1, 1, 1] : ...
      %codes_tile = tensor.extract_slice %ring[%slot, 0, 0] [1, 16, 896] [1, 1, 1] : ... to tensor<16x896xi32>
      ... compute on %codes_tile ...
      scf.yield %y_next, %ring : ...
    }
    ... the last tile, on slot (trips - 1) mod 2 ...

With the tile level in space 0 (Groq: weights resident in SRAM) nothing streams: no copies are inserted,
everything is in space 0.
What a kernel stages is decided in `_build/staging.py`, the rings are built by `_build/double_buffer.py`; this module
places, records and checks.

The peak bytes live per level (`liveness.module_peaks`) are recorded on every function and the module as
`q35.peak_bytes = {smem = 139264 : i64, hbm = ...}`; tile-level peaks are per tile (per SM, per CPU, per
threadgroup), main-memory peaks per device. A kernel whose tile-level peak exceeds the level's budget fails the
pass with the kernel, its tile, its weights and the buffers live at the peak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, StringAttr, UnitAttr, i64
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from q35c.analysis.liveness import Peak, module_peaks
from q35c.ir.attrs import (
    FUSED_ATTR,
    PEAK_ATTR,
    SCHEME_ATTR,
    SPACES_ATTR,
    TILE_ATTR,
    TILE_BUDGET_ATTR,
    TILE_LEVEL_ATTR,
    first_callers,
    weight_param,
)
from q35c.passes._build.double_buffer import static_offsets
from q35c.passes._build.staging import fusible, stage_kernel
from q35c.passes.tile import is_kernel

__all__ = [
    "ScheduleMemoryPass",
    "fusible",
    "stage_kernel",
    "static_offsets",
]

NEEDS_TARGET = (
    "schedule-memory needs a target, e.g. schedule-memory{target=h100-sxm}, or its memory as options: "
    "spaces=hbm,l2,smem tile-space=2 budget-bytes=228000"
)


def _bytes_attr(peaks: dict[int, Peak], names: Sequence[str]) -> DictionaryAttr:
    return DictionaryAttr({names[s]: IntegerAttr(p.bytes, i64) for s, p in sorted(peaks.items()) if p.bytes})


def _weights_of(module: ModuleOp, kernel: str) -> list[str]:
    names: list[str] = []
    callers = first_callers(module)
    for op in module.walk():
        if isinstance(op, func.CallOp) and op.callee.string_value() == kernel and len(op.arguments) > 1:
            name = weight_param(op.arguments[1], callers) or "?"
            if name not in names:
                names.append(name)
    return names


def _overflow(module: ModuleOp, fn: func.FuncOp, peak: Peak, level: str, budget: int, per: str) -> str:
    tile = fn.attributes.get(TILE_ATTR)
    sizes = "x".join(str(v) for v in tile.get_values()) if tile is not None else "?"  # type: ignore[union-attr]
    scheme = fn.attributes.get(SCHEME_ATTR)
    scheme_text = scheme.data if isinstance(scheme, StringAttr) else "?"
    weights = ", ".join(_weights_of(module, fn.sym_name.data)) or "none"
    live = ", ".join(f"{b.name} {b.type} = {b.bytes} B" for b in sorted(peak.live, key=lambda b: -b.bytes))
    return (
        f"tile {sizes} (T x N x K) of kernel @{fn.sym_name.data} ({scheme_text}; weights: {weights}) needs "
        f"{peak.bytes} bytes of {level} at its peak, but the budget is {budget} per {per}: {live}"
    )


@dataclass(frozen=True)
class ScheduleMemoryPass(ModulePass):
    """Place buffers in the target's memory levels, stage kernel tiles on chip, record and check peak usage."""

    name = "schedule-memory"

    spaces: tuple[str, ...] = ()
    tile_space: int = -1
    budget_bytes: int = 0
    per: str = "tile"

    def _tile_space(self) -> int:
        """The tile level's memory space; PassFailedException when the options do not describe a memory."""
        if not self.spaces:
            raise PassFailedException(NEEDS_TARGET)
        space = self.tile_space if self.tile_space >= 0 else len(self.spaces) + self.tile_space
        if not 0 <= space < len(self.spaces):
            raise PassFailedException(f"tile-space={self.tile_space} names no space of {','.join(self.spaces)}")
        if self.budget_bytes <= 0:
            raise PassFailedException(f"schedule-memory needs budget-bytes (one tile's share of {self.spaces[space]})")
        return space

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        space = self._tile_space()
        level = self.spaces[space]
        functions = [f for f in op.ops if isinstance(f, func.FuncOp)]
        streams = space != 0  # the tile level is main memory (Groq): resident weights, nothing to stage
        for fn in functions:
            if is_kernel(fn) and not fn.is_declaration:
                if streams:
                    stage_kernel(fn, space)
                else:
                    for inner in fn.body.walk():
                        if fusible(inner):
                            inner.attributes[FUSED_ATTR] = UnitAttr()
        names = self.spaces
        peaks = module_peaks(functions)
        for fn in functions:
            if fn.sym_name.data not in peaks:
                continue
            fn_peaks = peaks[fn.sym_name.data]
            tile_peak = fn_peaks.get(space)
            if streams and is_kernel(fn) and tile_peak is not None and tile_peak.bytes > self.budget_bytes:
                raise PassFailedException(_overflow(op, fn, tile_peak, level, self.budget_bytes, self.per))
            fn.attributes[PEAK_ATTR] = _bytes_attr(fn_peaks, names)
        totals: dict[int, Peak] = {}
        for fn_peaks in peaks.values():
            for s, p in fn_peaks.items():
                if s not in totals or p.bytes > totals[s].bytes:
                    totals[s] = p
        op.attributes[SPACES_ATTR] = ArrayAttr([StringAttr(n) for n in names])
        op.attributes[TILE_LEVEL_ATTR] = StringAttr(level)
        op.attributes[TILE_BUDGET_ATTR] = IntegerAttr(self.budget_bytes, i64)
        op.attributes[PEAK_ATTR] = _bytes_attr(totals, names)
