"""A func's ops as a networkx dataflow graph, for analyses that schedule or place them.

Nodes are the ops of the func's body in program order (node attribute `index`); an edge u -> v means v reads a
value that u defines, with attributes `value` (the SSAValue; `values` lists all of them when u feeds v several),
and `bytes` (the total size of those values). Function arguments are not ops: their readers have no in-edge for
them.

>>> from q35c.frontend import load_model
>>> main = load_model("tiny").module.ops.first
>>> g = op_graph(main)
>>> g.number_of_nodes(), sum(d["bytes"] for _, _, d in g.edges(data=True)) > 0
(27, True)
"""

from __future__ import annotations

import math

import networkx as nx
from xdsl.dialects.builtin import TensorType
from xdsl.dialects.func import FuncOp
from xdsl.ir import Attribute, OpResult, SSAValue

from q35c.dialects.q35 import PackedType


def type_bytes(typ: Attribute) -> int:
    """Bytes of a value of type `typ`: packed weights by their scheme's storage, tensors by element width.

    >>> from xdsl.dialects.builtin import Float16Type
    >>> type_bytes(TensorType(Float16Type(), [1, 4096]))
    8192
    """
    if isinstance(typ, PackedType):
        return typ.storage_bytes()
    if isinstance(typ, TensorType):
        bits = getattr(typ.element_type, "bitwidth", None)
        if bits is None:
            raise ValueError(f"no known size for elements of {typ}")
        return math.prod(typ.get_shape()) * ((bits + 7) // 8)
    raise ValueError(f"no known size for values of type {typ}")


def value_bytes(value: SSAValue) -> int:
    return type_bytes(value.type)


def op_graph(func: FuncOp) -> nx.DiGraph:
    """The dataflow graph of `func`'s body (a single block)."""
    graph = nx.DiGraph()
    ops = list(func.body.block.ops)
    for index, op in enumerate(ops):
        graph.add_node(op, index=index)
    for op in ops:
        seen: set[SSAValue] = set()
        for operand in op.operands:
            if not isinstance(operand, OpResult) or operand in seen or operand.op not in graph:
                continue
            seen.add(operand)
            producer = operand.op
            if graph.has_edge(producer, op):
                data = graph.edges[producer, op]
                data["values"] = (*data["values"], operand)
                data["bytes"] += value_bytes(operand)
            else:
                graph.add_edge(producer, op, value=operand, values=(operand,), bytes=value_bytes(operand))
    return graph
