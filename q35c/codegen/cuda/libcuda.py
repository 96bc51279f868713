"""The CUDA driver API through ctypes on `libcuda.so.1`: just what a device run needs, nothing to install.

    cuda = Cuda.open()                      # Q35Error "no CUDA device is visible to this process: ..." (exit 2)
    module = cuda.load(cubin_bytes)
    kernel = cuda.function(module, "main_00_embed")
    buffer = cuda.alloc(nbytes); cuda.upload(buffer, array)
    cuda.launch(kernel, grid, block, smem, [buffer, ...], cooperative=False)
    cuda.synchronize()

Every call's result is checked: a failure raises `CudaError` naming the call and the driver's error name and
text (`cuModuleLoadData: CUDA_ERROR_INVALID_IMAGE (device kernel image is invalid)`). The context is the
device's primary context (`cuDevicePrimaryCtxRetain`), the one the CUDA runtime uses too; launches go to the
legacy default stream. Symbols are the versioned ones `cuda.h` maps its names to (`cuMemAlloc_v2`, ...).
`debug`, when given, receives a line for each step of opening the device and for each kernel prepared
(registers, shared memory, resident blocks), for debugging on a device.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.util.errors import Q35Error

LIBRARY = "libcuda.so.1"
LIBRARY_ENV = "Q35C_LIBCUDA"  # another path to the driver library (a test points it at a missing file)
SUCCESS = 0

# CUdevice_attribute, CUfunction_attribute (cuda.h)
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
ATTR_COOPERATIVE_LAUNCH = 95
ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97
FUNC_NUM_REGS = 4
FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
STATIC_SHARED_LIMIT = 48 * 1024  # dynamic shared memory above this needs the attribute set first


class CudaError(RuntimeError):
    """A driver call that failed: `call` is its name, `code` the CUresult."""

    def __init__(self, call: str, code: int, name: str, text: str) -> None:
        super().__init__(f"{call}: {name} ({text})")
        self.call = call
        self.code = code


def no_device(reason: str) -> Q35Error:
    return Q35Error(f"no CUDA device is visible to this process: {reason}")


def pack_arguments(values: Sequence[int]) -> tuple[Any, Any]:
    """cuLaunchKernel's `kernelParams` for 8-byte parameters (device pointers, 64-bit integers): an array of
    `void*`, entry i pointing at a 64-bit slot holding value i, and a null entry after the last (the driver
    reads as many as the kernel has; the null lets a reader without the signature find the end). Returns
    (params, slots); keep both alive until the launch returns."""
    count = len(values)
    slots = (ctypes.c_uint64 * max(count, 1))(*values)
    base = ctypes.addressof(slots)
    size = ctypes.sizeof(ctypes.c_uint64)
    params = (ctypes.c_void_p * (count + 1))(*[base + i * size for i in range(count)], None)
    return params, slots


@dataclass(frozen=True)
class DeviceInfo:
    ordinal: int
    name: str
    major: int
    minor: int
    multiprocessors: int
    total_bytes: int
    driver_version: int  # 13000 for 13.0
    cooperative: bool
    max_shared_optin: int

    @property
    def arch(self) -> str:
        return f"sm_{self.major}{self.minor}"

    def describe(self) -> str:
        major, minor = divmod(self.driver_version, 1000)
        return (
            f"{self.name} ({self.arch}, {self.multiprocessors} SMs, {self.total_bytes / 2**30:.0f} GiB, "
            f"CUDA driver {major}.{minor // 10})"
        )


class Cuda:
    """An initialised driver with the primary context of one device current on this thread."""

    def __init__(self, lib: Any, device: int, context: Any, info: DeviceInfo, debug: Callable[[str], None]) -> None:
        self._lib = lib
        self._device = device
        self._context = context
        self.info = info
        self._debug = debug
        self._elapsed = _symbol(lib, "cuEventElapsedTime_v2") or _symbol(lib, "cuEventElapsedTime")

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, ordinal: int = 0, debug: Callable[[str], None] | None = None) -> Cuda:
        """Load the driver, initialise it and make device `ordinal`'s primary context current; Q35Error (exit 2)
        when there is no driver library, cuInit fails or there is no such device."""
        say = debug or (lambda line: None)
        path = os.environ.get(LIBRARY_ENV) or LIBRARY
        try:
            lib = ctypes.CDLL(path)
        except OSError as err:
            raise no_device(f"cannot load the CUDA driver library {path} ({err})") from None
        say(f"loaded {path}")
        _declare(lib)
        code = lib.cuInit(0)
        if code != SUCCESS:
            raise no_device(f"cuInit failed: {_describe(lib, code)}") from None
        count = ctypes.c_int(0)
        code = lib.cuDeviceGetCount(ctypes.byref(count))
        if code != SUCCESS:
            raise no_device(f"cuDeviceGetCount failed: {_describe(lib, code)}") from None
        say(f"cuDeviceGetCount: {count.value}")
        if count.value <= ordinal:
            raise no_device(f"the driver reports {count.value} device(s)")
        check = _checker(lib)
        device = ctypes.c_int(0)
        check("cuDeviceGet", lib.cuDeviceGet(ctypes.byref(device), ordinal))
        name = ctypes.create_string_buffer(256)
        check("cuDeviceGetName", lib.cuDeviceGetName(name, 256, device))

        def attribute(which: int) -> int:
            value = ctypes.c_int(0)
            check("cuDeviceGetAttribute", lib.cuDeviceGetAttribute(ctypes.byref(value), which, device))
            return value.value

        total = ctypes.c_size_t(0)
        check("cuDeviceTotalMem_v2", lib.cuDeviceTotalMem_v2(ctypes.byref(total), device))
        version = ctypes.c_int(0)
        check("cuDriverGetVersion", lib.cuDriverGetVersion(ctypes.byref(version)))
        info = DeviceInfo(
            ordinal=ordinal,
            name=name.value.decode(errors="replace"),
            major=attribute(ATTR_COMPUTE_CAPABILITY_MAJOR),
            minor=attribute(ATTR_COMPUTE_CAPABILITY_MINOR),
            multiprocessors=attribute(ATTR_MULTIPROCESSOR_COUNT),
            total_bytes=total.value,
            driver_version=version.value,
            cooperative=attribute(ATTR_COOPERATIVE_LAUNCH) != 0,
            max_shared_optin=attribute(ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
        )
        context = ctypes.c_void_p()
        check("cuDevicePrimaryCtxRetain", lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device))
        check("cuCtxSetCurrent", lib.cuCtxSetCurrent(context))
        say(f"device {ordinal}: {info.describe()}")
        return cls(lib, device.value, context, info, say)

    def close(self) -> None:
        """Release the primary context (memory and modules of this process go with it when it is the last)."""
        if self._context is not None:
            self._check("cuCtxSynchronize", self._lib.cuCtxSynchronize())
            self._check("cuDevicePrimaryCtxRelease_v2", self._lib.cuDevicePrimaryCtxRelease_v2(self._device))
            self._context = None

    def __enter__(self) -> Cuda:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        # after an error the process exits; the driver reclaims the context

    # -- calls -----------------------------------------------------------------------------------------------

    def _check(self, call: str, code: int) -> None:
        _checker(self._lib)(call, code)

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes of device memory."""
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._check("cuMemGetInfo_v2", self._lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)))
        return free.value, total.value

    def load(self, image: bytes) -> Any:
        """Load a cubin (or fatbin) image; the module handle."""
        module = ctypes.c_void_p()
        buffer = ctypes.create_string_buffer(image, len(image))
        self._check("cuModuleLoadData", self._lib.cuModuleLoadData(ctypes.byref(module), buffer))
        return module

    def function(self, module: Any, name: str) -> Any:
        handle = ctypes.c_void_p()
        code = self._lib.cuModuleGetFunction(ctypes.byref(handle), module, name.encode())
        self._check(f"cuModuleGetFunction({name})", code)
        return handle

    def prepare(self, function: Any, name: str, threads: int, smem: int) -> int:
        """Allow `smem` bytes of dynamic shared memory (above 48 KB it must be asked for) and return how many
        blocks of `threads` threads fit on one SM at once (the occupancy calculator)."""
        if smem > STATIC_SHARED_LIMIT:
            code = self._lib.cuFuncSetAttribute(function, FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem)
            self._check(f"cuFuncSetAttribute({name}, max dynamic shared memory {smem})", code)
        blocks = ctypes.c_int(0)
        code = self._lib.cuOccupancyMaxActiveBlocksPerMultiprocessor(
            ctypes.byref(blocks), function, threads, ctypes.c_size_t(smem)
        )
        self._check(f"cuOccupancyMaxActiveBlocksPerMultiprocessor({name})", code)
        registers = ctypes.c_int(0)
        code = self._lib.cuFuncGetAttribute(ctypes.byref(registers), FUNC_NUM_REGS, function)
        self._check(f"cuFuncGetAttribute({name})", code)
        self._debug(f"{name}: {registers.value} registers, {smem} B dynamic smem, {blocks.value} block(s)/SM")
        return blocks.value

    def alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_uint64(0)
        self._check(f"cuMemAlloc_v2({nbytes})", self._lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(nbytes)))
        return pointer.value

    def free(self, pointer: int) -> None:
        self._check("cuMemFree_v2", self._lib.cuMemFree_v2(ctypes.c_uint64(pointer)))

    def upload(self, pointer: int, array: NDArray[Any]) -> None:
        data = np.ascontiguousarray(array)
        code = self._lib.cuMemcpyHtoD_v2(ctypes.c_uint64(pointer), data.ctypes.data_as(ctypes.c_void_p), data.nbytes)
        self._check(f"cuMemcpyHtoD_v2({data.nbytes})", code)

    def download(self, pointer: int, shape: Sequence[int], dtype: np.dtype[Any]) -> NDArray[Any]:
        out = np.empty(tuple(shape), dtype=dtype)
        code = self._lib.cuMemcpyDtoH_v2(out.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(pointer), out.nbytes)
        self._check(f"cuMemcpyDtoH_v2({out.nbytes})", code)
        return out

    def fill(self, pointer: int, value: int, nbytes: int) -> None:
        code = self._lib.cuMemsetD8_v2(ctypes.c_uint64(pointer), ctypes.c_ubyte(value), ctypes.c_size_t(nbytes))
        self._check("cuMemsetD8_v2", code)

    def copy(self, destination: int, source: int, nbytes: int) -> None:
        """A device-to-device copy on the default stream (ordered with the launches)."""
        code = self._lib.cuMemcpyDtoDAsync_v2(
            ctypes.c_uint64(destination), ctypes.c_uint64(source), ctypes.c_size_t(nbytes), None
        )
        self._check("cuMemcpyDtoDAsync_v2", code)

    def launch(
        self, function: Any, name: str, grid: int, threads: int, smem: int, values: Sequence[int], cooperative: bool
    ) -> None:
        """Launch a kernel whose parameters are all 8-byte values (device pointers, 64-bit integers) on the
        default stream: `grid` x 1 x 1 blocks of `threads` x 1 x 1."""
        params, slots = pack_arguments(values)
        if cooperative:
            code = self._lib.cuLaunchCooperativeKernel(function, grid, 1, 1, threads, 1, 1, smem, None, params)
            self._check(f"cuLaunchCooperativeKernel({name}, grid {grid}, block {threads}, smem {smem})", code)
        else:
            code = self._lib.cuLaunchKernel(function, grid, 1, 1, threads, 1, 1, smem, None, params, None)
            self._check(f"cuLaunchKernel({name}, grid {grid}, block {threads}, smem {smem})", code)
        del slots  # alive until here: the driver reads the values during the call

    def synchronize(self, after: str) -> None:
        """Wait for the device; a fault of an earlier launch is reported here, with `after` (what ran)."""
        self._check(f"cuCtxSynchronize (after {after})", self._lib.cuCtxSynchronize())

    def event(self) -> Any:
        handle = ctypes.c_void_p()
        self._check("cuEventCreate", self._lib.cuEventCreate(ctypes.byref(handle), 0))
        return handle

    def record(self, event: Any) -> None:
        self._check("cuEventRecord", self._lib.cuEventRecord(event, None))

    def elapsed_ms(self, start: Any, end: Any) -> float:
        value = ctypes.c_float(0.0)
        self._check("cuEventElapsedTime", self._elapsed(ctypes.byref(value), start, end))
        return float(value.value)

    def destroy(self, event: Any) -> None:
        self._check("cuEventDestroy_v2", self._lib.cuEventDestroy_v2(event))


