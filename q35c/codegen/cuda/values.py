"""Reading a tensor element of the final IR in CUDA C: through views to the buffer that holds it.

The final IR passes tensors between ops; in CUDA a tensor is either a buffer (a kernel parameter in global
memory, a staged tile in shared memory, a dense constant) or a view of one. `Reader.read(value, indices)`
returns the C expression of one element, following

    tensor.expand_shape / collapse_shape   the same row-major offset in the source
    tensor.extract_slice                   indices shifted by the static offsets (unit dims dropped)
    tensor.insert_slice                    the inserted tile inside its region, the destination outside
    linalg.copy                            its input
    linalg.fill                            the fill value
    tensor.empty / bufferization.alloc_tensor   zero (never read before written in the IR)
    linalg.generic (inlined)               a call of the generic's element lambda (see `generic_lambda`)

    >>> # %v = tensor.collapse_shape %g : tensor<4x2x8xf16> into tensor<4x16xf16>, %g a buffer "g"
    >>> # reader.read(%v, [Ix.var("i", 4), Ix.var("j", 16)]) == "g[(i * 16 + j)]"  (a 32-bit kernel)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, TensorType
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Attribute, Operation, OpResult, SSAValue
from xdsl.ir.affine import AffineDimExpr

from q35c.codegen.cuda.cexpr import (
    BodyPrinter,
    UnsupportedIR,
    ctype,
    literal,
)
from q35c.codegen.cuda.index import Ix, affine_ix, delinear, linear

DYNAMIC = -(2**63)


def shape_of(value: SSAValue) -> list[int]:
    typ = value.type
    if not isinstance(typ, TensorType):
        raise UnsupportedIR(f"{value.name_hint or value}: not a tensor")
    shape = [int(d) for d in typ.get_shape()]
    if any(d < 0 for d in shape):
        raise UnsupportedIR(f"{value.name_hint or value}: a dynamic shape")
    return shape


def element_type(value: SSAValue) -> Attribute:
    typ = value.type
    if not isinstance(typ, TensorType):
        raise UnsupportedIR(f"{value.name_hint or value}: not a tensor")
    return typ.element_type


def _static(op: Operation, name: str) -> list[int]:
    attr = op.properties.get(name)
    if attr is None:
        raise UnsupportedIR(f"{op.name} without {name}")
    return [int(v) for v in attr.get_values()]  # type: ignore[attr-defined]


def slice_geometry(op: Operation, scope: dict[SSAValue, str]) -> tuple[list[Ix], list[int], list[int]]:
    """(offsets, sizes, strides) of an extract_slice/insert_slice; dynamic offsets from `scope` (opaque)."""
    offsets = _static(op, "static_offsets")
    sizes = _static(op, "static_sizes")
    strides = _static(op, "static_strides")
    dynamic = list(op.operands[1:] if op.name == "tensor.extract_slice" else op.operands[2:])
    found: list[Ix] = []
    for off in offsets:
        if off == DYNAMIC:
            if not dynamic:
                raise UnsupportedIR(f"{op.name}: a dynamic offset without an operand")
            value = dynamic.pop(0)
            if value not in scope:
                raise UnsupportedIR(f"{op.name}: dynamic offset {value.name_hint} not in scope")
            found.append(Ix.var(scope[value]))
        else:
            found.append(Ix.const(off))
    if any(s == DYNAMIC for s in sizes + strides):
        raise UnsupportedIR(f"{op.name}: dynamic sizes or strides")
    return found, sizes, strides


def _kept_dims(sizes: Sequence[int], reduced: Sequence[int]) -> list[int]:
    """Which dims of a slice's full-rank sizes survive in its rank-reduced shape (unit dims dropped first)."""
    if len(sizes) == len(reduced):
        return list(range(len(sizes)))
    kept: list[int] = []
    j = 0
    for i, size in enumerate(sizes):
        if j < len(reduced) and size == reduced[j] and (size != 1 or len(sizes) - i <= len(reduced) - j):
            kept.append(i)
            j += 1
    if j != len(reduced):
        raise UnsupportedIR("a rank-reducing slice this printer cannot follow")
    return kept


