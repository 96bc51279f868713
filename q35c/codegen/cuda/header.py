"""`q35_cuda.h`: what every emitted kernel includes (types, cp.async staging, reductions, the grid barrier).

Staging (`q35_stage`) copies a tile of a row-major global array into shared memory: 16-byte `cp.async.cg`
copies where rows and addresses allow (128-bit transfers), else 4-byte `cp.async.ca`, else plain loads; elements
outside the array are zero-filled, so remainder tiles need no separate code. `q35_commit`/`q35_wait<N>` are the
copy groups that double buffering waits on (sm_80 and later).
"""

HEADER = r"""// q35_cuda.h: helpers shared by the kernels q35c emits (sm_80 and later).
#pragma once
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cooperative_groups.h>
#include <mma.h>

__device__ __forceinline__ float q35_to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float q35_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ void q35_grid_sync() { cooperative_groups::this_grid().sync(); }

__device__ __forceinline__ float q35_warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float q35_warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ float q35_warp_min(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// A block-wide reduction (every thread of the block calls it; the result is thread 0's): each warp's value
// through shared memory, then warp 0 combines them. The barrier first keeps the buffer of the previous call.
#define Q35_BLOCK_REDUCE(name, warp_op, identity)                                  \
  __device__ __forceinline__ float name(float v) {                                 \
    __shared__ float q35_part[32];                                                 \
    v = warp_op(v);                                                                \
    __syncthreads();                                                               \
    if (threadIdx.x % 32 == 0) q35_part[threadIdx.x / 32] = v;                     \
    __syncthreads();                                                               \
    if (threadIdx.x < 32) {                                                        \
      v = threadIdx.x < (blockDim.x + 31) / 32 ? q35_part[threadIdx.x] : identity; \
      v = warp_op(v);                                                              \
    }                                                                              \
    return v;                                                                      \
  }
Q35_BLOCK_REDUCE(q35_block_sum, q35_warp_sum, 0.0f)
Q35_BLOCK_REDUCE(q35_block_max, q35_warp_max, -INFINITY)
Q35_BLOCK_REDUCE(q35_block_min, q35_warp_min, INFINITY)

__device__ __forceinline__ void q35_cp_async16(void* dst, const void* src) {
  const unsigned int d = static_cast<unsigned int>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
}

__device__ __forceinline__ void q35_cp_async4(void* dst, const void* src) {
  const unsigned int d = static_cast<unsigned int>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(src) : "memory");
}

__device__ __forceinline__ void q35_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void q35_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Copy rows [r0, r0+R) x columns [c0, c0+C) of a row-major [rows x cols] array of E-byte elements into a
// dense R x C tile in shared memory; what lies outside the array is zero.
template <int E>
__device__ __forceinline__ void q35_stage(void* dst, const void* src, long long rows, long long cols, long long r0,
                                          long long c0, int R, int C) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  const long long rv = rows - r0 < R ? rows - r0 : R;
  const long long cv = cols - c0 < C ? cols - c0 : C;
  const long long row_bytes = (long long)C * E;
  const char* base = s + (r0 * cols + c0) * E;
  if (rv == R && cv == C && C == cols && (long long)R * C * E % 16 == 0 &&
      reinterpret_cast<uintptr_t>(base) % 16 == 0) {  // whole rows: one contiguous range
    for (long long i = threadIdx.x; i < (long long)R * C * E / 16; i += blockDim.x) {
      q35_cp_async16(d + i * 16, base + i * 16);
    }
    return;
  }
  if (rv == R && cv == C && row_bytes % 16 == 0 && (cols * E) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(base) % 16 == 0) {
    const long long chunks = row_bytes / 16;
    for (long long i = threadIdx.x; i < R * chunks; i += blockDim.x) {
      const long long r = i / chunks, k = i % chunks;
      q35_cp_async16(d + r * row_bytes + k * 16, base + r * cols * E + k * 16);
    }
    return;
  }
  for (long long i = threadIdx.x; i < (long long)R * C; i += blockDim.x) {
    const long long r = i / C, c = i % C;
    char* to = d + i * E;
    if (r < rv && c < cv) {
      const char* from = base + (r * cols + c) * E;
      if (E == 4) {
        q35_cp_async4(to, from);
      } else {
#pragma unroll
        for (int b = 0; b < E; ++b) to[b] = from[b];
      }
    } else {
#pragma unroll
      for (int b = 0; b < E; ++b) to[b] = 0;
    }
  }
}
"""
