"""One emitted CUDA kernel: its source, its parameters and its launch geometry.

Launch geometry (the rule `docs/cuda.md` states):

- A linear kernel's block has 512 threads (16 warps, so up to 128 registers per thread: an MMA warp's
  accumulator tiles, the unpacking chain); the tile schedule sizes a tile to one SM's shared memory, so usually
  one block is resident per SM and its 16 warps share the tile. Every other kernel has `THREADS` (256).
- A linear kernel's grid is one block per tile of the schedule (`ceil(T/tile_t) * ceil(N/tile_n)`), capped at
  the blocks the device holds at once (SMs x blocks per SM); a block walks the tiles `blockIdx.x`,
  `blockIdx.x + gridDim.x`, ... and the K tiles of each, with the next step's copies in flight.
- Any other kernel's grid covers the threads its largest phase needs (an output element per thread, per warp
  or per block: `phases.split`), capped likewise when it has several phases (a cooperative launch: the phases
  meet at grid-wide barriers).
"""

from __future__ import annotations

from dataclasses import dataclass

THREADS = 256


@dataclass(frozen=True)
class Param:
    """A kernel parameter: a pointer to a buffer of `ctype` elements, read-only unless `written`."""

    name: str
    ctype: str
    elements: int
    written: bool

    def declaration(self) -> str:
        qualifier = "" if self.written else "const "
        return f"{qualifier}{self.ctype}* __restrict__ {self.name}"


@dataclass(frozen=True)
class Kernel:
    """An emitted kernel: `name` is its C symbol, `kind` its class in the resource data (`linear.gemv.q3p5`,
    `rmsnorm`, ...), `source` the whole `.cu` file. `work` is what the grid covers: tiles for a linear kernel,
    threads for the others; `smem_bytes` the dynamic shared memory it asks for at launch."""

    name: str
    kind: str
    function: str
    source: str
    params: tuple[Param, ...]
    work: int
    smem_bytes: int
    cooperative: bool
    threads: int = 256

    @property
    def filename(self) -> str:
        return f"{self.name}.cu"

    def grid_rule(self) -> str:
        if self.kind.startswith("linear."):
            return f"min({self.work} tiles, SMs x blocks per SM)"
        blocks = -(-self.work // self.threads)
        return f"min({blocks}, SMs x blocks per SM)" if self.cooperative else f"{blocks}"


def c_identifier(text: str) -> str:
    """A C identifier from an IR name: every other character becomes `_`."""
    out = "".join(c if c.isalnum() else "_" for c in text)
    return out if out and not out[0].isdigit() else f"k_{out}"