@dataclass
class Reader:
    """C expressions for tensor elements. `buffers` maps values to (pointer expression, shape it is laid out
    in); `inline` maps generic results to the name of their element lambda; `scope` holds SSA scalars
    (loop indices) and constant arrays."""

    buffers: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    used: dict[SSAValue, None] = field(default_factory=dict[SSAValue, None])
    inline: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    scope: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    constants: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    constant_decls: list[str] = field(default_factory=list[str])
    prefix: str = "q35"

    def read(self, value: SSAValue, indices: Sequence[Ix | str]) -> str:
        """The C expression of the element of `value` at `indices` (C text is an opaque index)."""
        idx = [Ix.of(i) for i in indices]
        if value in self.inline:
            return f"{self.inline[value]}({', '.join(i.text() for i in idx)})"
        if value in self.buffers:
            self.used[value] = None
            return f"{self.buffers[value]}[{linear(idx, shape_of(value)).text()}]"
        if not isinstance(value, OpResult):
            raise UnsupportedIR(f"{value.name_hint or value}: an argument with no buffer")
        op = value.op
        name = op.name
        if name in ("tensor.expand_shape", "tensor.collapse_shape"):
            flat = linear(idx, shape_of(value))
            source = op.operands[0]
            if source in self.buffers and source not in self.inline:
                self.used[source] = None
                return f"{self.buffers[source]}[{flat.text()}]"
            return self.read(source, delinear(flat, shape_of(source)))
        if name == "tensor.extract_slice":
            offsets, sizes, strides = slice_geometry(op, self.scope)
            kept = _kept_dims(sizes, shape_of(value))
            full = list(offsets)
            for position, dim in enumerate(kept):
                full[dim] = offsets[dim] + idx[position].scale(strides[dim])
            return self.read(op.operands[0], full)
        if name == "tensor.insert_slice":
            offsets, sizes, _ = slice_geometry(op, self.scope)
            source, dest = op.operands[0], op.operands[1]
            kept = _kept_dims(sizes, shape_of(source))
            tests: list[str] = []
            for i, off, size in zip(idx, offsets, sizes, strict=True):
                inside = _within(i, off, size)
                if inside is False:
                    return self.read(dest, idx)
                if inside is None:
                    tests.append(f"({i.text()}) >= {off.text()} && ({i.text()}) < {(off + size).text()}")
            inner = [idx[d] + off.scale(-1) for d, off in zip(kept, [offsets[d] for d in kept], strict=True)]
            if not tests:
                return self.read(source, inner)
            return f"(({' && '.join(tests)}) ? {self.read(source, inner)} : {self.read(dest, idx)})"
        if name == "linalg.copy":
            return self.read(op.operands[0], idx)
        if name == "linalg.fill":
            return self.scalar(op.operands[0])
        if name in ("tensor.empty", "bufferization.alloc_tensor"):
            return f"(({ctype(element_type(value))})0)"
        if name == "arith.constant":
            return self.constant(value, idx)
        raise UnsupportedIR(f"cannot read an element of {name} ({value.name_hint})")

    def scalar(self, value: SSAValue) -> str:
        if value in self.scope:
            return self.scope[value]
        if isinstance(value, OpResult) and value.op.name == "arith.constant":
            attr = value.op.properties.get("value", value.op.attributes.get("value"))
            if attr is not None:
                return literal(attr, value.type)
        raise UnsupportedIR(f"scalar {value.name_hint or value} not in scope")

    def constant(self, value: SSAValue, indices: Sequence[Ix]) -> str:
        op = value.owner
        assert isinstance(op, Operation)
        attr = op.properties.get("value", op.attributes.get("value"))
        if not isinstance(attr, DenseIntOrFPElementsAttr):
            raise UnsupportedIR("a tensor constant that is not dense")
        from q35c.codegen.cuda.cexpr import dense_values

        values = dense_values(attr)
        if len(values) == 1:
            return values[0]
        if value not in self.constants:
            name = f"{self.prefix}_const{len(self.constants)}"
            self.constants[value] = name
            ctype_text = ctype(attr.get_element_type())
            self.constant_decls.append(
                f"__device__ const {ctype_text} {name}[{len(values)}] = {{{', '.join(values)}}};"
            )
        return f"{self.constants[value]}[{linear(indices, shape_of(value)).text()}]"


