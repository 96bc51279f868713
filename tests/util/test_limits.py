"""The bounds of q35c.util.limits and the scans that enforce them before a parser runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from q35c.util.errors import Q35Error
from q35c.util.limits import (
    MAX_NESTING,
    MAX_SOURCE_BYTES,
    elements_error,
    float_error,
    integer_error,
    line_col,
    parse_int,
    read_source,
    too_deep,
)


def test_too_deep_counts_brackets_outside_strings_and_comments() -> None:
    deep = "(" * (MAX_NESTING + 1)
    assert too_deep(deep) == MAX_NESTING
    assert too_deep("(" * MAX_NESTING + ")" * MAX_NESTING) is None
    assert too_deep(f'"{deep}"') is None
    assert too_deep(f"# {deep}\nx", comment="#") is None
    assert too_deep(f'"\\" {deep}', escapes=True) is None  # an escaped quote does not end the string
    assert too_deep(f'"\\\\" {deep}', escapes=True) == 5 + MAX_NESTING  # an escaped backslash does


def test_too_deep_with_angles_skips_arrows_and_comparisons() -> None:
    arrows = "(i32) -> i32 " * 100 + "<" * 10
    assert too_deep(arrows, angles=True, limit=10) is None
    assert too_deep(arrows + "<", angles=True, limit=10) == len(arrows)
    assert too_deep("<" * 11, limit=10) is None  # angles count only when asked


def test_numbers_out_of_range() -> None:
    nines = "9" * 40
    assert parse_int("9" * 5000, "g") == (
        f"g {nines}... (5000 characters) is beyond the range of i64 (at most 9223372036854775807, 2^63 - 1)"
    )
    assert parse_int(" 0064 ", "g") == 64
    assert parse_int("1e3", "g") == "g must be an integer, got '1e3'"
    assert integer_error(0, "dim d") == "dim d must be at least 1, got 0"
    assert integer_error(2**31 - 1, "dim d") is None
    assert float_error(float("nan"), "eps") == "eps must be a finite number, got nan"
    assert float_error(0.0, "eps") is None
    assert elements_error((2**24, 2**24, 2), "w") is not None
    assert elements_error((2**24, 2**24), "w") is None


def test_line_col() -> None:
    assert line_col("ab\ncd\nef", 4) == (2, 2, "cd")


def test_read_source_reads_no_more_than_its_limit(tmp_path: Path) -> None:
    with pytest.raises(Q35Error, match=f"larger than {MAX_SOURCE_BYTES:,} bytes"):
        read_source("/dev/zero")
    with pytest.raises(Q35Error, match="it is a directory"):
        read_source(str(tmp_path))
    path = tmp_path / "m.q35"
    path.write_bytes(b"a\r\nb\rc\xff")
    with pytest.raises(Q35Error, match="not UTF-8 text"):
        read_source(str(path))
    path.write_bytes(b"a\r\nb\rc")
    assert read_source(str(path)) == "a\nb\nc"
