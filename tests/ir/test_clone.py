"""`q35c.ir.clone.clone` copies IR as xDSL's `clone` does: the same text, new values, nothing shared."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from q35c.driver.pipeline import Runner, module_text
from q35c.frontend import load_model
from q35c.ir.clone import clone
from q35c.targets.registry import get_target


def compiled_for(target: str) -> ModuleOp:
    module = load_model("tiny", quant="q3p5:g=32", seq=2, context=4).module
    Runner(verify=False).run(module, get_target(target).pipeline())
    return module


def test_a_clone_prints_as_xdsls_and_verifies() -> None:
    module = compiled_for("h100-sxm")  # kernels with nested loops, rings and many arguments
    copy = clone(module)
    assert module_text(copy) == module_text(module.clone()) == module_text(module)
    copy.verify()


def test_a_clone_shares_no_op_or_value_and_orders_uses_as_xdsls() -> None:
    module = compiled_for("m2-max")
    copy, reference = clone(module), module.clone()
    originals = {id(op) for op in module.walk()}
    for old, new, ref in zip(module.walk(), copy.walk(), reference.walk(), strict=True):
        assert id(new) not in originals
        assert [a.name_hint for a in old.results] == [a.name_hint for a in new.results]
        for value in new.operands:  # operands defined inside the module are the copy's own values
            assert id(value.owner) not in originals
        for a, b in zip(ref.results, new.results, strict=True):
            assert [(u.operation.name, u.index) for u in a.uses] == [(u.operation.name, u.index) for u in b.uses]
    copied, original = next(iter(copy.ops)).regions[0].blocks.first, next(iter(module.ops)).regions[0].blocks.first
    assert copied is not None and original is not None
    for arg, old_arg in zip(copied.args, original.args, strict=True):
        assert arg.name_hint == old_arg.name_hint and arg.type == old_arg.type and arg is not old_arg
