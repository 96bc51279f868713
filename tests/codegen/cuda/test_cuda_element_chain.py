"""The printed arithmetic of a linear kernel's element chain (unpacking and dequantization, as the emitted CUDA
computes each weight) against the numpy reference of the weight format.

The lambdas a kernel defines are plain C++: compiled for the host with f16 as `_Float16`, run on the storage
arrays of a random weight, they must give `q35c.formats` dequantized weights. This checks the printer
(`cexpr`, `values`) on every scheme's chain; the kernel around it needs a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, StringAttr

from q35c.analysis.kernels import arg_attrs
from q35c.analysis.workload import is_kernel_function
from q35c.codegen.cuda.cexpr import index_using, index_width
from q35c.codegen.cuda.linear import element_chain
from q35c.formats import get
from q35c.ir.attrs import TILE_ATTR

SHIM = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
typedef _Float16 __half;
static inline float q35_to_float(__half v) { return (float)v; }
static inline __half __float2half_rn(float v) { return (__half)v; }
static inline __half __ushort_as_half(unsigned short u) { __half h; std::memcpy(&h, &u, 2); return h; }
static inline unsigned short __half_as_ushort(__half h) { unsigned short u; std::memcpy(&u, &h, 2); return u; }
using std::max;
using std::min;
"""


def host_compiler() -> str:
    found = shutil.which("g++") or shutil.which("clang++-22")
    if found is None:
        pytest.skip("no host C++ compiler (g++ or clang++-22)")
    return found


def harness(fn: func.FuncOp, folder: Path, storage: dict[str, np.ndarray], wide: bool, paired: bool) -> np.ndarray:
    """Compile and run the element chain of `fn` on `storage` (by q35.storage role); W as an [N, K] array.

    `wide`: 64-bit index arithmetic with unknown index ranges, else 32-bit with the tile's ranges (simplified).
    `paired`: through the GEMV's pair reads `W0(n, kk)`, `W1(n, kk)` (k = 2 kk + u), else `W(n, k)`. Weight
    tiles that stream (N tiles) are copied into their buffers one N tile at a time, as the kernel stages them."""
    tile_attr = fn.attributes[TILE_ATTR]
    assert isinstance(tile_attr, DenseArrayBase)
    t, n, k = (int(v) for v in tile_attr.get_values())
    with index_width(wide):
        chain = element_chain(fn, "__half", None if wide else (t, n, k))
        using = index_using()
    roles = [attrs.data.get("q35.storage") for attrs in arg_attrs(fn)]
    n_total = int(fn.function_type.outputs.data[0].get_shape()[1])  # type: ignore[attr-defined]
    k_cols = int(fn.args[0].type.get_shape()[1])  # type: ignore[attr-defined]
    assert k <= k_cols and k_cols % k == 0 and k_cols % 2 == 0
    lines = [SHIM, "int main() {", f"  {using}"]
    copies: list[str] = []
    for i, leaf in enumerate(chain.leaves):
        role = roles[leaf.arg]
        if leaf.arg == 0:  # the activations: W does not read them
            lines.append(f"  static {leaf.elem} L{i}[{leaf.rows * leaf.cols}] = {{}};")
            continue
        assert isinstance(role, StringAttr) and leaf.row_dim == "n"
        data = storage[role.data]
        assert data.itemsize == leaf.size and data.shape[0] == n_total and data.size % n_total == 0
        assert leaf.ring or data.size == leaf.rows * leaf.cols
        data.tofile(folder / f"L{i}.bin")
        row = data.size // n_total
        lines += [
            f"  static {leaf.elem} F{i}[{data.size}];",
            f"  static {leaf.elem} L{i}[{leaf.rows * leaf.cols}];",
            f'  {{ FILE* f = std::fopen("L{i}.bin", "rb"); std::fread(F{i}, {leaf.size}, {data.size}, f);'
            " std::fclose(f); }",
        ]
        # rows [n0, n0 + rows) x columns [kt * cols, (kt + 1) * cols) of the storage, as q35_stage copies them
        copies.append(
            f"    for (int r = 0; r < {leaf.rows}; ++r) for (int c = 0; c < {leaf.cols}; ++c) "
            f"L{i}[r * {leaf.cols} + c] = F{i}[(n0 + r) * {row} + kt * {leaf.cols} + c];"
        )
    lines += [f"  {line}" for line in chain.lambdas]
    lines.append(f"  static float out[{n_total * k_cols}];")
    if paired:
        for u in range(2):
            lines.append(f"  auto W{u} = [&](q35_i n, q35_i kk) -> {chain.w_type} {{ return {chain.w_pair[u]}; }};")
        compute = [
            f"    for (int nl = 0; nl < {n}; ++nl) for (int kk = 0; kk < {k // 2}; ++kk) {{",
            f"      out[(n0 + nl) * {k_cols} + kt * {k} + 2 * kk] = (float)W0(nl, kk);",
            f"      out[(n0 + nl) * {k_cols} + kt * {k} + 2 * kk + 1] = (float)W1(nl, kk); }}",
        ]
    else:
        lines.append(f"  auto W = [&](q35_i n, q35_i k) -> {chain.w_type} {{ return {chain.w_read}; }};")
        compute = [
            f"    for (int nl = 0; nl < {n}; ++nl) for (int kl = 0; kl < {k}; ++kl)",
            f"      out[(n0 + nl) * {k_cols} + kt * {k} + kl] = (float)W(nl, kl);",
        ]
    assert n_total % n == 0, "whole N tiles"
    lines += [
        f"  for (int n0 = 0; n0 < {n_total}; n0 += {n}) for (int kt = 0; kt < {k_cols // k}; ++kt) {{",
        *copies,
        *compute,
        "  }",
        f"  std::fwrite(out, 4, {n_total * k_cols}, stdout);",
        "  return 0;",
        "}",
    ]
    source = folder / "chain.cpp"
    source.write_text("\n".join(lines))
    exe = folder / "chain"
    subprocess.run([host_compiler(), "-std=c++17", "-O1", "-o", str(exe), str(source)], check=True)
    out = subprocess.run([str(exe)], cwd=folder, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32).reshape(n_total, k_cols)


@pytest.mark.parametrize(
    ("wide", "paired"), [(True, False), (False, False), (False, True)], ids=["64-bit", "32-bit", "32-bit-pairs"]
)
@pytest.mark.parametrize("scheme", ["q3p5:g=32", "q3p5:g=32:container=byte", "int4:g=32", "int8", "q4_0", "q8_0"])
def test_the_printed_chain_dequantizes_as_the_reference(
    scheme: str, wide: bool, paired: bool, compile_model: Callable[..., dict[str, ModuleOp]], tmp_path: Path
) -> None:
    module = compile_model("tiny", scheme)["decode"]
    fn = next(
        op
        for op in module.ops
        if isinstance(op, func.FuncOp) and is_kernel_function(op) and op.sym_name.data.startswith("linear.1x64x64.")
    )
    fmt = get(scheme)
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((64, 64)).astype(np.float32)
    qt = fmt.quantize(weights)
    storage = {"codes": qt.packed.view(_signed(qt.packed.dtype))}
    if qt.scale is not None:
        storage["scale"] = qt.scale
    if qt.offset is not None:
        storage["offset"] = qt.offset
    printed = harness(fn, tmp_path, storage, wide, paired)
    expected = fmt.dequantize(qt).astype(np.float32)
    np.testing.assert_allclose(printed, expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def _signed(dtype: np.dtype) -> np.dtype:
    return {np.dtype(np.uint32): np.dtype(np.int32), np.dtype(np.uint8): np.dtype(np.int8)}.get(dtype, dtype)
