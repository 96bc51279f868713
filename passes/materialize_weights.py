"""materialize-weights: every packed weight becomes function arguments holding its storage tensors.

A `q35.weight` names a model parameter; the bytes behind it are loaded by whoever runs the program. So the
compiled entry function takes them as arguments, one per storage tensor (see
`q35c.dialects.q35_storage.storage_tensors`), tagged with the parameter name and role, and the packed value is
re-formed with `q35_storage.assemble` for the graph ops that consume it:

    func.func @f(%x: tensor<2x64xf16>) -> tensor<2x16xf16> {
      %w = q35.weight "proj" : !q35.packed<16x64, #q35.scheme<int4, g = 32>>
      %y = q35.linear %x, %w : (tensor<2x64xf16>, !q35.packed<16x64, #q35.scheme<int4, g = 32>>)
          -> tensor<2x16xf16>
      func.return %y : tensor<2x16xf16>
    }

becomes

    func.func @f(%x: tensor<2x64xf16>, %proj.codes: tensor<16x8xi32> {q35.param = "proj", q35.storage = "codes"},
                 %proj.scale: tensor<16x2xf16> {...}, %proj.offset: tensor<16x2xf16> {...}) -> tensor<2x16xf16> {
      %w = q35_storage.assemble %proj.codes, %proj.scale, %proj.offset : (...) -> !q35.packed<16x64, ...>
      %y = q35.linear %x, %w : ...

Functions that take `!q35.packed` arguments (a decoder block called once per layer) get the same 1:N
expansion of their signature, and every `func.call` to them passes the storage tensors instead (a weight that
only calls read becomes its arguments and nothing else: no `assemble` of it is left). A weight may only be
declared in a function that is not called (the caller would have to supply its storage); anything else is
reported as an error rather than guessed at.

Argument attributes (`q35.param`, `q35.storage`) are discardable metadata: upstream MLIR keeps them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FunctionType, ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable
from xdsl.transforms.dead_code_elimination import is_trivially_dead
from xdsl.utils.exceptions import PassFailedException

from q35c.dialects.q35 import PackedType, WeightOp
from q35c.dialects.q35_storage import AssembleOp, storage_tensors
from q35c.ir.attrs import PARAM_ATTR, STORAGE_ATTR


def _value_name(text: str) -> str:
    """An SSA name hint from a parameter name: `layers.0.q` stays, other characters become `_`."""
    name = re.sub(r"[^\w$.-]", "_", text)
    return name if re.match(r"[A-Za-z_$.-]", name) else f"w{name}"


def _arg_attrs(fn: func.FuncOp) -> list[DictionaryAttr]:
    if fn.arg_attrs is None:
        return [DictionaryAttr({}) for _ in fn.args]
    return list(fn.arg_attrs.data)


def _set_arg_attrs(fn: func.FuncOp, attrs: list[DictionaryAttr]) -> None:
    if all(not a.data for a in attrs):
        fn.properties.pop("arg_attrs", None)
    else:
        fn.properties["arg_attrs"] = ArrayAttr(attrs)


@dataclass(frozen=True)
class _NewArgument:
    """An argument a function gains: its type, its attributes and its SSA name."""

    type: Attribute
    attrs: DictionaryAttr
    name: str | None


def _storage_arguments(packed: PackedType, param: str | None, name: str | None) -> list[_NewArgument]:
    """The storage arguments standing for one packed value, tagged with `param` (a `q35.weight`'s parameter
    name; None for a packed function argument) and named after `name`."""
    out: list[_NewArgument] = []
    tag: dict[str, Attribute] = {} if param is None else {PARAM_ATTR: StringAttr(param)}
    stem = None if name is None else _value_name(name)
    for tensor in storage_tensors(packed):
        attrs = DictionaryAttr({**tag, STORAGE_ATTR: _role(tensor.role)})
        out.append(_NewArgument(tensor.type, attrs, None if stem is None else f"{stem}.{tensor.role}"))
    return out


@cache
def _role(role: str) -> StringAttr:
    """The `q35.storage` value of a storage tensor's role (one attribute per role, shared)."""
    return StringAttr(role)


