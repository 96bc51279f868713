"""The compute of one step of a linear kernel (`q35c.codegen.cuda.linear`), on the current ring slot.

Both read the step's operands through the kernel's lambdas `X(t, k)` and `W(n, k)` (the IR's element chain)
and write `y` through `epi` (the IR's epilogue):

- `gemv_step`: a warp per weight row (`nl`), lanes along K, up to `GEMV_ROWS` activation rows at once through
  the IR's multiply-accumulate body (`mac`), a warp sum per row; with several K tiles the partial sums wait in
  shared memory (`PART`, the IR's accumulator) until the last one;
- `mma_step`: per 16 columns of K, the weights and activations dequantized into f16 tiles in shared memory
  (`WH`, `XH`), then `nvcuda::wmma` 16x16x16 MMAs into each warp's accumulator fragments; after the last K
  tile each fragment goes through a per-warp scratch tile to `y`.
"""

from __future__ import annotations

MMA = 16
PAD = 8  # f16 elements of padding per row of the MMA staging tiles (keeps rows 16-byte aligned, ld = 24)
GEMV_ROWS = 8  # activation rows a warp accumulates at once on the GEMV path


def gemv_step(tile_t: int, tile_n: int, out_elem: str, partial: bool, threads: int) -> list[str]:
    rows = min(tile_t, GEMV_ROWS)
    store = [
        "            float total = sum[r];",
        f"            if (kt > 0) total += PART[t * {tile_n}LL + nl];" if partial else "",
        f"            if (kt + 1 < KT) {{ PART[t * {tile_n}LL + nl] = total; }}" if partial else "",
        "            else { y[(yrow + t) * N + ycol + nl] = epi(total, (" + out_elem + ")0); }"
        if partial
        else "            y[(yrow + t) * N + ycol + nl] = epi(total, (" + out_elem + ")0);",
    ]
    return [
        f"    for (long long nl = warp; nl < nv; nl += {threads // 32}) {{",
        f"      for (long long tb = 0; tb < tv; tb += {rows}) {{",
        f"        float sum[{rows}];",
        "#pragma unroll",
        f"        for (int r = 0; r < {rows}; ++r) sum[r] = 0.0f;",
        "        for (long long k = lane; k < kv; k += 32) {",
        "          const auto w = W(nl, k);",
        "#pragma unroll",
        f"          for (int r = 0; r < {rows}; ++r) {{",
        "            if (tb + r < tv) sum[r] = mac(X(tb + r, k), w, sum[r]);",
        "          }",
        "        }",
        "#pragma unroll",
        f"        for (int r = 0; r < {rows}; ++r) {{",
        "          sum[r] = q35_warp_sum(sum[r]);",
        "          const long long t = tb + r;",
        "          if (lane == 0 && t < tv) {",
        *[x for x in store if x],
        "          }",
        "        }",
        "      }",
        "    }",
    ]


def mma_step(tile_t: int, threads: int) -> list[str]:
    ld = MMA + PAD
    warps = threads // 32
    return [
        "    if (kt == 0) {",
        "#pragma unroll",
        "      for (int f = 0; f < FRAGS; ++f) wmma::fill_fragment(acc[f], 0.0f);",
        "    }",
        "    for (long long kc = 0; kc < kv; kc += 16) {",
        f"      for (long long i = threadIdx.x; i < TILES_NN * 16LL * 16LL; i += {threads}) {{",
        "        const long long n = i / 16, k = i % 16;",
        f"        WH[n * {ld} + k] = __float2half_rn((n < nv && kc + k < kv) ? (float)W(n, kc + k) : 0.0f);",
        "      }",
        f"      for (long long i = threadIdx.x; i < {tile_t}LL * 16LL; i += {threads}) {{",
        "        const long long t = i / 16, k = i % 16;",
        f"        XH[t * {ld} + k] = __float2half_rn((t < tv && kc + k < kv) ? (float)X(t, kc + k) : 0.0f);",
        "      }",
        "      __syncthreads();",
        "#pragma unroll",
        "      for (int f = 0; f < FRAGS; ++f) {",
        f"        const int id = f * {warps} + warp;",
        "        if (id < TILES_M * TILES_NN) {",
        "          wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;",
        "          wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;",
        f"          wmma::load_matrix_sync(a, XH + (id / TILES_NN) * 16 * {ld}, {ld});",
        f"          wmma::load_matrix_sync(b, WH + (id % TILES_NN) * 16 * {ld}, {ld});",
        "          wmma::mma_sync(acc[f], a, b, acc[f]);",
        "        }",
        "      }",
        "      __syncthreads();",
        "    }",
        "    if (kt + 1 == KT) {",
        "#pragma unroll",
        "      for (int f = 0; f < FRAGS; ++f) {",
        f"        const int id = f * {warps} + warp;",
        "        if (id < TILES_M * TILES_NN) {",
        "          wmma::store_matrix_sync(SCR, acc[f], 16, wmma::mem_row_major);",
        "          __syncwarp();",
        "          for (int e = lane; e < 256; e += 32) {",
        "            const long long t = (id / TILES_NN) * 16 + e / 16, n = (id % TILES_NN) * 16 + e % 16;",
        "            if (t < tv && n < nv) y[(yrow + t) * N + ycol + n] = epi(SCR[e], __float2half_rn(0.0f));",
        "          }",
        "          __syncwarp();",
        "        }",
        "      }",
        "    }",
    ]
