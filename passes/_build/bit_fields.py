"""Bit fields of an unpacking generic, found by running its body: where in a row of storage each code lives.

An unpacking `linalg.generic` (from `unpack-bits`) computes the code at grid position (n, u_1 .. u_r) from storage
elements of row n at its input maps' positions, with integer `arith` ops whose shift amounts come from
`linalg.index`. `probe_fields` evaluates that body on Python integers (two's complement at each op's width), one
storage bit set at a time, and describes each code k of a row (k: the grid position flattened in row-major order,
as the unpacking's `collapse_shape` orders them) as

    code[k] = sext(bits [start, start + width) of the row's little-endian bit stream) * 2^shift

(zext instead of sext for unsigned codes such as q4_1's), or returns None when the body is anything else (a
code that is not such a field, an op the evaluator does not know, an index-0 dependence, a shift past the
width). The description is checked, not assumed: every probed code is evaluated again on random storage and
compared with the field's value.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from xdsl.dialects import arith
from xdsl.dialects.builtin import IndexType, IntegerAttr, IntegerType, TensorType
from xdsl.dialects.linalg.ops import GenericOp, IndexOp, YieldOp
from xdsl.ir import Attribute, SSAValue
from xdsl.ir.affine import AffineDimExpr, AffineExpr, AffineMap

INDEX_BITS = 64


@dataclass(frozen=True)
class Field:
    """A code as a bit field of its row's storage stream: sext(bits [start, start + width) ^ flip) * 2^shift
    (`flip`: the bits stored inverted, e.g. q4_0's code + 8 is the 4-bit code with its sign bit flipped), or with
    `unsigned` zext(..) * 2^shift (q4_1's codes 0 .. 15)."""

    start: int
    width: int
    shift: int
    flip: int = 0
    unsigned: bool = False

    def value(self, row: int) -> int:
        raw = ((row >> self.start) ^ self.flip) & ((1 << self.width) - 1)
        if raw >> (self.width - 1) and not self.unsigned:
            raw -= 1 << self.width
        return raw << self.shift


class _Unknown(Exception):
    """The body does something the evaluator does not model."""


def _width(typ: Attribute) -> int:
    if isinstance(typ, IndexType):
        return INDEX_BITS
    if isinstance(typ, IntegerType):
        return typ.width.data
    raise _Unknown(str(typ))


def _wrap(value: int, bits: int) -> int:
    """`value` modulo 2^bits, as an unsigned number."""
    return value & ((1 << bits) - 1)


def _signed(value: int, bits: int) -> int:
    value = _wrap(value, bits)
    return value - (1 << bits) if value >> (bits - 1) else value


def _shift_amount(amount: int, bits: int) -> int:
    if amount >= bits:
        raise _Unknown("shift past the width (poison)")
    return amount


_BINARY: dict[type, Callable[[int, int, int], int]] = {
    arith.AddiOp: lambda a, b, w: a + b,
    arith.SubiOp: lambda a, b, w: a - b,
    arith.MuliOp: lambda a, b, w: a * b,
    arith.AndIOp: lambda a, b, w: a & b,
    arith.OrIOp: lambda a, b, w: a | b,
    arith.XOrIOp: lambda a, b, w: a ^ b,
    arith.ShLIOp: lambda a, b, w: a << _shift_amount(b, w),
    arith.ShRUIOp: lambda a, b, w: a >> _shift_amount(b, w),
    arith.ShRSIOp: lambda a, b, w: _signed(a, w) >> _shift_amount(b, w),
    arith.MinUIOp: lambda a, b, w: min(a, b),
    arith.MaxUIOp: lambda a, b, w: max(a, b),
    arith.MinSIOp: lambda a, b, w: min(_signed(a, w), _signed(b, w)),
    arith.MaxSIOp: lambda a, b, w: max(_signed(a, w), _signed(b, w)),
}


Step = tuple[str, int, tuple[int, ...], int, int]  # kind, result slot, operand slots, width, operand width/value


def compile_body(op: GenericOp) -> tuple[Step, ...]:
    """`op`'s body as steps over numbered slots (block arguments first); `_Unknown` for an op it does not model.
    Equal bodies compile to equal steps (the steps are also a structural key)."""
    block = op.body.blocks.first
    assert block is not None
    slots: dict[SSAValue, int] = {arg: i for i, arg in enumerate(block.args)}
    steps: list[Step] = []
    for inner in block.ops:
        if isinstance(inner, YieldOp):
            steps.append(("yield", 0, (slots[inner.operands[0]],), 0, 0))
            return tuple(steps)
        slot = len(slots)
        slots[inner.results[0]] = slot
        width = _width(inner.results[0].type)
        if isinstance(inner, IndexOp):
            steps.append(("index", slot, (), width, inner.dim.value.data))
        elif isinstance(inner, arith.ConstantOp):
            value = inner.value
            if not isinstance(value, IntegerAttr):
                raise _Unknown("non-integer constant")
            steps.append(("const", slot, (), width, _wrap(value.value.data, width)))
        elif type(inner) in _BINARY:
            steps.append((inner.name, slot, tuple(slots[v] for v in inner.operands), width, 0))
        elif isinstance(inner, arith.IndexCastOp | arith.TruncIOp | arith.ExtUIOp):
            steps.append(("wrap", slot, (slots[inner.operands[0]],), width, 0))
        elif isinstance(inner, arith.ExtSIOp):
            steps.append(("extsi", slot, (slots[inner.operands[0]],), width, _width(inner.operands[0].type)))
        else:
            raise _Unknown(inner.name)
    raise _Unknown("no yield")


_BY_NAME = {op.name: fn for op, fn in _BINARY.items()}


def run(steps: Sequence[Step], inputs: Sequence[int], indices: Sequence[int]) -> int:
    """The yielded integer (unsigned at its width) of compiled steps for block-argument values and loop indices."""
    env = [0] * (len(inputs) + len(steps))
    env[: len(inputs)] = inputs
    for kind, slot, operands, width, extra in steps:
        if kind == "yield":
            return env[operands[0]]
        if kind == "index":
            env[slot] = indices[extra]
        elif kind == "const":
            env[slot] = extra
        elif kind == "wrap":
            env[slot] = _wrap(env[operands[0]], width)
        elif kind == "extsi":
            env[slot] = _wrap(_signed(env[operands[0]], extra), width)
        else:
            env[slot] = _wrap(_BY_NAME[kind](env[operands[0]], env[operands[1]], width), width)
    raise _Unknown("no yield")


@dataclass(frozen=True)
class Unpacking:
    """An unpacking generic over (n, grid...) reading elements of one storage row (`bits` bits each)."""

    op: GenericOp
    grid: tuple[int, ...]  # the extents along K (the grid without n)
    bits: int  # storage element width
    elements: int  # storage elements per row
    steps: tuple[Step, ...]  # the body, compiled
    result_bits: int

    def position(self, k: int, beyond: bool = False) -> tuple[int, ...]:
        """The loop indices (n = 0) of code k of a row: its output position (row-major over the grid), through
        the output map (a permutation keeping n first); `beyond`: past the grid's last code, the outermost index
        keeps counting (where the codes after this tile of a longer row would be)."""
        out: list[int] = []
        for at, extent in enumerate(reversed(self.grid)):
            out.append(k if beyond and at == len(self.grid) - 1 else k % extent)
            k //= extent
        place = (0, *reversed(out))
        loops = [0] * len(place)
        for at, expr in enumerate(self.op.indexing_maps.data[-1].data.results):
            assert isinstance(expr, AffineDimExpr)
            loops[expr.position] = place[at]
        return tuple(loops)

    def read(self, k: int, beyond: bool = False) -> list[int]:
        """The storage element index each input of code k reads (`beyond`: see `position`)."""
        indices = self.position(k, beyond)
        maps: list[AffineMap] = [m.data for m in self.op.indexing_maps.data][:-1]
        return [m.eval(indices, ())[1] for m in maps]

    def code(self, k: int, row: int) -> int:
        """Code k (signed, at the output's width) of a row whose storage bit stream is `row`."""
        mask = (1 << self.bits) - 1
        values = [(row >> (e * self.bits)) & mask for e in self.read(k)]
        return _signed(run(self.steps, values, self.position(k)), self.result_bits)

    def key(self) -> tuple[object, ...]:
        """What the fields depend on: equal keys, equal fields."""
        maps = tuple(str(m) for m in self.op.indexing_maps.data)
        return (self.grid, self.bits, self.elements, self.steps, self.result_bits, maps)

    def field(self, k: int) -> Field | None:
        """Code k as a bit field, from one-bit probes of the elements it reads (None: not a field): flipping
        field bit i moves the code by 2^(i + shift), up or down as the stored bit is inverted or not (the top
        bit, the sign, the other way round; for an unsigned field, as the others)."""
        base = self.code(k, 0)
        moves: dict[int, int] = {}
        for element in sorted(set(self.read(k))):
            if not 0 <= element < self.elements:
                return None
            for b in range(element * self.bits, (element + 1) * self.bits):
                moved = self.code(k, 1 << b) - base
                if moved:
                    moves[b] = moved
        if not moves:
            return None
        start, end = min(moves), max(moves) + 1
        width, low = end - start, abs(moves[start])
        if len(moves) != width or low & (low - 1):
            return None
        top = width - 1
        flip = sum(1 << i for i in range(top) if moves[start + i] < 0)
        signed = Field(start, width, low.bit_length() - 1, flip | ((1 << top) if moves[end - 1] > 0 else 0))
        unsigned = Field(start, width, low.bit_length() - 1, flip | ((1 << top) if moves[end - 1] < 0 else 0), True)
        for field in (signed, unsigned):
            if field.value(0) == base and all(field.value(1 << b) == base + moved for b, moved in moves.items()):
                return field
        return None


def unpacking_of(op: GenericOp) -> Unpacking | None:
    """`op` as an Unpacking: every input the same 2-D integer storage read at (d0, f(grid)), no use of n."""
    if not op.inputs or len(op.outputs) != 1:
        return None
    storage = op.inputs[0]
    typ = storage.type
    if any(v != storage for v in op.inputs) or not isinstance(typ, TensorType) or len(typ.get_shape()) != 2:
        return None
    element = typ.element_type
    if not isinstance(element, IntegerType):
        return None
    out = op.outputs[0].type
    assert isinstance(out, TensorType)
    maps: list[AffineMap] = [m.data for m in op.indexing_maps.data]
    positions = [e.position for e in maps[-1].results if isinstance(e, AffineDimExpr)]
    if len(positions) != len(out.get_shape()) or sorted(positions) != list(range(len(positions))) or positions[0]:
        return None  # the output map: a permutation of the loops, n first
    for m in maps[:-1]:
        if len(m.results) != 2 or m.results[0] != AffineExpr.dimension(0) or 0 in m.results[1].used_dims():
            return None
    if any(isinstance(inner, IndexOp) and inner.dim.value.data == 0 for inner in op.body.walk()):
        return None
    try:
        steps = compile_body(op)
    except _Unknown:
        return None
    result = op.body.blocks.first.args[-1].type  # type: ignore[union-attr]
    if not isinstance(result, IntegerType):
        return None
    return Unpacking(op, tuple(out.get_shape()[1:]), element.width.data, typ.get_shape()[1], steps, result.width.data)


def probe_field(unpacking: Unpacking, k: int) -> Field | None:
    """The field of code k of a row (None: not a field)."""
    try:
        return unpacking.field(k)
    except _Unknown:
        return None


def probe_fields(unpacking: Unpacking, lanes: int, seed: int = 0) -> list[Field] | None:
    """The fields of codes 0 .. lanes-1 of a row, each checked on random rows; None if any is not a field."""
    rng = random.Random(seed)
    fields: list[Field] = []
    try:
        for k in range(lanes):
            field = unpacking.field(k)
            if field is None:
                return None
            fields.append(field)
        total = unpacking.elements * unpacking.bits
        for _ in range(3):
            row = rng.getrandbits(total)
            if any(unpacking.code(k, row) != f.value(row) for k, f in enumerate(fields)):
                return None
    except _Unknown:
        return None
    return fields


def check_periodic(unpacking: Unpacking, fields: Sequence[Field], stride_bits: int, samples: int = 64) -> bool:
    """Whether code k + c L is code k's field moved by c `stride_bits` (L = len(fields)), for the row's first
    and last chunk and `samples` random codes in between, evaluated on random rows."""
    lanes = len(fields)
    codes = 1
    for extent in unpacking.grid:
        codes *= extent
    rng = random.Random(1)
    total = unpacking.elements * unpacking.bits
    ks = list(range(min(lanes, codes))) + list(range(max(0, codes - lanes), codes))
    ks += [rng.randrange(codes) for _ in range(samples)]
    try:
        for _ in range(2):
            row = rng.getrandbits(total)
            for k in ks:
                f = fields[k % lanes]
                moved = replace(f, start=f.start + (k // lanes) * stride_bits)
                if unpacking.code(k, row) != moved.value(row):
                    return False
    except _Unknown:
        return False
    return True
