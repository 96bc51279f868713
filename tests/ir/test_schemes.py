"""Spec strings, their canonical form, storage shapes and bits per weight (q35c.ir.schemes)."""

from __future__ import annotations

import pytest

from q35c.ir.schemes import Scheme, parse_scheme


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("q3p5", "q3p5:g=128:container=dense"),
        ("q3p5:g=64", "q3p5:g=64:container=dense"),
        ("q3p5:container=byte", "q3p5:g=128:container=byte"),
        ("q3p5:container=byte:g=32", "q3p5:g=32:container=byte"),
        (" Q3P5 : g = 64 ", "q3p5:g=64:container=dense"),
        ("int4", "int4:g=128"),
        ("int4:g=32", "int4:g=32"),
        ("int8", "int8"),
        ("int8:g=64", "int8:g=64"),
        ("fp16", "fp16"),
        ("q4_0", "q4_0"),
        ("q8_0", "q8_0"),
    ],
)
def test_canonical_spec_round_trips(spec: str, canonical: str) -> None:
    scheme = parse_scheme(spec)
    assert str(scheme) == canonical
    assert scheme.spec == canonical
    assert parse_scheme(canonical) == scheme


@pytest.mark.parametrize(
    ("spec", "k", "bits"),
    [
        ("q3p5", 4096, 3.75),
        ("q3p5:g=64", 4096, 4.0),
        ("q3p5:g=32", 4096, 4.5),
        ("q3p5:container=byte", 4096, 4.25),
        ("int4:g=128", 4096, 4.25),
        ("int4:g=64", 4096, 4.5),
        ("int8", 4096, 8 + 16 / 4096),
        ("int8:g=128", 4096, 8.125),
        ("fp16", 4096, 16.0),
        ("q4_0", 4096, 4.5),
        ("q8_0", 4096, 8.5),
        ("q4_0", 32, 4.5),
    ],
)
def test_bits_per_weight(spec: str, k: int, bits: float) -> None:
    assert parse_scheme(spec).bits_per_weight(k) == pytest.approx(bits, abs=1e-12)


