"""tile: every `q35.linear` becomes a call to a linear kernel that loops over weight tiles.

It runs after `materialize-weights` (a weight is a `q35_storage.assemble` of storage tensors) and before
`unpack-bits`, so it slices packed storage knowing the scheme: a K tile holds whole groups and whole storage
words (`tile_choice.k_alignment`), and each slice is re-assembled into a smaller `!q35.packed` of the same scheme,
which `unpack-bits` lowers like any other.

A kernel is a private `func.func` named after its shape, scheme and activation type, shared by every linear of
that signature (gate_proj and up_proj of a decoder call the same one). It takes the activations and the weight's
storage tensors and returns y; the loop nest runs over T (tokens), N (output rows) and K (inputs), each loop
only where a dimension has two or more whole tiles, followed by a static remainder tile where the tile does not
divide it. Partial sums over K tiles accumulate in f32 (`linalg.generic` adding into the loop-carried
accumulator) and are rounded once at the end. A decode-step linear tiled along N only:

    %y = func.call @linear.1x200x64.int4_g32.f16(%h, %w.codes, %w.scale, %w.offset) : (...) -> tensor<1x200xf16>
    ...
    func.func private @linear.1x200x64.int4_g32.f16(%x: tensor<1x64xf16>, %codes: tensor<200x8xi32>,
        %scale: tensor<200x2xf16>, %offset: tensor<200x2xf16>) -> tensor<1x200xf16>
        attributes {q35.kernel = "linear", q35.scheme = "int4:g=32", q35.tile = array<i64: 1, 64, 64>} {
      %y = tensor.empty() : tensor<1x200xf16>
      %0 = scf.for %n = %c0 to %c192 step %c64 iter_args(%y_n = %y) -> (tensor<1x200xf16>) {
        %codes_tile = tensor.extract_slice %codes[%n, 0] [64, 8] [1, 1] : tensor<200x8xi32> to tensor<64x8xi32>
        %scale_tile = tensor.extract_slice %scale[%n, 0] [64, 2] [1, 1] : ...
        %offset_tile = tensor.extract_slice %offset[%n, 0] [64, 2] [1, 1] : ...
        %w_tile = q35_storage.assemble %codes_tile, %scale_tile, %offset_tile : (...)
            -> !q35.packed<64x64, #q35.scheme<int4, g = 32>>
        %y_tile = q35.linear %x, %w_tile : (...) -> tensor<1x64xf16>
        %1 = tensor.insert_slice %y_tile into %y_n[0, %n] [1, 64] [1, 1] : tensor<1x64xf16> into tensor<1x200xf16>
        scf.yield %1 : tensor<1x200xf16>
      } {q35.tile_dim = "n"}
      ... the remainder: rows [192, 200) as a static 8-row tile ...
      func.return %2 : tensor<1x200xf16>
    }

Tile sizes come from the options (`tile-t`, `tile-n`, `tile-k`; 0 = choose) and, for the ones left to choose, from
`tile_choice.choose_tile` under the policy the other options give: `budget-bytes` (one tile's working set; 0: no
choice, an unset size is the whole dimension), `align-n` (the granule of N tiles), `max-n`/`max-k` (caps; 0 =
none), `weight-buffers` (2 where weight tiles stream, 1 where they are resident), `keep-int-codes` (what
`unpack-bits` will do, since its per-group sums take room in a tile) and `prefer-n` (an N tile taken over a wider
one that moves no fewer bytes; 0 = none). A target gives all of these
(`q35c.targets.pass_options`; `q35c opt -p 'tile{target=groq-lpu}'` expands to them). Kernel functions carry
`q35.kernel = "linear"`, the scheme and the tile; loops carry `q35.tile_dim`. Kernels are never tiled again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    AnyFloat,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IndexType,
    ModuleOp,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint
from xdsl.traits import SymbolTable
from xdsl.utils.exceptions import PassFailedException

from q35c.dialects.q35 import LinearOp, PackedType
from q35c.dialects.q35_storage import CODES, AssembleOp, storage_tensors
from q35c.ir.attrs import (
    KERNEL_ATTR,
    SCHEME_ATTR,
    STORAGE_ATTR,
    TILE_ATTR,
    TILE_DIM_ATTR,
    first_callers,
    weight_param,
)
from q35c.passes._build.linalg import (
    PARALLEL,
    element_type,
    empty,
    f32,
    generic,
    identity,
    shape_of,
    zeros,
)
from q35c.passes.materialize_weights import enclosing_func
from q35c.passes.tile_choice import (
    LinearShape,
    Tile,
    TileError,
    TilePolicy,
    check_k_tile,
    choose_tile,
)

LINEAR_KERNEL = "linear"
_index = IndexType()

Offset = SSAValue | int


def insert_slice(
    source: SSAValue, dest: SSAValue, offsets: Sequence[Offset], sizes: Sequence[int] | None = None
) -> tensor.InsertSliceOp:
    """`tensor.insert_slice` of all of `source` into `dest` at `offsets` (ints or index values), unit strides;
    `sizes` (default: the source's shape) may add unit dimensions that the source leaves out."""
    sizes = list(shape_of(source) if sizes is None else sizes)
    static = [DYNAMIC_INDEX if isinstance(o, SSAValue) else o for o in offsets]
    dynamic = [o for o in offsets if isinstance(o, SSAValue)]
    return tensor.InsertSliceOp.get(source, dest, sizes, static, [1] * len(sizes), offsets=dynamic)


def is_kernel(fn: Operation | None) -> bool:
    return isinstance(fn, func.FuncOp) and KERNEL_ATTR in fn.attributes


def kernel_name(shape: LinearShape, element: Attribute) -> str:
    """`linear.<T>x<N>x<K>.<scheme>.<element>`, e.g. `linear.1x28672x8192.q3p5_g128_dense.f16`."""
    scheme = re.sub(r"[^A-Za-z0-9]+", "_", str(shape.scheme).replace("container=", "").replace("g=", "g"))
    return f"{LINEAR_KERNEL}.{shape.tokens}x{shape.n}x{shape.k}.{scheme}.{element}"


def weight_name(w: AssembleOp) -> str:
    """The parameter name of an assembled weight (`q35.param` of its codes argument), for messages."""
    module = w.get_toplevel_object()
    callers = first_callers(module) if isinstance(module, ModuleOp) else None
    return weight_param(w.storage[0], callers) or "weight"


@dataclass
class _KernelBuilder:
    """Builds the body of one linear kernel: loops over T, N and K tiles with static remainders."""

    rewriter: PatternRewriter
    shape: LinearShape
    tile: Tile
    packed: PackedType
    x: SSAValue
    storage: Sequence[SSAValue]
    block: Block
    _constants: dict[int, SSAValue] = field(default_factory=dict[int, SSAValue])
    _scaled_offsets: dict[tuple[SSAValue, int, int, Block | None], SSAValue] = field(
        default_factory=dict[tuple[SSAValue, int, int, Block | None], SSAValue]
    )

    def const(self, value: int) -> SSAValue:
        """An index constant at the top of the kernel, created once."""
        if value not in self._constants:
            op = arith.ConstantOp.from_int_and_width(value, _index)
            op.result.name_hint = f"c{value}"
            ops = [c.owner for c in self._constants.values()]
            where = InsertPoint.after(ops[-1]) if ops else InsertPoint.at_start(self.block)  # type: ignore[arg-type]
            self.rewriter.insert(op, where)
            self._constants[value] = op.result
        return self._constants[value]

    def _scaled(self, offset: Offset, a: int, b: int) -> Offset:
        """offset / a * b, as an int or with arith ops (offset is a multiple of a)."""
        if isinstance(offset, int):
            return offset // a * b
        key = (offset, a, b, self.rewriter.insertion_point.block)
        if key not in self._scaled_offsets:
            value = offset
            if a != 1:
                value = self.rewriter.insert(arith.DivUIOp(value, self.const(a))).result
            if b != 1:
                value = self.rewriter.insert(arith.MuliOp(value, self.const(b))).result
            self._scaled_offsets[key] = value
        return self._scaled_offsets[key]

    def _slice(self, source: SSAValue, offsets: Sequence[Offset], sizes: Sequence[int], name: str) -> SSAValue:
        typ = source.type
        assert isinstance(typ, TensorType)
        if tuple(sizes) == typ.get_shape():
            return source
        result_type = TensorType(typ.element_type, sizes)
        op = self.rewriter.insert(tensor.ExtractSliceOp(source, offsets, sizes, [1] * len(sizes), result_type))
        op.result.name_hint = name
        return op.result

    # The innermost tile -----------------------------------------------------------------------------------------

    def _weight(self, n: Offset, ns: int, k: Offset, ks: int) -> SSAValue:
        """The [ns, ks] weight tile at (n, k), re-assembled from storage slices."""
        scheme = self.shape.scheme
        tile_type = PackedType((ns, ks), self.packed.scheme_attr)
        slices: list[SSAValue] = []
        for value, part in zip(self.storage, storage_tensors(tile_type), strict=True):
            rows, cols = part.type.get_shape()
            # Columns k / a * b of the codes, k / g of scale and offset; None: a per-channel scale, one column
            # whatever the K tile.
            ratio = scheme.storage_ratio if part.role == CODES else scheme.metadata_ratio
            col: Offset = 0 if ratio is None else self._scaled(k, *ratio)
            slices.append(self._slice(value, [n, col], [rows, cols], f"{part.role}_tile"))
        assemble = self.rewriter.insert(AssembleOp(slices, tile_type))
        assemble.result.name_hint = "w_tile"
        return assemble.result

    def _partial(self, t: Offset, ts: int, n: Offset, ns: int, k: Offset, ks: int, to_f32: bool) -> SSAValue:
        """x[t:t+ts, k:k+ks] @ W[n:n+ns, k:k+ks]^T, in f32 if `to_f32`."""
        x = self._slice(self.x, [t, k], [ts, ks], "x_tile")
        if to_f32 and element_type(x) != f32:
            init = empty(self.rewriter, f32, (ts, ks), "x_f32_init")
            extend = lambda s, a: s.to_f32(a[0])  # noqa: E731
            x = generic(self.rewriter, [x], init, [identity(2)] * 2, (PARALLEL, PARALLEL), extend, "x_f32")
        linear = self.rewriter.insert(LinearOp(x, self._weight(n, ns, k, ks)))
        linear.result.name_hint = "y_tile"
        return linear.result

    def _over_k(self, t: Offset, ts: int, n: Offset, ns: int) -> SSAValue:
        """The [ts, ns] output tile: one linear over all of K, or f32 partial sums over K tiles."""
        tk = self.tile.k
        if tk >= self.shape.k:
            return self._partial(t, ts, n, ns, 0, self.shape.k, to_f32=False)
        acc = zeros(self.rewriter, (ts, ns), "acc")

        def step(k: Offset, ks: int, carried: list[SSAValue]) -> list[SSAValue]:
            partial = self._partial(t, ts, n, ns, k, ks, to_f32=True)
            add = lambda s, a: s.addf(a[1], a[0])  # noqa: E731
            maps = [identity(2)] * 2
            return [generic(self.rewriter, [partial], carried[0], maps, (PARALLEL, PARALLEL), add, "acc")]

        (acc,) = self._loop("k", self.shape.k, tk, [acc], step)
        out = element_type(self.x)
        if out == f32:
            return acc
        assert isinstance(out, AnyFloat)
        init = empty(self.rewriter, out, (ts, ns), "y_tile_init")
        round_ = lambda s, a: s.truncf(a[0], out)  # noqa: E731
        return generic(self.rewriter, [acc], init, [identity(2)] * 2, (PARALLEL, PARALLEL), round_, "y_tile")

    def _over_n(self, t: Offset, ts: int, y: SSAValue) -> SSAValue:
        def step(n: Offset, ns: int, carried: list[SSAValue]) -> list[SSAValue]:
            tile = self._over_k(t, ts, n, ns)
            return [self.rewriter.insert(insert_slice(tile, carried[0], (t, n))).result]

        return self._loop("n", self.shape.n, self.tile.n, [y], step)[0]

    def build(self) -> SSAValue:
        """Emit the whole nest into the kernel block; return y."""
        out = empty(self.rewriter, element_type(self.x), (self.shape.tokens, self.shape.n), "y")
        step = lambda t, ts, carried: [self._over_n(t, ts, carried[0])]  # noqa: E731
        return self._loop("t", self.shape.tokens, self.tile.tokens, [out], step)[0]

    # Loops ------------------------------------------------------------------------------------------------------

    def _loop(
        self,
        dim: str,
        extent: int,
        size: int,
        carried: list[SSAValue],
        body: Callable[[Offset, int, list[SSAValue]], list[SSAValue]],
    ) -> list[SSAValue]:
        """Run `body(offset, size, carried)` over the tiles of one dimension: an scf.for over the whole tiles when
        there are two or more, the single whole tile inline, then the remainder tile inline."""
        size = min(size, extent)
        whole, rest = divmod(extent, size)
        if whole >= 2:
            loop_block = Block(arg_types=[_index, *(v.type for v in carried)])
            loop_block.args[0].name_hint = dim
            for arg, value in zip(loop_block.args[1:], carried, strict=True):
                arg.name_hint = f"{value.name_hint or 'acc'}_{dim}"
            lb, ub, st = self.const(0), self.const(whole * size), self.const(size)
            loop = scf.ForOp(lb, ub, st, carried, Region(loop_block))
            loop.attributes[TILE_DIM_ATTR] = StringAttr(dim)
            self.rewriter.insert(loop)
            outer = self.rewriter.insertion_point
            self.rewriter.insertion_point = InsertPoint.at_end(loop_block)
            results = body(loop_block.args[0], size, list(loop_block.args[1:]))
            self.rewriter.insert(scf.YieldOp(*results))
            self.rewriter.insertion_point = outer
            carried = list(loop.results)
        elif whole == 1:
            carried = body(0, size, carried)
        if rest:
            carried = body(whole * size, rest, carried)
        return carried


@dataclass(frozen=True)
class TileLinear(RewritePattern):
    """`q35.linear` of an assembled weight -> a call to its (shared) tiled kernel."""

    policy: TilePolicy | None
    sizes: tuple[int, int, int]

    def _tile(self, shape: LinearShape) -> Tile:
        tokens, n, k = self.sizes
        if self.policy is not None:
            return choose_tile(shape, self.policy, tokens, n, k)
        tile = Tile(min(tokens or shape.tokens, shape.tokens), min(n or shape.n, shape.n), min(k or shape.k, shape.k))
        check_k_tile(shape.scheme, shape.k, tile.k)
        return tile

    def check(self, op: LinearOp) -> None:
        """PassFailedException (naming the weight) if `op` is to be tiled and has no valid tile."""
        if (shape := _tileable(op)) is not None:
            try:
                self._tile(shape)
            except TileError as err:
                name = weight_name(op.weight.owner)  # type: ignore[arg-type]
                raise PassFailedException(f"cannot tile the linear of weight '{name}': {err}") from None

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: LinearOp, rewriter: PatternRewriter, /) -> None:
        if (shape := _tileable(op)) is None:
            return
        w = op.weight.owner
        assert isinstance(w, AssembleOp)
        tile = self._tile(shape)
        packed, x_type = w.packed_type, op.x.type
        assert isinstance(x_type, TensorType)
        element = x_type.element_type
        name = kernel_name(shape, element)
        module = op.get_toplevel_object()
        assert isinstance(module, ModuleOp)
        if SymbolTable.lookup_symbol(module, name) is None:
            rewriter.insert(_kernel(rewriter, name, shape, tile, packed, x_type), InsertPoint.at_end(module.body.block))
        call = func.CallOp(name, [op.x, *w.storage], [op.result.type])
        rewriter.replace(op, call)
        call.results[0].name_hint = op.result.name_hint
        if not w.result.uses:
            rewriter.erase(w)


