"""The compute of one step of a linear kernel (`q35c.codegen.cuda.linear`), on the current ring slot.

Both read the step's operands through the kernel's lambdas `X(t, k)` and `W(n, k)` (the IR's element chain;
where K is even, `X0`/`X1(t, kk)` and `W0`/`W1(n, kk)` at k = 2 kk + u instead) and write `y` through `epi`
(the IR's epilogue):

- `gemv_step`: a warp per weight row (`nl`), lanes along K (PAIR neighbouring columns per lane and step), up to
  `GEMV_ROWS` activation rows at once through the IR's multiply-accumulate body (`mac`), a warp sum per row;
  with several K tiles the partial sums wait in shared memory (`PART`, the IR's accumulator) until the last one;
- `mma_step`: per `mma_chunk` columns of K, the weights and activations dequantized into f16 tiles in shared
  memory (`WH`, `XH`), then `nvcuda::wmma` 16x16x16 MMAs into each warp's accumulator fragments; after the last K
  tile each fragment goes through a per-warp scratch tile to `y`.
"""

from __future__ import annotations

from q35c.codegen.cuda.cexpr import ilit

MMA = 16
PAD = 8  # f16 elements of padding per row of the MMA staging tiles (rows stay 16-byte aligned: ld = chunk + 8)
GEMV_ROWS = 8  # activation rows a warp accumulates at once on the GEMV path
MMA_CHUNK = 64  # K columns dequantized per round of tensor-core MMAs (two barriers per round)
PAIR = 2  # neighbouring K columns a GEMV lane takes per step (`W0`/`W1`: one index computation for both)


def gemv_step(tile_t: int, tile_n: int, out_elem: str, partial: bool, threads: int, paired: bool) -> list[str]:
    rows = min(tile_t, GEMV_ROWS)
    store = [
        "            float total = sum[r];",
        f"            if (kt > 0) total += PART[t * {ilit(tile_n)} + nl];" if partial else "",
        f"            if (kt + 1 < KT) {{ PART[t * {ilit(tile_n)} + nl] = total; }}" if partial else "",
        "            else { y[(yrow + t) * N + ycol + nl] = epi(total, (" + out_elem + ")0); }"
        if partial
        else "            y[(yrow + t) * N + ycol + nl] = epi(total, (" + out_elem + ")0);",
    ]
    return [
        f"    for (q35_i nl = warp; nl < nv; nl += {threads // 32}) {{",
        f"      for (q35_i tb = 0; tb < tv; tb += {rows}) {{",
        f"        float sum[{rows}];",
        "#pragma unroll",
        f"        for (int r = 0; r < {rows}; ++r) sum[r] = 0.0f;",
        *(
            [
                f"        for (q35_i kk = lane; kk < kv / {PAIR}; kk += 32) {{",
                *[f"          const auto w{u} = W{u}(nl, kk);" for u in range(PAIR)],
                "#pragma unroll",
                f"          for (int r = 0; r < {rows}; ++r) {{",
                "            if (tb + r < tv) {",
                *[f"              sum[r] = mac(X{u}(tb + r, kk), w{u}, sum[r]);" for u in range(PAIR)],
                "            }",
                "          }",
                "        }",
            ]
            if paired
            else [
                "        for (q35_i k = lane; k < kv; k += 32) {",
                "          const auto w = W(nl, k);",
                "#pragma unroll",
                f"          for (int r = 0; r < {rows}; ++r) {{",
                "            if (tb + r < tv) sum[r] = mac(X(tb + r, k), w, sum[r]);",
                "          }",
                "        }",
            ]
        ),
        "#pragma unroll",
        f"        for (int r = 0; r < {rows}; ++r) {{",
        "          sum[r] = q35_warp_sum(sum[r]);",
        "          const q35_i t = tb + r;",
        "          if (lane == 0 && t < tv) {",
        *[x for x in store if x],
        "          }",
        "        }",
        "      }",
        "    }",
    ]


