"""The memory levels a target's passes see: the on-chip level its tiles are sized for, and memory-space names.

A target family picks its tile level (`Target.tile_level`); this module holds what the families share: the
`OnChipLevel` they return, the default rule (`cache_share`, a CPU-like share of a cache), the numbering of
memory spaces (`space_names`) that `schedule-memory` records as `q35.memory_spaces`, and which level serves a
kernel's re-reads (`serving_level`, `serve_rereads`): the nearest on-chip level whose capacity holds the
re-read's working set (`q35c.analysis.reuse`), else main memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from q35c.analysis.reuse import Reread
from q35c.passes.tile_choice import TileError
from q35c.targets.spec import HardwareSpec, MemoryLevel


@dataclass(frozen=True)
class OnChipLevel:
    """The memory level tiles are sized for and placed in.

    `memory_space` is the level's index in the spec's memory list (0 = main memory) or, for an assumed level that
    the spec lacks, the next free index. `budget_bytes` is one tile's share: per SM/CU on a GPU, per CPU on the
    host, per threadgroup on Apple, per chip on Groq (`per` names the unit).
    """

    name: str
    memory_space: int
    budget_bytes: int
    per: str
    assumed: bool = False


def on_chip_levels(spec: HardwareSpec) -> list[tuple[int, MemoryLevel]]:
    """(memory space, level) of the spec's on-chip levels; TileError when it has none."""
    on_chip = [(i, level) for i, level in enumerate(spec.memory) if level.on_chip]
    if not on_chip:
        raise TileError(f"{spec.name} has no on-chip memory level to tile for; give the tile pass budget-bytes")
    return on_chip


def cache_share(spec: HardwareSpec, budget_bytes: int = 0) -> OnChipLevel:
    """The default tile level: the L2 (else the innermost on-chip level), divided by the compute units -- one
    CPU's share on the host (with SMT, half a core's L2). `budget_bytes` overrides the budget."""
    on_chip = on_chip_levels(spec)
    named = [(i, level) for i, level in on_chip if level.name == "l2"]
    index, level = (named or on_chip)[-1]
    budget = level.capacity_bytes / max(1.0, spec.compute_units.count.value)
    return OnChipLevel(level.name, index, budget_bytes or int(budget), spec.compute_units.kind)


def space_names(spec: HardwareSpec, level: OnChipLevel) -> tuple[str, ...]:
    """Level names by memory space: the spec's levels in order, then an assumed tile level."""
    names = tuple(m.name for m in spec.memory)
    return (*names, level.name) if level.memory_space == len(names) else names


def holds(level: MemoryLevel, working_set: float) -> bool:
    """Whether `level` can keep `working_set` bytes between two reads of them. A level split among compute units
    (`capacity_per_unit_bytes`: shared memory per SM, LDS per CU) holds it only within one unit's part: the
    bytes every unit re-reads are not shared between the parts."""
    capacity = level.capacity_per_unit.value if level.capacity_per_unit is not None else level.capacity_bytes
    return level.on_chip and working_set <= capacity


def serving_level(spec: HardwareSpec, working_set: float) -> MemoryLevel:
    """The level that serves a re-read: the nearest (innermost) on-chip level that holds its working set, else
    main memory (`spec.memory` runs outermost first; `memory[0]` is main memory)."""
    for level in reversed(spec.memory[1:]):
        if holds(level, working_set):
            return level
    return spec.main_memory


def serve_rereads(spec: HardwareSpec, rereads: Iterable[Reread], share: float) -> dict[str, float]:
    """Bytes of a kernel call's re-reads that each level serves on one working device. Weights and the KV cache
    split `share` ways over devices (their bytes and working sets); activations do not."""
    served: dict[str, float] = {}
    for reread in rereads:
        part = 1.0 if reread.kind == "activation" else share
        level = serving_level(spec, reread.working_set * part)
        served[level.name] = served.get(level.name, 0.0) + reread.bytes * part
    return served
