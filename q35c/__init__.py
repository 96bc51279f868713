"""q35c: a compiler toolchain for quantized LLM inference."""

__version__ = "0.1.0"
