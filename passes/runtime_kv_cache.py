"""runtime-kv-cache: a graph whose KV cache is a buffer filled at run time, one step after another.

A graph as imported attends over C cached tokens that are all valid, and keeps the new tokens' keys and values
to itself (the cache append is left to whoever runs the step). For token-by-token generation with a cache of
fixed capacity C compiled once, this pass makes two changes, both at the graph level (so every target pipeline
and the numpy reference see them):

- every `q35.attention` gets the `positions` operand: the positions of its new keys, the `positions` operand
  of the `q35.rope` producing k. Cache row j is then seen only below the sequence's first new position
  (see `q35.attention`): a step at position p reads rows 0..p-1 of the buffer, whatever the rows after hold.
  When p = C the step computes exactly what it computed before.
- every function returns, after its own results, the new k rows then the new v rows of each attention op it
  runs and the rows of each call that returns some, in program order; calls are rebuilt with the extra results.
  The entry's extra results therefore come in the order of the cache arguments they belong to, which the pass
  checks: result i after the original ones is the rows of the i-th cache argument (k, v, k, v, ... by layer),
  to be written at rows pos .. pos+T-1 of that cache before the next step.

      %a = q35.attention %q, %k, %v, %kc, %vc {...} : (...) -> tensor<1x64xf16>
      func.return %x : tensor<1x64xf16>
  becomes
      %a = q35.attention %q, %k, %v, %kc, %vc positions %pos {...} : (..., tensor<1xi32>) -> tensor<1x64xf16>
      func.return %x, %k, %v : tensor<1x64xf16>, tensor<1x32xf16>, tensor<1x32xf16>

It fails (PassFailedException) where k is not a `q35.rope` result (no positions to take), where an attention's
cache is not an argument of the entry, or where functions call each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp
from xdsl.ir import Attribute, BlockArgument, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from q35c.dialects.q35 import AttentionOp, RopeOp

ENTRY = "main"


@dataclass(frozen=True)
class Extra:
    """One extra result of a function: the new rows, and the index of the function argument holding the cache
    they belong to (None where that cache is not an argument of the function)."""

    rows: SSAValue
    cache_arg: int | None


def _arg_index(value: SSAValue) -> int | None:
    return value.index if isinstance(value, BlockArgument) else None


def _with_positions(op: AttentionOp) -> AttentionOp:
    """The attention op with the positions of its new keys (those of the rope producing k)."""
    if op.positions is not None:
        return op
    rope = op.k.owner
    if not isinstance(rope, RopeOp):
        raise PassFailedException("attention k is not a q35.rope result, so the new keys have no positions")
    sizes = (op.num_heads.value.data, op.num_kv_heads.value.data, op.head_dim.value.data)
    new = AttentionOp(op.q, op.k, op.v, op.k_cache, op.v_cache, *sizes, batch=op.batch, positions=rope.positions)
    Rewriter.replace_op(op, new)
    new.result.name_hint = op.result.name_hint
    return new


def _call_order(funcs: dict[str, func.FuncOp]) -> list[str]:
    """Function names, callees before their callers; PassFailedException on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: in progress, 2: done
    for root in funcs:
        stack: list[tuple[str, list[str]]] = []
        if state.get(root) == 2:
            continue
        state[root] = 1
        stack.append((root, _callees(funcs[root], funcs)))
        while stack:
            name, pending = stack[-1]
            if not pending:
                stack.pop()
                state[name] = 2
                order.append(name)
                continue
            callee = pending.pop()
            if state.get(callee) == 1:
                raise PassFailedException(f"@{callee} calls itself through @{name}")
            if state.get(callee) is None:
                state[callee] = 1
                stack.append((callee, _callees(funcs[callee], funcs)))
    return order


def _callees(fn: func.FuncOp, funcs: dict[str, func.FuncOp]) -> list[str]:
    names = [op.callee.string_value() for op in fn.walk() if isinstance(op, func.CallOp)]
    return [n for n in dict.fromkeys(names) if n in funcs]


def _rewrite(fn: func.FuncOp, extras: dict[str, list[Extra]]) -> list[Extra]:
    """Attach positions, rebuild calls with their extra results and return all of them; the extras of `fn`."""
    found: list[Extra] = []
    block = fn.body.blocks.first
    assert block is not None
    for op in list(block.ops):
        if isinstance(op, AttentionOp):
            op = _with_positions(op)
            found += [Extra(op.k, _arg_index(op.k_cache)), Extra(op.v, _arg_index(op.v_cache))]
        elif isinstance(op, func.CallOp) and extras.get(op.callee.string_value()):
            more = extras[op.callee.string_value()]
            types = [*op.result_types, *(e.rows.type for e in more)]
            call = func.CallOp(op.callee, op.arguments, types)
            Rewriter.replace_op(op, call, call.results[: len(op.results)])
            for old, new in zip(op.results, call.results, strict=False):
                new.name_hint = old.name_hint
            for extra, result in zip(more, call.results[len(op.results) :], strict=True):
                cache = None if extra.cache_arg is None else call.arguments[extra.cache_arg]
                if cache is not None and cache.name_hint:
                    result.name_hint = f"{cache.name_hint}_rows"
                found.append(Extra(result, None if cache is None else _arg_index(cache)))
        elif isinstance(op, func.ReturnOp) and found:
            Rewriter.replace_op(op, func.ReturnOp(*op.arguments, *(e.rows for e in found)))
            outputs: list[Attribute] = [*fn.function_type.outputs.data, *(e.rows.type for e in found)]
            fn.function_type = FunctionType.from_lists(list(fn.function_type.inputs.data), outputs)
    return found


def _check_entry(fn: func.FuncOp, found: list[Extra]) -> None:
    """The entry's extra results must belong to its cache arguments, one each, in argument order."""
    caches = [e.cache_arg for e in found]
    if any(c is None for c in caches) or caches != sorted(set(c for c in caches if c is not None)):
        raise PassFailedException(
            f"the attention caches of @{fn.sym_name.data} must be its arguments, each used by "
            "one attention op, in argument order"
        )


@dataclass(frozen=True)
class RuntimeKVCachePass(ModulePass):
    """Mask cache rows by position and return every attention's new k and v rows (see the module docstring)."""

    name = "runtime-kv-cache"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        funcs = {f.sym_name.data: f for f in op.ops if isinstance(f, func.FuncOp)}
        extras: dict[str, list[Extra]] = {}
        for name in _call_order(funcs):
            extras[name] = _rewrite(funcs[name], extras)
        if ENTRY in funcs:
            _check_entry(funcs[ENTRY], extras[ENTRY])
