"""Argument pieces shared by the commands: integer types, MODEL and --quant help, `--option KEY=VALUE` items."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from q35c.util.errors import Q35Error

MODEL_HELP = "a .q35, config.json or .gguf file, or a bundled example's name (e.g. llama-2-7b, tiny)"
QUANT_HELP = "default scheme for weight matrices, e.g. q3p5, int4:g=64"


def count_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def key_values(items: list[str]) -> dict[str, str]:
    """`--option KEY=VALUE` items as a mapping; Q35Error for an item without `=` or without a key."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Q35Error(f"--option expects KEY=VALUE, got '{item}'")
        options[key.strip()] = value.strip()
    return options
