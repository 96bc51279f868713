"""Tile choice for quantized linears: pure functions from a linear's shape, its scheme and a target's on-chip memory
to tile sizes. The `tile` pass applies them; tests and the cost model may call them directly.

A linear y[T, N] = x[T, K] @ W[N, K]^T is computed in tiles of tt tokens x tn output rows x tk inputs. The working
set of one tile bounds what `schedule-memory` allocates on chip for it (on Groq, besides the kernel's output):

    2 x storage(tn, tk)       the packed weight tile (codes, scale, offset), double-buffered while streaming
    2 x tt x tk x act_bytes   the activation tile, double-buffered when it streams
    2 x tt x tn x 4           the f32 accumulator and the partial sum (or the rounded output tile)
    4 x tt x (tn + 1) x G     with integer codes kept (`keep-int-codes`): the per-group partial sums and the
                              per-group sums of x, over the G = tk / g groups of a K tile

A K that splits into one whole tile and a remainder (tk < K < 2 tk) has no K loop: both K tiles are read in the
same loop body and are buffered side by side, so tk counts as the two together (K) there.

K tiles must hold whole quantization groups and whole storage words (`Scheme.k_alignment`): a sliced weight is again a
valid `!q35.packed` of its scheme, so `unpack-bits` lowers it unchanged.

Among the tiles that fit the budget, `choose_tile` takes the one that moves the fewest bytes from main memory
(weights are read once per token tile; activations once when K is whole, else once per N tile), then the one with
`prefer_n` rows when the policy names such a size, then the one with the fewest tiles, then the widest K, N and T.
For a decode step (T = 1) that means whole rows (tk = K) when they fit, with as many rows per tile as the budget
allows (or `prefer_n`).

Where the budget and the other policy fields come from is the target family's decision (`Target.tile_policy` in
`q35c.targets`); the `tile` pass receives them as pass options, so nothing here knows about targets.

>>> from q35c.ir.schemes import parse_scheme
>>> choose_tile(LinearShape(1, 4096, 4096, parse_scheme("q3p5")), TilePolicy(budget_bytes=228_000))
Tile(tokens=1, n=48, k=4096)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from q35c.ir.schemes import Scheme

MAX_K_CANDIDATES = 512  # K tile sizes tried per linear (multiples of the alignment, coarsened for long rows)
F32_BYTES = 4


class TileError(ValueError):
    """No tile of a linear fits the budget, or a requested tile size does not align with the scheme's storage."""


@dataclass(frozen=True)
class LinearShape:
    """A linear y[T, N] = x[T, K] @ W[N, K]^T with W in `scheme` and activations of `act_bytes` per element."""

    tokens: int
    n: int
    k: int
    scheme: Scheme
    act_bytes: int = 2

    def weight_bytes(self, n: int, k: int) -> int:
        """Storage bytes (codes plus metadata) of an [n, k] slice of the weight."""
        return self.scheme.storage_bytes(n, k)


@dataclass(frozen=True)
class Tile:
    """Tile sizes along T (tokens), N (output rows) and K (inputs)."""

    tokens: int
    n: int
    k: int

    def counts(self, shape: LinearShape) -> tuple[int, int, int]:
        """Number of tiles along T, N and K (remainder tiles included)."""
        return (
            math.ceil(shape.tokens / self.tokens),
            math.ceil(shape.n / self.n),
            math.ceil(shape.k / self.k),
        )


@dataclass(frozen=True)
class TilePolicy:
    """How a target wants its linears tiled.

    `budget_bytes` bounds the working set of one tile; `align_n` is the granule of N tiles; `max_n`/`max_k` cap the
    tile (Groq: the MXM's 320 x 320 arrays); `weight_buffers` is 2 where weight tiles stream (double buffering)
    and 1 where weights are resident; `keep_int_codes` says that `unpack-bits` keeps integer codes and scales
    per group, which adds per-group partial sums to the working set. `prefer_n` (0: none) is the N tile a target
    takes over a wider one that moves no fewer bytes: on a GPU, as many rows as a thread block has warps (a warp
    per row in a GEMV), so that a decode step has several tiles per SM and each block's next tile streams in
    while it computes one (a widest tile leaves one tile per block, nothing to overlap, and SMs idle).
    """

    budget_bytes: int
    align_n: int = 8
    max_n: int | None = None
    max_k: int | None = None
    weight_buffers: int = 2
    keep_int_codes: bool = False
    prefer_n: int = 0


def check_k_tile(scheme: Scheme, k: int, tk: int) -> None:
    """TileError unless a K tile of `tk` (< k) slices the scheme's storage at whole groups and words."""
    align = scheme.k_alignment
    if tk < k and tk % align != 0:
        raise TileError(
            f"tile-k={tk} does not align with {scheme} storage: K tiles must be multiples of {align} "
            "(whole quantization groups and whole storage words)"
        )


def k_parts(k: int, tk: int) -> tuple[int, ...]:
    """The K tiles buffered side by side: one of tk, or, where K is one whole tile and a remainder (no K loop),
    both of them.

    >>> k_parts(256, 64), k_parts(256, 256), k_parts(256, 192)
    ((64,), (256,), (192, 64))
    """
    tk = min(tk, k)
    return (tk, k - tk) if tk < k < 2 * tk else (tk,)