def mma_chunk(tile_k: int) -> int:
    """K columns dequantized into f16 per round of MMAs: up to MMA_CHUNK (fewer barriers per K tile, more MMAs
    per warp between two), whole 16-column MMA steps."""
    return max(MMA, min(MMA_CHUNK, -(-tile_k // MMA) * MMA))


def mma_step(tile_t: int, threads: int, chunk: int, paired: bool) -> list[str]:
    ld = chunk + PAD
    warps = threads // 32
    fill = [
        *_dequantize(paired, "WH", "W", "n", "TILES_NN * 16", "nv", chunk, ld, threads),
        *_dequantize(paired, "XH", "X", "t", ilit(tile_t), "tv", chunk, ld, threads),
    ]
    return [
        "    if (kt == 0) {",
        "#pragma unroll",
        "      for (int f = 0; f < FRAGS; ++f) wmma::fill_fragment(acc[f], 0.0f);",
        "    }",
        f"    for (q35_i kc = 0; kc < kv; kc += {chunk}) {{",
        *fill,
        "      __syncthreads();",
        "#pragma unroll 1",  # one 16-column step at a time: only one step's fragments live in registers
        f"      for (int ks = 0; ks < {chunk}; ks += 16) {{",
        "#pragma unroll",
        "        for (int f = 0; f < FRAGS; ++f) {",
        f"          const int id = f * {warps} + warp;",
        "          if (id < TILES_M * TILES_NN) {",
        "            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;",
        "            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;",
        f"            wmma::load_matrix_sync(a, XH + (id / TILES_NN) * 16 * {ld} + ks, {ld});",
        f"            wmma::load_matrix_sync(b, WH + (id % TILES_NN) * 16 * {ld} + ks, {ld});",
        "            wmma::mma_sync(acc[f], a, b, acc[f]);",
        "          }",
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
        "            const q35_i t = (id / TILES_NN) * 16 + e / 16, n = (id % TILES_NN) * 16 + e % 16;",
        "            if (t < tv && n < nv) y[(yrow + t) * N + ycol + n] = epi(SCR[e], __float2half_rn(0.0f));",
        "          }",
        "          __syncwarp();",
        "        }",
        "      }",
        "    }",
    ]


def _dequantize(
    paired: bool, dst: str, read: str, row: str, rows: str, valid: str, chunk: int, ld: int, threads: int
) -> list[str]:
    """The loop that fills `rows` rows of the f16 staging tile `dst` (row stride `ld`) with columns
    [kc, kc + chunk) of the operand `read` (zero outside `valid` rows and `kv` columns): two neighbouring
    columns per thread and step through `read`0/`read`1 where `paired`, else one through `read`."""
    if not paired:
        return [
            f"      for (q35_i i = threadIdx.x; i < {rows} * {chunk}; i += {threads}) {{",
            f"        const q35_i {row} = i / {chunk}, k = i % {chunk};",
            f"        {dst}[{row} * {ld} + k] = __float2half_rn(({row} < {valid} && kc + k < kv) ? "
            f"(float){read}({row}, kc + k) : 0.0f);",
            "      }",
        ]
    half = chunk // 2
    return [
        f"      for (q35_i i = threadIdx.x; i < {rows} * {half}; i += {threads}) {{",
        f"        const q35_i {row} = i / {half}, kp = i % {half}, kk = kc / 2 + kp;",
        f"        const bool ok0 = {row} < {valid} && 2 * kk < kv, ok1 = {row} < {valid} && 2 * kk + 1 < kv;",
        f"        {dst}[{row} * {ld} + 2 * kp] = __float2half_rn(ok0 ? (float){read}0({row}, kk) : 0.0f);",
        f"        {dst}[{row} * {ld} + 2 * kp + 1] = __float2half_rn(ok1 ? (float){read}1({row}, kk) : 0.0f);",
        "      }",
    ]
