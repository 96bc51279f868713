"""Copying IR: `clone(op)` is `op.clone()` -- the same ops, attributes, properties, types, locations and name
hints -- in time linear in the block arguments.

xDSL's `Region.clone_into` adds a block's arguments one at a time (`Block.insert_arg`, which rebuilds the
argument tuple each time), so copying a function of n arguments costs n^2: a 405B model's entry function takes
a few thousand weight arguments, and the compiler copies modules wherever pipelines part
(`q35c.driver.tree`) and sizes placements on sharded copies (`targets/placement.py`). Here each block is made
with all of its arguments at once.

    copy = clone(module)   # as module.clone(): tests/ir/test_clone.py checks they print the same
"""

from __future__ import annotations

from typing import TypeVar

from xdsl.ir import Block, Operation, Region, SSAValue

OpT = TypeVar("OpT", bound=Operation)


def _clone_region(region: Region, into: Region, values: dict[SSAValue, SSAValue], blocks: dict[Block, Block]) -> None:
    """As `Region.clone_into(into, 0, values, blocks, clone_operands=False)` on an empty `into`."""
    pairs = []
    for block in region.blocks:
        new = Block(arg_types=[arg.type for arg in block.args])
        for old_arg, new_arg in zip(block.args, new.args, strict=True):
            new_arg.location = old_arg.location
            new_arg.name_hint = old_arg.name_hint
            values[old_arg] = new_arg
        blocks[block] = new
        pairs.append((block, new))
    into.add_block([new for _, new in pairs])
    for block, new in pairs:
        for op in block.ops:
            new.add_op(_clone_op(op, values, blocks))


def _clone_op(op: OpT, values: dict[SSAValue, SSAValue], blocks: dict[Block, Block]) -> OpT:
    copy = op.clone_without_regions(values, blocks, clone_operands=False)
    for region, new in zip(op.regions, copy.regions, strict=True):
        _clone_region(region, new, values, blocks)
    return copy


def clone(op: OpT) -> OpT:
    """A copy of `op` and everything in it, its operands mapped to the copies of the values defined inside it."""
    values: dict[SSAValue, SSAValue] = {}
    copy = _clone_op(op, values, {})
    for old, new in zip(op.walk(), copy.walk(), strict=True):
        new.operands = tuple(values.get(operand, operand) for operand in old.operands)
    return copy