def _group_sum_bytes(shape: LinearShape, tk: int, policy: TilePolicy) -> int:
    """Bytes per token, and again per token and output row, of the per-group sums a K tile of tk needs when
    integer codes are kept: x summed per group [tt, G] and the products summed per group [tt, tn, G], in f32."""
    if not policy.keep_int_codes or not shape.scheme.is_quantized:
        return 0
    return F32_BYTES * shape.scheme.n_groups(tk)


def _per_tile_bytes(shape: LinearShape, tokens: int, k: int, policy: TilePolicy) -> tuple[int, int]:
    """The working set of a tile of `tokens` x n x `k` as (fixed bytes, bytes per output row n)."""
    parts = k_parts(shape.k, k)
    group_sums = _group_sum_bytes(shape, parts[0], policy)
    fixed = tokens * (2 * sum(parts) * shape.act_bytes + group_sums)
    weights = policy.weight_buffers * sum(shape.weight_bytes(1, p) for p in parts)
    return fixed, weights + tokens * (2 * F32_BYTES + group_sums)


def working_set_bytes(shape: LinearShape, tile: Tile, policy: TilePolicy) -> int:
    """The most on-chip bytes one tile needs (see the module docstring)."""
    fixed, per_row = _per_tile_bytes(shape, tile.tokens, tile.k, policy)
    return fixed + tile.n * per_row


def main_memory_bytes(shape: LinearShape, tile: Tile) -> int:
    """Bytes a tiling reads and writes in main memory (the first criterion of `choose_tile`)."""
    t_tiles, n_tiles, _ = tile.counts(shape)
    weights = shape.weight_bytes(shape.n, shape.k) * t_tiles
    activations = shape.tokens * shape.k * shape.act_bytes * (1 if tile.k == shape.k else n_tiles)
    return weights + activations + shape.tokens * shape.n * shape.act_bytes


def _token_candidates(tokens: int) -> list[int]:
    sizes = {tokens}
    size = 1
    while size < tokens:
        sizes.add(size)
        size *= 2
    return sorted(sizes, reverse=True)


def _k_candidates(shape: LinearShape, cap: int) -> list[int]:
    """K tile sizes to try: K itself when allowed, and multiples of the alignment (at least 32 for fine-grained
    schemes), at most MAX_K_CANDIDATES of them."""
    align = shape.scheme.k_alignment
    step = math.lcm(align, 32) if shape.k % math.lcm(align, 32) == 0 else align
    step *= max(1, math.ceil(shape.k // step / MAX_K_CANDIDATES))
    sizes = {shape.k} if shape.k <= cap else set()
    sizes.update(range(step, min(shape.k, cap) + 1, step))
    return sorted(sizes, reverse=True)


def _widest_n(shape: LinearShape, tokens: int, k: int, policy: TilePolicy) -> int:
    """The largest N tile that fits with (tokens, k), or 0."""
    cap = min(shape.n, policy.max_n or shape.n)
    fixed, per_row = _per_tile_bytes(shape, tokens, k, policy)
    rows = (policy.budget_bytes - fixed) // per_row
    if rows >= cap:
        return cap
    return rows // policy.align_n * policy.align_n


def choose_tile(shape: LinearShape, policy: TilePolicy, tokens: int = 0, n: int = 0, k: int = 0) -> Tile:
    """The best tile of `shape` under `policy`; nonzero `tokens`/`n`/`k` fix that size (clamped to the shape).

    Raises TileError when a fixed K size does not align with the storage or when nothing fits the budget.
    """
    return _choose(shape, policy, tokens, n, k)


@lru_cache(maxsize=4096)
def _choose(shape: LinearShape, policy: TilePolicy, tokens: int, n: int, k: int) -> Tile:
    if k:
        check_k_tile(shape.scheme, shape.k, min(k, shape.k))
    t_sizes = [min(tokens, shape.tokens)] if tokens else _token_candidates(shape.tokens)
    k_sizes = [min(k, shape.k)] if k else _k_candidates(shape, policy.max_k or shape.k)
    best: tuple[tuple[int, ...], Tile] | None = None
    for tt in t_sizes:
        for tk in k_sizes:
            widest = min(n, shape.n) if n else _widest_n(shape, tt, tk, policy)
            if widest <= 0:
                continue
            preferred = policy.prefer_n if not n and 0 < policy.prefer_n < widest else 0
            for tn in (widest, preferred) if preferred else (widest,):
                tile = Tile(tt, tn, tk)
                if working_set_bytes(shape, tile, policy) > policy.budget_bytes:
                    continue
                t_tiles, n_tiles, k_tiles = tile.counts(shape)
                unpreferred = bool(policy.prefer_n) and tn != policy.prefer_n
                key = (main_memory_bytes(shape, tile), unpreferred, t_tiles * n_tiles * k_tiles, -tk, -tn, -tt)
                if best is None or key < best[0]:
                    best = (key, tile)
    if best is None:
        smallest = Tile(t_sizes[-1], min(n or policy.align_n, shape.n), k_sizes[-1])
        raise TileError(
            f"no tile of the linear (T={shape.tokens}, N={shape.n}, K={shape.k}, {shape.scheme}) fits "
            f"{policy.budget_bytes} bytes: the smallest allowed tile {smallest.tokens}x{smallest.n}x{smallest.k} "
            f"(T x N x K) needs {working_set_bytes(shape, smallest, policy)}"
        )
    return best[1]
