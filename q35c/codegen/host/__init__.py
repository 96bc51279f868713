"""Native code for the host: the host pipeline's final IR through mlir-opt, mlir-translate and clang into a shared
library with a C entry per kernel and per model step (`library`), called from Python (`runtime`) and timed by
`q35c run` (`measure`). See docs/host-code.md."""
