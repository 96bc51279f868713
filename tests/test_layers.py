"""The direction of imports (docs/architecture.md): every package imports only from the layers below it, and only
`targets/` branches on target family names or spells attribute names other than through `q35c/ir/attrs.py`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Source folder -> the q35c package it is installed as.
FOLDERS = {"q35c": "q35c", "dialects": "q35c.dialects", "passes": "q35c.passes", "targets": "q35c.targets"}

BASE = ("q35c.util", "q35c.ir", "q35c.dialects")
LOWER = (*BASE, "q35c.formats", "q35c.passes", "q35c.analysis")
# What each package may import from q35c (besides itself).
ALLOWED: dict[str, tuple[str, ...]] = {
    "q35c.util": ("q35c.util",),
    "q35c.ir": BASE,
    "q35c.dialects": BASE,
    "q35c.formats": (*BASE, "q35c.formats"),
    "q35c.frontend": (*LOWER, "q35c.frontend"),
    "q35c.passes": LOWER,
    "q35c.analysis": LOWER,
    "q35c.targets": (*LOWER, "q35c.targets"),
    "q35c.driver": (*LOWER, "q35c.targets", "q35c.frontend", "q35c.driver", "q35c.universe"),
    "q35c.predict": (*LOWER, "q35c.targets", "q35c.frontend", "q35c.driver", "q35c.predict"),
    "q35c.verify": (*LOWER, "q35c.targets", "q35c.frontend", "q35c.driver", "q35c.verify"),
    "q35c.accuracy": (*LOWER, "q35c.frontend", "q35c.verify", "q35c.accuracy"),
    "q35c.codegen": (
        *LOWER,
        "q35c.targets",
        "q35c.frontend",
        "q35c.driver",
        "q35c.predict",
        "q35c.verify",
        "q35c.codegen",
    ),
    "q35c.report": (
        *LOWER,
        "q35c.targets",
        "q35c.frontend",
        "q35c.driver",
        "q35c.predict",
        "q35c.codegen",
        "q35c.report",
    ),
    "q35c.universe": ("q35c.dialects", "q35c.passes"),
    "q35c.cli": ("q35c",),
    "q35c": (),  # the package root: its version string only
}


def modules() -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            found.append((".".join((package, *parts)).removesuffix(".__init__"), path))
    return found


def layer(module: str) -> str:
    """The package of ALLOWED a module belongs to (the longest prefix)."""
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len, default="q35c")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names if node.module == "q35c")
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("q35c.") and n != "q35c.__version__"}


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_go_down(module: str, path: Path) -> None:
    own = layer(module)
    allowed = (*ALLOWED[own], own)
    wrong = sorted(n for n in imported(path) if not any(n == a or n.startswith(a + ".") for a in allowed))
    assert not wrong, f"{path.relative_to(ROOT)} ({own}) imports {', '.join(wrong)}"


FAMILY_BRANCH = re.compile(r"""family\s*(==|!=|\bin\b)\s*[("']""")
ATTR_LITERAL = re.compile(r"""["']q35\.[a-z_]+["']""")


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_family_branches_outside_targets(module: str, path: Path) -> None:
    if module.startswith("q35c.targets"):
        return
    text = path.read_text(encoding="utf-8").splitlines()
    lines = [i + 1 for i, line in enumerate(text) if FAMILY_BRANCH.search(line)]
    assert not lines, f"{path.relative_to(ROOT)} branches on a target family at line(s) {lines}"


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_attribute_names_only_in_attrs(module: str, path: Path) -> None:
    if module in ("q35c.ir.attrs",) or module.startswith("q35c.dialects"):
        return  # the names themselves, and the dialect's own op and attribute definitions
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and ATTR_LITERAL.fullmatch(repr(node.value).replace('"', "'"))
    ]
    assert not found, f"{path.relative_to(ROOT)} spells a q35.* attribute name at line(s) {found}"
