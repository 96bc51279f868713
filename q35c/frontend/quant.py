"""Choosing each weight's quantization scheme: a default plus overrides by name or glob pattern.

An override's pattern matches a weight when it matches the weight's full name (`decoder.3.down_proj`) or its
declared name (`down_proj`); `*` and `?` are globs and `*` also spans dots. The last matching override wins.
Vectors (rank-1 params such as norm gains) are fp16 (f32 where an override names one exactly, as a GGUF file's
F32 tensors do): they are tiny and no scheme quantizes them.

>>> from q35c.ir.schemes import parse_scheme
>>> policy = QuantPolicy(parse_scheme("q3p5"), (Override("lm_head", parse_scheme("int8")),))
>>> str(policy.choose("lm_head", "lm_head")[0]), str(policy.choose("decoder.0.q_proj", "q_proj")[0])
('int8', 'q3p5:g=128:container=dense')
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from q35c.frontend.builder import located
from q35c.frontend.graph import Value, WeightDesc, WeightType, instance_name
from q35c.ir.schemes import Scheme, parse_scheme
from q35c.util.errors import Location

FP16 = parse_scheme("fp16")


@dataclass(frozen=True)
class Override:
    """`quant "pattern" = scheme` in a model file, or a per-tensor type read from a GGUF file."""

    pattern: str
    scheme: Scheme
    loc: Location | None = field(default=None, compare=False)

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")


@dataclass(frozen=True)
class QuantPolicy:
    """The default scheme for weight matrices and the overrides, in source order."""

    default: Scheme
    overrides: tuple[Override, ...] = ()
    default_origin: str = "the default scheme"

    @cached_property
    def _exact(self) -> dict[str, int]:
        return {o.pattern: i for i, o in enumerate(self.overrides) if not o.is_glob}

    @cached_property
    def _globs(self) -> list[tuple[int, Override]]:
        return [(i, o) for i, o in reversed(list(enumerate(self.overrides))) if o.is_glob]

    def vector_scheme(self, name: str) -> Scheme:
        """A vector's scheme: fp16, unless an override names it exactly with an unquantized scheme (a GGUF
        file's F32 norm gains stay f32)."""
        i = self._exact.get(name)
        if i is not None and not self.overrides[i].scheme.is_quantized:
            return self.overrides[i].scheme
        return FP16

    def choose(self, name: str, kind: str) -> tuple[Scheme, str]:
        """The scheme of weight `name` (declared as `kind`) and where it came from, for messages."""
        best = max(self._exact.get(name, -1), self._exact.get(kind, -1))
        for i, o in self._globs:
            if i <= best:
                break
            if fnmatch.fnmatchcase(name, o.pattern) or fnmatch.fnmatchcase(kind, o.pattern):
                best = i
                break
        if best < 0:
            return self.default, self.default_origin
        o = self.overrides[best]
        where = f" at line {o.loc.line}" if o.loc is not None and o.loc.line is not None else ""
        return o.scheme, f'the override "{o.pattern}"{where}'


def assign_schemes(
    uses: Sequence[tuple[str | None, Value]], policy: QuantPolicy, lines: Sequence[str] = ()
) -> tuple[WeightDesc, ...]:
    """One WeightDesc per weight instance; a scheme that cannot store a weight's shape is a located error."""
    checked: set[tuple[tuple[int, ...], Scheme]] = set()
    result: list[WeightDesc] = []
    for layer, param in uses:
        assert isinstance(param.type, WeightType)
        shape = param.type.shape
        name = instance_name(layer, param.name)
        if len(shape) == 1:
            result.append(WeightDesc(name, param.name, layer, shape, policy.vector_scheme(name)))
            continue
        scheme, origin = policy.choose(name, param.name)
        if (shape, scheme) not in checked:
            try:
                scheme.check_shape(*shape)
            except ValueError as err:
                reason = str(err).removeprefix(f"{scheme}: ")
                message = f"weight {name} {param.type} cannot be stored as {scheme} (from {origin}): {reason}"
                raise located(message, param.loc, lines) from None
            checked.add((shape, scheme))
        result.append(WeightDesc(name, param.name, layer, shape, scheme))
    return tuple(result)


def unused_overrides(policy: QuantPolicy, weights: Sequence[WeightDesc]) -> list[Override]:
    """Overrides whose pattern matches no weight matrix: almost always a typo in the pattern."""
    names = {w.name for w in weights if len(w.shape) == 2} | {w.kind for w in weights if len(w.shape) == 2}
    return [
        o
        for o in policy.overrides
        if not (o.pattern in names if not o.is_glob else any(fnmatch.fnmatchcase(n, o.pattern) for n in names))
    ]
