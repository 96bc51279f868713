"""The ptxas resource data the GPU cost model reads (`targets/data/cuda_resources.json`), and how it is made.

The reference builds (`REFERENCE_MODEL` for each of `REFERENCE_TARGETS` and `REFERENCE_SCHEMES`, the default
scenario) are emitted, every kernel is compiled by nvcc/ptxas for its target's architecture, and each kernel
class (`Kernel.kind`) keeps the kernel with the fewest resident warps per SM (its registers, shared memory and
threads: the class's worst case). Each build's digest (a hash of its kernel sources) is stored with the data, so
a test can tell, without a toolkit, when the emitter or the pipeline changed the kernels and the data is stale.

    data = measure(find_toolkit())          # what scripts/cuda_resources.py writes
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from q35c.codegen.cuda.emit import PhaseSources, cuda_phases
from q35c.codegen.cuda.header import HEADER
from q35c.codegen.cuda.toolkit import Toolkit
from q35c.targets.gpu_occupancy import DATA, Resources, occupancy, sm_limits

REFERENCE_MODEL = "llama-2-7b"
REFERENCE_TARGETS = ("a100-sxm", "h100-sxm")
REFERENCE_SCHEMES = ("q3p5", "q3p5:container=byte", "int4:g=128", "int8", "fp16", "q4_0", "q8_0")


def reference_keys(model: str, scheme: str) -> dict[str, tuple[str, str | None, int, int, int]]:
    """The compile keys of the default scenario (batch 1, the model's default prompt and generation)."""
    from q35c.frontend import load_graph
    from q35c.predict.predictor import Predictor, Scenario, scenario_lengths

    graph = load_graph(model, quant=scheme)
    prompt, gen = scenario_lengths(None, None, graph.max_context, graph.source)
    return Predictor(model, scheme, Scenario(1, prompt, gen), ()).phase_keys()


def reference_build(target: str, scheme: str, model: str = REFERENCE_MODEL) -> dict[str, PhaseSources]:
    return cuda_phases(target, reference_keys(model, scheme))


def digest(emitted: Mapping[str, PhaseSources]) -> str:
    """A hash of every kernel source of a build (and the shared header)."""
    h = hashlib.sha256(HEADER.encode())
    for phase in sorted(emitted):
        for kernel in sorted(emitted[phase].kernels, key=lambda k: k.name):
            h.update(f"{phase}/{kernel.name}\n".encode())
            h.update(kernel.source.encode())
    return h.hexdigest()[:16]


def _write_sources(sources: PhaseSources, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q35_cuda.h").write_text(HEADER, encoding="utf-8")
    files = []
    for kernel in sources.kernels:
        path = folder / kernel.filename
        path.write_text(kernel.source, encoding="utf-8")
        files.append(path)
    return files


def measure(toolkit: Toolkit, workdir: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Emit and compile the reference builds; the resource data (see the module docstring)."""
    from q35c.targets.registry import get_target

    builds: dict[str, str] = {}
    archs: dict[str, dict[str, dict[str, Any]]] = {}
    for target in REFERENCE_TARGETS:
        limits = sm_limits(get_target(target).spec)
        assert limits is not None, f"{target} has no SM limits"
        table = archs.setdefault(limits.arch, {})
        for scheme in REFERENCE_SCHEMES:
            say(f"{target} {scheme}")
            emitted = reference_build(target, scheme)
            builds[f"{target}/{scheme}"] = digest(emitted)
            for phase, sources in emitted.items():
                files = _write_sources(sources, workdir / target / scheme.replace(":", "_") / phase)
                by_name = {k.name: k for k in sources.kernels}
                for found in toolkit.resources(files, limits.arch):
                    kernel = by_name[found.kernel]
                    smem = found.smem_bytes + kernel.smem_bytes  # static (ptxas) + dynamic (the emitter's layout)
                    res = Resources(found.registers, smem, kernel.threads, found.spill_bytes)
                    entry = table.get(kernel.kind)
                    warps = occupancy(limits, res).warps
                    if (
                        entry is None
                        or warps < entry["warps"]
                        or (warps == entry["warps"] and res.registers > entry["registers"])
                    ):
                        table[kernel.kind] = {
                            "registers": res.registers,
                            "smem_bytes": res.smem_bytes,
                            "threads": res.threads,
                            "spill_bytes": max(res.spill_bytes, entry["spill_bytes"] if entry else 0),
                            "warps": warps,
                            "example": f"{target}/{scheme}/{phase}/{kernel.name}",
                        }
                    elif res.spill_bytes > entry["spill_bytes"]:
                        entry["spill_bytes"] = res.spill_bytes
    return {
        "about": "ptxas resources of q35c's CUDA kernels per architecture and kernel class (the class's kernel "
        "with the fewest resident warps per SM); written by scripts/cuda_resources.py",
        "toolkit": toolkit.version(),
        "reference": {"model": REFERENCE_MODEL, "targets": list(REFERENCE_TARGETS), "schemes": list(REFERENCE_SCHEMES)},
        "builds": builds,
        "archs": {arch: dict(sorted(table.items())) for arch, table in sorted(archs.items())},
    }


def write(data: Mapping[str, Any], path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def markdown_table(data: Mapping[str, Any]) -> str:
    """The data as docs/cuda.md's table: per kernel class, registers and shared memory on sm_80 and sm_90,
    threads per block and resident warps per SM (a test keeps the page's copy current)."""
    archs = data["archs"]
    old, new = archs["sm_80"], archs["sm_90"]
    lines = [
        "| class | sm_80 regs | sm_80 smem B | sm_90 regs | sm_90 smem B | threads | warps per SM (sm_80 / sm_90) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in sorted(set(old) | set(new)):
        pair = (old.get(kind), new.get(kind))
        cells = [f"`{kind}`"]
        for r in pair:
            cells += [str(r["registers"]), f"{r['smem_bytes']:,}"] if r is not None else ["-", "-"]
        cells.append(str(next(r["threads"] for r in pair if r is not None)))
        cells.append(" / ".join(str(r["warps"]) if r is not None else "-" for r in pair))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stored(path: Path = DATA) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
