"""Did-you-mean hints for names a user mistyped (`--target h100`, `--quant q3.5`).

>>> did_you_mean("h100", ["a100-sxm", "h100-pcie", "h100-sxm", "mi300x"])
"did you mean 'h100-pcie' or 'h100-sxm'?"
>>> did_you_mean("q3.5", ["fp16", "int4", "q3p5", "q4_0"])
"did you mean 'q3p5'?"
>>> did_you_mean("tpu-v5", ["a100-sxm", "h100-sxm"])
''
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

MAX_SUGGESTIONS = 3
CUTOFF = 0.6
MARGIN = 0.1


def close_names(word: str, choices: Sequence[str]) -> list[str]:
    """The choices `word` most likely meant: those it begins (in `choices` order), else the closest by difflib's
    ratio (at least CUTOFF, and within MARGIN of the best, best first)."""
    key = word.strip().lower()
    names = list(dict.fromkeys(choices))
    if not key:
        return []
    prefixed = [c for c in names if c.lower().startswith(key)]
    if prefixed:
        return prefixed[:MAX_SUGGESTIONS]
    scored = sorted(((difflib.SequenceMatcher(None, key, c.lower()).ratio(), i) for i, c in enumerate(names)),
                    key=lambda pair: (-pair[0], pair[1]))  # fmt: skip
    best = scored[0][0] if scored else 0.0
    return [names[i] for score, i in scored if score >= max(CUTOFF, best - MARGIN)][:MAX_SUGGESTIONS]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`did you mean 'a' or 'b'?`, or '' when nothing is close."""
    names = [f"'{n}'" for n in close_names(word, choices)]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"did you mean {listed}?"
