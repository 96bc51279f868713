"""Every discardable `q35.*` attribute q35c's passes write and its analyses read: the names, and typed access.

Passes set these on functions, function arguments, ops and the module; the cost model, reports and the verifier
read them back. Nothing else in q35c spells an attribute name: import the constant (or a getter) from here.

    func.func private @linear.1x64x64.q3p5_g32_dense.f16(%x: tensor<1x64xf16>,
        %codes: tensor<64x7xi32> {q35.storage = "codes"}, ...)
        attributes {q35.kernel = "linear", q35.scheme = "q3p5:g=32:container=dense", q35.tile = array<i64: 1, 64, 64>}
    builtin.module attributes {q35.memory_spaces = ["hbm", "l2", "smem"],
        q35.tile_level = "smem", q35.tile_budget_bytes = 228000 : i64, q35.peak_bytes = {hbm = 93064 : i64}}
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue

# On function arguments (materialize-weights, tile)
PARAM_ATTR = "q35.param"  # the weight's parameter name, on the entry function's storage arguments
STORAGE_ATTR = "q35.storage"  # the storage tensor's role: "codes", "scale" or "offset"
INTERLEAVE_ATTR = "q35.interleave"  # [R, G] on a storage argument stored with rows interleaved (host native code)

# On functions (lower-graph, tile, unpack-bits)
KERNEL_ATTR = "q35.kernel"  # what a kernel function or op computes: "linear", "rmsnorm", "unpack", ...
SCHEME_ATTR = "q35.scheme"  # the weight's scheme spec on a linear kernel function
TILE_ATTR = "q35.tile"  # array<i64: tt, tn, tk> on a linear kernel function

# On ops (lower-graph, tile, schedule-memory)
KV_APPEND_ATTR = "q35.kv_append_bytes"  # on an attention kernel op: bytes of the k and v rows it adds to the cache
BATCH_ATTR = "q35.batch"  # on an attention kernel op of B > 1 sequences: B
TILE_DIM_ATTR = "q35.tile_dim"  # "t", "n" or "k" on a tile loop
FUSED_ATTR = "q35.fused"  # unit: the op's result stays in registers (fused into its consumer)
SRC_SPACE_ATTR = "q35.src_space"  # memory space a staging copy reads from
DST_SPACE_ATTR = "q35.dst_space"  # memory space a staging copy writes to

# On the module (shard)
PLACEMENT_ATTR = "q35.placement"  # {tp = T, pp = P, devices_per_stage...}: the placement the module was sharded for

# On the module (and, for peak bytes, on functions) (schedule-memory)
SPACES_ATTR = "q35.memory_spaces"  # level names by memory space number, outermost first
TILE_LEVEL_ATTR = "q35.tile_level"  # the memory level tiles are staged in
TILE_BUDGET_ATTR = "q35.tile_budget_bytes"  # that level's budget per tile
PEAK_ATTR = "q35.peak_bytes"  # {level = bytes}: peak bytes live per memory level


def string_attr(attrs: DictionaryAttr | dict[str, Attribute], key: str) -> str | None:
    """The string value of `key` in an attribute dictionary (None when absent or not a string)."""
    value = (attrs.data if isinstance(attrs, DictionaryAttr) else attrs).get(key)
    return value.data if isinstance(value, StringAttr) else None


def kernel_kind(op: Operation) -> str | None:
    """What a kernel function or op computes (`q35.kernel`), or None when it is not one."""
    return string_attr(op.attributes, KERNEL_ATTR)


def memory_spaces(module: ModuleOp) -> list[str]:
    """Level names by memory space, as recorded by schedule-memory (empty before it ran)."""
    spaces = module.attributes.get(SPACES_ATTR)
    if not isinstance(spaces, ArrayAttr):
        return []
    return [s.data for s in spaces.data if isinstance(s, StringAttr)]


def peak_bytes(op: Operation) -> dict[str, int]:
    """Peak bytes live per memory level recorded on a function or module (empty before schedule-memory)."""
    peaks = op.attributes.get(PEAK_ATTR)
    if not isinstance(peaks, DictionaryAttr):
        return {}
    return {name: value.value.data for name, value in peaks.data.items() if isinstance(value, IntegerAttr)}


def tile_level(module: ModuleOp) -> tuple[str, int] | None:
    """(level name, budget bytes per tile) of the level tiles were staged in, or None before schedule-memory."""
    level = module.attributes.get(TILE_LEVEL_ATTR)
    budget = module.attributes.get(TILE_BUDGET_ATTR)
    if isinstance(level, StringAttr) and isinstance(budget, IntegerAttr):
        return level.data, budget.value.data
    return None


def arg_attr(arg: BlockArgument, key: str) -> str | None:
    """The string attribute `key` of a function argument (None for a block argument of anything else)."""
    fn = arg.owner.parent_op()
    if not isinstance(fn, func.FuncOp) or fn.arg_attrs is None:
        return None
    return string_attr(fn.arg_attrs.data[arg.index], key)  # type: ignore[arg-type]


def weight_param(value: SSAValue, callers: dict[str, func.CallOp] | None = None) -> str | None:
    """The parameter name (`q35.param`) of the weight a storage value comes from, followed through calls: a
    block's argument `%q_proj.codes` of `@decoder` names the parameter its caller passes (`decoder.0.q_proj`).

    `callers` maps a function name to one call of it (`first_callers`); without it, only direct arguments of the
    entry function are resolved."""
    seen = 0
    while isinstance(value, BlockArgument) and seen < 64:  # bounded: calls never nest deeper than a few levels
        seen += 1
        param = arg_attr(value, PARAM_ATTR)
        if param is not None:
            return param
        fn = value.owner.parent_op()
        call = None if callers is None or not isinstance(fn, func.FuncOp) else callers.get(fn.sym_name.data)
        if call is None:
            return None
        value = call.arguments[value.index]
    return None


def first_callers(module: ModuleOp) -> dict[str, func.CallOp]:
    """One call site of every called function in `module` (the first in walk order)."""
    found: dict[str, func.CallOp] = {}
    for op in module.walk():
        if isinstance(op, func.CallOp):
            found.setdefault(op.callee.string_value(), op)
    return found


def placement(module: ModuleOp) -> tuple[int, int]:
    """(tp, pp) the module was sharded for (`shard`), (1, 1) for a one-device module."""
    value = module.attributes.get(PLACEMENT_ATTR)
    if not isinstance(value, DictionaryAttr):
        return 1, 1
    found = {k: v.value.data for k, v in value.data.items() if isinstance(v, IntegerAttr)}
    return int(found.get("tp", 1)), int(found.get("pp", 1))


def set_placement(module: ModuleOp, tp: int, pp: int) -> None:
    """Record on the module the placement it was sharded for."""
    from xdsl.dialects.builtin import i64

    module.attributes[PLACEMENT_ATTR] = DictionaryAttr({"tp": IntegerAttr(tp, i64), "pp": IntegerAttr(pp, i64)})


def int_attr(op: Operation, key: str) -> int | None:
    """An integer attribute of an op, or None."""
    value = op.attributes.get(key)
    return value.value.data if isinstance(value, IntegerAttr) else None