def _rebuild_arguments(
    fn: func.FuncOp, arguments: Sequence[BlockArgument | _NewArgument], rewriter: PatternRewriter
) -> tuple[Block, Block, list[BlockArgument]]:
    """Give `fn` a new entry block whose arguments are `arguments` in order, all at once (adding arguments one by
    one would rebuild the argument list and the function type each time: quadratic in the arguments).

    An old argument keeps its name and attributes, a `_NewArgument` is created; the function type and argument
    attributes are updated. Returns (old block, new block, new arguments): the new block is empty and the old one,
    still holding the body, follows it; the caller inlines the old block once it has placed what goes first.
    """
    old = fn.body.blocks.first
    assert old is not None
    types = [a.type for a in arguments]
    new = Block(arg_types=types)
    old_attrs = _arg_attrs(fn)
    attrs: list[DictionaryAttr] = []
    for arg, value in zip(new.args, arguments, strict=True):
        if isinstance(value, BlockArgument):
            arg.name_hint = value.name_hint
            attrs.append(old_attrs[value.index])
        else:
            arg.name_hint = value.name
            attrs.append(value.attrs)
    fn.body.insert_block_before(new, old)
    _set_arg_attrs(fn, attrs)
    fn.function_type = FunctionType.from_lists(types, fn.function_type.outputs.data)
    rewriter.notify_op_modified(fn)
    return old, new, list(new.args)


def enclosing_func(op: Operation) -> func.FuncOp | None:
    """The `func.func` an op is nested in, at any depth (None outside any)."""
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        parent = parent.parent_op()
    return parent


def _takes_packed(fn: func.FuncOp) -> bool:
    return any(isinstance(t, PackedType) for t in fn.function_type.inputs.data)


def check_materializable(module: ModuleOp) -> None:
    """Raise PassFailedException, naming the weight or function, where storage cannot become arguments."""
    called = {op.callee.string_value() for op in module.walk() if isinstance(op, func.CallOp)}
    for op in module.walk():
        if isinstance(op, func.FuncOp):
            name = op.sym_name.data
            if any(isinstance(t, PackedType) for t in op.function_type.outputs.data):
                raise PassFailedException(f"@{name} returns a !q35.packed value, which has no storage form")
            if op.is_declaration and _takes_packed(op):
                raise PassFailedException(f"@{name} is a declaration taking !q35.packed arguments")
        elif isinstance(op, WeightOp):
            weight = op.param_name.data
            fn = enclosing_func(op)
            if fn is None:
                raise PassFailedException(f"weight '{weight}' is not inside a func.func")
            if fn.sym_name.data in called:
                raise PassFailedException(
                    f"weight '{weight}' is declared in @{fn.sym_name.data}, which is called: declare weights "
                    "in the entry function and pass them to callees as !q35.packed arguments"
                )
        elif isinstance(op, func.CallOp):
            for value in op.arguments:
                known = isinstance(value, BlockArgument) or isinstance(value.owner, WeightOp | AssembleOp)
                if isinstance(value.type, PackedType) and not known:
                    raise PassFailedException(
                        f"call to @{op.callee.string_value()} passes a packed value made by "
                        f"{value.owner.name}, whose storage is unknown"  # type: ignore[union-attr]
                    )


def _calls_with_storage(value: SSAValue) -> bool:
    """Every use of packed `value` is an argument of a call to a function of the module, which will pass the
    storage instead (`_call_with_storage`): no `assemble` of it is needed."""
    for use in value.uses:
        call = use.operation
        if not isinstance(call, func.CallOp) or not isinstance(
            SymbolTable.lookup_symbol(call, call.callee), func.FuncOp
        ):
            return False
    return True


# The storage arguments standing for each packed value: an `assemble`'s result, or a weight's own while calls
# alone read it.
_Storage = dict[SSAValue, list[SSAValue]]


def _materialize(module: ModuleOp) -> None:
    """Every function's signature to storage (`_signature_to_storage`), then every call passing storage
    (`_call_with_storage`), then what is trivially dead erased (the `assemble`s of packed arguments that only
    calls read). A weight that calls alone read gets no `assemble`: the calls take its storage arguments, and it
    goes."""
    storage: _Storage = {}
    direct: list[WeightOp] = []
    for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
        _signature_to_storage(fn, storage, direct)
    for call in [op for op in module.walk() if isinstance(op, func.CallOp)]:
        _call_with_storage(call, storage)
    for weight in direct:
        rewriter = PatternRewriter(weight)
        if weight.result.first_use is None:
            rewriter.erase(weight)
        else:  # a call that still reads it: it reads an `assemble` of the storage
            rewriter.replace(weight, AssembleOp(storage[weight.result], weight.result.type))  # type: ignore[arg-type]
    _erase_trivially_dead(module)


