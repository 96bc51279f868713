"""Front-end import time: model file -> verified q35 module, for small and very large models.

Identical decoder layers are one block func, built and verified once, so import time must not grow with the
number of layers beyond the per-layer weight ops and calls in main. This prints, per model:

- graph: parse and check the model (plain-Python graph), best of several runs in this process;
- ir: emit and verify the xDSL module from the graph, best of several runs;
- cold: a fresh `python` importing q35c and loading the model, minus the start-up of a bare `python`.

and checks that the 126-layer Llama 3.1 405B is within 1.5x of its 1-layer variant and under 1 s cold.

    python benchmarks/frontend.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from q35c.frontend import load_graph, load_model
from q35c.frontend.emit import to_module
from q35c.frontend.examples import resolve_model

RUNS = 5


def best(fn: object, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def cold(model: str) -> float:
    """Seconds a fresh interpreter spends importing q35c and loading `model`, beyond bare start-up."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    bare = min(run("pass") for _ in range(3))
    load = min(run(f"from q35c.frontend import load_model; load_model({model!r})") for _ in range(3))
    return load - bare


def one_layer_variant(directory: Path) -> str:
    """Llama 3.1 405B with a single decoder layer."""
    text = Path(resolve_model("llama-3.1-405b")).read_text()
    path = directory / "llama-3.1-405b-1layer.q35"
    path.write_text(text.replace("dim layers   = 126", "dim layers   = 1"))
    return str(path)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        models = [
            ("tiny", "tiny"),
            ("llama-2-70b", "llama-2-70b"),
            ("llama-3.1-405b (1 layer)", one_layer_variant(Path(tmp))),
            ("llama-3.1-405b", "llama-3.1-405b"),
        ]
        rows = []
        for label, model in models:
            graph = load_graph(model)
            layers = dict(graph.dims).get("layers", 0)
            ops = sum(len(list(f.body.block.ops)) for f in load_model(model).module.ops)  # type: ignore[attr-defined]
            t_graph = best(lambda m=model: load_graph(m))
            t_ir = best(lambda g=graph: to_module(g))
            rows.append((label, layers, ops, t_graph, t_ir, cold(model)))
    print(f"{'model':<26} {'layers':>6} {'ops':>6} {'graph ms':>9} {'ir ms':>8} {'total ms':>9} {'cold ms':>8}")
    for label, layers, ops, t_graph, t_ir, t_cold in rows:
        total = t_graph + t_ir
        print(
            f"{label:<26} {layers:>6} {ops:>6} {t_graph * 1e3:>9.1f} {t_ir * 1e3:>8.1f} {total * 1e3:>9.1f} "
            f"{t_cold * 1e3:>8.0f}"
        )
    one, full = rows[2], rows[3]
    ratio = (full[3] + full[4]) / (one[3] + one[4])
    cold_ratio = full[5] / one[5]
    print(f"\n405B (126 layers) / 1-layer variant: {ratio:.2f}x in process, {cold_ratio:.2f}x cold (limit 1.5x)")
    print(f"405B cold import: {full[5]:.2f} s (limit 1 s)")
    ok = cold_ratio <= 1.5 and full[5] < 1.0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
