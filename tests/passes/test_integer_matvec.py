"""integer-matvec's pieces without a compiler: the codes' bit fields found by running unpacking bodies, the chunk
layout's byte permutation and masks applied (in numpy) to real packed weights, and unstage-tiles."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.bufferization import AllocTensorOp
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.linalg.ops import CopyOp, GenericOp
from xdsl.dialects.scf import ForOp
from xdsl.dialects.tensor import ExtractSliceOp

from q35c import formats
from q35c.driver.pipeline import Runner
from q35c.ir.attrs import DST_SPACE_ATTR, TILE_DIM_ATTR, kernel_kind
from q35c.passes._build.bit_fields import Field, Unpacking, check_periodic, probe_fields, unpacking_of
from q35c.passes._build.code_layout import MIN_LEVELS, PART_CODES, Layout, find_layout
from q35c.passes.integer_matvec import IntegerMatvecPass
from q35c.passes.unstage_tiles import UnstageTilesPass
from q35c.targets.target import get_target
from q35c.verify.linear import linear_module, lower_for_host


def unpacking(spec: str, n: int = 16, k: int = 256) -> Unpacking | None:
    """The unpacking generic of the one-token linear kernel for `spec` (codes times their steps)."""
    module = lower_for_host(linear_module(1, n, k, spec))
    kernel = next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data.startswith("linear."))
    for op in kernel.walk():
        if isinstance(op, GenericOp) and kernel_kind(op) == "unpack":
            return unpacking_of(op)
    raise AssertionError(f"no unpacking kernel for {spec}")


def fields_of(spec: str, lanes: int) -> list[Field] | None:
    found = unpacking(spec)
    return None if found is None else probe_fields(found, lanes)


def test_q3p5_codes_are_fields_of_the_bit_stream() -> None:
    """Pair p's 7 bits start at bit 7p: n1 in its top 4 bits, 2 n2 from its low 3 bits (step 2)."""
    assert fields_of("q3p5", 8) == [
        Field(7 * (i // 2) + (3 if i % 2 == 0 else 0), 4 if i % 2 == 0 else 3, i % 2) for i in range(8)
    ]


def test_int4_codes_are_nibbles() -> None:
    assert fields_of("int4", 8) == [Field(4 * i, 4, 0) for i in range(8)]


def test_q4_0_codes_are_nibbles_with_the_sign_bit_flipped() -> None:
    """q4_0 stores code + 8 after its block's two scale bytes: codes 0-15 in the low nibbles, 16-31 the high."""
    fields = fields_of("q4_0", 32)
    assert fields == [Field(16 + 8 * (i % 16) + 4 * (i // 16), 4, 0, flip=8) for i in range(32)]


def test_q4_1_codes_are_unsigned_nibbles() -> None:
    """q4_1 stores codes 0-15 after its block's scale and minimum (four bytes): unsigned fields, nothing flipped."""
    fields = fields_of("q4_1", 32)
    assert fields == [Field(32 + 8 * (i % 16) + 4 * (i // 16), 4, 0, unsigned=True) for i in range(32)]


def test_codes_that_are_no_fields_are_refused() -> None:
    """q5_0's fifth bit comes from a separate 32-bit word: still a field? Its codes are not contiguous bits."""
    assert fields_of("iq4_nl", 4) is None


def test_a_wrong_period_is_refused() -> None:
    found = unpacking("q3p5")
    assert found is not None
    fields = probe_fields(found, 64)
    assert fields is not None
    assert check_periodic(found, fields, 224)
    assert not check_periodic(found, fields, 256)


@pytest.mark.parametrize(
    ("spec", "lanes", "stride"), [("q3p5", 64, 224), ("int4", 32, 128), ("q3p5:container=byte", 32, 128)]
)
def test_layouts(spec: str, lanes: int, stride: int) -> None:
    found = unpacking(spec)
    assert found is not None
    layout = find_layout(found, 128)
    assert layout is not None
    assert (layout.lanes, layout.stride_bits) == (lanes, stride)
    assert layout.levels(128) >= MIN_LEVELS


def test_groups_smaller_than_a_chunk_have_no_layout() -> None:
    found = unpacking("q3p5:g=32")
    assert found is not None and find_layout(found, 32) is None


def lanes_of(layout: Layout, row: np.ndarray, chunk: int) -> np.ndarray:
    """What the kernel computes for one chunk of a packed row, in numpy: per part, the read, the byte
    permutation into 16-bit lanes, (lane & M) ^ H."""
    keep, flip, _ = (np.array(v, dtype=np.int16) for v in layout.masks())
    element = layout.element_bits // 8
    data = row.view(np.uint8)
    out = []
    for part in layout.parts():
        start = (chunk * layout.stride_bits // layout.element_bits + part.start) * element
        read = data[start : start + part.count * element]
        lanes = read[list(part.mask)].view(np.int16)
        span = slice(part.first, part.first + PART_CODES)
        out.append((lanes & keep[span]) ^ flip[span])
    return np.concatenate(out)


@pytest.mark.parametrize(
    ("spec", "group"),
    [("q3p5", 128), ("int4", 128), ("q3p5:container=byte", 128), ("q4_0", 32), ("q8_0", 32), ("q4_1", 32)],
)
def test_the_permuted_masked_lanes_are_the_biased_codes(spec: str, group: int) -> None:
    """On real packed weights, every lane of every chunk is (e / 2^step + 2^(width-1)) * 2^s (unsigned codes:
    e * 2^s): e exact."""
    fmt = formats.get(spec)
    rng = np.random.default_rng(5)
    qt = fmt.quantize(rng.standard_normal((3, 512)).astype(np.float32))
    codes = fmt.unpack(qt.packed).astype(np.int64)
    found = unpacking(spec, n=3, k=512)
    assert found is not None
    layout = find_layout(found, group)
    assert layout is not None
    shifts = np.array([s for _, s in layout.placements()])
    bias = np.array([0 if f.unsigned else 1 << (f.width - 1) for f in layout.fields])
    for n in range(3):
        row = np.ascontiguousarray(qt.packed[n])
        for chunk in range(512 // layout.lanes):
            got = lanes_of(layout, row, chunk).astype(np.int64)
            e = codes[n, chunk * layout.lanes : (chunk + 1) * layout.lanes]
            assert np.array_equal(got, (e + bias) << shifts), (spec, n, chunk)


def integer_kernels(module: ModuleOp) -> list[GenericOp]:
    """The kernels integer-matvec built: linear generics without a reduction dimension."""
    return [
        op
        for op in module.walk()
        if isinstance(op, GenericOp) and kernel_kind(op) == "linear" and "reduction" not in str(op.iterator_types)
    ]


@pytest.mark.parametrize(("tokens", "outputs"), [(1, [1]), (2, [2]), (8, [8]), (11, [8, 3]), (16, [8])])
def test_integer_matvec_rewrites_kernels_of_every_row_count(tokens: int, outputs: list[int]) -> None:
    """One token: a (t, n) generic; M tokens: a generic per block of up to 8 rows (and one for the rest), one
    output per row of the block, the codes unpacked once per part for all of them."""
    module = lower_for_host(linear_module(tokens, 48, 256, "q3p5:g=64"))
    IntegerMatvecPass().apply(Context(), module)
    module.verify()
    kernels = integer_kernels(module)
    assert [len(k.outputs) for k in kernels] == outputs
    for kernel, rows in zip(kernels, outputs, strict=True):
        ops = list(kernel.body.walk())
        codes = [op for op in ops if op.name == "arith.xori" and "vector" in str(op.results[0].type)]
        products = [op for op in ops if op.name == "arith.muli" and "vector<32xi32>" in str(op.results[0].type)]
        assert codes and len(products) == rows * len(codes)


def test_unstage_tiles_reads_tiles_in_place() -> None:
    """Every staging copy goes; the kernels read slices of the function's weight arguments."""
    module = lower_for_host(linear_module(1, 1024, 4096, "int4"))
    assert any(isinstance(op, CopyOp) and DST_SPACE_ATTR in op.attributes for op in module.walk())
    UnstageTilesPass().apply(Context(), module)
    module.verify()
    assert not any(isinstance(op, CopyOp) for op in module.walk())
    slices = [op for op in module.walk() if isinstance(op, ExtractSliceOp) and op.source.name_hint == "codes"]
    assert len(slices) >= 3  # the loop's tile, the peeled last one, the remainder


def lower_k_tiled(tokens: int, n: int, k: int, spec: str, tile_k: int) -> ModuleOp:
    """The host pipeline on one linear whose K is split in tiles of `tile_k` (the pipeline option `tile-k`)."""
    module = linear_module(tokens, n, k, spec)
    stages = get_target("host").pipeline({"keep-int-codes": "false", "tile-k": str(tile_k)})
    Runner(verify=True, target="host").run(module, stages)
    return module


@pytest.mark.parametrize("spec", ["q3p5", "q4_0", "q8_0"])
def test_k_tiled_kernels(spec: str) -> None:
    """K tiles start at a storage column computed from the loop's index (q3p5: (k / 64) * 7 words): the rings
    go there too. integer-matvec then computes the K loop and its peeled last tile as one kernel over whole
    rows, the scales slices of their own storage (q3p5) or decoded from the code blocks of whole rows (q4_0,
    q8_0; q8_0's K tiles of 32 are one block each)."""
    kernels = 1
    module = lower_k_tiled(1, 64, 768, spec, 256 if spec != "q8_0" else 32)
    rings = [op for op in module.walk() if isinstance(op, AllocTensorOp) and len(op.tensor.type.shape) == 3]
    assert rings  # two-slot rings of the codes' (and scales') tiles, filled in the K loop
    UnstageTilesPass().apply(Context(), module)
    module.verify()
    assert not any(isinstance(op, CopyOp) for op in module.walk())
    assert not any(isinstance(op, AllocTensorOp) and len(op.tensor.type.shape) == 3 for op in module.walk())
    slices = [op for op in module.walk() if isinstance(op, ExtractSliceOp) and op.source.name_hint == "codes"]
    assert len(slices) == 2  # the loop's tile, at a column computed from %k, and the peeled last one
    assert any(isinstance(s.parent_op(), ForOp) and s.offsets for s in slices)
    IntegerMatvecPass().apply(Context(), module)
    module.verify()
    linears = [op for op in module.walk() if isinstance(op, GenericOp) and kernel_kind(op) == "linear"]
    assert len(linears) == kernels and all(len(op.iterator_types) == 2 for op in linears)
    k_loops = [op for op in module.walk() if isinstance(op, ForOp) and TILE_DIM_ATTR in op.attributes]
    assert bool(k_loops) == (kernels > 1)
