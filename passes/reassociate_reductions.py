"""reassociate-reductions: float arithmetic inside reductions may be reassociated and contracted.

A linalg reduction (a matmul's sum over K, softmax's sums) says what is summed, not in which order. Code
generators for the host need the freedom to choose the order: a vectorized loop keeps several partial sums in
vector lanes and adds them at the end, which LLVM does only for operations flagged `reassoc`. This pass sets
`fastmath<reassoc,contract>` on every `arith.addf`, `arith.mulf`, `arith.subf` and `math.fma` in the body of a
`linalg.generic` that has a reduction iterator:

    %acc = linalg.generic {... iterator_types = ["parallel", "parallel", "reduction"]} ... {
    ^bb0(%x: f16, %w: f32, %acc: f32):
      %0 = arith.extf %x : f16 to f32
      %1 = arith.mulf %0, %w : f32
      %2 = arith.addf %acc, %1 : f32

becomes the same with `%1 = arith.mulf %0, %w fastmath<reassoc,contract> : f32` and
`%2 = arith.addf %acc, %1 fastmath<reassoc,contract> : f32`.

No NaN, infinity or signed-zero assumption is added. The results differ from the sequential sum only by float32
rounding in another order, within the bound `q35c verify` checks (which does not depend on the order).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

FLAGS = arith.FastMathFlagsAttr([arith.FastMathFlag.REASSOC, arith.FastMathFlag.ALLOW_CONTRACT])
FLOAT_OPS = (arith.AddfOp, arith.MulfOp, arith.SubfOp, math.FmaOp)


class FlagReductionBody(RewritePattern):
    """Flags the float arithmetic of one reduction's body (once: a flagged op is left alone)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GenericOp, rewriter: PatternRewriter) -> None:
        if not any(it.data == IteratorType.REDUCTION for it in op.iterator_types.data):
            return
        for inner in op.body.walk():
            if isinstance(inner, FLOAT_OPS) and inner.fastmath != FLAGS:
                inner.fastmath = FLAGS
                rewriter.notify_op_modified(inner)


@dataclass(frozen=True)
class ReassociateReductionsPass(ModulePass):
    """Allow reassociation and contraction of the float arithmetic in linalg reductions (module docstring)."""

    name = "reassociate-reductions"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(FlagReductionBody(), apply_recursively=False).rewrite_module(op)
