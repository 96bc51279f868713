"""The q35 ops that move data between devices: what the `shard` pass inserts for tensor and pipeline parallelism.

They are ops of the `q35` dialect (registered with the graph ops in `dialects.q35`) and stay in the IR through
every later pass, so the cost model reads each payload off the IR the target's pipeline produced:

    %y = q35.all_reduce %x {group = 8 : i64} : tensor<1x8192xf16>
        the sum of the partial results `%x` of the `group` devices of a tensor-parallel group, on each of them
        (after a row-split linear: o_proj, down_proj)
    %y = q35.all_gather %x {group = 8 : i64} : (tensor<1x4000xf16>) -> tensor<1x32000xf16>
        the column slices `%x` of the `group` devices, concatenated along the last axis, on each of them
        (after a column-split linear whose output leaves the function: the vocabulary-split lm_head)
    %y = q35.transfer %x {from = 0 : i64, to = 1 : i64} : tensor<1x8192xf16>
        `%x` sent by pipeline stage `from` and received by stage `to` (a send/recv pair): the ops of the entry
        function after the k-th transfer run on stage k

Payloads are the operand's bytes (all_reduce, transfer) or the result's (all_gather), per device.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import IntegerAttr, IntegerType, TensorType, i64
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException


def _group(value: IntegerAttr[IntegerType]) -> int:
    group = value.value.data
    if group < 2:
        raise VerifyException(f"a collective's group must have at least 2 devices, got {group}")
    return group


@irdl_op_definition
class AllReduceOp(IRDLOperation):
    """Sum of the `group` devices' partial results, on each of them.

    %y = q35.all_reduce %x {group = 8 : i64} : tensor<1x8192xf16>
    """

    name = "q35.all_reduce"

    T: ClassVar = VarConstraint("T", base(TensorType))

    x = operand_def(T)
    group = prop_def(IntegerAttr[IntegerType])
    result = result_def(T)

    assembly_format = "$x attr-dict `:` type($result)"
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, group: int) -> None:
        super().__init__(operands=[x], properties={"group": IntegerAttr(group, i64)}, result_types=[x.type])

    def verify_(self) -> None:
        _group(self.group)
        if self.result.type != self.x.type:
            raise VerifyException("all_reduce result type must equal its operand type")


@irdl_op_definition
class AllGatherOp(IRDLOperation):
    """The `group` devices' slices concatenated along the last axis, on each of them.

    %y = q35.all_gather %x {group = 8 : i64} : (tensor<1x4000xf16>) -> tensor<1x32000xf16>
    """

    name = "q35.all_gather"

    x = operand_def(TensorType)
    group = prop_def(IntegerAttr[IntegerType])
    result = result_def(TensorType)

    assembly_format = "$x attr-dict `:` `(` type($x) `)` `->` type($result)"
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, group: int) -> None:
        xt = x.type
        assert isinstance(xt, TensorType)
        shape = list(xt.get_shape())
        shape[-1] *= group
        super().__init__(
            operands=[x],
            properties={"group": IntegerAttr(group, i64)},
            result_types=[TensorType(xt.element_type, shape)],
        )

    def verify_(self) -> None:
        group = _group(self.group)
        xt, rt = self.x.type, self.result.type
        assert isinstance(xt, TensorType) and isinstance(rt, TensorType)
        shape = list(xt.get_shape())
        if shape:
            shape[-1] *= group
        if list(rt.get_shape()) != shape or rt.element_type != xt.element_type:
            raise VerifyException(f"all_gather over {group} devices of {xt} gives tensor {shape}, got {rt}")


@irdl_op_definition
class TransferOp(IRDLOperation):
    """A tensor sent by pipeline stage `from` and received by stage `to` (a send/recv pair).

    %y = q35.transfer %x {from = 0 : i64, to = 1 : i64} : tensor<1x8192xf16>
    """

    name = "q35.transfer"

    T: ClassVar = VarConstraint("T", base(TensorType))

    x = operand_def(T)
    source = prop_def(IntegerAttr[IntegerType], prop_name="from")
    dest = prop_def(IntegerAttr[IntegerType], prop_name="to")
    result = result_def(T)

    assembly_format = "$x attr-dict `:` type($result)"
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, x: SSAValue, source: int, dest: int) -> None:
        super().__init__(
            operands=[x],
            properties={"from": IntegerAttr(source, i64), "to": IntegerAttr(dest, i64)},
            result_types=[x.type],
        )

    def verify_(self) -> None:
        source, dest = self.source.value.data, self.dest.value.data
        if source < 0 or dest <= source:
            raise VerifyException(f"transfer from stage {source} to stage {dest}: stages run forward")
        if self.result.type != self.x.type:
            raise VerifyException("transfer result type must equal its operand type")


COLLECTIVE_OPS: tuple[type[IRDLOperation], ...] = (AllReduceOp, AllGatherOp, TransferOp)
COLLECTIVE_NAMES = frozenset(op.name for op in COLLECTIVE_OPS)


def payload_type(op: IRDLOperation) -> Attribute:
    """The tensor type whose bytes a collective moves per device: the result of an all_gather, else the operand."""
    return op.results[0].type if isinstance(op, AllGatherOp) else op.operands[0].type


def group_size(op: IRDLOperation) -> int:
    """Devices taking part: the group of an all_reduce or all_gather; 2 for a transfer (a sender, a receiver)."""
    if isinstance(op, AllReduceOp | AllGatherOp):
        return op.group.value.data
    return 2