@pytest.mark.parametrize(
    ("spec", "shape", "dtype", "meta"),
    [
        ("q3p5", (3, 7 * 256 // 64), "uint32", (3, 2)),
        ("q3p5:container=byte", (3, 128), "uint8", (3, 2)),
        ("int4", (3, 32), "uint32", (3, 2)),
        ("int8", (3, 256), "int8", (3, 1)),
        ("int8:g=64", (3, 256), "int8", (3, 4)),
        ("fp16", (3, 256), "float16", None),
        ("q4_0", (3, 8 * 18), "uint8", None),
        ("q8_0", (3, 8 * 34), "uint8", None),
    ],
)
def test_storage_shapes(spec: str, shape: tuple[int, int], dtype: str, meta: tuple[int, int] | None) -> None:
    scheme = parse_scheme(spec)
    assert scheme.storage_shape(3, 256) == shape
    assert scheme.storage_dtype == dtype
    assert scheme.metadata_shape(3, 256) == meta


def test_symmetry_and_storage_bytes() -> None:
    assert parse_scheme("int8").symmetric
    assert not parse_scheme("int4").symmetric
    assert not parse_scheme("q3p5").symmetric
    # dense q3p5, 2 rows of 128: 7 * 2 words of codes + 2 float16 arrays of 2 values
    assert parse_scheme("q3p5").storage_bytes(2, 128) == 2 * 14 * 4 + 2 * 2 * 2
    assert parse_scheme("int8").storage_bytes(2, 128) == 2 * 128 + 2 * 2
    assert not parse_scheme("fp16").is_quantized
    assert Scheme("q3p5", 128, "dense").code_bits == 3.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "q5",
            "unknown quantization scheme 'q5' (valid: fp16, f32, int8, int4, q3p5, q4_0, q8_0, q4_1, q5_0, "
            "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs; for sizes only, the other ggml types: iq2_xxs, "
            "tq1_0, bf16, ...)",
        ),
        ("", "unknown quantization scheme ''"),
        ("int8:container=byte", "unknown key 'container' for scheme int8 (valid keys: g)"),
        ("q4_0:g=64", "unknown key 'g' for scheme q4_0 (valid keys: none)"),
        ("q3p5:g", "malformed option 'g'"),
        ("q3p5:g=abc", "group size g must be an integer, got 'abc'"),
        ("q3p5:g=0", "group size g must be positive, got 0"),
        ("q3p5:g=63", "q3p5 group size g must be even"),
        ("q3p5:container=nibble", "unknown q3p5 container 'nibble' (valid: dense, byte)"),
        ("q3p5:g=64:g=32", "key 'g' given twice"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_scheme(spec)


@pytest.mark.parametrize(
    ("spec", "n", "k", "message"),
    [
        ("q3p5", 2, 100, "K=100 is not divisible by the group size g=128"),
        ("q3p5:g=32", 2, 96, "K=96 must be a multiple of 64 for the dense container"),
        ("int4:g=4", 2, 12, "K=12 must be a multiple of 8"),
        ("q4_0", 2, 48, "K=48 is not divisible by the group size g=32"),
        ("int8", 0, 16, r"weight shape must be positive, got \[0, 16\]"),
    ],
)
def test_bad_shapes(spec: str, n: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scheme(spec).check_shape(n, k)


def test_byte_container_accepts_k_not_multiple_of_64() -> None:
    assert parse_scheme("q3p5:g=32:container=byte").storage_shape(1, 96) == (1, 48)


@pytest.mark.parametrize(
    ("spec", "unit", "ratio", "align", "meta_ratio", "steps", "block_scales", "codes_are_storage"),
    [
        ("q3p5", 64, (64, 7), 128, (128, 1), (1, 2), False, False),
        ("q3p5:g=32", 64, (64, 7), 64, (32, 1), (1, 2), False, False),
        ("q3p5:g=256", 64, (64, 7), 256, (256, 1), (1, 2), False, False),
        ("q3p5:g=32:container=byte", 2, (2, 1), 32, (32, 1), (1, 2), False, False),
        ("q3p5:g=2:container=byte", 2, (2, 1), 2, (2, 1), (1, 2), False, False),
        ("int4:g=32", 8, (8, 1), 32, (32, 1), (1,), False, False),
        ("int4:g=4", 8, (8, 1), 8, (4, 1), (1,), False, False),
        ("int8:g=64", 1, (1, 1), 64, (64, 1), (1,), False, True),
        ("int8", 1, (1, 1), 1, None, (1,), False, True),
        ("fp16", 1, (1, 1), 1, None, (1,), False, False),
        ("q4_0", 32, (32, 18), 32, None, (1,), True, False),
        ("q8_0", 32, (32, 34), 32, None, (1,), True, False),
    ],
)
def test_storage_granularity(
    spec: str,
    unit: int,
    ratio: tuple[int, int],
    align: int,
    meta_ratio: tuple[int, int] | None,
    steps: tuple[int, ...],
    block_scales: bool,
    codes_are_storage: bool,
) -> None:
    scheme = parse_scheme(spec)
    assert scheme.storage_unit == unit
    assert scheme.storage_ratio == ratio
    assert scheme.k_alignment == align
    assert scheme.metadata_ratio == meta_ratio
    assert scheme.slot_steps == steps
    assert scheme.block_scales == block_scales
    assert scheme.codes_are_storage == codes_are_storage
    # The alignment is whole groups and whole storage units; a K of alignments is a weight of the scheme (the
    # only other rule, K % g, holds by construction) whose code array has k / a * b columns.
    assert align % unit == 0 and align % (scheme.group or 1) == 0
    k = 3 * align * (scheme.group or 1)
    scheme.check_shape(4, k)
    assert scheme.storage_shape(4, k) == (4, k // ratio[0] * ratio[1])


@pytest.mark.parametrize(
    ("spec", "tensors"),
    [
        ("int4:g=32", [("codes", (16, 16), "uint32"), ("scale", (16, 4), "float16"), ("offset", (16, 4), "float16")]),
        ("q3p5", [("codes", (16, 14), "uint32"), ("scale", (16, 1), "float16"), ("offset", (16, 1), "float16")]),
        (
            "q3p5:container=byte",
            [("codes", (16, 64), "uint8"), ("scale", (16, 1), "float16"), ("offset", (16, 1), "float16")],
        ),
        ("int8", [("codes", (16, 128), "int8"), ("scale", (16, 1), "float16")]),
        ("int8:g=32", [("codes", (16, 128), "int8"), ("scale", (16, 4), "float16")]),
        ("fp16", [("codes", (16, 128), "float16")]),
        ("q4_0", [("codes", (16, 72), "uint8")]),
        ("q8_0", [("codes", (16, 136), "uint8")]),
    ],
)
def test_storage_tensors(spec: str, tensors: list[tuple[str, tuple[int, int], str]]) -> None:
    scheme = parse_scheme(spec)
    assert [tuple(t) for t in scheme.storage_tensors(16, 128)] == tensors
    sizes = {"float16": 2, "int8": 1, "uint8": 1, "uint32": 4}
    assert scheme.storage_bytes(16, 128) == sum(r * c * sizes[d] for _, (r, c), d in tensors)
