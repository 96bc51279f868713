"""shard: rewrite a q35 graph for a placement over devices -- tensor parallel within a layer, pipelined across.

Options: `tp` (devices of a tensor-parallel group), `pp` (pipeline stages), `layers` (decoder calls per stage,
comma-separated, e.g. `layers=21,20,20,19`; default: as even as possible, the earlier stages taking the extra
ones). It runs on the graph IR, before materialize-weights, and leaves the program one device runs: every
device of a tensor-parallel group runs the same ops on its own slices (SPMD), and stage k of the pipeline runs
the ops of the entry function between the k-th and the (k+1)-th `q35.transfer`.

Tensor parallelism (Megatron-style), decided by what each value is on a device: replicated (R: every device holds
all of it), split (S: each holds a slice of the last axis) or partial (P: each holds a partial sum).

- The entry's and the blocks' activation arguments are R; caches are S (by KV head).
- `q35.linear` of an R input is column-split: the weight's N rows are divided among the devices, the result is
  S. A linear feeding attention (through rope) splits by head: q by query heads (H / tp each), k and v by KV
  heads (Hkv / tp each; where tp exceeds Hkv, tp a multiple of it, each device holds one KV head: the KV heads
  are replicated tp / Hkv times, as serving stacks do, and so are the k/v projection rows and the cache). Any
  other column split divides N by tp.
- `q35.linear` of an S input is row-split: the weight's K columns are divided (whole quantization groups and
  storage words: `Scheme.k_alignment`), the result is P, and a `q35.all_reduce` over the group makes it R.
- rope, silu, mul, add keep the state of their operands (mixed R and S is not supported); rmsnorm needs R (norm
  gains are replicated); attention takes S operands and divides its heads.
- `q35.embed` is vocabulary-parallel (Megatron-style): each device holds V / tp rows of the table and gathers
  the ids in its range (the runtime offsets the ids by the slice's first row; ids outside give zero rows), and a
  `q35.all_reduce` sums the partial rows. A vocabulary that does not divide stays whole on every device.
- A split value leaving a function (the entry's logits after the vocabulary-split lm_head) is gathered with
  `q35.all_gather`; a weight whose rows cannot be divided (a vocabulary not divisible by tp) stays whole on every
  device (replicated), its result R.

A degree that cannot be realised -- one that divides neither the query heads, nor the KV heads (or is not a
multiple of them), nor an FFN width, or leaves a row-split K that is not whole groups -- fails naming the valid
degrees (`valid_tp`).

Pipeline parallelism: the entry function's decoder calls are split into `pp` stages of consecutive layers; the
embedding runs on the first stage, the final norm and the lm_head on the last, so where the layers do not divide
evenly the extra ones go to the stages between (`stage_layers`). Every value a stage uses that an
earlier stage computed (the hidden state) crosses in a `q35.transfer {from = s, to = s'}` placed before the
first call of stage s'. Stages may be uneven (`layers`).

    %2 = q35.linear %a, %o_proj : (tensor<1x1024xf16>, !q35.packed<8192x1024, ...>) -> tensor<1x8192xf16>
    %3 = q35.all_reduce %2 {group = 8 : i64} : tensor<1x8192xf16>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, i64
from xdsl.ir import Attribute, BlockArgument, Operation, OpResult, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from q35c.analysis.workload import entry_function, entry_stages, functions_of
from q35c.dialects.q35 import (
    AddOp,
    AttentionOp,
    EmbedOp,
    LinearOp,
    MulOp,
    PackedType,
    RMSNormOp,
    RopeOp,
    SiluOp,
    WeightOp,
)
from q35c.dialects.q35_collectives import AllGatherOp, AllReduceOp, TransferOp
from q35c.ir import attrs
from q35c.util.limits import MAX_DEVICES

R, S, P = "replicated", "split", "partial"


class ShardError(PassFailedException):
    """A placement this model cannot take (the message says why)."""


@dataclass
class _Plan:
    """What tensor parallelism does to one function: new types of values, split weights, ops to add."""

    types: dict[SSAValue, Attribute] = field(default_factory=dict[SSAValue, Attribute])
    state: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    reduce_after: list[OpResult] = field(default_factory=list[OpResult])  # row-split linears' partial results
    gather: list[SSAValue] = field(default_factory=list[SSAValue])  # split values returned
    heads: dict[AttentionOp, tuple[int, int]] = field(default_factory=dict[AttentionOp, tuple[int, int]])


def _entry(module: ModuleOp) -> func.FuncOp:
    try:
        return entry_function(module)
    except ValueError as err:
        raise ShardError(str(err)) from None


def _shape(value: SSAValue | Attribute) -> list[int]:
    typ = value if isinstance(value, Attribute) else value.type
    assert isinstance(typ, TensorType | PackedType)
    return list(typ.get_shape())


def _with_last(typ: Attribute, size: int) -> Attribute:
    if isinstance(typ, PackedType):
        shape = list(typ.get_shape())
        shape[-1] = size
        return PackedType(shape, typ.scheme)
    assert isinstance(typ, TensorType)
    shape = list(typ.get_shape())
    shape[-1] = size
    return TensorType(typ.element_type, shape)


def _with_rows(typ: PackedType, rows: int) -> PackedType:
    shape = list(typ.get_shape())
    shape[0] = rows
    return PackedType(shape, typ.scheme)


def _feeds_attention(value: SSAValue) -> tuple[AttentionOp, int] | None:
    """The attention a linear's result reaches (directly or through rope), and which operand (0 q, 1 k, 2 v)."""
    for _ in range(4):
        uses = list(value.uses)
        if len(uses) != 1:
            return None
        user = uses[0].operation
        if isinstance(user, AttentionOp) and uses[0].index < 3:
            return user, uses[0].index
        if not isinstance(user, RopeOp) or uses[0].index != 0:
            return None
        value = user.result
    return None


