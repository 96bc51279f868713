"""Registers the q35 dialect and q35c's passes with xDSL, so plain `xdsl-opt` reads q35 IR and runs our passes."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _q35_dialect() -> Dialect:
    from q35c.dialects.q35 import Q35

    return Q35


DIALECTS: dict[str, Callable[[], Dialect]] = {"q35": _q35_dialect}
PASSES: dict[str, Callable[[], type[ModulePass]]] = {}

Q35C_UNIVERSE = Universe(all_dialects=DIALECTS, all_passes=PASSES)
