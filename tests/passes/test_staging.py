"""schedule-memory's staging of a linear kernel (`passes/_build/staging.py`, `double_buffer.py`), pattern by pattern
and whole: rings with their prologue, steady state and peeled last tile; first-tile offsets folded to static ones
and nothing left dead; arguments read whole copied at the top in argument order; repeated slices sharing a ring;
intermediates placed or fused; and `FoldConstantOffsets` on its own."""

from __future__ import annotations

import pytest
from xdsl.dialects import arith, func, scf, tensor
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.linalg.ops import CopyOp, GenericOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.transforms.canonicalization_patterns.utils import const_evaluate_operand
from xdsl.transforms.dead_code_elimination import is_trivially_dead

from q35c.driver.pipeline import make_context, module_text
from q35c.ir.attrs import DST_SPACE_ATTR, FUSED_ATTR, SRC_SPACE_ATTR
from q35c.passes._build.double_buffer import static_offsets
from q35c.passes._build.staging import stage_kernel
from q35c.passes.materialize_weights import MaterializeWeightsPass
from q35c.passes.tile import TilePass, is_kernel
from q35c.passes.unpack_bits import UnpackBitsPass
from q35c.verify.linear import linear_module

TILE_SPACE = 2


def staged(t: int, n: int, k: int, spec: str, **sizes: int) -> func.FuncOp:
    """The kernel of one linear, tiled with `sizes`, unpacked and staged in memory space 2."""
    module = linear_module(t, n, k, spec)
    ctx = make_context()
    for p in (MaterializeWeightsPass(), TilePass(**sizes), UnpackBitsPass()):
        p.apply(ctx, module)
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp) and is_kernel(op))
    stage_kernel(fn, TILE_SPACE)
    module.verify()
    return fn


def parse(text: str) -> ModuleOp:
    return Parser(make_context(), text).parse_module()


def ops(fn: Operation, kind: type[Operation]) -> list[Operation]:
    return [op for op in fn.walk() if isinstance(op, kind)]


def spaces(copy: Operation) -> tuple[int, int]:
    return (copy.attributes[SRC_SPACE_ATTR].value.data, copy.attributes[DST_SPACE_ATTR].value.data)  # type: ignore[union-attr]


def test_a_ring_streams_the_n_tiles_and_peels_the_last() -> None:
    # N = 200 in tiles of 64: tiles at 0, 64 and 128 stream through rings, the last peeled; rows [192, 200) are a
    # remainder copied once; x is read whole, copied once at the top.
    fn = staged(1, 200, 128, "int4:g=32", tile_n=64)
    (loop,) = ops(fn, scf.ForOp)
    assert isinstance(loop, scf.ForOp)
    assert [const_evaluate_operand(v) for v in (loop.lb, loop.ub, loop.step)] == [0, 128, 64]
    rings = [op for op in ops(fn, AllocTensorOp) if (op.results[0].name_hint or "").endswith("_ring")]
    assert [r.results[0].name_hint for r in rings] == ["codes_ring", "scale_ring", "offset_ring"]
    assert all(r.results[0].type.get_shape()[0] == 2 for r in rings)  # type: ignore[union-attr]
    assert len(loop.results) == 1 + len(rings) and len(loop.body.block.args) == 2 + len(rings)
    # In: 3 into slot 0 before the loop, 3 into the next slot in it, 3 of the remainder, x once. Out: the loop's
    # tile, the peeled one and the remainder.
    copies = [spaces(op) for op in ops(fn, CopyOp)]
    assert copies.count((0, TILE_SPACE)) == 3 + 3 + 3 + 1 and copies.count((TILE_SPACE, 0)) == 3
    text = module_text(fn)
    assert "%next_slot = arith.subi %c1, %slot : index" in text
    # The peeled tile (trips - 1 = 2, an even one) reads slot 0 of the rings the loop returns.
    assert "%codes_tile_3 = tensor.extract_slice %1[0, 0, 0] [1, 64, 16] [1, 1, 1]" in text
    assert "tensor.extract_slice %0[0, 128] [1, 64] [1, 1]" in text  # the peeled output tile, at a static offset
    assert text.index("%x_staged = linalg.copy") < text.index("scf.for")


def test_k_rings_fold_the_first_tiles_offsets_and_leave_nothing_dead() -> None:
    # q3p5 slices its codes at k / 64 * 7 and its scales at k / 64: at k = 0 before the loop they fold (xDSL's
    # folders, arith.divui by hand) to static offsets; the peeled tile's offset arithmetic is erased.
    fn = staged(2, 96, 256, "q3p5:g=64", tile_n=32, tile_k=64)
    text = module_text(fn)
    assert "%codes_tile = tensor.extract_slice %codes[%n, 0] [32, 7] [1, 1]" in text
    binary = [op for op in fn.walk() if isinstance(op, arith.SignlessIntegerBinaryOperation)]
    assert binary and not [op for op in binary if all(const_evaluate_operand(v) is not None for v in op.operands)]
    assert not [op for op in fn.walk() if is_trivially_dead(op)]
    for op in ops(fn, tensor.ExtractSliceOp) + ops(fn, tensor.InsertSliceOp):
        assert all(const_evaluate_operand(v) is None for v in op.offsets)  # type: ignore[attr-defined]


