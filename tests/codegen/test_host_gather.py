"""Native host code of a quantized embedding lookup (`fuse-gather`: only the looked-up rows are unpacked),
compared with the reference decoder's rows for every scheme family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, ModuleOp, TensorType, f16
from xdsl.ir import Block, Region

from q35c import formats
from q35c.codegen.host.abi import c_identifier
from q35c.codegen.host.library import emit_library
from q35c.codegen.host.measure import step_arguments
from q35c.codegen.host.runtime import HostLibrary
from q35c.codegen.host.toolchain import Toolchain
from q35c.dialects.q35 import EmbedOp, PackedType, WeightOp
from q35c.verify.linear import lower_for_host

SCHEMES = ["q4_0", "q4_1", "q8_0", "q3p5:g=32", "int4:g=32", "fp16"]
VOCAB, DIM = 40, 64
TABLE = "table"


def embed_module(tokens: int, spec: str) -> ModuleOp:
    """The q35 graph of one embedding lookup of `tokens` ids in a [VOCAB, DIM] table of scheme `spec`."""
    ids_type = TensorType(IntegerType(32), (tokens,))
    block = Block(arg_types=[ids_type])
    weight = WeightOp(TABLE, PackedType((VOCAB, DIM), spec))
    embed = EmbedOp(block.args[0], weight.result, TensorType(f16, (tokens, DIM)))
    block.add_ops([weight, embed, func.ReturnOp(embed.result)])
    return ModuleOp([func.FuncOp("embed", ([ids_type], [embed.result.type]), Region(block))])


def test_gather_reads_the_rows_of_the_reference(host_toolchain: Toolchain, tmp_path: Path) -> None:
    """Each output row is the reference decoder's row `id` (rounded to f16), for one and three ids."""
    modules = {c_identifier(f"{s}_t{t}"): lower_for_host(embed_module(t, s)) for s in SCHEMES for t in (1, 3)}
    emit_library(modules, {"model": "embed"}, tmp_path / "lib", "so", host_toolchain)
    lib = HostLibrary.load(tmp_path / "lib")
    rng = np.random.default_rng(5)
    for spec in SCHEMES:
        fmt = formats.get(spec)
        qt = fmt.quantize(rng.standard_normal((VOCAB, DIM)).astype(np.float32))
        rows = fmt.dequantize(qt).astype(np.float32)
        for tokens in (1, 3):
            ids = rng.integers(0, VOCAB, tokens).astype(np.int32)
            ids[-1] = VOCAB - 1  # the last row: the index arithmetic reaches the table's end
            entry = lib.entries[f"q35_{c_identifier(f'{spec}_t{tokens}')}_embed"]
            (y,) = lib.call(entry.symbol, step_arguments(entry, {TABLE: qt}, [ids]))
            expected = rows[ids].astype(np.float16)
            assert np.array_equal(y, expected), f"{spec}, {tokens} ids: rows differ"
