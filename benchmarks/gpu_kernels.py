"""The emitted CUDA kernels on this machine's GPU: measured time per kernel beside the GPU cost model's prediction.

    python benchmarks/gpu_kernels.py [--target h200] [--layers 32] [--llama-phases decode] [--skip-tiny]
                                     [--skip-llama] [--json benchmarks/results/gpu_kernels.json]

Three cases, each through `q35c.codegen.cuda.device.run_on_device` (what `q35c run MODEL --target T` does):

- tiny (2 layers), decode step and prefill, numerics checked against the numpy reference;
- tiny widened (`WIDE_TINY`: hidden 512, one layer) after a 300-token prompt, checked likewise: its reductions
  are long enough for the block- and warp-split phases;
- llama-2-7b (q3p5, g=128), the decode step after 576 cached tokens (prompt 512, 128 generated: the mean
  context), every layer unless `--layers N` cuts the model to N decoder layers (a copy of the example with
  `dim layers = N`, `with_dims`; every kernel is the same, there are fewer launches); too large for the numpy
  reference.

Each kernel's time is the median over the timed steps of the GPU time between the events around its launch,
the stream held until the step is queued (see the device module); tok/s is the step's. The target (the cost
model's hardware) is the device's own when its name says which (H200, H100 PCIe/SXM, A100), else `--target`.
Printed: per kernel the calls per step, measured and predicted microseconds per call, their ratio; per phase
measured and predicted tok/s. `--json` writes the same figures. Without a CUDA device the benchmark says so
and exits 0, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "gpu_kernels.json"


def device_target(name: str) -> str | None:
    """The NVIDIA target a device's name identifies, None when it names none of them."""
    upper = name.upper()
    if "H200" in upper:
        return "h200"
    if "H100" in upper:
        return "h100-pcie" if "PCIE" in upper else "h100-sxm"
    if "A100" in upper:
        return "a100-sxm"
    return None


# tiny widened: norms, softmax over a 300-token prompt and weighted values long enough for the block- and
# warp-split reductions, still small enough for the numpy reference (about 2 M weight and input elements).
WIDE_TINY = {"hidden": 512, "ffn": 512, "layers": 1}
WIDE_PROMPT = 300


def with_dims(model: Path, dims: Mapping[str, int], folder: Path, stem: str, rename: bool = False) -> Path:
    """A copy of the .q35 model file, `folder/stem.q35`, with each `dim NAME = N` line of `dims` set to its
    value (and the model named `stem` where `rename`)."""
    text = model.read_text(encoding="utf-8")
    for name, value in dims.items():
        text, count = re.subn(rf"(?m)^dim {name}(\s*)=\s*\d+$", rf"dim {name}\g<1>= {value}", text)
        if count != 1:
            raise SystemExit(f"gpu_kernels: {model} has no single `dim {name} = N` line")
    if rename:
        text = re.sub(r'(?m)^model "[^"]*"', f'model "{stem}"', text)
    out = folder / f"{stem}.q35"
    out.write_text(text, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default=None, help="the cost model's target (default: the device's own)")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers of the llama-2-7b case (all)")
    parser.add_argument("--llama-phases", default="decode", help="decode, prefill or decode,prefill (decode)")
    parser.add_argument("--llama-prompt", type=int, default=512, help="prompt tokens of the llama case (512)")
    parser.add_argument("--gen", type=int, default=16, help="timed decode steps per case (16)")
    parser.add_argument("--skip-llama", action="store_true", help="run the tiny case only")
    parser.add_argument("--skip-tiny", action="store_true", help="run the llama-2-7b case only (no tiny cases)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"write the figures here ({DEFAULT_JSON})")
    parser.add_argument("--print-target", action="store_true", help="print the device's target and stop")
    args = parser.parse_args(argv)

    from q35c.codegen.cuda.device import DeviceRequest, run_on_device
    from q35c.codegen.cuda.libcuda import Cuda
    from q35c.util.errors import Q35Error

    try:
        cuda = Cuda.open()
    except Q35Error as err:
        print(f"gpu_kernels: {err.message}; nothing measured", file=sys.stderr if args.print_target else sys.stdout)
        return 2 if args.print_target else 0
    device = cuda.info
    cuda.close()
    target = args.target or device_target(device.name) or "h100-sxm"
    if args.print_target:
        print(target)
        return 0
    print(f"gpu_kernels: {device.describe()}; predictions for --target {target}", flush=True)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="q35c-gpu-kernels-") as tmp:
        cases: list[tuple[str, DeviceRequest]] = []
        if not args.skip_tiny:
            wide = with_dims(ROOT / "examples" / "tiny.q35", WIDE_TINY, Path(tmp), "tiny-wide", rename=True)
            cases += [
                ("tiny", DeviceRequest("tiny", target, None, prompt=16, gen=args.gen)),
                ("tiny-wide", DeviceRequest(str(wide), target, None, prompt=WIDE_PROMPT, gen=4)),
            ]
        if not args.skip_llama:
            model = ROOT / "examples" / "llama-2-7b.q35"
            if args.layers is not None:
                model = with_dims(model, {"layers": args.layers}, Path(tmp), f"llama-2-7b-{args.layers}-layers")
            path = str(model)
            phases = tuple(p.strip() for p in args.llama_phases.split(",") if p.strip())
            request = DeviceRequest(
                path, target, "q3p5", prompt=args.llama_prompt, gen=128, phases=phases, timed_steps=args.gen
            )
            cases.append(("llama-2-7b", request))
        for label, request in cases:
            print(f"\n== {label} ({', '.join(request.phases)})", flush=True)
            run = run_on_device(request, lambda what: print(f"   {what}", file=sys.stderr, flush=True))
            print("\n".join(run.lines()), flush=True)
            data = run.to_json()
            data["case"] = label
            data["layers"] = args.layers if label == "llama-2-7b" else None
            results.append(data)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"device": device.describe(), "target": target, "cases": results}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
