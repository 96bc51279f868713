"""`alias_components` finds the buffers of `alias_graph` without the graph: the same components, in the order
networkx yields them, on the functions of compiled modules (loops, rings, views, assembles)."""

from __future__ import annotations

import networkx as nx
import pytest
from xdsl.dialects import func

from q35c.analysis.opgraph import alias_components, alias_graph
from q35c.driver.pipeline import Runner
from q35c.frontend import load_model
from q35c.targets.registry import get_target


@pytest.mark.parametrize("target", ["h100-sxm", "groq-lpu", "host"])
def test_the_components_are_the_alias_graphs_in_its_order(target: str) -> None:
    module = load_model("tiny", quant="q3p5:g=32", seq=3, context=5).module
    seen = 0
    for stage in get_target(target).pipeline():
        Runner(verify=False).apply(stage, module)
        for fn in module.ops:
            if not isinstance(fn, func.FuncOp) or fn.is_declaration:
                continue
            expected = list(nx.connected_components(alias_graph(fn)))
            found = alias_components(fn)
            assert [set(c) for c in found] == expected
            assert all(len(c) == len(set(c)) for c in found)
            seen += len(found)
    assert seen > 0