def test_arguments_read_whole_are_copied_at_the_top_in_argument_order() -> None:
    fn = staged(1, 64, 64, "int4:g=32")  # one tile: no loop, every argument read whole
    assert not ops(fn, scf.ForOp)
    top = [op.results[0].name_hint for op in list(fn.body.block.ops)[:8]]
    assert top == [f"{a}{s}" for a in ("offset", "scale", "codes", "x") for s in ("_staged_buf", "_staged")]
    for arg in fn.args:
        assert [type(u.operation) for u in arg.uses] == [CopyOp]


def test_fused_generics_keep_their_empty_inits_and_the_rest_goes_on_chip() -> None:
    fn = staged(1, 200, 128, "int4:g=32", tile_n=64)
    fused = [op for op in ops(fn, GenericOp) if FUSED_ATTR in op.attributes]
    assert fused and all(isinstance(v.owner, tensor.EmptyOp) for op in fused for v in op.outputs)  # type: ignore[attr-defined]
    # The output (returned) stays a tensor.empty; nothing else that is not fused does.
    unfused = [
        e for e in ops(fn, tensor.EmptyOp) if not any(FUSED_ATTR in u.operation.attributes for u in e.results[0].uses)
    ]
    assert [e.results[0].name_hint for e in unfused] == ["y"]
    assert all(op.attributes["memory_space"].value.data == TILE_SPACE for op in ops(fn, AllocTensorOp))  # type: ignore[union-attr]


REPEATED = """
func.func private @k(%x: tensor<1x256xf32>) -> tensor<1x64xf32> attributes {q35.kernel = "linear"} {
  %c0 = arith.constant 0 : index
  %c256 = arith.constant 256 : index
  %c64 = arith.constant 64 : index
  %y = tensor.empty() : tensor<1x64xf32>
  %r = scf.for %k = %c0 to %c256 step %c64 iter_args(%acc = %y) -> (tensor<1x64xf32>) {
    %x_tile = tensor.extract_slice %x[0, %k] [1, 64] [1, 1] : tensor<1x256xf32> to tensor<1x64xf32>
    %x_again = tensor.extract_slice %x[0, %k] [1, 64] [1, 1] : tensor<1x256xf32> to tensor<1x64xf32>
    %sum = linalg.add ins(%x_tile, %x_again : tensor<1x64xf32>, tensor<1x64xf32>) outs(%acc : tensor<1x64xf32>)
        -> tensor<1x64xf32>
    scf.yield %sum : tensor<1x64xf32>
  }
  func.return %r : tensor<1x64xf32>
}
"""


def test_repeated_slices_in_a_loop_share_one_ring() -> None:
    module = parse(REPEATED)
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    stage_kernel(fn, 1)
    module.verify()
    rings = [op for op in ops(fn, AllocTensorOp) if op.results[0].name_hint == "x_ring"]
    assert len(rings) == 1
    (loop,) = ops(fn, scf.ForOp)
    adds = [op for op in loop.walk() if op.name == "linalg.add"]  # type: ignore[union-attr]
    (add,) = adds
    assert add.operands[0] is add.operands[1]  # both read the current slot of the one ring
    text = module_text(fn)
    # The peeled 4th tile reads slot 1 of the ring the loop returns (its results keep the name of the old one's).
    assert "%x_tile_3 = tensor.extract_slice %r_1[1, 0, 0] [1, 1, 64] [1, 1, 1]" in text
    assert "x_again" not in text


@pytest.mark.parametrize("kind", ["extract", "insert"])
def test_fold_constant_offsets(kind: str) -> None:
    op = (
        "%s = tensor.extract_slice %t[%c2, %i] [1, 4] [1, 1] : tensor<8x8xf32> to tensor<1x4xf32>\n"
        "    func.return %s : tensor<1x4xf32>"
        if kind == "extract"
        else "%s = tensor.insert_slice %u into %t[%c2, %i] [1, 4] [1, 1] : tensor<1x4xf32> into tensor<8x8xf32>\n"
        "    func.return %s : tensor<8x8xf32>"
    )
    result = "tensor<1x4xf32>" if kind == "extract" else "tensor<8x8xf32>"
    module = parse(
        f"""
        func.func @f(%t: tensor<8x8xf32>, %u: tensor<1x4xf32>, %i: index) -> {result} {{
          %c2 = arith.constant 2 : index
          {op}
        }}
        """
    )
    fn = next(iter(module.ops))
    assert isinstance(fn, func.FuncOp)
    static_offsets(fn)
    module.verify()
    text = module_text(fn)
    assert "[2, %i] [1, 4] [1, 1]" in text and "[%c2" not in text