def _symbol(lib: Any, name: str) -> Any:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p]
    return fn


_P = ctypes.c_void_p
_I = ctypes.c_int
_U = ctypes.c_uint
_Z = ctypes.c_size_t
_D = ctypes.c_uint64
_SIGNATURES: dict[str, list[Any]] = {
    "cuInit": [_U],
    "cuDriverGetVersion": [ctypes.POINTER(_I)],
    "cuDeviceGetCount": [ctypes.POINTER(_I)],
    "cuDeviceGet": [ctypes.POINTER(_I), _I],
    "cuDeviceGetName": [ctypes.c_char_p, _I, _I],
    "cuDeviceGetAttribute": [ctypes.POINTER(_I), _I, _I],
    "cuDeviceTotalMem_v2": [ctypes.POINTER(_Z), _I],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_P), _I],
    "cuDevicePrimaryCtxRelease_v2": [_I],
    "cuCtxSetCurrent": [_P],
    "cuCtxSynchronize": [],
    "cuMemGetInfo_v2": [ctypes.POINTER(_Z), ctypes.POINTER(_Z)],
    "cuModuleLoadData": [ctypes.POINTER(_P), _P],
    "cuModuleGetFunction": [ctypes.POINTER(_P), _P, ctypes.c_char_p],
    "cuFuncSetAttribute": [_P, _I, _I],
    "cuFuncGetAttribute": [ctypes.POINTER(_I), _I, _P],
    "cuOccupancyMaxActiveBlocksPerMultiprocessor": [ctypes.POINTER(_I), _P, _I, _Z],
    "cuMemAlloc_v2": [ctypes.POINTER(_D), _Z],
    "cuMemFree_v2": [_D],
    "cuMemcpyHtoD_v2": [_D, _P, _Z],
    "cuMemcpyDtoH_v2": [_P, _D, _Z],
    "cuMemcpyDtoDAsync_v2": [_D, _D, _Z, _P],
    "cuMemsetD8_v2": [_D, ctypes.c_ubyte, _Z],
    "cuLaunchKernel": [_P, _U, _U, _U, _U, _U, _U, _U, _P, _P, _P],
    "cuLaunchCooperativeKernel": [_P, _U, _U, _U, _U, _U, _U, _U, _P, _P],
    "cuEventCreate": [ctypes.POINTER(_P), _U],
    "cuEventRecord": [_P, _P],
    "cuEventDestroy_v2": [_P],
    "cuGetErrorName": [_I, ctypes.POINTER(ctypes.c_char_p)],
    "cuGetErrorString": [_I, ctypes.POINTER(ctypes.c_char_p)],
}


def _declare(lib: Any) -> None:
    """Argument and result types of every call used (a missing symbol: the driver is too old, exit 2)."""
    for name, argtypes in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise no_device(f"the CUDA driver library has no {name} (a driver older than CUDA 9?)") from None
        fn.restype = ctypes.c_int
        fn.argtypes = argtypes


def _describe(lib: Any, code: int) -> str:
    name, text = ctypes.c_char_p(), ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) != SUCCESS or name.value is None:
        return f"CUresult {code}"
    lib.cuGetErrorString(code, ctypes.byref(text))
    described = name.value.decode(errors="replace")
    return f"{described} ({text.value.decode(errors='replace')})" if text.value else described


def _checker(lib: Any) -> Callable[[str, int], None]:
    def check(call: str, code: int) -> None:
        if code != SUCCESS:
            name, text = ctypes.c_char_p(), ctypes.c_char_p()
            lib.cuGetErrorName(code, ctypes.byref(name))
            lib.cuGetErrorString(code, ctypes.byref(text))
            raise CudaError(
                call,
                code,
                name.value.decode(errors="replace") if name.value else f"CUresult {code}",
                text.value.decode(errors="replace") if text.value else "no description",
            )

    return check
