"""`tensor.extract_slice` and `tensor.insert_slice` printed as their declarative assembly format prints them, for
`q35c.driver.pipeline`'s printer: a kernel's IR is mostly slices, and the generic route checks each slice's
static index lists against a type hint (`isa`) that it builds anew every time, a third of printing a module.

    %codes_tile = tensor.extract_slice %codes[%n, 0] [16, 896] [1, 1] : tensor<32000x896xi32> to tensor<16x896xi32>
    %91 = tensor.insert_slice %y_out into %62[0, 31992] [1, 8] [1, 1] : tensor<1x8xf16> into tensor<1x32000xf16>

Only a slice with no attributes and the properties the format prints is printed here (`plain`); any other goes
the generic route.
"""

from __future__ import annotations

from xdsl.dialects import tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.dialects.utils.dynamic_index_list import print_dynamic_index_list
from xdsl.ir import Operation
from xdsl.printer import Printer

SLICES = (tensor.ExtractSliceOp, tensor.InsertSliceOp)
# The properties a slice's format prints: the static index lists (the operand segments are implied).
_PRINTED = frozenset({"static_offsets", "static_sizes", "static_strides", "operandSegmentSizes"})


def plain(printer: Printer, op: Operation) -> bool:
    """Whether `op` is a slice whose text `print_slice` writes: no attributes, no other properties, no message
    or debug information to print with it, in the custom form."""
    return (
        type(op) in SLICES
        and not op.attributes
        and _PRINTED.issuperset(op.properties)
        and not printer.print_generic_format
        and not printer.print_debuginfo
        and op not in printer.diagnostic.op_messages
    )


def print_slice(printer: Printer, op: tensor.ExtractSliceOp | tensor.InsertSliceOp) -> None:
    """The slice as `Printer.print_op` prints it through its assembly format (`plain` ones)."""
    printer._print_results(op)  # pyright: ignore[reportPrivateUsage]
    printer.print_string(op.name)
    printer.print_string(" ")
    printer.print_ssa_value(op.source)
    if isinstance(op, tensor.InsertSliceOp):
        printer.print_string(" into ")
        printer.print_ssa_value(op.dest)
    lists = ((op.offsets, op.static_offsets), (op.sizes, op.static_sizes), (op.strides, op.static_strides))
    for position, (dynamic, static) in enumerate(lists):
        if position:
            printer.print_string(" ")
        print_dynamic_index_list(printer, DYNAMIC_INDEX, dynamic, static.get_values())
    printer.print_string(" : ")
    printer.print_attribute(op.source.type)
    if isinstance(op, tensor.InsertSliceOp):
        printer.print_string(" into ")
        printer.print_attribute(op.dest.type)
    else:
        printer.print_string(" to ")
        printer.print_attribute(op.result.type)
