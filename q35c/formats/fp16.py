"""fp16 and f32: the weights as float16 (rounded) or float32. No integer codes and no metadata: the stored array
is the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from q35c.formats.base import F32, FP16_MAX, I8, Format, QuantizedTensor, first_index


@dataclass(frozen=True)
class Fp16Format(Format):
    """fp16: the weights rounded to float16; no codes, no metadata."""

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        with np.errstate(over="ignore"):
            half = a.astype(np.float16)
        over = np.isinf(half)
        if over.any():
            n, k = first_index(over)
            raise ValueError(
                f"{self.name}: {int(over.sum())} weights overflow float16 (max {FP16_MAX:g}); "
                f"first at [{n}, {k}] = {a[n, k]:g}"
            )
        return QuantizedTensor(half, None, None, (a.shape[0], a.shape[1]), self.scheme)

    def dequantize(self, qt: QuantizedTensor) -> F32:
        self._check_tensor(qt)
        return qt.packed.astype(np.float32)

    def pack(self, codes: NDArray[Any], scale: NDArray[Any] | None = None) -> NDArray[Any]:
        raise ValueError("fp16 has no integer codes to pack; quantize() stores the float16 weights directly")

    def unpack(self, packed: NDArray[Any]) -> I8:
        raise ValueError("fp16 has no integer codes to unpack; the packed array is the float16 weights")


@dataclass(frozen=True)
class F32Format(Fp16Format):
    """f32: the weights as float32 (GGUF's F32 tensors, usually norm gains); no codes, no metadata."""

    def quantize(self, w: NDArray[Any]) -> QuantizedTensor:
        a = self._weights(w)
        return QuantizedTensor(a.copy(), None, None, (a.shape[0], a.shape[1]), self.scheme)
