"""docs/claims.md is what benchmarks/claims.py writes: its weights-only figures are what the library computes
now, and the whole page is current (regenerate it with `python benchmarks/claims.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_MD = ROOT / "docs" / "claims.md"


@pytest.fixture(scope="module")
def claims(load_script: Callable[[Path, str], ModuleType]) -> ModuleType:
    return load_script(ROOT / "benchmarks" / "claims.py", "claims")


def test_weights_only_figures_are_what_the_library_computes(claims: ModuleType) -> None:
    section = "\n".join(claims.weights_section(claims.weight_summaries()))
    assert section in CLAIMS_MD.read_text(encoding="utf-8")
    for text in ("| LLaMA-70B | 140.0 | 70.0 | 35.0 | 30.6 |", "| LLaMA-405B | 810.0 | 405.0 | 202.5 | 177.2 |",
                 "68,976,648,192", "405,853,388,800", "| q3p5 (dense, g=128) | 32.33 |"):  # fmt: skip
        assert text in section, text


def test_the_checked_in_page_is_current(claims: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = claims.main(["--check"])
    assert code == 0, capsys.readouterr().err + " (run: python benchmarks/claims.py)"


def test_the_naive_formula_reproduces_the_quoted_table(claims: ModuleType) -> None:
    for row in claims.CLAIMED:
        tok_s = row.bandwidth_gb_s * claims.EFFICIENCY / claims.NOMINAL_GB_3P5
        assert round(tok_s) == pytest.approx(row.tok_s, abs=0.5)
        assert row.power_w / tok_s == pytest.approx(row.energy_mj / 1e3, rel=0.01)