def _within(index: Ix, offset: Ix, size: int) -> bool | None:
    """Whether offset <= index < offset + size always (True), never (False), or it depends (None)."""
    if offset.terms:
        return None
    low, high = index.lower(), index.upper()
    if low >= offset.constant and high is not None and high < offset.constant + size:
        return True
    if (high is not None and high < offset.constant) or low >= offset.constant + size:
        return False
    return None


def loop_dims(names: Sequence[str], op: GenericOp) -> list[Ix]:
    """The loop indices of a generic as `Ix` (C names `names`, each bounded by its static loop range)."""
    ranges = [int(r) for r in op.get_static_loop_ranges()]
    return [Ix.var(name, bound if bound > 0 else None) for name, bound in zip(names, ranges, strict=True)]


def body_lines(
    op: GenericOp, reader: Reader, dims: Sequence[str], outs: Sequence[str], counter: list[int]
) -> tuple[list[str], list[str]]:
    """The C statements of a generic's body at iteration `dims` (C names), its inputs read through `reader`
    at their indexing maps and its output block arguments bound to `outs`; returns (lines, yielded exprs)."""
    maps = [m.data for m in op.indexing_maps]
    bounded = loop_dims(dims, op)
    block = op.body.block
    names: dict[SSAValue, str] = {}
    lines: list[str] = []
    for position, (arg, operand) in enumerate(zip(block.args[: len(op.inputs)], op.inputs, strict=True)):
        mapping = maps[position]
        if isinstance(operand.type, TensorType):
            expr = reader.read(operand, [affine_ix(e, bounded) for e in mapping.results])
        else:
            expr = reader.scalar(operand)
        counter[0] += 1
        var = f"a{counter[0]}"
        lines.append(f"const {ctype(arg.type)} {var} = {expr};")
        names[arg] = var
    for arg, expr in zip(block.args[len(op.inputs) :], outs, strict=True):
        names[arg] = expr
    printer = BodyPrinter(
        names=names,
        index=lambda d: dims[d],
        extract=lambda t, idx: reader.read(t, idx),
        lines=lines,
        counter=counter,
    )
    yields = printer.block(block)
    return lines, yields


def generic_lambda(op: GenericOp, reader: Reader, name: str, counter: list[int]) -> list[str]:
    """An element-wise generic (no reduction, one result, an output map that permutes the loop dims) as a C++
    lambda of its result's indices."""
    ranks = len(op.iterator_types)
    out_map = op.indexing_maps.data[-1].data
    positions = [e.position for e in out_map.results if isinstance(e, AffineDimExpr)]
    if len(op.results) != 1 or sorted(positions) != list(range(ranks)) or len(out_map.results) != ranks:
        raise UnsupportedIR("an inlined generic needs one result with a permutation output map")
    dims = [f"{name}_d{i}" for i in range(ranks)]
    out = op.outputs[0]
    init = reader.read(out, [affine_ix(e, loop_dims(dims, op)) for e in out_map.results])
    lines, yields = body_lines(op, reader, dims, [init], counter)
    params = ", ".join(f"q35_i {name}_o{j}" for j in range(ranks))
    result = ctype(element_type(op.results[0]))
    text = [f"auto {name} = [&]({params}) -> {result} {{"]
    text += [f"  const q35_i {dims[p]} = {name}_o{j};" for j, p in enumerate(positions)]
    text += [f"  {line}" for line in lines]
    text.append(f"  return {yields[0]};")
    text.append("};")
    return text
