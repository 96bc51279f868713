"""Targets: a hardware spec plus everything its family does its own way, the cost model first.

`get_target(name)` loads `targets/specs/<name>.toml` and returns the target of its family (`GroqTarget`,
`GpuTarget`, `AppleTarget`, `HostTarget`; the registry is `targets.registry`). `Target` is the base every family
subclasses; it holds all family-specific rules as methods, so no code outside `targets/` asks which family a
target is:

- compiling: `pipeline(options)` (the named stages, `targets.pipeline`), `tile_level(budget_bytes)` (the on-chip
  level tiles are sized for), `tile_policy(...)` (how the tile pass chooses tiles), `memory_spaces(level)` (the
  names of the memory spaces), `keeps_int_codes` (whether linears keep integer codes), and the stage
  descriptions `describe_tiling`/`describe_placement`; passes get these facts as pass options
  (`targets.pass_options`), never by importing `targets`;
- reporting: `notes()` (what a reader should know about the figures), `cited_figures()` (family-specific spec
  figures a result rests on);
- costing: the devices a model needs (`devices_needed`) and `estimate(workload, devices=) -> Cost` for
  one forward pass.

Every family shares one engine, kernel by kernel (`Workload.kernels`, each run `calls` times):

    t_res    = work_res / rate_res                       per resource: the memory level the weights live in
                                                         (bytes / bandwidth) and each compute unit (ops / peak)
    t_kernel = max_res(t_res / efficiency_res) + overhead
    t_roof   = max_res(t_res)                            the roofline bound: t_kernel >= t_roof, always
    E_kernel = sum_levels 8 * bytes * pJ/bit + sum_ops count * pJ/op          (per-action energy)
    if E_kernel / t_kernel > active_devices * (TDP - P_static):             (power-limited)
        t_kernel = E_kernel / (active_devices * (TDP - P_static))

and the pass costs sum_k calls_k * Cost_k plus the family's communication, plus static power
P_static * devices * t. The per-kernel power cap keeps the average power of every device at or below its TDP:
each device's dynamic power never exceeds TDP - P_static while it works, and it draws P_static when idle.

MACs go to the matrix unit when the spec has one, element-wise ALU ops to the vector unit, each op class at the
rate of its dtype (`ALU_DTYPE`: integer ops -- the shifts and masks of unpacking -- at `int32`, f16 ops at the
packed `fp16` rate, f32 ops at `fp32`). A unit without a figure for a dtype runs it at the nearest rate it has
(`FALLBACK`). Peaks count a MAC (FMA) as 2 ops, so an element-wise op, which takes the issue slot of one MAC,
runs at half the peak -- except where the spec gives an `elementwise` rate (Groq's VXM: one op per ALU per
cycle). Every op is timed on the unit it runs on: no kind of work is left untimed.

Overlap (`units_overlap`): memory traffic always overlaps compute (max), since every pipeline stages weight
tiles in double-buffered copies (the `schedule` stage) and untiled kernels stream. Whether the compute units
overlap each other is a family fact: where they are separate, statically scheduled pipelines (Groq's MXM and
VXM) their times are a max; where one issue engine feeds both (a GPU SM issues the tensor-core and the vector
instructions; Apple's and the host's single unit) their times add -- the IR's dequantized tile is an operand of
the contraction in the same tile step, with no buffer between them. A summed demand keeps its parts, so
`limits` shows, e.g., the unpacking and the matmul seconds of a binding SM.

MACs run, and cost energy, in the dtype the unit runs them at (`unit_rate`: the kernel's MAC dtype, or the
nearest the unit has), the same for time and energy. Energy per op: MACs at `<dtype>_mac`; ALU ops at
`fp16_add`, `fp16_mul`, `fp32_mul`; f32 adds at `fp16_add` and integer ops at `int8_add`, the nearest entries
of the reference table (so both are lower bounds). Bytes staged
into an on-chip level cost that level's pJ/bit; a level the spec lacks (Apple's assumed threadgroup memory) and
device links have no energy figure and cost time only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from xdsl.dialects.builtin import ModuleOp

from q35c.analysis.workload import Collective, Counts, KernelWork, Workload
from q35c.passes.tile_choice import TilePolicy
from q35c.targets.calibration import Efficiency
from q35c.targets.cost import Cost, CostSum, Demand, DoesNotFit, Footprint
from q35c.targets.levels import OnChipLevel, cache_share, serve_rereads, space_names
from q35c.targets.links import collective_time
from q35c.targets.placement import Limits, Placement
from q35c.targets.placement import explicit as placement_explicit
from q35c.targets.placement import fewest as placement_fewest
from q35c.targets.placement import for_count as placement_for_count
from q35c.targets.placement import lower_bound as placement_lower_bound
from q35c.targets.placement import per_device as placement_per_device
from q35c.targets.placement import widest as placement_widest
from q35c.targets.spec import ComputeUnit, HardwareSpec
from q35c.util.limits import MAX_DEVICES

if TYPE_CHECKING:
    from q35c.targets.stage import Stage

__all__ = [  # Cost, Demand, DoesNotFit and Footprint live in `targets.cost`; importers find them here too
    "Cost",
    "Demand",
    "DoesNotFit",
    "Footprint",
    "Target",
    "get_target",
    "unit_rate",
]

FALLBACK: dict[str, tuple[str, ...]] = {
    "fp16": ("fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp32": ("fp32", "fp16", "bf16"),
    "int8": ("int8", "fp16", "fp32"),
    "int32": ("int32", "elementwise", "fp32", "fp16"),
    "elementwise": ("elementwise", "fp32", "fp16"),
}
ALU_DTYPE = {"int": "int32", "fp16.add": "fp16", "fp16.mul": "fp16", "fp32.add": "fp32", "fp32.mul": "fp32"}
ALU_ENERGY = {"int": "int8_add", "fp16.add": "fp16_add", "fp16.mul": "fp16_mul", "fp32.add": "fp16_add"}
MAC_ENERGY = {"int8": "int8_mac", "fp8": "int8_mac", "fp16": "fp16_mac", "bf16": "fp16_mac", "fp32": "fp32_mac"}
OVERHEAD = "kernel launch overhead"
POWER = "power (TDP)"


@dataclass(frozen=True)
class Target:
    """A hardware target: its spec, its family's efficiency constants, and every rule its family has its own way
    (compiling, reporting, costing; see the module docstring). Each family subclasses it and overrides what
    differs; the defaults here are the shared engine and a cache-share tile level."""

    spec: HardwareSpec
    efficiency: Efficiency = field(default_factory=Efficiency)

    units_overlap: ClassVar[bool] = True
    """Whether the compute units run concurrently (kernel time = max over units) or share one issue engine (their
    times add). Memory traffic overlaps compute either way (double-buffered tiles)."""

    keeps_int_codes: ClassVar[bool] = False
    """Whether linears keep integer codes and scale per group (`unpack-bits{keep-int-codes}`): a matrix unit
    that takes integer codes (Groq's MXM, int8). Elsewhere codes are dequantized to float before the matmul."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    # -- compiling ------------------------------------------------------------------------------------------

    def pipeline(self, options: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
        """The named stages that compile a model for this target, with pipeline `options` (`targets.pipeline`)."""
        from q35c.targets.pipeline import stages

        return stages(self, dict(options or {}))

    def tile_level(self, budget_bytes: int = 0) -> OnChipLevel:
        """The on-chip level tiles live in, and one tile's budget (`budget_bytes` overrides it). By default the
        L2 (else the innermost on-chip level) shared by the compute units (`levels.cache_share`): caches managed
        by hardware, so the schedule is what the cost model reads, not a placement the chip obeys."""
        return cache_share(self.spec, budget_bytes)

    def tile_policy(self, budget_bytes: int = 0, keep_int_codes: bool | None = None) -> TilePolicy:
        """How the tile pass chooses tiles: within the tile level's budget (`tile_level`), weight tiles streamed
        (double-buffered). `keep_int_codes` is what `unpack-bits` will do (None: `keeps_int_codes`)."""
        keep = self.keeps_int_codes if keep_int_codes is None else keep_int_codes
        return TilePolicy(self.tile_level(budget_bytes).budget_bytes, keep_int_codes=keep)

    def memory_spaces(self, level: OnChipLevel) -> tuple[str, ...]:
        """The names of the memory spaces, by number: the spec's levels, then an assumed tile level."""
        return space_names(self.spec, level)

    def describe_tiling(self, level: OnChipLevel) -> str:
        """What the `tile` stage does for this target (one line of `q35c build`)."""
        per = f"{level.budget_bytes:,} B of {level.name} per {level.per}" + (" (assumed)" if level.assumed else "")
        return f"linears into kernels over weight tiles that fit {per}"

    def describe_placement(self, level: OnChipLevel) -> str:
        """What the `schedule` stage does for this target."""
        return f"stage tiles in {level.name} (double-buffered copies from {self.spec.memory[0].name}); check peaks"

    # -- reporting ------------------------------------------------------------------------------------------

    def notes(self) -> tuple[str, ...]:
        """What a reader should know about this target's figures; families add theirs before these."""
        e = self.efficiency
        return (
            f"efficiency: bandwidth {e.bandwidth:.3g}, compute {e.compute:.3g}, "
            f"{e.kernel_overhead_s * 1e6:.3g} us per kernel",
        )

    def cited_figures(self) -> tuple[str, ...]:
        """Dotted spec paths a costed result rests on beyond the memory, compute, power and energy figures that
        every family's engine reads (`report.sources`): none by default."""
        return ()

    # -- devices ---------------------------------------------------------------------------------------------

    def device_bytes(self) -> float:
        """Bytes one device can hold for a model: the usable part of its outermost memory level (capacity x
        usable fraction - reserved bytes, from the spec: an OS limit, a runtime's own allocations)."""
        return self.spec.main_memory.usable_bytes

    def limits(self) -> Limits:
        """How many devices this target can use: per node (tensor-parallel groups stay inside one) and in total,
        with the reason for the total (`targets.placement`)."""
        system = self.spec.system
        per_node = int(system.devices_per_node.value) if system.devices_per_node is not None else 1
        if self.spec.interconnect is None:
            per_node = 1
        if system.max_devices is not None:
            q = system.max_devices
            total = int(q.value)
            reason = q.note.split(";")[0] if q.note else q.cite()
        elif self.spec.network is not None:
            total, reason = MAX_DEVICES, f"nodes of {per_node} linked by {self.spec.network.kind}"
        elif system.hops_between_nodes is not None:
            total, reason = MAX_DEVICES, f"nodes of {per_node} linked directly"
        else:
            total, reason = per_node, f"one node of {per_node}: the spec gives no link between nodes"
        return Limits(per_node, max(1, total), reason)

    def place(
        self,
        graph: ModuleOp,
        need: Footprint,
        tokens: int,
        *,
        devices: int | None = None,
        tp: int | None = None,
        pp: int | None = None,
        layers: str = "",
    ) -> Placement:
        """The placement of the model `graph` (its one-device footprint `need`; `tokens` cached tokens of all
        sequences at the end of the run): `tp`/`pp` as given, else `devices` by the rule, else the fewest that
        hold it (`targets.placement`). Q35Error for a placement that cannot be realised; DoesNotFit when the
        devices cannot hold the model."""
        limits = self.limits()
        room = self.device_bytes()

        def footprint(placement: Placement) -> Footprint:
            if placement.devices == 1:
                return need
            return placement_per_device(graph, placement, tokens, need.activation_bytes)

        def fits(placement: Placement) -> bool:
            return footprint(placement).total <= room

        if tp is not None or pp is not None:
            chosen = placement_explicit(graph, limits, tp or 1, pp or 1, layers)
        elif devices is not None:
            chosen = placement_for_count(graph, limits, devices)
        else:
            try:
                chosen = placement_fewest(graph, limits, fits, placement_lower_bound(need.total, room))
            except DoesNotFit:
                raise DoesNotFit(
                    f"the model needs {need.total / 1e9:.1f} GB ({need.weight_bytes / 1e9:.1f} GB weights, "
                    f"{need.kv_bytes / 1e9:.2f} GB KV cache), but at most {limits.total} device(s) of {self.name} "
                    f"can be used ({limits.reason}), {self.spec.main_memory.describe_usable()} each"
                    f"{self._widest_falls_short(graph, limits, footprint)}"
                ) from None
        if not fits(chosen):
            held = footprint(chosen)
            try:
                least = placement_fewest(graph, limits, fits, placement_lower_bound(need.total, room))
                needed = f": it needs at least {least.devices} ({least.describe()})"
            except DoesNotFit:
                needed = f": no placement of at most {limits.total} holds it"
            raise DoesNotFit(
                f"{chosen.devices} device(s) of {self.name} ({chosen.describe()}) cannot hold the model: one "
                f"device would need {held.total / 1e9:.1f} GB ({held.weight_bytes / 1e9:.1f} GB weights, "
                f"{held.kv_bytes / 1e9:.2f} GB KV cache), {self.spec.main_memory.describe_usable()} each{needed}"
            )
        return chosen

    def _widest_falls_short(self, graph: ModuleOp, limits: Limits, footprint: Callable[[Placement], Footprint]) -> str:
        """`: even spread the widest way, ... one device would need N MB` when spreading over more devices does not
        help (a stage's unsplit parts alone exceed a device), else nothing."""
        wide = placement_widest(graph, limits)
        if wide is None or wide.devices <= 1:
            return ""
        held = footprint(wide)
        scale, unit = (1e9, "GB") if held.total >= 1e9 else (1e6, "MB")
        return (
            f"; even spread the widest way, over {wide.devices} devices ({wide.describe()}), the fullest device "
            f"would need {held.total / scale:.3g} {unit} ({held.weight_bytes / scale:.3g} {unit} weights)"
        )

    def explain_devices(self, need: Footprint, placement: Placement, work: Workload) -> str:
        """Why this many devices: what must be held, what one holds, how the model is spread."""
        text = (
            f"{placement.devices} device(s): {need.total / 1e9:.2f} GB to hold (weights, KV cache, activations), "
            f"{self.spec.main_memory.describe_usable()} each"
        )
        if placement.devices > 1:
            text += f"; {placement.describe()}"
            held = max(work.stage_weight_bytes.values(), default=float(work.weight_bytes))
            if held:
                text += f", at most {held / 1e9:.2f} GB of weights per device"
            for note in placement.notes:
                text += f"; {note}"
        return text

    # -- the engine -----------------------------------------------------------------------------------------

    def estimate(self, workload: Workload) -> Cost:
        """The cost of one forward pass of `workload`, as compiled: its batch is in its IR, and a module the
        `shard` pass rewrote is what one device runs (`workload.tp` x `workload.pp` devices). A token passes the
        pipeline stages in turn: `seconds` is their sum, `stage_seconds` each stage's time (the pipeline's
        interval when every stage works on a different sequence is the largest)."""
        work = workload
        sums = [CostSum() for _ in range(work.pp)]
        for kernel in work.kernels:
            one = self.kernel_cost(kernel, active=work.tp)
            for stage, calls in kernel.calls_by_stage().items():
                sums[stage].add(one, calls)
        for collective in work.collectives:
            one = self.collective_cost(collective, work)
            for stage, calls in collective.calls_by_stage().items():
                sums[stage].add(one, calls)
        stages = [s.total() for s in sums]
        total = sum(stages, Cost())
        static_w = self.spec.power.static.value * work.devices
        return total + Cost(
            energy_j=Counts({"static": static_w * total.seconds}),
            stage_seconds=tuple(stage.seconds for stage in stages),
            static_w=static_w,
        )

    def kernel_cost(self, kernel: KernelWork, active: float = 1.0) -> Cost:
        """One call of a kernel on each of `active` devices (a tensor-parallel group: the IR is one device's
        share): the slowest of its demands plus overhead, capped by power."""
        demands, bytes_moved, ops = self.demands(kernel, 1.0)
        energy = self.energy(bytes_moved, kernel, 1.0, active)
        roof = max((d.seconds for d in demands), default=0.0)
        times = {d.resource: d.seconds / d.efficiency for d in demands if d.seconds > 0}
        busy = max(times.values(), default=0.0)
        binding = max(times.items(), key=lambda kv: kv[1])[0] if times else OVERHEAD
        overhead = self.efficiency.kernel_overhead_s
        seconds = busy + overhead
        parts = next((d.parts for d in demands if d.resource == binding and d.parts), {binding: busy})
        scale = busy / sum(parts.values()) if sum(parts.values()) > 0 else 0.0
        limits = {**{k: v * scale for k, v in parts.items()}, OVERHEAD: overhead}
        headroom = active * (self.spec.power.tdp.value - self.spec.power.static.value)
        dynamic = sum(energy.values())
        if headroom > 0 and dynamic > headroom * seconds:
            seconds = dynamic / headroom
            limits = {POWER: seconds}
        return Cost(
            seconds=seconds,
            roofline_seconds=roof,
            kernels=1.0,
            bytes=Counts(dict(bytes_moved)),
            ops=Counts(dict(ops)),
            energy_j=Counts(energy),
            limits=Counts({k: v for k, v in limits.items() if v > 0}),
        )

    def collective_cost(self, collective: Collective, work: Workload) -> Cost:
        """One call of a collective of the sharded IR, from its payload, the link it crosses, hops and latency
        (`targets.links`)."""
        seconds, sent, resource = collective_time(self.spec, collective, work.tp)
        return Cost(
            seconds=seconds,
            roofline_seconds=seconds,
            bytes=Counts({"link": sent}),
            limits=Counts({resource: seconds}),
        )

    def demands(self, kernel: KernelWork, share: float) -> tuple[list[Demand], dict[str, float], dict[str, float]]:
        """(demands, bytes per memory level, ops per unit) of one kernel call on one working device."""
        main = self.spec.main_memory
        traffic = kernel.activation_read + kernel.activation_written
        traffic += share * (kernel.weight_bytes + kernel.kv_read + kernel.kv_written)
        served = serve_rereads(self.spec, kernel.rereads, share)  # re-reads a level does not hold: main memory
        traffic += served.pop(main.name, 0.0)
        bandwidth = main.bandwidth_bytes_per_s
        demands: list[Demand] = []
        if bandwidth:
            demands.append(Demand(f"{main.name} bandwidth", traffic / bandwidth, self.efficiency.bandwidth))
        bytes_moved = {main.name: traffic}
        for level_name, amount in served.items():  # on-chip levels: time only where the spec gives a bandwidth
            bytes_moved[level_name] = bytes_moved.get(level_name, 0.0) + amount
            rate = self.spec.memory_level(level_name).bandwidth_bytes_per_s
            if rate:
                demands.append(Demand(f"{level_name} bandwidth", amount / rate, self.efficiency.bandwidth))
        for space, amount in kernel.moved.items():
            level = self._level(space)
            bytes_moved[level] = bytes_moved.get(level, 0.0) + amount * share
        # seconds on each unit, by what it does there: matmul (MACs), unpacking (weight-side ALU), element-wise
        work: dict[str, dict[str, float]] = {}
        ops: dict[str, float] = {}
        matrix, vector = self.matrix_unit(), self.vector_unit()

        def charge(unit: ComputeUnit, what: str, key: str, count: float, seconds: float) -> None:
            ops[key] = ops.get(key, 0.0) + count
            parts = work.setdefault(unit.name, {})
            parts[what] = parts.get(what, 0.0) + seconds

        for dtype, macs in kernel.macs.items():
            unit = matrix or vector
            if unit is not None:
                rate_dtype, rate = unit_rate(unit, dtype)
                charge(unit, "matmul", f"{unit.name}.{rate_dtype}", 2 * macs * share, 2 * macs * share / rate)
        alu_unit = vector or matrix
        for side, counts in (("unpacking", kernel.weight_alu), ("element-wise", kernel.token_alu)):
            for op_class, count in counts.items():
                if alu_unit is None:
                    raise ValueError(f"{self.name}: no compute unit to run {op_class} ops on")
                rate_dtype, rate = unit_rate(alu_unit, ALU_DTYPE[op_class])
                if rate_dtype != "elementwise":
                    rate /= 2  # the peak counts a MAC as 2 ops; an element-wise op takes a whole MAC slot
                charge(alu_unit, side, f"{alu_unit.name}.{rate_dtype}", count * share, count * share / rate)
        demands += self.compute_demands(work)
        return demands, bytes_moved, ops

    def compute_demands(self, work: Mapping[str, Mapping[str, float]]) -> list[Demand]:
        """The compute demands of one kernel call from the seconds at peak of each unit, by what it does there:
        one per unit where the units overlap (`units_overlap`), else one for all of them, summed, with its
        parts (`<unit> <what>`) kept for `limits`."""
        named = {f"{unit} {what}": s for unit, parts in work.items() for what, s in parts.items() if s > 0}
        if not named:
            return []
        if not self.units_overlap:
            binding = max(named.items(), key=lambda kv: kv[1])[0]
            return [Demand(binding, sum(named.values()), self.efficiency.compute, named)]
        demands = []
        for unit, parts in work.items():
            what = max(parts.items(), key=lambda kv: kv[1])[0]
            own = {f"{unit} {w}": s for w, s in parts.items() if s > 0}
            demands.append(Demand(f"{unit} {what}", sum(parts.values()), self.efficiency.compute, own))
        return demands

    def energy(
        self, bytes_moved: Mapping[str, float], kernel: KernelWork, share: float, active: float
    ) -> dict[str, float]:
        """Joules of one kernel call on all `active` devices: bytes x pJ/bit per level, ops x pJ/op."""
        scale = self.spec.energy
        joules: dict[str, float] = {}
        levels = {m.name: m for m in self.spec.memory}
        for level_name, amount in bytes_moved.items():
            if level_name in levels:  # an assumed level (Apple's threadgroup memory) has no energy figure
                joules[level_name] = 8 * amount * levels[level_name].energy_pj_per_bit * 1e-12 * active
        compute = sum(
            macs * scale.op_pj(MAC_ENERGY.get(self.mac_dtype(dtype), "fp32_mac")) for dtype, macs in kernel.macs.items()
        )
        for op_class, count in (*kernel.weight_alu.items(), *kernel.token_alu.items()):
            compute += count * scale.op_pj(ALU_ENERGY.get(op_class, "fp32_mul"))
        joules["compute"] = compute * 1e-12 * share * active
        return joules

    # -- helpers --------------------------------------------------------------------------------------------

    def mac_dtype(self, dtype: str) -> str:
        """The dtype a MAC of `dtype` runs at, on the unit that runs MACs (the same for its time and its energy)."""
        unit = self.matrix_unit() or self.vector_unit()
        return dtype if unit is None else unit_rate(unit, dtype)[0]

    def matrix_unit(self) -> ComputeUnit | None:
        return next((u for u in self.spec.compute if u.kind == "matrix"), None)

    def vector_unit(self) -> ComputeUnit | None:
        return next((u for u in self.spec.compute if u.kind == "vector"), None)

    def _level(self, space: str) -> str:
        """The memory level a memory space number names: an index into the spec's levels, outermost first."""
        levels = self.spec.memory
        if space.isdigit() and int(space) < len(levels):
            return levels[int(space)].name
        return space


def unit_rate(unit: ComputeUnit, dtype: str) -> tuple[str, float]:
    """(dtype used, ops/s) of `unit` for `dtype`, falling back to the nearest rate it has (`FALLBACK`)."""
    for candidate in FALLBACK.get(dtype, (dtype,)) + tuple(unit.peak_ops_per_s):
        if candidate in unit.peak_ops_per_s:
            return candidate, unit.peak_ops_per_s[candidate].value
    raise ValueError(f"compute unit {unit.name} has no peak rate")


def get_target(name: str, spec_dir: Path | str | None = None) -> Target:
    """The target named `name`, of its family's class (`targets.registry`); ValueError listing the valid names
    when there is none."""
    from q35c.targets import registry  # the registry imports the family modules, which import this one

    return registry.get_target(name, spec_dir)
