"""Target pipelines: the named stages that take a model's q35 graph IR to a target's scheduled IR.

Like Triton's backends, each target declares its stages in order (`Target.pipeline`, which calls `stages` here);
the driver (`q35c.driver`) runs them with a callback after each, which is how `--print-ir-after` and
`--dump-ir` see the IR between stages.

    every family today: materialize -> lower-graph -> tile -> unpack -> schedule

The unpack stage ends with `fuse-gather` (`passes.fuse_gather`): a gather (an embedding lookup) computes each
element it reads from the table's storage bytes, so the IR every target costs, and the IR dumped, unpacks the
T rows looked up, not the whole table.

The families differ in the facts they give the passes, not the shape: the tile level and its budget
(`Target.tile_level`: shared memory per SM on a GPU, one CPU's share of L2 on the host, an assumed threadgroup on
Apple, the SRAM on Groq), the tile policy (`Target.tile_policy`: Groq caps tiles at its MXM arrays), whether
linears keep integer codes (`Target.keeps_int_codes`: Groq's MXM takes int8 codes) and the memory-space names.
They reach the passes as pass options (`targets.pass_options`). The host's final IR is upstream MLIR that
mlir-opt lowers and runs as it is; its memory spaces bufferize to memrefs in address spaces the CPU ignores.

Options (all optional): `tile-t`, `tile-n`, `tile-k` (fixed tile sizes), `budget-bytes` (the tile level's budget
per tile, e.g. another Apple threadgroup size), `keep-int-codes` (override the family's choice),
`integer-activations` (native host code only, default true: linear kernels, of one token or several rows,
quantize their activations to integers, `q35c.codegen.host`), `interleave-rows` (native host code only, default
8: the storage of weights read only by those kernels interleaves rows by blocks of this many, which one-token
kernels compute at once; 0 or 1: plain rows), and the placement over devices, `tp`, `pp` and
`layers` (the `shard` stage, first, only when the placement spans more than one device: `passes.shard`;
`q35c build --devices/--tp/--pp` choose them through `Target.placement`).

>>> from q35c.targets.registry import get_target
>>> [stage.name for stage in get_target("h100-sxm").pipeline()]
['materialize', 'lower-graph', 'tile', 'unpack', 'schedule']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from q35c.passes.fuse_gather import FuseGatherPass
from q35c.passes.lower_graph import LowerGraphPass
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.schedule_memory import ScheduleMemoryPass
from q35c.passes.shard import ShardPass
from q35c.passes.shard import describe as describe_shard
from q35c.passes.tile import TilePass
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.targets.pass_options import schedule_options, tile_options
from q35c.targets.stage import Stage
from q35c.targets.target import Target
from q35c.util.errors import Q35Error

SHARD_STAGE = "shard"  # the first stage of a pipeline placed over several devices

OPTIONS: dict[str, type] = {
    "tile-t": int,
    "tile-n": int,
    "tile-k": int,
    "budget-bytes": int,
    "keep-int-codes": bool,
    "integer-activations": bool,
    "interleave-rows": int,
    "tp": int,
    "pp": int,
    "layers": str,
}


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check pipeline options: known keys, values of the right type (strings such as "16" or "true" are parsed).

    Raises ValueError naming the bad option and listing the valid ones.
    """
    parsed: dict[str, Any] = {}
    for key, value in options.items():
        if key not in OPTIONS:
            raise Q35Error(f"unknown pipeline option '{key}' (valid options: {', '.join(OPTIONS)})")
        kind = OPTIONS[key]
        if isinstance(value, str):
            text = value.strip().lower()
            if kind is bool and text in ("true", "false", "1", "0"):
                value = text in ("true", "1")
            elif kind is int and text.lstrip("-").isdigit():
                value = int(text)
        if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            takes = {bool: "true/false", int: "an integer", str: "a comma-separated list"}[kind]
            raise Q35Error(f"pipeline option '{key}' takes {takes}, got {value!r}")
        if kind is int and value < 0:
            raise Q35Error(f"pipeline option '{key}' must be at least 0, got {value}")
        parsed[key] = value
    return parsed


def stages(target: Target, options: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
    """The stages that compile a model for `target`, with `options` (see the module docstring) applied."""
    opts = parse_options(options or {})
    budget = int(opts.get("budget-bytes", 0))
    level = target.tile_level(budget)
    keep_int_codes = bool(opts.get("keep-int-codes", target.keeps_int_codes))
    tile = TilePass(
        tile_t=int(opts.get("tile-t", 0)),
        tile_n=int(opts.get("tile-n", 0)),
        tile_k=int(opts.get("tile-k", 0)),
        **tile_options(target, budget, keep_int_codes),
    )
    unpack = (
        "packed weights to integer codes; per-group scaling of int8 products"
        if keep_int_codes
        else ("packed weights to codes, dequantized values and matmuls in linalg + arith")
    ) + "; gathers unpack only the rows they read"
    schedule = ScheduleMemoryPass(**schedule_options(target, budget))
    tp, pp, layers = int(opts.get("tp", 1)), int(opts.get("pp", 1)), str(opts.get("layers", ""))
    shard: tuple[Stage, ...] = ()
    if tp * pp > 1 or layers:
        shard = (Stage(SHARD_STAGE, (ShardPass(tp=tp, pp=pp, layers=layers),), describe_shard(tp, pp)),)
    return (
        *shard,
        Stage("materialize", (MaterializeWeightsPass(),), "weights become storage-tensor function arguments"),
        Stage("lower-graph", (LowerGraphPass(),), "embed, rmsnorm, rope, attention, silu, mul, add to linalg"),
        Stage("tile", (tile,), target.describe_tiling(level)),
        Stage("unpack", (UnpackBitsPass(keep_int_codes=keep_int_codes), FuseGatherPass()), unpack),
        Stage("schedule", (schedule,), target.describe_placement(level)),
    )