def _tileable(op: LinearOp) -> LinearShape | None:
    """The shape of a linear to tile: one of an assembled weight, outside any kernel."""
    if not isinstance(w := op.weight.owner, AssembleOp) or is_kernel(enclosing_func(op)):
        return None
    x_type = op.x.type
    assert isinstance(x_type, TensorType)
    n, k = w.packed_type.get_shape()
    act_bytes = (getattr(x_type.element_type, "bitwidth", 16) + 7) // 8
    return LinearShape(x_type.get_shape()[0], n, k, w.packed_type.scheme, act_bytes)


def _kernel(
    rewriter: PatternRewriter, name: str, shape: LinearShape, tile: Tile, packed: PackedType, x_type: TensorType
) -> func.FuncOp:
    parts = storage_tensors(packed)
    block = Block(arg_types=[x_type, *(p.type for p in parts)])
    block.args[0].name_hint = "x"
    for arg, part in zip(block.args[1:], parts, strict=True):
        arg.name_hint = part.role
    outer = rewriter.insertion_point
    rewriter.insertion_point = InsertPoint.at_end(block)
    builder = _KernelBuilder(rewriter, shape, tile, packed, block.args[0], block.args[1:], block)
    y = builder.build()
    rewriter.insert(func.ReturnOp(y))
    rewriter.insertion_point = outer
    y_type = TensorType(x_type.element_type, (shape.tokens, shape.n))
    arg_attrs = [DictionaryAttr({})] + [DictionaryAttr({STORAGE_ATTR: StringAttr(p.role)}) for p in parts]
    kernel = func.FuncOp(
        name, ([x_type, *(p.type for p in parts)], [y_type]), Region(block), "private", arg_attrs=ArrayAttr(arg_attrs)
    )
    kernel.attributes[KERNEL_ATTR] = StringAttr(LINEAR_KERNEL)
    kernel.attributes[SCHEME_ATTR] = StringAttr(str(shape.scheme))
    kernel.attributes[TILE_ATTR] = DenseArrayBase.from_list(i64, [tile.tokens, tile.n, tile.k])
    return kernel


