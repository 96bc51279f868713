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
from xdsl.dialects.builtin import ModuleOp, StringAttr

from q35c.analysis.kernels import arg_attrs
from q35c.analysis.workload import is_kernel_function
from q35c.codegen.cuda.linear import element_chain
from q35c.formats import get

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


def harness(fn: func.FuncOp, folder: Path, storage: dict[str, np.ndarray]) -> np.ndarray:
    """Compile and run the element chain of `fn` on `storage` (by q35.storage role); W as an [N, K] array."""
    chain = element_chain(fn, "__half")
    roles = [attrs.data.get("q35.storage") for attrs in arg_attrs(fn)]
    lines = [SHIM, "int main() {"]
    for i, leaf in enumerate(chain.leaves):
        assert not leaf.ring, "the tiny model's decode tiles are whole tensors"
        role = roles[leaf.arg]
        if leaf.arg == 0:  # the activations: W does not read them
            lines.append(f"  static {leaf.elem} L{i}[{leaf.rows * leaf.cols}] = {{}};")
            continue
        assert isinstance(role, StringAttr)
        data = storage[role.data]
        assert data.size == leaf.rows * leaf.cols and data.itemsize == leaf.size
        data.tofile(folder / f"L{i}.bin")
        lines += [
            f"  static {leaf.elem} L{i}[{data.size}];",
            f'  {{ FILE* f = std::fopen("L{i}.bin", "rb"); std::fread(L{i}, {leaf.size}, {data.size}, f);'
            " std::fclose(f); }",
        ]
    n_rows = next(leaf.rows for leaf in chain.leaves if leaf.arg != 0)
    k_cols = int(fn.args[0].type.get_shape()[1])  # type: ignore[attr-defined]
    lines += [f"  {line}" for line in chain.lambdas]
    lines += [
        f"  auto W = [&](long long n, long long k) -> {chain.w_type} {{ return {chain.w_read}; }};",
        f"  for (long long n = 0; n < {n_rows}; ++n) for (long long k = 0; k < {k_cols}; ++k) {{",
        "    const float w = (float)W(n, k); std::fwrite(&w, 4, 1, stdout); }",
        "  return 0;",
        "}",
    ]
    source = folder / "chain.cpp"
    source.write_text("\n".join(lines))
    exe = folder / "chain"
    subprocess.run([host_compiler(), "-std=c++17", "-O1", "-o", str(exe), str(source)], check=True)
    out = subprocess.run([str(exe)], cwd=folder, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32).reshape(n_rows, k_cols)


@pytest.mark.parametrize("scheme", ["q3p5:g=32", "q3p5:g=32:container=byte", "int4:g=32", "int8", "q4_0", "q8_0"])
def test_the_printed_chain_dequantizes_as_the_reference(
    scheme: str, compile_model: Callable[..., dict[str, ModuleOp]], tmp_path: Path
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
    printed = harness(fn, tmp_path, storage)
    expected = fmt.dequantize(qt).astype(np.float32)
    np.testing.assert_allclose(printed, expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def _signed(dtype: np.dtype) -> np.dtype:
    return {np.dtype(np.uint32): np.dtype(np.int32), np.dtype(np.uint8): np.dtype(np.int8)}.get(dtype, dtype)
