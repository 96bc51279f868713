"""Argument pieces shared by the commands: integer types, MODEL and --quant help, `--option KEY=VALUE` items."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from q35c.util.errors import Q35Error
from q35c.util.limits import MAX_TOKENS, clip, parse_int

MODEL_HELP = "a .q35, config.json or .gguf file, or a bundled example's name (e.g. llama-2-7b, tiny)"
QUANT_HELP = "default scheme for weight matrices, e.g. q3p5, int4:g=64"


def count_at_least(minimum: int, maximum: int = MAX_TOKENS) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum] (by default up to `MAX_TOKENS`, 2^24, the most token
    rows q35c builds; `q35c.util.limits`)."""

    def parse(text: str) -> int:
        value = parse_int(text, "the value")
        if isinstance(value, str) and not text.strip().lstrip("+-").isdecimal():
            raise argparse.ArgumentTypeError(f"expected an integer, got '{clip(text)}'")
        if isinstance(value, int) and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if isinstance(value, str) or value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum} (the limit), got {clip(text)}")
        return value

    return parse


def key_values(items: list[str]) -> dict[str, str]:
    """`--option KEY=VALUE` items as a mapping; Q35Error for an item without `=` or without a key."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Q35Error(f"--option expects KEY=VALUE, got '{clip(item)}'")
        if value.strip().lstrip("+-").isdecimal() and isinstance(parse_int(value, key), str):
            raise Q35Error(f"--option {key.strip()}: {parse_int(value, 'the value')}")
        options[key.strip()] = value.strip()
    return options