def _signature_to_storage(op: func.FuncOp, storage: _Storage, direct: list[WeightOp]) -> None:
    """A function taking `!q35.packed` arguments takes their storage tensors instead (1:N), and an (uncalled)
    function declaring `q35.weight`s takes their storage as trailing arguments, each weight becoming an
    `assemble` of them (or, read only by calls, left for them: `direct`). The signature is rebuilt once per
    function, whatever the number of weights."""
    block = op.body.blocks.first
    if block is None:
        return
    weights = [(w, w.result.type) for w in op.body.walk() if isinstance(w, WeightOp)]
    if not weights and not _takes_packed(op):
        return
    rewriter = PatternRewriter(op)
    arguments: list[BlockArgument | _NewArgument] = []
    spans: list[tuple[int, int]] = []  # (first, count) of the new arguments of each old argument, each weight

    def add(new: Sequence[BlockArgument | _NewArgument]) -> None:
        spans.append((len(arguments), len(new)))
        arguments.extend(new)

    for arg in block.args:
        add(_storage_arguments(arg.type, None, arg.name_hint) if isinstance(arg.type, PackedType) else [arg])
    for weight, packed in weights:
        assert isinstance(packed, PackedType)
        add(_storage_arguments(packed, weight.param_name.data, weight.param_name.data))
    old, new, args = _rebuild_arguments(op, arguments, rewriter)

    # Packed arguments: their assembles go first, in argument order; then the body; then weights -> assembles.
    values: list[SSAValue] = []
    for arg, (first, count) in zip(old.args, spans[: len(old.args)], strict=True):
        if isinstance(arg.type, PackedType):
            assemble = AssembleOp(args[first : first + count], arg.type)
            rewriter.insert(assemble, InsertPoint.at_end(new))
            storage[assemble.result] = args[first : first + count]
            values.append(assemble.result)
        else:
            values.append(args[first])
    rewriter.inline_block(old, InsertPoint.at_end(new), values)
    for (weight, packed), (first, count) in zip(weights, spans[len(values) :], strict=True):
        assert isinstance(packed, PackedType)
        if _calls_with_storage(weight.result):
            storage[weight.result] = args[first : first + count]
            direct.append(weight)
            continue
        assemble = AssembleOp(args[first : first + count], packed)
        storage[assemble.result] = args[first : first + count]
        rewriter.replace(weight, assemble)


def _call_with_storage(op: func.CallOp, storage: _Storage) -> None:
    """A call to a function whose packed arguments became storage passes the storage of its packed
    arguments."""
    if not any(isinstance(v.type, PackedType) for v in op.arguments):
        return
    if not all(v in storage for v in op.arguments if isinstance(v.type, PackedType)):
        return
    callee = SymbolTable.lookup_symbol(op, op.callee)
    if not isinstance(callee, func.FuncOp) or _takes_packed(callee):
        return
    operands: list[SSAValue] = []
    for value in op.arguments:
        if isinstance(value.type, PackedType):
            operands.extend(storage[value])
        else:
            operands.append(value)
    PatternRewriter(op).replace(op, func.CallOp(op.callee, operands, op.result_types))


def _erase_trivially_dead(module: ModuleOp) -> None:
    """Erase what is trivially dead (xDSL's `is_trivially_dead`), and what that leaves dead, until nothing is."""
    erased = True
    while erased:
        erased = False
        for op in list(module.body.walk(reverse=True)):
            if op.parent is not None and is_trivially_dead(op):
                Rewriter.erase_op(op)
                erased = True


@dataclass(frozen=True)
class MaterializeWeightsPass(ModulePass):
    """Turn `q35.weight` ops and `!q35.packed` function arguments into storage-tensor arguments."""

    name = "materialize-weights"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        check_materializable(op)
        _materialize(op)
