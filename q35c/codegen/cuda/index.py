"""Index expressions of the CUDA printer, simplified with the ranges of the loop and tile indices they use.

Reading an element through views composes row-major offsets and their inverses: a weight read `W(n, k)` of a
48 x 4096 tile goes to its unpacking lambda as `((n * 4096 + k) / 4096) % 48`, `((n * 4096 + k) / 128) % 32`
and `(n * 4096 + k) % 128`. Each division and remainder by a constant costs a multiply-high and a few more
instructions per element in the kernel's inner loop; knowing 0 <= n < 48 and 0 <= k < 4096, they are `n`,
`k / 128` and `k % 128`.

An `Ix` is a sum of terms (integer coefficient x atom) and a constant. An atom is a named index with its range
(`var`: 0 <= name < bound, the bound unknown for an opaque C expression), or the quotient or remainder of an
`Ix` by a positive constant that could not be removed. Every atom is non-negative (indices of tensor elements
are). The rules, for x >= 0 and c > 0, used only where the ranges prove their conditions:

    (q * c + r) / c  ->  q + r / c        (q >= 0, r >= 0)       r / c -> 0  when r < c
    (q * c + r) % c  ->  r % c            (q >= 0, r >= 0)       r % c -> r  when r < c
    (x / a) / b      ->  x / (a * b)
    (g * a + b) / (g * m)  ->  a / m,   (g * a + b) % (g * m)  ->  g * (a % m) + b     (0 <= b < g)

Anything else is printed as written, so an expression the rules cannot prove is never changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.ir.affine import AffineBinaryOpExpr, AffineBinaryOpKind, AffineConstantExpr, AffineDimExpr, AffineExpr

from q35c.codegen.cuda.cexpr import ilit


@dataclass(frozen=True)
class Atom:
    """A non-negative index: a named one (`op` == "var", `name` its C text, `bound` its exclusive upper bound
    or None), or `inner / divisor` (`op` == "div") or `inner % divisor` (`op` == "mod")."""

    op: str
    name: str = ""
    bound: int | None = None
    inner: Ix | None = None
    divisor: int = 1

    def upper(self) -> int | None:
        """The largest value the atom takes (None: unknown)."""
        if self.op == "var":
            return None if self.bound is None else self.bound - 1
        assert self.inner is not None
        top = self.inner.upper()
        if self.op == "div":
            return None if top is None else top // self.divisor
        return self.divisor - 1 if top is None else min(top, self.divisor - 1)

    def text(self) -> str:
        if self.op == "var":
            return self.name
        assert self.inner is not None
        sign = "/" if self.op == "div" else "%"
        return f"({self.inner.text()} {sign} {ilit(self.divisor)})"


@dataclass(frozen=True)
class Ix:
    """sum(coefficient x atom) + constant; `terms` in first-use order, no zero coefficient."""

    terms: tuple[tuple[Atom, int], ...] = ()
    constant: int = 0

    @staticmethod
    def var(name: str, bound: int | None = None) -> Ix:
        return Ix(((Atom("var", name=name, bound=bound), 1),))

    @staticmethod
    def const(value: int) -> Ix:
        return Ix((), value)

    @staticmethod
    def of(value: Ix | str | int) -> Ix:
        """An `Ix` from an index that may be C text (an opaque non-negative index) or a constant."""
        if isinstance(value, Ix):
            return value
        if isinstance(value, int):
            return Ix.const(value)
        return Ix.var(value)

    def lower(self) -> int:
        """The smallest value (atoms are >= 0; a negative coefficient needs the atom's upper bound)."""
        low = self.constant
        for atom, coef in self.terms:
            if coef < 0:
                top = atom.upper()
                if top is None:
                    return -(2**62)
                low += coef * top
        return low

    def upper(self) -> int | None:
        top = self.constant
        for atom, coef in self.terms:
            if coef > 0:
                bound = atom.upper()
                if bound is None:
                    return None
                top += coef * bound
        return top

    def __add__(self, other: Ix | int) -> Ix:
        other = Ix.of(other)
        merged: dict[Atom, int] = {}
        for atom, coef in (*self.terms, *other.terms):
            merged[atom] = merged.get(atom, 0) + coef
        terms, extra = _recombined({a: c for a, c in merged.items() if c != 0})
        return Ix(terms, self.constant + other.constant + extra)

    def scale(self, factor: int) -> Ix:
        if factor == 0:
            return Ix()
        return Ix(tuple((a, c * factor) for a, c in self.terms), self.constant * factor)

    def __mul__(self, other: Ix | int) -> Ix:
        other = Ix.of(other)
        if not other.terms:
            return self.scale(other.constant)
        if not self.terms:
            return other.scale(self.constant)
        return Ix.var(f"({self.text()} * {other.text()})")

    def _split(self, c: int) -> tuple[Ix, Ix]:
        """(q, r) with self == q * c + r: q the terms whose coefficients c divides, r the rest."""
        q = Ix(tuple((a, k // c) for a, k in self.terms if k % c == 0), self.constant // c if self.constant >= 0 else 0)
        r = Ix(tuple((a, k) for a, k in self.terms if k % c != 0), self.constant - q.constant * c)
        return q, r

    def floordiv(self, c: int) -> Ix:
        if c == 1:
            return self
        if c <= 0 or self.lower() < 0:
            return Ix.var(f"({self.text()} / {ilit(c)})")
        q, r = self._split(c)
        if q.lower() < 0 or r.lower() < 0:
            return Ix(((Atom("div", inner=self, divisor=c), 1),))
        top = r.upper()
        if top is not None and top < c:
            return q
        g = _common_factor(r, c)
        if g > 1:  # (g * a + b) / (g * m) = a / m for 0 <= b < g
            return q + Ix(r.terms).floordiv_exact(g).floordiv(c // g)
        if len(r.terms) == 1 and r.constant == 0 and r.terms[0][1] == 1 and r.terms[0][0].op == "div":
            inner = r.terms[0][0]
            assert inner.inner is not None
            return q + inner.inner.floordiv(inner.divisor * c)
        return q + Ix(((Atom("div", inner=r, divisor=c), 1),))

    def mod(self, c: int) -> Ix:
        if c == 1:
            return Ix()
        if c <= 0 or self.lower() < 0:
            return Ix.var(f"({self.text()} % {ilit(c)})")
        q, r = self._split(c)
        if q.lower() < 0 or r.lower() < 0:
            return Ix(((Atom("mod", inner=self, divisor=c), 1),))
        if len(r.terms) == 1 and r.constant == 0 and r.terms[0][1] == 1 and r.terms[0][0].op == "mod":
            inner = r.terms[0][0]
            assert inner.inner is not None
            if inner.divisor % c == 0:  # (x % (a * c)) % c = x % c
                return inner.inner.mod(c)
        top = r.upper()
        if top is not None and top < c:
            return r
        g = _common_factor(r, c)
        if g > 1:  # (g * a + b) % (g * m) = g * (a % m) + b for 0 <= b < g
            return Ix(r.terms).floordiv_exact(g).mod(c // g).scale(g) + r.constant
        return Ix(((Atom("mod", inner=r, divisor=c), 1),))

    def floordiv_exact(self, g: int) -> Ix:
        """self / g for an expression whose every coefficient and constant g divides."""
        return Ix(tuple((a, k // g) for a, k in self.terms), self.constant // g)

    def text(self) -> str:
        """C text of the expression (constants as the kernel's index literals)."""
        parts: list[str] = []
        for atom, coef in self.terms:
            body = atom.text()
            parts.append(body if coef == 1 else f"{body} * {ilit(coef)}")
        if self.constant or not parts:
            parts.append(ilit(self.constant))
        if len(parts) == 1 and (not self.terms or self.terms[0][1] == 1):
            return parts[0]
        return "(" + " + ".join(parts) + ")"

    def __str__(self) -> str:
        return self.text()


def _common_factor(r: Ix, c: int) -> int:
    """The largest g dividing c and every coefficient of `r`'s terms, with 0 <= r's constant < g (else 1)."""
    g = c
    for _, coef in r.terms:
        g = math.gcd(g, coef)
    return g if r.terms and 0 <= r.constant < g else 1


def _alone(ix: Ix | None) -> Atom | None:
    """The atom `ix` is (one term, coefficient 1, no constant), else None."""
    if ix is None or ix.constant or len(ix.terms) != 1 or ix.terms[0][1] != 1:
        return None
    return ix.terms[0][0]


def _recombined(terms: dict[Atom, int]) -> tuple[tuple[tuple[Atom, int], ...], int]:
    """Terms with the digits of one index put back together, for a >= 1 and x >= 0:

        (x / (a * b)) * (a * k) + (x % (a * b)) * k        ->  x * k
        (x / (a * b)) * (a * k) + ((x % (a * b)) / b) * k  ->  (x / b) * k

    Returns the terms and the constant they add (that of the rebuilt index).
    """
    extra = 0
    changed = True
    while changed:
        changed = False
        for high, c_high in terms.items():
            if high.op != "div" or high.inner is None:
                continue
            for low, c_low in terms.items():
                whole: Ix | None = None
                if low.op == "mod" and low.inner == high.inner and low.divisor == high.divisor:
                    if c_high == c_low * high.divisor:
                        whole = high.inner
                elif low.op == "div" and (rest := _alone(low.inner)) is not None and rest.op == "mod":
                    ab, b = high.divisor, low.divisor
                    if rest.inner == high.inner and rest.divisor == ab and ab % b == 0 and c_high == c_low * (ab // b):
                        whole = high.inner.floordiv(b)
                if whole is None:
                    continue
                del terms[high], terms[low]
                scaled = whole.scale(c_low)
                extra += scaled.constant
                for atom, coef in scaled.terms:
                    terms[atom] = terms.get(atom, 0) + coef
                    if terms[atom] == 0:
                        del terms[atom]
                changed = True
                break
            if changed:
                break
    return tuple(terms.items()), extra


def affine_ix(expr: AffineExpr, dims: Sequence[Ix]) -> Ix:
    """An affine expression over the given dims, simplified."""
    if isinstance(expr, AffineDimExpr):
        return dims[expr.position]
    if isinstance(expr, AffineConstantExpr):
        return Ix.const(expr.value)
    if isinstance(expr, AffineBinaryOpExpr):
        lhs = affine_ix(expr.lhs, dims)
        rhs = affine_ix(expr.rhs, dims)
        if expr.kind == AffineBinaryOpKind.Add:
            return lhs + rhs
        if expr.kind == AffineBinaryOpKind.Mul:
            return lhs * rhs
        if not rhs.terms and rhs.constant > 0:
            if expr.kind == AffineBinaryOpKind.FloorDiv:
                return lhs.floordiv(rhs.constant)
            if expr.kind == AffineBinaryOpKind.Mod:
                return lhs.mod(rhs.constant)
            return (lhs + (rhs.constant - 1)).floordiv(rhs.constant)  # ceildiv
    raise ValueError(f"affine expression {expr} with a non-constant divisor")


def linear(indices: Sequence[Ix], shape: Sequence[int]) -> Ix:
    """The row-major offset of `indices` in a tensor of `shape`."""
    if not indices:
        return Ix()
    flat = indices[0]
    for index, size in zip(indices[1:], shape[1:], strict=True):
        flat = flat.scale(size) + index
    return flat


def delinear(flat: Ix, shape: Sequence[int]) -> list[Ix]:
    """The indices of the row-major offset `flat` in `shape`."""
    out: list[Ix] = []
    stride = 1
    strides: list[int] = []
    for size in reversed(shape):
        strides.append(stride)
        stride *= size
    strides.reverse()
    for size, step in zip(shape, strides, strict=True):
        out.append(flat.floordiv(step).mod(size) if size != 1 else Ix())
    return out
