/* A stand-in for libcuda.so.1 with the calls `q35c.codegen.cuda.libcuda` makes, for tests on machines without
 * a GPU. Memory is host memory (malloc, memcpy), so uploads, device-to-device copies and downloads really
 * happen; kernels do not run: each launch is written to the log ($Q35C_FAKE_CUDA_LOG) as
 *   launch|coop <kernel> <grid> <block> <smem> <param0> <param1> ...   (until the params' null entry)
 *   copy <dst> <src> <bytes>
 *   attr <kernel> <attribute> <value>
 * $Q35C_FAKE_CUDA_DEVICES sets the device count (default 1); $Q35C_FAKE_CUDA_FAIL names one call that fails
 * (CUDA_ERROR_INVALID_IMAGE for cuModuleLoadData, CUDA_ERROR_NO_DEVICE for cuInit, else CUDA_ERROR_UNKNOWN). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;

/* Each line is appended to the log named now and the file closed: nothing stays buffered, and a test that
 * names another log gets its own. */
static void fake_log(const char *format, ...) {
  const char *path = getenv("Q35C_FAKE_CUDA_LOG");
  FILE *out = path ? fopen(path, "a") : NULL;
  va_list args;
  va_start(args, format);
  vfprintf(out ? out : stderr, format, args);
  va_end(args);
  if (out) fclose(out);
}

static CUresult fails(const char *call, CUresult code) {
  const char *which = getenv("Q35C_FAKE_CUDA_FAIL");
  return which != NULL && strcmp(which, call) == 0 ? code : 0;
}

CUresult cuInit(unsigned flags) { (void)flags; return fails("cuInit", 100); }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) {
  const char *count = getenv("Q35C_FAKE_CUDA_DEVICES");
  *n = count ? atoi(count) : 1;
  return 0;
}
CUresult cuDeviceGet(int *d, int ordinal) { *d = ordinal; return 0; }
CUresult cuDeviceGetName(char *name, int len, int d) { (void)d; snprintf(name, (size_t)len, "Fake GPU"); return 0; }
CUresult cuDeviceGetAttribute(int *v, int attribute, int d) {
  (void)d;
  switch (attribute) {
    case 16: *v = 132; break;   /* multiprocessors */
    case 75: *v = 9; break;     /* compute capability major */
    case 76: *v = 0; break;     /* minor */
    case 95: *v = 1; break;     /* cooperative launch */
    case 97: *v = 232448; break; /* shared memory per block, opt-in */
    default: *v = 0;
  }
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int d) { (void)d; *bytes = (size_t)1 << 34; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { (void)d; *ctx = (void *)0x1; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return 0; }
CUresult cuCtxSetCurrent(void *ctx) { (void)ctx; return 0; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) { *free_bytes = *total = (size_t)1 << 34; return 0; }
CUresult cuModuleLoadData(void **module, const void *image) {
  (void)image;
  *module = (void *)0x2;
  return fails("cuModuleLoadData", 200);
}
CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  (void)module;
  *fn = strdup(name);
  return 0;
}
CUresult cuFuncSetAttribute(void *fn, int attribute, int value) {
  fake_log("attr %s %d %d\n", (const char *)fn, attribute, value);
  return 0;
}
CUresult cuFuncGetAttribute(int *v, int attribute, void *fn) { (void)attribute; (void)fn; *v = 40; return 0; }
CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, void *fn, int threads, size_t smem) {
  (void)fn; (void)smem;
  *blocks = threads > 256 ? 1 : 4;
  return 0;
}
CUresult cuMemAlloc_v2(uint64_t *p, size_t n) { *p = (uint64_t)(uintptr_t)calloc(1, n); return *p ? 0 : 2; }
CUresult cuMemFree_v2(uint64_t p) { free((void *)(uintptr_t)p); return 0; }
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n) { memcpy((void *)(uintptr_t)dst, src, n); return 0; }
CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n) { memcpy(dst, (const void *)(uintptr_t)src, n); return 0; }
CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void *stream) {
  (void)stream;
  memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  fake_log("copy %llu %llu %zu\n", (unsigned long long)dst, (unsigned long long)src, n);
  return 0;
}
CUresult cuMemsetD8_v2(uint64_t dst, unsigned char value, size_t n) { memset((void *)(uintptr_t)dst, value, n); return 0; }

static CUresult logged(const char *how, void *fn, unsigned grid, unsigned block, unsigned smem, void **params) {
  char line[4096];
  int used = snprintf(line, sizeof line, "%s %s %u %u %u", how, (const char *)fn, grid, block, smem);
  for (int i = 0; params[i] != NULL && used < (int)sizeof line - 32; ++i) {
    used += snprintf(line + used, sizeof line - (size_t)used, " %llu", (unsigned long long)*(const uint64_t *)params[i]);
  }
  fake_log("%s\n", line);
  return fails((const char *)fn, 719); /* CUDA_ERROR_LAUNCH_FAILED */
}

CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, void *stream, void **params, void **extra) {
  (void)gy; (void)gz; (void)by; (void)bz; (void)stream; (void)extra;
  return logged("launch", fn, gx, bx, smem, params);
}
CUresult cuLaunchCooperativeKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                   unsigned bz, unsigned smem, void *stream, void **params) {
  (void)gy; (void)gz; (void)by; (void)bz; (void)stream;
  return logged("coop", fn, gx, bx, smem, params);
}
CUresult cuEventCreate(void **event, unsigned flags) { (void)flags; *event = malloc(1); return 0; }
CUresult cuEventRecord(void *event, void *stream) { (void)event; (void)stream; return 0; }
CUresult cuEventDestroy_v2(void *event) { free(event); return 0; }
CUresult cuEventElapsedTime(float *ms, void *start, void *end) { (void)start; (void)end; *ms = 0.002f; return 0; }

CUresult cuGetErrorName(CUresult code, const char **name) {
  switch (code) {
    case 100: *name = "CUDA_ERROR_NO_DEVICE"; break;
    case 200: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
    case 719: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
    default: *name = "CUDA_ERROR_UNKNOWN";
  }
  return 0;
}
CUresult cuGetErrorString(CUresult code, const char **text) {
  switch (code) {
    case 100: *text = "no CUDA-capable device is detected"; break;
    case 200: *text = "device kernel image is invalid"; break;
    case 719: *text = "unspecified launch failure"; break;
    default: *text = "unknown error";
  }
  return 0;
}
