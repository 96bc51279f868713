"""Weight rows interleaved in storage for the host's integer kernels (`integer-matvec`'s `interleave-rows`).

A weight's storage tensor [N, C] (codes, scales or offsets) whose C columns are G runs, one per quantization group
of a row, is stored with its rows interleaved by blocks of R: the memory of rows R b .. R b + R - 1 holds, group
by group, each of those rows' run of that group,

    stored[b, (j R + r) C / G + c] = logical[R b + r, j C / G + c]       (the tensor viewed as [N / R, R C])

so that a kernel computing R outputs at once (one token row) reads one stream of memory and every group of
activations it loads serves R rows (as llama.cpp's CPU_REPACK layouts do); rows R b .. R b + R - 1 of the [N, C]
tensor are still the same bytes, so row tiles of R rows stay row tiles. The function arguments stored so carry
`q35.interleave = [R, G]` (`INTERLEAVE_ATTR`), which the host library's manifest and header report and its runtime
applies to the arrays it is given (`q35c.codegen.host.runtime.interleave_rows`).

`interleaved_arguments` decides which arguments may be stored so: an argument is, with every argument it is
passed to or from through `func.call`, when every reader of all of them is a kernel `integer-matvec` rewrites
(`Candidate`: its reads are whole rows of the argument, in row tiles of multiples of R) and every such kernel's
codes, scales and offsets can be; anything else reading one of them (a gather of embedding rows, a float kernel,
a scale decoded from the codes) keeps the whole set in its plain layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, TensorType, i64
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand

from q35c.ir.attrs import INTERLEAVE_ATTR


@dataclass(frozen=True)
class Candidate:
    """A kernel `integer-matvec` rewrites: the values its body reads (codes, scales, offsets), the column groups
    per row of each (G), and the operations its rewrite replaces (the readers of those values it accounts for)."""

    reads: tuple[SSAValue, ...]
    groups: int
    consumed: frozenset[Operation]


def _aligned(value: SSAValue | int, rows: int) -> bool:
    """Whether a row offset is a multiple of `rows`: a constant, or a tile loop's index starting at and stepping
    by multiples of it."""
    if isinstance(value, int):
        return value % rows == 0
    constant = const_evaluate_operand(value)
    if isinstance(constant, int):
        return constant % rows == 0
    if isinstance(value, BlockArgument) and value.index == 0 and isinstance(loop := value.block.parent_op(), scf.ForOp):
        lb, step = const_evaluate_operand(loop.lb), const_evaluate_operand(loop.step)
        return isinstance(lb, int) and isinstance(step, int) and lb % rows == 0 and step % rows == 0
    if isinstance(value.owner, arith.MuliOp):
        return any(isinstance(c := const_evaluate_operand(v), int) and c % rows == 0 for v in value.owner.operands)
    return False


def row_slice(value: SSAValue) -> tuple[SSAValue, SSAValue | int, int] | None:
    """`value` as whole rows of a 2-d source: the source, the first row (static or a value) and the row count, for
    a unit-stride slice of every column; a value that is no slice is all of its own rows; None otherwise."""
    s = value.owner
    typ = value.type
    if not isinstance(s, tensor.ExtractSliceOp):
        return (value, 0, typ.get_shape()[0]) if isinstance(typ, TensorType) and len(typ.get_shape()) == 2 else None
    source = s.source.type
    assert isinstance(source, TensorType)
    sizes, offsets = s.static_sizes.get_values(), s.static_offsets.get_values()
    if any(v != 1 for v in s.static_strides.get_values()) or len(source.get_shape()) != 2 or len(sizes) != 2:
        return None
    if sizes[1] != source.get_shape()[1] or offsets[1] != 0:
        return None
    return s.source, (offsets[0] if offsets[0] >= 0 else s.offsets[0]), sizes[0]


def row_root(value: SSAValue, rows: int) -> BlockArgument | None:
    """The function argument whose whole rows `value` is, through row slices whose offsets and sizes are multiples
    of `rows` (None otherwise)."""
    while not isinstance(value, BlockArgument):
        found = row_slice(value)
        if found is None or found[0] is value or found[2] % rows or not _aligned(found[1], rows):
            return None
        value = found[0]
    return value if isinstance(value.block.parent_op(), func.FuncOp) else None


@dataclass
class _Sets:
    """Union-find over function arguments, each set tainted or not, with its column groups."""

    parent: dict[BlockArgument, BlockArgument] = field(default_factory=dict[BlockArgument, BlockArgument])
    tainted: set[BlockArgument] = field(default_factory=set[BlockArgument])
    groups: dict[BlockArgument, set[int]] = field(default_factory=dict[BlockArgument, set[int]])

    def find(self, a: BlockArgument) -> BlockArgument:
        self.parent.setdefault(a, a)
        root = a
        while self.parent[root] is not root:
            root = self.parent[root]
        while self.parent[a] is not root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: BlockArgument, b: BlockArgument) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is rb:
            return
        self.parent[rb] = ra
        if rb in self.tainted:
            self.tainted.add(ra)
        self.groups.setdefault(ra, set()).update(self.groups.pop(rb, set()))

    def taint(self, a: BlockArgument) -> None:
        self.tainted.add(self.find(a))

    def ok(self, a: BlockArgument) -> bool:
        root = self.find(a)
        return root not in self.tainted and len(self.groups.get(root, set())) == 1


def _functions(module: ModuleOp) -> tuple[dict[str, func.FuncOp], dict[str, list[func.CallOp]]]:
    functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
    calls: dict[str, list[func.CallOp]] = {}
    for op in module.walk():
        if isinstance(op, func.CallOp):
            calls.setdefault(op.callee.root_reference.data, []).append(op)
    return functions, calls


def interleaved_arguments(
    module: ModuleOp, candidates: Sequence[Candidate], rows: int
) -> tuple[dict[BlockArgument, int], list[bool]]:
    """The function arguments stored with rows interleaved by `rows` (each with its column groups per row) and,
    per candidate, whether it reads them so (module docstring)."""
    functions, calls = _functions(module)
    sets = _Sets()
    roots: list[list[BlockArgument] | None] = []
    consumed: set[Operation] = set()
    for c in candidates:
        found = [row_root(v, rows) for v in c.reads]
        if any(a is None for a in found) or any(_rows(v) % rows for v in c.reads):
            roots.append(None)
            continue
        args = [a for a in found if a is not None]
        roots.append(args)
        consumed |= c.consumed
        for a in args:
            sets.groups.setdefault(sets.find(a), set()).add(c.groups)
    pending = [a for args in roots if args is not None for a in args]
    seen: set[BlockArgument] = set()
    while pending:
        a = pending.pop()
        if a in seen:
            continue
        seen.add(a)
        owner = a.block.parent_op()
        assert isinstance(owner, func.FuncOp)
        for call in calls.get(owner.sym_name.data, []):
            passed = call.operands[a.index]
            caller = call.parent_op()
            while caller is not None and not isinstance(caller, func.FuncOp):
                caller = caller.parent_op()
            if isinstance(passed, BlockArgument) and passed.block.parent_op() is caller:
                sets.union(a, passed)
                pending.append(passed)
            else:
                sets.taint(a)
        for linked in _readers(a, consumed, functions, sets):
            sets.union(a, linked)
            pending.append(linked)
    # A kernel reads all its arguments interleaved or none: a set that cannot be keeps its kernels' other sets plain.
    changed = True
    while changed:
        changed = False
        for args in roots:
            if args is not None and not all(sets.ok(a) for a in args):
                for a in args:
                    if sets.find(a) not in sets.tainted:
                        sets.taint(a)
                        changed = True
    chosen = {a: next(iter(sets.groups[sets.find(a)])) for a in seen if sets.ok(a)}
    return chosen, [args is not None and all(a in chosen for a in args) for args in roots]


def _rows(value: SSAValue) -> int:
    typ = value.type
    assert isinstance(typ, TensorType)
    return typ.get_shape()[0]


def _readers(
    a: BlockArgument,
    consumed: set[Operation],
    functions: dict[str, func.FuncOp],
    sets: _Sets,
) -> Iterable[BlockArgument]:
    """The callee arguments `a` is passed to; taints a's set when anything else reads it (through slices) than a
    kernel's reads and the operations its rewrite replaces."""
    pending: list[SSAValue] = [a]
    while pending:
        value = pending.pop()
        for use in value.uses:
            user = use.operation
            if isinstance(user, tensor.ExtractSliceOp) and use.index == 0:
                pending.append(user.result)
            elif isinstance(user, func.CallOp) and value is a:
                callee = functions.get(user.callee.root_reference.data)
                if callee is None:
                    sets.taint(a)
                    continue
                yield callee.body.blocks.first.args[use.index]  # type: ignore[union-attr]
            elif user not in consumed:
                sets.taint(a)


def mark(chosen: dict[BlockArgument, int], rows: int) -> None:
    """Tag every chosen argument with `q35.interleave = [rows, groups]` in its function's argument attributes."""
    for a, groups in chosen.items():
        f = a.block.parent_op()
        assert isinstance(f, func.FuncOp)
        count = len(f.body.blocks.first.args)  # type: ignore[union-attr]
        attrs: list[Attribute] = (
            list(f.arg_attrs.data) if f.arg_attrs is not None else [DictionaryAttr({}) for _ in range(count)]
        )
        old = attrs[a.index]
        assert isinstance(old, DictionaryAttr)
        value = ArrayAttr([IntegerAttr(rows, i64), IntegerAttr(groups, i64)])
        attrs[a.index] = DictionaryAttr({**old.data, INTERLEAVE_ATTR: value})
        f.arg_attrs = ArrayAttr(attrs)  # type: ignore[assignment]
