"""Emit a `Graph` as an xDSL module in the q35 dialect.

The module holds `func.func @main` and one func per distinct repeated block: repetitions whose weights have
the same types share one func (`@decoder`; a variant with other schemes gets `@decoder_1`, ...), which is
built once and called once per repetition. Main declares every weight with `q35.weight` just before its first
use and passes each repetition its own weights and KV caches:

    func.func @main(%ids: tensor<1xi32>, %pos: tensor<1xi32>, %decoder.0.k_cache: tensor<0x32xf16>, ...)
        -> tensor<1x256xf16> {
      %embed_tokens = q35.weight "embed_tokens" : !q35.packed<256x64, #q35.scheme<fp16>>
      %x = q35.embed %ids, %embed_tokens : ...
      %decoder.0.q_proj = q35.weight "decoder.0.q_proj" : !q35.packed<64x64, #q35.scheme<q3p5, g = 32, ...>>
      ...
      %x_1 = func.call @decoder(%x, %pos, %decoder.0.k_cache, %decoder.0.v_cache, %decoder.0.input_layernorm, ...)
    }
    func.func @decoder(%x: tensor<1x64xf16>, %pos: tensor<1xi32>, %k_cache: ..., %v_cache: ...,
                       %input_layernorm: !q35.packed<64, #q35.scheme<fp16>>, ...) -> tensor<1x64xf16>
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import cache

from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, Float32Type, ModuleOp, i32
from xdsl.dialects.builtin import TensorType as MlirTensorType
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from q35c.dialects import q35
from q35c.frontend.graph import Body, Graph, Node, Repeat, TensorType, Value, WeightType, instance_name
from q35c.ir.schemes import Scheme

_ELEMENT: dict[str, Attribute] = {"f16": Float16Type(), "f32": Float32Type(), "i32": i32}


@cache
def tensor_type(t: TensorType) -> Attribute:
    return MlirTensorType(_ELEMENT[t.dtype], t.shape)


def _node_op(node: Node, args: Sequence[SSAValue], result: Attribute, batch: int = 1) -> Operation:
    a = dict(node.attrs)
    match node.op:
        case "linear":
            return q35.LinearOp(args[0], args[1])
        case "embed":
            return q35.EmbedOp(args[0], args[1], result)
        case "rmsnorm":
            return q35.RMSNormOp(args[0], args[1], float(a["eps"]))
        case "rope":
            return q35.RopeOp(args[0], args[1], int(a["head_dim"]), float(a["theta"]))
        case "attention":
            heads, kv_heads, head_dim = (int(a[k]) for k in ("num_heads", "num_kv_heads", "head_dim"))
            return q35.AttentionOp(*args, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, batch=batch)
        case "silu":
            return q35.SiluOp(args[0])
        case "mul":
            return q35.MulOp(args[0], args[1])
        case "add":
            return q35.AddOp(args[0], args[1])
    raise AssertionError(f"no q35 op for {node.op}")


def _named(value: SSAValue, name: str) -> SSAValue:
    if name:
        value.name_hint = name
    return value


class _Emitter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.schemes = {w.name: w.scheme for w in graph.weights}
        self.packed: dict[tuple[tuple[int, ...], Scheme], q35.PackedType] = {}
        self.funcs: dict[tuple[str, tuple[Attribute, ...]], str] = {}
        self.block_funcs: list[func.FuncOp] = []
        self.args: dict[str, SSAValue] = {}  # main's arguments by name (caches: `decoder.3.k_cache`)

    def packed_type(self, layer: str | None, param: Value) -> q35.PackedType:
        assert isinstance(param.type, WeightType)
        key = (param.type.shape, self.schemes[instance_name(layer, param.name)])
        if key not in self.packed:
            self.packed[key] = q35.PackedType(key[0], key[1])
        return self.packed[key]

    def ops(
        self,
        steps: Sequence[Node | Repeat],
        env: dict[int, SSAValue],
        block: Block,
        weight: Callable[[Value], SSAValue],
    ) -> None:
        for step in steps:
            if isinstance(step, Repeat):
                self.repeat(step, env, block)
                continue
            args = [weight(v) if isinstance(v.type, WeightType) else env[v.id] for v in step.operands]
            expected = tensor_type(step.result.type)  # type: ignore[arg-type]
            op = _node_op(step, args, expected, self.graph.batch)
            assert op.results[0].type == expected, f"{step.op}: {op.results[0].type} != {expected}"
            block.add_op(op)
            env[step.result.id] = _named(op.results[0], step.result.name)

    def block_func(self, name: str, body: Body, weight_types: tuple[Attribute, ...]) -> str:
        """The func for repetitions of `name` whose weights have `weight_types`; built on first request."""
        key = (name, weight_types)
        if key in self.funcs:
            return self.funcs[key]
        func_name = name
        if any(n == name for n, _ in self.funcs):  # another variant of this block: the next free name_N
            taken = {"main", *(b.name for b in self.graph.blocks), *self.funcs.values()}
            func_name = next(f"{name}_{i}" for i in itertools.count(1) if f"{name}_{i}" not in taken)
        self.funcs[key] = func_name
        values = [*body.inputs, *body.caches]
        block = Block(arg_types=[*(tensor_type(v.type) for v in values), *weight_types])  # type: ignore[arg-type]
        env = {v.id: _named(arg, v.name) for v, arg in zip(values, block.args, strict=False)}
        weights = {p.id: _named(arg, p.name) for p, arg in zip(body.params, block.args[len(values) :], strict=True)}
        self.ops(body.steps, env, block, lambda v: weights[v.id])
        block.add_op(func.ReturnOp(*(env[v.id] for v in body.outputs)))
        types = ([a.type for a in block.args], [tensor_type(v.type) for v in body.outputs])  # type: ignore[arg-type]
        self.block_funcs.append(func.FuncOp(func_name, types, Region(block)))
        return func_name

    def repeat(self, step: Repeat, env: dict[int, SSAValue], block: Block) -> None:
        body = self.graph.block(step.block).body
        current = [env[v.id] for v in step.inputs]
        results: Sequence[SSAValue] = []
        for i in range(step.count):
            layer = f"{step.block}.{i}"
            weight_ops = [q35.WeightOp(instance_name(layer, p.name), self.packed_type(layer, p)) for p in body.params]
            block.add_ops(weight_ops)
            for op in weight_ops:
                _named(op.result, op.param_name.data)
            callee = self.block_func(step.block, body, tuple(op.result.type for op in weight_ops))
            caches = [self.args[instance_name(layer, c.name)] for c in body.caches]
            args = [*current, *caches, *(op.result for op in weight_ops)]
            call = func.CallOp(callee, args, [tensor_type(v.type) for v in body.outputs])  # type: ignore[arg-type]
            block.add_op(call)
            results = [_named(r, v.name) for r, v in zip(call.results, body.outputs, strict=True)]
            for j, i_in in enumerate(step.feeds):
                if i_in is not None:
                    current[i_in] = results[j]
        for value, result in zip(step.outputs, results, strict=True):
            env[value.id] = _named(result, value.name)

    def module(self) -> ModuleOp:
        main = self.graph.main
        # main's arguments: its inputs, its own caches, then each repetition's caches
        args: list[tuple[str | None, Value]] = [(None, v) for v in (*main.inputs, *main.caches)]
        for step in main.steps:
            if isinstance(step, Repeat):
                caches = self.graph.block(step.block).body.caches
                args += [(f"{step.block}.{i}", c) for i in range(step.count) for c in caches]
        block = Block(arg_types=[tensor_type(v.type) for _, v in args])  # type: ignore[arg-type]
        env: dict[int, SSAValue] = {}
        for (layer, value), arg in zip(args, block.args, strict=True):
            self.args[instance_name(layer, value.name)] = _named(arg, instance_name(layer, value.name))
            if layer is None:
                env[value.id] = arg
        declared: dict[int, SSAValue] = {}

        def weight(v: Value) -> SSAValue:
            if v.id not in declared:
                op = q35.WeightOp(v.name, self.packed_type(None, v))
                block.add_op(op)
                declared[v.id] = _named(op.result, v.name)
            return declared[v.id]

        self.ops(main.steps, env, block, weight)
        for p in main.params:
            weight(p)  # params no op reads are still model parameters
        block.add_op(func.ReturnOp(*(env[v.id] for v in main.outputs)))
        types = ([a.type for a in block.args], [tensor_type(v.type) for v in main.outputs])  # type: ignore[arg-type]
        main_func = func.FuncOp("main", types, Region(block))
        return ModuleOp([main_func, *self.block_funcs])


def to_module(graph: Graph) -> ModuleOp:
    """The verified q35 module of `graph`."""
    module = _Emitter(graph).module()
    module.verify()
    return module
