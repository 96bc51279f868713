"""op_graph: a func's ops as a networkx dataflow graph with value sizes on the edges."""

from __future__ import annotations

import networkx as nx
from xdsl.dialects.builtin import Float16Type, Float32Type, TensorType, i32
from xdsl.dialects.func import CallOp, FuncOp, ReturnOp

from q35c.analysis.opgraph import op_graph, type_bytes
from q35c.dialects.q35 import AddOp, LinearOp, PackedType, WeightOp
from q35c.frontend import load_model


def main_func(name: str = "tiny") -> FuncOp:
    return next(op for op in load_model(name).module.ops if isinstance(op, FuncOp) and op.sym_name.data == "main")


def test_nodes_are_the_ops_in_order() -> None:
    func = main_func()
    graph = op_graph(func)
    ops = list(func.body.block.ops)
    assert list(graph.nodes) == ops
    assert [graph.nodes[op]["index"] for op in ops] == list(range(len(ops)))
    assert nx.is_directed_acyclic_graph(graph)


def test_edges_carry_values_and_bytes() -> None:
    graph = op_graph(main_func())
    calls = [op for op in graph.nodes if isinstance(op, CallOp)]
    # the first call's result (tensor<1x64xf16>) feeds the second call
    data = graph.edges[calls[0], calls[1]]
    assert data["value"] is calls[0].results[0]
    assert data["bytes"] == 64 * 2
    # a weight feeds its call with its packed storage size
    down = next(op for op in graph.nodes if isinstance(op, WeightOp) and op.param_name.data == "decoder.1.down_proj")
    assert graph.edges[down, calls[1]]["bytes"] == PackedType([64, 128], "q3p5:g=32").storage_bytes()
    # the logits reach the return
    ret = next(op for op in graph.nodes if isinstance(op, ReturnOp))
    assert graph.in_degree(ret) == 1
    assert next(iter(graph.in_edges(ret, data="bytes")))[2] == 256 * 2


def test_function_arguments_are_not_nodes() -> None:
    graph = op_graph(main_func())
    embed_weight = next(iter(graph.nodes))
    embed = next(iter(graph.successors(embed_weight)))
    assert embed.name == "q35.embed" and graph.in_degree(embed) == 1  # %ids is an argument


def test_a_value_used_twice_by_one_op_is_one_edge() -> None:
    decoder = next(
        op for op in load_model("tiny").module.ops if isinstance(op, FuncOp) and op.sym_name.data == "decoder"
    )
    graph = op_graph(decoder)
    linears = [op for op in graph.nodes if isinstance(op, LinearOp)]
    rmsnorm = linears[0].x.owner
    # h feeds q_proj, k_proj and v_proj: three edges from the rmsnorm
    assert sum(1 for op in graph.successors(rmsnorm) if isinstance(op, LinearOp)) == 3
    adds = [op for op in graph.nodes if isinstance(op, AddOp)]
    assert graph.edges[adds[0], adds[1]]["bytes"] == 64 * 2


def test_type_bytes() -> None:
    assert type_bytes(TensorType(Float16Type(), [3, 5])) == 30
    assert type_bytes(TensorType(Float32Type(), [0, 1024])) == 0
    assert type_bytes(TensorType(i32, [7])) == 28
    assert type_bytes(PackedType([4096, 4096], "q3p5")) == 4096 * 4096 * 15 // 32
