"""copy-to-memcpy: tensor copies (the staged tiles' `linalg.copy`) become memory copies on the host.

`schedule-memory` stages tiles with `linalg.copy`; lowered as linalg, a copy is a parallel loop nest of scalar
loads and stores, which LLVM does not vectorize inside the outlined OpenMP body (it cannot tell the buffers
apart). On the host the copy is a plain block move, so this pass writes it as one:

    %copied = linalg.copy {q35.src_space = 0 : i64, q35.dst_space = 2 : i64}
        ins(%codes_tile : tensor<264x448xi32>) outs(%codes_slot : tensor<264x448xi32>) -> tensor<264x448xi32>

becomes

    %copied = bufferization.materialize_in_destination %codes_tile in %codes_slot
        : (tensor<264x448xi32>, tensor<264x448xi32>) -> tensor<264x448xi32>

which bufferizes to `memref.copy`, lowered to `llvm.memcpy` when both sides are contiguous (MLIR's runtime
`memrefCopy` otherwise). The values copied are the same; only how the bytes move changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.bufferization import MaterializeInDestinationOp
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.dialects.linalg.ops import CopyOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)


class CopyAsMemcpy(RewritePattern):
    """One tensor `linalg.copy` between tensors of the same type."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: CopyOp, rewriter: PatternRewriter) -> None:
        if len(op.inputs) != 1 or len(op.outputs) != 1 or len(op.results) != 1:
            return
        src, dst = op.inputs[0], op.outputs[0]
        if not isinstance(src.type, TensorType) or src.type != dst.type:
            return
        moved = MaterializeInDestinationOp(operands=[src, dst], result_types=[dst.type])
        rewriter.replace_op(op, moved)


@dataclass(frozen=True)
class CopyToMemcpyPass(ModulePass):
    """Tensor copies as memory copies (module docstring)."""

    name = "copy-to-memcpy"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(CopyAsMemcpy(), apply_recursively=False).rewrite_module(op)