class TensorParallel:
    """Plans (and applies) the tensor-parallel rewrite of a module for a group of `tp` devices."""

    def __init__(self, module: ModuleOp, tp: int) -> None:
        self.module = module
        self.tp = tp
        self.functions = functions_of(module)
        self.entry = _entry(module)
        self.plans: dict[str, _Plan] = {}
        self.arg_types: dict[str, dict[int, Attribute]] = {}  # block -> argument index -> its type on a device
        self.notes: list[str] = []
        self.replicated_kv = 1  # devices holding each KV head (1: the KV heads are divided among the devices)

    # -- planning (no IR changes: `valid_tp` plans every candidate) -----------------------------------------

    def plan(self) -> None:
        for name, fn in self.functions.items():
            if fn is not self.entry:
                self.plans[name] = self._plan_function(fn, blocks=True)
        self.plans[self.entry.sym_name.data] = self._plan_function(self.entry, blocks=False)

    def _plan_function(self, fn: func.FuncOp, *, blocks: bool) -> _Plan:
        plan = _Plan()
        tp = self.tp
        caches = {
            op.operands[i]: op for op in fn.walk() if isinstance(op, AttentionOp) for i in (3, 4)
        }  # cache operands -> their attention
        for arg in fn.args:
            plan.state[arg] = S if arg in caches else R
        for op in fn.body.walk():
            if isinstance(op, func.CallOp):
                self._plan_call(op, plan)
            elif isinstance(op, LinearOp):
                self._plan_linear(op, plan)
            elif isinstance(op, AttentionOp):
                self._plan_attention(op, plan)
            elif isinstance(op, EmbedOp):
                self._plan_embed(op, plan)
            elif isinstance(op, RMSNormOp):
                if any(plan.state.get(v, R) != R for v in op.operands):
                    raise ShardError(f"{op.name} of a split value: its gain or table would have to be split too")
                plan.state[op.results[0]] = R
            elif isinstance(op, RopeOp | SiluOp | MulOp | AddOp):
                data = op.operands[:1] if isinstance(op, RopeOp) else op.operands  # not rope's positions
                states = {plan.state.get(v, R) for v in data}
                if len(states) > 1:
                    raise ShardError(f"{op.name} mixes a split and a replicated value (tensor parallel over {tp})")
                state = states.pop() if states else R
                plan.state[op.results[0]] = state
                if state == S:
                    plan.types[op.results[0]] = plan.types.get(op.operands[0], op.operands[0].type)
            elif isinstance(op, func.ReturnOp):
                for value in op.operands:
                    if plan.state.get(value, R) == S:
                        if blocks:
                            raise ShardError(f"@{fn.sym_name.data} returns a split value")
                        plan.gather.append(value)
        return plan

    def _plan_linear(self, op: LinearOp, plan: _Plan) -> None:
        tp = self.tp
        weight = op.weight.type
        assert isinstance(weight, PackedType)
        n, k = weight.get_shape()
        state = plan.state.get(op.x, R)
        what = self._weight_name(op.weight)
        if state == R:
            reached = _feeds_attention(op.result)
            if reached is not None:
                attention, index = reached
                heads = attention.num_heads.value.data if index == 0 else attention.num_kv_heads.value.data
                hd = attention.head_dim.value.data
                local = self._divide_heads(heads, what, kv=index > 0)
                rows = local * hd
            elif n % tp == 0:
                rows = n // tp
            elif not op.result.uses or self._returned(op.result):
                self.notes.append(f"{what}: {n} rows do not divide over {tp}: kept whole on every device")
                plan.state[op.result] = R
                return
            else:
                raise ShardError(f"{what} has N = {n} rows, which {tp} devices cannot divide")
            plan.types[op.weight] = _with_rows(weight, rows)
            plan.types[op.result] = _with_last(op.result.type, rows)
            plan.state[op.result] = S
        elif state == S:
            local_k = _shape(plan.types.get(op.x, op.x.type))[-1]
            align = weight.scheme.k_alignment
            if local_k * tp != k:
                raise ShardError(f"{what}: its input is split {local_k} x {tp}, but K = {k}")
            if local_k % align:
                raise ShardError(
                    f"{what}: a row split over {tp} devices leaves K = {local_k}, not a multiple of "
                    f"{align} (whole groups of {weight.scheme.spec})"
                )
            plan.types[op.weight] = _with_last(weight, local_k)
            plan.reduce_after.append(op.result)
            plan.state[op.result] = R
        else:
            raise ShardError(f"{what}: a linear of a partial sum")

    def _plan_embed(self, op: EmbedOp, plan: _Plan) -> None:
        """Vocabulary-parallel: each device holds V / tp rows of the table and gathers the ids in its range
        (zero rows for the others); an all-reduce sums the partial rows. A vocabulary that does not divide stays
        whole on every device."""
        table = op.table.type
        assert isinstance(table, PackedType)
        rows = table.get_shape()[0]
        plan.state[op.result] = R
        if rows % self.tp:
            self.notes.append(f"{self._weight_name(op.table)}: {rows} rows do not divide over {self.tp}: kept whole")
            return
        plan.types[op.table] = _with_rows(table, rows // self.tp)
        plan.reduce_after.append(op.result)

    def _divide_heads(self, heads: int, what: str, *, kv: bool) -> int:
        tp = self.tp
        if heads % tp == 0:
            return heads // tp
        if kv and tp % heads == 0:
            self.replicated_kv = tp // heads
            return 1
        kind = "KV heads" if kv else "query heads"
        raise ShardError(f"{what}: {heads} {kind} do not divide over {tp} devices")

    def _plan_attention(self, op: AttentionOp, plan: _Plan) -> None:
        tp = self.tp
        states = {plan.state.get(v, R) for v in op.operands[:3]}
        if states != {S}:
            raise ShardError("attention of unsplit q, k or v: tensor parallelism splits heads")
        h, hkv, hd = op.num_heads.value.data, op.num_kv_heads.value.data, op.head_dim.value.data
        local_h = h // tp
        local_kv = hkv // tp if hkv % tp == 0 else 1
        plan.heads[op] = (local_h, local_kv)
        for cache in op.operands[3:]:
            plan.types[cache] = _with_last(cache.type, local_kv * hd)
            plan.state[cache] = S
        plan.types[op.result] = _with_last(op.result.type, local_h * hd)
        plan.state[op.result] = S

    def _plan_call(self, op: func.CallOp, plan: _Plan) -> None:
        callee = self.functions.get(op.callee.string_value())
        if callee is None:
            return
        inner = self.plans.get(callee.sym_name.data)
        if inner is None:
            raise ShardError(f"@{callee.sym_name.data} calls a function defined after it")
        for value, arg in zip(op.arguments, callee.args, strict=True):
            want = inner.types.get(arg)
            if want is not None:
                plan.types[value] = want
            if plan.state.get(value, R) != R and inner.state.get(arg, R) != S:
                raise ShardError(f"a split value passed to @{callee.sym_name.data}")
        for result in op.results:
            plan.state[result] = R

    def _weight_name(self, value: SSAValue) -> str:
        if isinstance(value, OpResult) and isinstance(value.op, WeightOp):
            return f"weight {value.op.param_name.data}"
        hint = value.name_hint or "?"
        return f"weight {hint}"

    def _returned(self, value: SSAValue) -> bool:
        return any(isinstance(u.operation, func.ReturnOp) for u in value.uses)

    # -- applying -------------------------------------------------------------------------------------------

    def apply(self) -> None:
        order = [fn for fn in self.functions.values() if fn is not self.entry] + [self.entry]
        for fn in order:
            plan = self.plans[fn.sym_name.data]
            for op, (local_h, local_kv) in plan.heads.items():
                op.properties["num_heads"] = IntegerAttr(local_h, i64)
                op.properties["num_kv_heads"] = IntegerAttr(local_kv, i64)
            replaced: dict[SSAValue, SSAValue] = {}
            for value, typ in plan.types.items():
                if value.type != typ:
                    replaced[value] = Rewriter.replace_value_with_new_type(value, typ)
            for result in plan.reduce_after:
                result = replaced.get(result, result)
                self._follow(result, AllReduceOp(result, self.tp))
            for value in plan.gather:
                value = replaced.get(value, value)
                self._follow(value, AllGatherOp(value, self.tp))
            self._retype_function(fn)

    @staticmethod
    def _follow(value: SSAValue, new: Operation) -> None:
        """Insert `new` (taking `value`) right after `value`'s definition; it replaces `value`'s other uses."""
        assert isinstance(value, OpResult)
        Rewriter.insert_op(new, InsertPoint.after(value.op))
        value.replace_uses_with_if(new.results[0], lambda use: use.operation is not new)

    @staticmethod
    def _retype_function(fn: func.FuncOp) -> None:
        block = fn.body.blocks.first
        assert block is not None
        returned = block.last_op
        outputs = [v.type for v in returned.operands] if isinstance(returned, func.ReturnOp) else []
        fn.function_type = func.FunctionType.from_lists([a.type for a in block.args], outputs)


def check_tp(module: ModuleOp, tp: int) -> TensorParallel:
    """The plan of a `tp`-way tensor-parallel rewrite of `module`; ShardError saying why it cannot be done."""
    if tp < 1 or tp > MAX_DEVICES:
        raise ShardError(f"a tensor-parallel degree must be between 1 and {MAX_DEVICES}, got {tp}")
    plan = TensorParallel(module, tp)
    if tp > 1:
        plan.plan()
    return plan


def valid_tp(module: ModuleOp, limit: int) -> list[int]:
    """The tensor-parallel degrees up to `limit` this model can take (1 always)."""
    found = [1]
    for tp in range(2, max(1, min(limit, MAX_DEVICES)) + 1):
        try:
            check_tp(module, tp)
        except ShardError:
            continue
        found.append(tp)
    return found


def decoder_calls(module: ModuleOp) -> list[func.CallOp]:
    """The entry function's calls of other functions (the decoder layers), in order."""
    entry = _entry(module)
    functions = functions_of(module)
    return [op for op in entry.body.walk() if isinstance(op, func.CallOp) and op.callee.string_value() in functions]


def stage_layers(layers: int, pp: int, given: str = "") -> list[int]:
    """Decoder calls per pipeline stage: `given` (comma-separated counts) or as even as possible."""
    if pp < 1 or pp > MAX_DEVICES:
        raise ShardError(f"pipeline stages must be between 1 and {MAX_DEVICES}, got {pp}")
    if given.strip():
        try:
            counts = [int(part) for part in given.split(",")]
        except ValueError:
            raise ShardError(f"layers per stage must be comma-separated integers, got '{given}'") from None
        if len(counts) != pp or min(counts) < 1 or sum(counts) != layers:
            raise ShardError(
                f"layers per stage {given} must be {pp} counts of at least 1 summing to the {layers} layers"
            )
        return counts
    if pp > max(layers, 1):
        raise ShardError(f"{pp} pipeline stages for {layers} layers: every stage needs at least one layer")
    base, extra = divmod(layers, pp)
    counts = [base] * pp
    # The first stage also holds the embedding and the last the final norm and lm_head: extra layers go to the
    # stages between them first.
    order = [*range(1, pp - 1), 0, pp - 1] if pp > 2 else list(range(pp))
    for stage in order[:extra]:
        counts[stage] += 1
    return counts


def pipeline(module: ModuleOp, pp: int, given: str = "") -> None:
    """Split the entry function into `pp` stages of consecutive decoder calls, with `q35.transfer`s between."""
    calls = decoder_calls(module)
    counts = stage_layers(len(calls), pp, given)
    if pp == 1:
        return
    entry = _entry(module)
    block = entry.body.blocks.first
    assert block is not None
    lasts: dict[Operation, int] = {}  # the last call of each stage but the last -> that stage
    end = 0
    for stage, count in enumerate(counts[:-1]):
        end += count
        lasts[calls[end - 1]] = stage
    boundary = {stage + 1: op for op, stage in lasts.items()}  # stage -> the op its transfers follow
    stage_of: dict[Operation, int] = {}
    stage = 0
    for op in block.ops:
        stage_of[op] = stage
        if op in lasts:
            stage += 1
    for op in list(block.ops):
        if isinstance(op, WeightOp | func.ReturnOp | TransferOp):
            continue
        here = stage_of[op]
        for value in op.operands:
            if not isinstance(value, OpResult) or isinstance(value.op, WeightOp):
                continue
            there = stage_of.get(value.op, here)
            if there < here:
                moved = TransferOp(value, there, here)
                Rewriter.insert_op(moved, InsertPoint.after(boundary[here]))
                stage_of[moved] = here
                value.replace_uses_with_if(
                    moved.result,
                    lambda use, new=moved, at=here: use.operation is not new and stage_of.get(use.operation, -1) >= at,
                )


@dataclass(frozen=True)
class ShardPass(ModulePass):
    """Rewrite the graph for `tp`-way tensor parallelism and `pp` pipeline stages (see the module docstring)."""

    name = "shard"

    tp: int = 1
    pp: int = 1
    layers: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        plan = check_tp(op, self.tp)
        stage_layers(len(decoder_calls(op)), self.pp, self.layers)  # refuse a bad split before changing anything
        if self.tp > 1:
            plan.apply()
        pipeline(op, self.pp, self.layers)
        attrs.set_placement(op, self.tp, self.pp)


def describe(tp: int, pp: int) -> str:
    """One line for the stage list: what the shard stage does."""
    parts = []
    if tp > 1:
        parts.append(f"tensor parallel over {tp} (heads and FFN split, all-reduce after o_proj and down_proj)")
    if pp > 1:
        parts.append(f"{pp} pipeline stages, transfers between them")
    return "; ".join(parts) or "one device: nothing to shard"


@dataclass(frozen=True)
class StageMemory:
    """What one device of a pipeline stage holds of a sharded graph: its weights, and its KV-cache bytes per cached
    token of one sequence (all its layers together)."""

    weight_bytes: float
    kv_bytes_per_token: float


def stage_memory(module: ModuleOp) -> list[StageMemory]:
    """Per pipeline stage, what one of its devices holds (a graph the `shard` pass rewrote, or any graph: one
    stage). Weights and caches count on the stage of their first user."""
    return StageSplit(module).memory(entry_stages(_entry(module)))


def split_stage_memory(module: ModuleOp, pp: int, given: str = "") -> list[StageMemory]:
    """`stage_memory` of `module` (not yet split into stages) after `pipeline(module, pp, given)`, computed
    without changing or copying it: the stage `entry_stages` would give each op of the split graph."""
    return StageSplit(module).split(pp, given)


class StageSplit:
    """What the stage memory of a graph reads, gathered once, so that many splits of one graph (a placement
    trying pipeline depths) are sized cheaply: the decoder calls, the entry's ops with the values they read
    from other ops (weights aside), each weight's size and users, each KV cache's bytes per token and its call.
    The graph must not change while this is used."""

    def __init__(self, module: ModuleOp) -> None:
        self.calls = decoder_calls(module)
        block = _entry(module).body.blocks.first
        assert block is not None
        self.ops = list(block.ops)
        # The ops each op reads (weights aside), for the ops `pipeline` may give an incoming transfer.
        self.sources = [
            (op, [v.op for v in op.operands if isinstance(v, OpResult) and not isinstance(v.op, WeightOp)])
            for op in self.ops
            if not isinstance(op, WeightOp | func.ReturnOp | TransferOp)
        ]
        sizes: dict[PackedType, int] = {}
        self.weights: list[tuple[list[Operation], int]] = []
        for op in self.ops:
            if isinstance(op, WeightOp):
                typ = op.result.type
                assert isinstance(typ, PackedType)
                if typ not in sizes:
                    sizes[typ] = typ.storage_bytes()
                self.weights.append(([u.operation for u in op.result.uses], sizes[typ]))
        functions = functions_of(module)
        caches = {
            arg: call
            for call in self.calls
            for arg, inner in zip(call.arguments, functions[call.callee.string_value()].args, strict=True)
            if isinstance(arg, BlockArgument) and any(isinstance(u.operation, AttentionOp) for u in inner.uses)
        }
        self.caches: list[tuple[func.CallOp, float]] = []
        for arg, call in caches.items():
            typ = arg.type
            assert isinstance(typ, TensorType)
            self.caches.append((call, typ.get_shape()[-1] * typ.element_type.bitwidth / 8))  # type: ignore[union-attr]

    def split(self, pp: int, given: str = "") -> list[StageMemory]:
        """`split_stage_memory` of the graph."""
        counts = stage_layers(len(self.calls), pp, given)
        boundary: dict[Operation, int] = {}  # the last call of each stage but the last -> the stage after it
        end = 0
        for stage, count in enumerate(counts[:-1]):
            end += count
            boundary[self.calls[end - 1]] = stage + 1
        planned: dict[Operation, int] = {}  # the stage `pipeline` puts each op on
        stage = 0
        for op in self.ops:
            planned[op] = stage
            stage = boundary.get(op, stage)
        # `pipeline` inserts a stage's incoming transfers right after its boundary, and only where a value it
        # reads (weights aside) comes from an earlier stage; an op is on the stage of the last transfers above it.
        received: set[int] = set()
        for op, sources in self.sources:
            here = planned[op]
            if any(planned.get(source, here) < here for source in sources):
                received.add(here)
        stage_of: dict[Operation, int] = {}
        stage = 0
        for op in self.ops:
            stage_of[op] = stage
            if boundary.get(op, 0) in received:
                stage = boundary[op]
        return self.memory(stage_of)

    def memory(self, stage_of: Mapping[Operation, int]) -> list[StageMemory]:
        """`stage_memory` with the stage of each op of the entry function's body given."""
        count = max(stage_of.values(), default=0) + 1
        weights = [0.0] * count
        kv = [0.0] * count
        for users, size in self.weights:
            weights[min((stage_of.get(u, 0) for u in users), default=0)] += size
        for call, row in self.caches:
            kv[stage_of.get(call, 0)] += row
        return [StageMemory(w, k) for w, k in zip(weights, kv, strict=True)]
