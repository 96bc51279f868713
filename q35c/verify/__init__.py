"""Verification against real MLIR: lowers q35c's IR with the host pipeline, runs it with `mlir-opt`/`mlir-runner`
(`mlir_tools`, `harness`), and compares it with the numpy reference (`reference`) for single linears (`linear`) and
whole models (`model`)."""
