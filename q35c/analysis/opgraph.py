"""A func's ops as networkx graphs, for analyses that schedule or place them.

`op_graph` is the dataflow graph of a func's top-level ops; `alias_graph` connects the tensor values of a whole
func (nested regions included) that bufferization puts in one buffer.

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
from typing import TYPE_CHECKING, Any

from xdsl.dialects import scf, tensor
from xdsl.dialects.builtin import TensorType
from xdsl.dialects.func import FuncOp
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.ir import Attribute, BlockArgument, Operation, OpResult, SSAValue

from q35c.dialects.q35 import PackedType
from q35c.dialects.q35_storage import AssembleOp

if TYPE_CHECKING:
    import networkx as nx  # loaded by the functions that build graphs: compiling needs none

# Ops whose result is a view of their first operand (no buffer of its own).
_VIEWS = (tensor.ExtractSliceOp, tensor.ExpandShapeOp, tensor.CollapseShapeOp, tensor.CastOp)


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
    import networkx as nx

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


def _is_buffer_value(value: SSAValue) -> bool:
    return isinstance(value.type, TensorType | PackedType)


# The kinds of op `aliases` tells apart, in the order it tries them, and each op class's kind (-1: none), found
# once per class (`isinstance` against LinalgStructuredOperation, an ABC, is slow for every op of a walk).
_KIND_TYPES: tuple[Any, ...] = (
    LinalgStructuredOperation,
    tensor.InsertSliceOp,
    _VIEWS,
    AssembleOp,
    scf.ForOp,
    scf.ExecuteRegionOp | scf.IfOp,
)
_KINDS: dict[type, int] = {}


def aliases(op: Operation) -> list[tuple[SSAValue, SSAValue]]:
    """The (value, value) pairs of `op` that share a buffer once bufferized in place.

    linalg ops write their results into their `outs`; `tensor.insert_slice` into its destination; slices, reshapes
    and `q35_storage.assemble` are views of their source(s); an `scf.for` carries each init through its iteration
    argument and yield to its result; `scf.execute_region`/`scf.if` results are what their regions yield.
    """
    pairs: list[tuple[SSAValue, SSAValue]] = []
    kind = _KINDS.get(type(op))
    if kind is None:
        kind = _KINDS[type(op)] = next((i for i, k in enumerate(_KIND_TYPES) if isinstance(op, k)), -1)
    if kind == -1:
        return pairs
    if kind == 0:
        pairs += zip(op.results, op.outputs, strict=False)  # type: ignore[attr-defined]
    elif kind == 1:
        assert isinstance(op, tensor.InsertSliceOp)
        pairs.append((op.result, op.dest))
    elif kind == 2:
        pairs.append((op.results[0], op.operands[0]))
    elif kind == 3:
        assert isinstance(op, AssembleOp)
        pairs += [(op.result, value) for value in op.storage]
    elif isinstance(op, scf.ForOp):
        body = op.body.block
        yielded = body.last_op.operands if body.last_op is not None else ()
        for result, init, arg, out in zip(op.results, op.iter_args, body.args[1:], yielded, strict=False):
            pairs += [(result, init), (arg, init), (result, out)]
    elif isinstance(op, scf.ExecuteRegionOp | scf.IfOp):
        for region in op.regions:
            for block in region.blocks:
                if block.last_op is not None:
                    pairs += zip(op.results, block.last_op.operands, strict=False)
    return [(a, b) for a, b in pairs if _is_buffer_value(a) and _is_buffer_value(b)]


def alias_graph(func: FuncOp) -> nx.Graph:
    """Tensor values of `func` (arguments, results, block arguments of nested regions) as nodes; an edge joins two
    values that share a buffer (see `aliases`). Each connected component is one buffer.

    >>> from q35c.frontend import load_model
    >>> main = load_model("tiny").module.ops.first
    >>> g = alias_graph(main)
    >>> g.number_of_nodes() > 0, all(isinstance(v, SSAValue) for v in g.nodes)
    (True, True)
    """
    import networkx as nx

    graph = nx.Graph()
    for arg in func.args:
        if _is_buffer_value(arg):
            graph.add_node(arg)
    for op in func.body.walk():
        for region in op.regions:
            for block in region.blocks:
                graph.add_nodes_from(a for a in block.args if _is_buffer_value(a))
        graph.add_nodes_from(r for r in op.results if _is_buffer_value(r))
        graph.add_edges_from(aliases(op))
    return graph


def alias_components(func: FuncOp) -> list[list[SSAValue]]:
    """The connected components of `alias_graph(func)` (each one buffer), found without building the graph: in
    the order `networkx.connected_components` yields them (by their first value in the graph's order), each
    component's values in that order.

    >>> from q35c.frontend import load_model
    >>> main = load_model("tiny").module.ops.first
    >>> from networkx import connected_components
    >>> [set(c) for c in alias_components(main)] == list(connected_components(alias_graph(main)))
    True
    """
    parent: dict[SSAValue, SSAValue] = {}  # union-find over the graph's nodes, in the order it adds them

    def find(value: SSAValue) -> SSAValue:
        root = value
        while (up := parent[root]) is not root:
            root = up
        while value is not root:
            parent[value], value = root, parent[value]
        return root

    for arg in func.args:
        if _is_buffer_value(arg):
            parent.setdefault(arg, arg)
    for op in func.body.walk():
        for region in op.regions:
            for block in region.blocks:
                for arg in block.args:
                    if _is_buffer_value(arg):
                        parent.setdefault(arg, arg)
        for result in op.results:
            if _is_buffer_value(result):
                parent.setdefault(result, result)
        for a, b in aliases(op):
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            root_a, root_b = find(a), find(b)
            if root_a is not root_b:
                parent[root_b] = root_a
    components: dict[SSAValue, list[SSAValue]] = {}
    for value in list(parent):
        components.setdefault(find(value), []).append(value)
    return list(components.values())


def buffer_root(value: SSAValue) -> bool:
    """Whether `value` starts a buffer: a function argument, or an op result that aliases none of its operands."""
    if isinstance(value, BlockArgument):
        return isinstance(value.owner.parent_op(), FuncOp)
    assert isinstance(value, OpResult)
    return not any(value is a for a, _ in aliases(value.op))
