"""Registers the q35 dialect and q35c's passes with xDSL, so plain `xdsl-opt` reads q35 IR and runs our passes."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _q35_dialect() -> Dialect:
    from q35c.dialects.q35 import Q35

    return Q35


def _q35_storage_dialect() -> Dialect:
    from q35c.dialects.q35_storage import Q35_STORAGE

    return Q35_STORAGE


def _materialize_weights() -> type[ModulePass]:
    from q35c.passes.materialize_weights import MaterializeWeightsPass

    return MaterializeWeightsPass


def _unpack_bits() -> type[ModulePass]:
    from q35c.passes.unpack_bits import UnpackBitsPass

    return UnpackBitsPass


def _lower_graph() -> type[ModulePass]:
    from q35c.passes.lower_graph import LowerGraphPass

    return LowerGraphPass


def _tile() -> type[ModulePass]:
    from q35c.passes.tile import TilePass

    return TilePass


def _shard() -> type[ModulePass]:
    from q35c.passes.shard import ShardPass

    return ShardPass


def _schedule_memory() -> type[ModulePass]:
    from q35c.passes.schedule_memory import ScheduleMemoryPass

    return ScheduleMemoryPass


def _reassociate_reductions() -> type[ModulePass]:
    from q35c.passes.reassociate_reductions import ReassociateReductionsPass

    return ReassociateReductionsPass


def _fuse_unpack() -> type[ModulePass]:
    from q35c.passes.fuse_unpack import FuseUnpackPass

    return FuseUnpackPass


def _fuse_gather() -> type[ModulePass]:
    from q35c.passes.fuse_gather import FuseGatherPass

    return FuseGatherPass


def _reduce_in_registers() -> type[ModulePass]:
    from q35c.passes.reduce_in_registers import ReduceInRegistersPass

    return ReduceInRegistersPass


def _integer_matvec() -> type[ModulePass]:
    from q35c.passes.integer_matvec import IntegerMatvecPass

    return IntegerMatvecPass


def _unstage_tiles() -> type[ModulePass]:
    from q35c.passes.unstage_tiles import UnstageTilesPass

    return UnstageTilesPass


def _copy_to_memcpy() -> type[ModulePass]:
    from q35c.passes.copy_to_memcpy import CopyToMemcpyPass

    return CopyToMemcpyPass


def _serial_small_loops() -> type[ModulePass]:
    from q35c.passes.serial_small_loops import SerialSmallLoopsPass

    return SerialSmallLoopsPass


def _parallel_tiles() -> type[ModulePass]:
    from q35c.passes.parallel_tiles import ParallelTilesPass

    return ParallelTilesPass


def _prefetch_streams() -> type[ModulePass]:
    from q35c.passes.prefetch_streams import PrefetchStreamsPass

    return PrefetchStreamsPass


def _runtime_kv_cache() -> type[ModulePass]:
    from q35c.passes.runtime_kv_cache import RuntimeKVCachePass

    return RuntimeKVCachePass


DIALECTS: dict[str, Callable[[], Dialect]] = {"q35": _q35_dialect, "q35_storage": _q35_storage_dialect}
PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "materialize-weights": _materialize_weights,
    "lower-graph": _lower_graph,
    "unpack-bits": _unpack_bits,
    "tile": _tile,
    "schedule-memory": _schedule_memory,
    "shard": _shard,
    "reassociate-reductions": _reassociate_reductions,
    "fuse-unpack": _fuse_unpack,
    "fuse-gather": _fuse_gather,
    "reduce-in-registers": _reduce_in_registers,
    "integer-matvec": _integer_matvec,
    "unstage-tiles": _unstage_tiles,
    "copy-to-memcpy": _copy_to_memcpy,
    "serial-small-loops": _serial_small_loops,
    "parallel-tiles": _parallel_tiles,
    "prefetch-streams": _prefetch_streams,
    "runtime-kv-cache": _runtime_kv_cache,
}

Q35C_UNIVERSE = Universe(all_dialects=DIALECTS, all_passes=PASSES)
