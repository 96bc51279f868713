"""`q35c targets`: the hardware targets with their key figures, or one target in full with every number's source."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q35c.targets.spec import HardwareSpec, Quantity

EPILOG = """\
examples:
  q35c targets                 every target: memory, bandwidth, dense peaks, on-chip memory, TDP, interconnect
  q35c targets h100-sxm        one target in full, with the source of every number
  q35c targets --json          the key figures as JSON (plain units: bytes, bytes/s, ops/s, W)
  q35c targets host --probe    measure the host's bandwidth and FLOPS again (otherwise cached)

A "~" marks a figure that is derived or uncertain rather than published or measured.
"""

_PREFIXES = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "targets",
        help="list the hardware targets and their key figures; show one with the source of every number",
        description="List the hardware targets q35c models, with their key figures, or show one target in full "
        "with where each number came from (datasheet, paper, derivation or measurement).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="show one target in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--probe", action="store_true", help="measure the host again instead of using the cache")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from q35c.targets import host_probe
    from q35c.targets.spec import load_spec, spec_names

    if args.probe:
        m = host_probe.measurement(refresh=True)
        print(
            f"host probe: copy {m.copy_bytes_per_s / 1e9:.1f} GB/s, triad {m.triad_bytes_per_s / 1e9:.1f} GB/s, "
            f"fp32 matmul {m.fp32_flops / 1e9:.1f} GFLOPS ({m.describe_spread()}); cached in "
            f"{host_probe.cache_path()}",
            file=sys.stderr,
        )
    if args.name is not None:
        spec = load_spec(args.name)
        print(json.dumps(spec.to_dict(), indent=2) if args.json else describe(spec))
        return 0
    specs = [load_spec(name) for name in spec_names()]
    print(json.dumps([s.summary() for s in specs], indent=2) if args.json else table(specs))
    return 0


def _num(x: float) -> str:
    return f"{x:.4g}"


def _scaled(x: float, unit: str) -> str:
    for prefix, scale in _PREFIXES:
        if x >= scale:
            return f"{_num(x / scale)} {prefix if prefix != 'k' or unit[0] != 'B' else 'K'}{unit}"
    return f"{_num(x)} {unit}"


def _mark(*quantities: Quantity | None) -> str:
    return "~" if any(q is not None and q.confidence in ("derived", "uncertain") for q in quantities) else ""


def format_value(path: str, value: float) -> str:
    """A quantity in human units, chosen by its key (`*_bytes`, `*_bytes_per_s`, `peak_ops_per_s.fp16`, ...)."""
    last = path.rsplit(".", 1)[-1]
    if path.endswith("_bytes_per_s"):
        return _scaled(value, "B/s")
    if path.endswith("_bytes"):
        binary = ""
        if value >= 2**20 and value % 2**20 == 0:
            binary = f" ({_num(value / 2**20)} MiB)"
        elif 2**10 <= value < 2**20 and value % 2**10 == 0:
            binary = f" ({_num(value / 2**10)} KiB)"
        return _scaled(value, "B") + binary
    if ".peak_ops_per_s." in path:
        return _scaled(value, "FLOPS" if last.startswith(("fp", "bf")) else "OPS")
    if path.endswith("_hz"):
        return _scaled(value, "Hz")
    if path.endswith("_w"):
        return f"{_num(value)} W"
    if path.endswith("_pj_per_bit"):
        return f"{_num(value)} pJ/bit"
    if ".per_op_pj." in path:
        return f"{_num(value)} pJ"
    if path.endswith("_s"):
        return f"{_num(value * 1e6)} us"
    if path.endswith("_nm"):
        return f"{_num(value)} nm"
    if float(value).is_integer():
        return f"{int(value):,}"
    return _num(value)


def _align(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def table(specs: list[HardwareSpec]) -> str:
    """The aligned overview of all targets."""
    rows = [["TARGET", "FAMILY", "MEMORY", "BANDWIDTH", "FP16", "INT8", "FP32", "ON-CHIP", "TDP", "INTERCONNECT"]]
    for s in specs:
        main = s.main_memory
        fp16, int8, fp32 = s.peak("fp16"), s.peak("int8"), s.peak("fp32")
        on_chip = [m.capacity for m in s.memory if m.on_chip]
        link = s.interconnect
        rows.append(
            [
                s.name,
                s.family,
                f"{_mark(main.capacity)}{_scaled(main.capacity_bytes, 'B')} {main.name}",
                "-" if main.bandwidth is None else _mark(main.bandwidth) + _scaled(main.bandwidth.value, "B/s"),
                "-" if fp16 is None else _mark(fp16) + _scaled(fp16.value, "FLOPS"),
                "-" if int8 is None else _mark(int8) + _scaled(int8.value, "OPS"),
                "-" if fp32 is None else _mark(fp32) + _scaled(fp32.value, "FLOPS"),
                _mark(*on_chip) + _scaled(s.on_chip_bytes, "B") if on_chip else "-",
                _mark(s.power.tdp) + f"{_num(s.power.tdp.value)} W",
                "-" if link is None else f"{link.kind} {_mark(link.bandwidth)}{_scaled(link.bandwidth.value, 'B/s')}",
            ]
        )
    legend = "~ derived or uncertain; `q35c targets NAME` shows every number with its source"
    measured = [f"{s.name}: {_measured(s)}" for s in specs if s.measured_at]
    return "\n".join([_align(rows, {3, 4, 5, 6, 7, 8}), "", legend, *measured])


def _measured(spec: HardwareSpec) -> str:
    """`measured DATE (median of 5 runs; spread ...)`: when the probe ran, and how far its runs disagreed."""
    from q35c.targets import host_probe

    probe = host_probe.load_cached()
    spread = f" ({probe.describe_spread()})" if probe is not None and probe.measured_at == spec.measured_at else ""
    return f"measured {spec.measured_at}{spread}"


def describe(spec: HardwareSpec) -> str:
    """One target in full: identity, levels and units, then every number with its source and note."""
    lines = [
        f"{spec.name}: {spec.description}",
        f"vendor {spec.vendor}; family {spec.family}; spec file {spec.path}",
    ]
    if spec.measured_at:
        lines.append(f"{_measured(spec)}; `q35c targets host --probe` measures again")
    levels = ", ".join(f"{m.name} ({'on' if m.on_chip else 'off'}-chip)" for m in spec.memory)
    units = ", ".join(f"{c.name} ({c.kind}: {', '.join(c.peak_ops_per_s)})" for c in spec.compute)
    lines += [f"memory, outermost first: {levels}", f"compute: {units}", f"energy: {spec.energy.reference}", ""]
    rows = [["KEY", "VALUE", "CONFIDENCE", "SOURCE"]]
    notes: dict[int, str] = {}
    for path, q in spec.quantities.items():
        rows.append([path, format_value(path, q.value), q.confidence, q.source])
        if q.note:
            notes[len(rows) - 1] = q.note
    body = _align(rows, {1}).split("\n")
    indent = " " * (len(body[0]) - len(body[0].lstrip()) + 4)
    for i, line in enumerate(body):
        lines.append(line)
        if i in notes:
            lines.append(f"{indent}note: {notes[i]}")
    return "\n".join(lines)