@dataclass(frozen=True)
class TilePass(ModulePass):
    """Tile every `q35.linear` over T, N and K into a shared kernel function (see the module docstring)."""

    name = "tile"

    tile_t: int = 0
    tile_n: int = 0
    tile_k: int = 0
    budget_bytes: int = 0
    align_n: int = 8
    max_n: int = 0
    max_k: int = 0
    weight_buffers: int = 2
    keep_int_codes: bool = False
    prefer_n: int = 0

    def policy(self) -> TilePolicy | None:
        """The policy for sizes left to choose, from the options; None without a budget (whole dimensions).

        `keep-int-codes` must match `unpack-bits`' option, since per-group partial sums take room in the tile."""
        if not self.budget_bytes:
            return None
        return TilePolicy(
            self.budget_bytes,
            align_n=self.align_n,
            max_n=self.max_n or None,
            max_k=self.max_k or None,
            weight_buffers=self.weight_buffers,
            keep_int_codes=self.keep_int_codes,
            prefer_n=self.prefer_n,
        )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for option, value in (("tile-t", self.tile_t), ("tile-n", self.tile_n), ("tile-k", self.tile_k)):
            if value < 0:
                raise PassFailedException(f"{option} must be at least 0 (0 = choose), got {value}")
        for option, value in (("max-n", self.max_n), ("max-k", self.max_k), ("prefer-n", self.prefer_n)):
            if value < 0:
                raise PassFailedException(f"{option} must be at least 0 (0 = no cap), got {value}")
        for option, value in (("align-n", self.align_n), ("weight-buffers", self.weight_buffers)):
            if value < 1:
                raise PassFailedException(f"{option} must be at least 1, got {value}")
        pattern = TileLinear(self.policy(), (self.tile_t, self.tile_n, self.tile_k))
        for linear in op.walk():
            if isinstance(linear, LinearOp):
                pattern.check(linear)  # fail before rewriting, with a message of our own
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
