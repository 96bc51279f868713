"""The workload and cost of one compiled module read back from a file: what `q35c cost FILE --target T` prints.

A module `q35c build --dump-ir DIR` (or a report's `ir/<target>/<phase>/`) wrote after the last stage of a
target's pipeline is the module that target's figures were costed from; `cost_file` parses it, checks that it was
scheduled for the target's memory levels (`q35.memory_spaces`), extracts its workload
(`q35c.analysis.workload.extract`: the KV-cache appends and the batch come from the attributes lower-graph
put on the attention kernels) and costs it with the target's own `Target.estimate`, so the result equals the
build's `decode_cost`/`prefill_cost` for that module and device count.

    result = cost_file(Path("ir/decode/05-schedule.mlir"), "h100-sxm")
    result.cost.seconds, result.to_json()["workload"]["bytes"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from q35c.analysis.workload import Workload, extract
from q35c.driver.mlir_input import read_module
from q35c.ir import attrs
from q35c.predict.predictor import resolve_targets
from q35c.targets.target import Cost, Target, get_target
from q35c.util.errors import Location, Q35Error


@dataclass(frozen=True)
class ModuleCost:
    """A module's workload and its cost on a target with `devices` devices."""

    path: str
    target: str
    devices: int
    workload: Workload
    cost: Cost

    def workload_json(self) -> dict[str, Any]:
        w = self.workload
        macs: dict[str, float] = {}
        alu: dict[str, float] = {}
        for kernel in w.kernels:
            for dtype, count in kernel.macs.items():
                macs[dtype] = macs.get(dtype, 0.0) + count * kernel.calls
            for side in (kernel.weight_alu, kernel.token_alu):
                for kind, count in side.items():
                    alu[kind] = alu.get(kind, 0.0) + count * kernel.calls
        return {
            "batch": w.batch,
            "rows": w.tokens,
            "context": w.context,
            "kernels": len(w.kernels),
            "kernel_launches": w.kernel_launches,
            "weight_bytes": w.weight_bytes,
            "kv_appended_bytes": w.total("kv_written"),
            "bytes": dict(self.cost.bytes),
            "macs": macs,
            "alu_ops": alu,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "target": self.target,
            "devices": self.devices,
            "workload": self.workload_json(),
            "cost": self.cost.to_dict(),
        }

    def lines(self) -> list[str]:
        """The workload and cost as text."""
        data = self.workload_json()
        c = self.cost
        out = [
            f"{self.path} on {self.target} ({self.devices} device(s))",
            f"batch {data['batch']}, {data['rows']} row(s) in flight, context {data['context']:g} per sequence",
            f"kernels: {data['kernels']} ({data['kernel_launches']} launches per pass)",
            f"weights: {data['weight_bytes']:,} B; KV appended: {data['kv_appended_bytes']:,.0f} B",
            "bytes per level: " + ", ".join(f"{k} {v:,.0f}" for k, v in data["bytes"].items()),
            "MACs: " + (", ".join(f"{k} {v:,.0f}" for k, v in data["macs"].items()) or "none"),
            "ALU ops: " + (", ".join(f"{k} {v:,.0f}" for k, v in sorted(data["alu_ops"].items())) or "none"),
            f"time: {c.seconds * 1e3:.6g} ms (roofline {c.roofline_seconds * 1e3:.6g} ms); energy {c.joules:.6g} J",
            "limits: " + ", ".join(f"{k} {v * 1e3:.4g} ms" for k, v in c.limits.items()),
        ]
        return out


def check_scheduled(module: ModuleOp, target: Target, path: Path) -> None:
    """Q35Error unless `module` was scheduled for `target`'s memory levels (the last stage of its pipeline)."""
    found = attrs.memory_spaces(module)
    expected = list(target.memory_spaces(target.tile_level()))
    if not found:
        raise Q35Error(
            "the module has no q35.memory_spaces: it is not the final stage of a target's pipeline "
            "(cost e.g. DIR/decode/05-schedule.mlir from `q35c build --dump-ir DIR`)",
            Location(str(path)),
        )
    if found != expected:
        raise Q35Error(
            f"the module was scheduled for memory levels {found}, not {target.name}'s {expected}: "
            f"dump it with --target {target.name}",
            Location(str(path)),
        )


def cost_file(path: Path, target_name: str) -> ModuleCost:
    """Parse `path`, check it was compiled for `target_name`, and cost its workload on the devices it was
    sharded for (one unless the `shard` stage placed it)."""
    names = resolve_targets(target_name)
    if len(names) != 1:
        raise Q35Error("q35c cost takes one target")
    target = get_target(names[0])
    module = read_module(path)
    check_scheduled(module, target, path)
    try:
        work = extract(module)
    except ValueError as err:
        raise Q35Error(str(err), Location(str(path))) from None
    return ModuleCost(str(path), target.name, work.devices, work, target.estimate(work))
