#!/usr/bin/env python3
"""Regenerate targets/data/cuda_resources.json: emit the reference builds (q35c.codegen.cuda.resources), compile
every kernel with nvcc/ptxas for sm_80 and sm_90, and record registers, shared memory, threads and spills per
kernel class. Run it after a change to the CUDA emitter or to the GPU pipeline (tests/codegen/cuda tells when):

    .venv/bin/python scripts/cuda_resources.py          # a few minutes; needs nvcc
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from q35c.codegen.cuda.resources import markdown_table, measure, write
from q35c.codegen.cuda.toolkit import find_toolkit
from q35c.targets.gpu_occupancy import DATA
from q35c.util.errors import Q35Error


def main() -> int:
    try:
        toolkit = find_toolkit()
    except Q35Error as err:
        print(f"cuda_resources: {err.message}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="q35c-cuda-resources-") as tmp:
        data = measure(toolkit, Path(tmp), lambda text: print(f"  {text}", file=sys.stderr))
    write(data)
    for arch, table in data["archs"].items():
        print(f"{arch}:")
        for kind, r in table.items():
            print(
                f"  {kind:<24} {r['registers']:>4} regs  {r['smem_bytes']:>7} B smem  {r['threads']:>5} threads  "
                f"{r['warps']:>3} warps/SM  {r['spill_bytes']} B spilled  ({r['example']})"
            )
    print(f"wrote {DATA}; docs/cuda.md's resources table is now:\n")
    print(markdown_table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
