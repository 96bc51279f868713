"""Code that runs, from the final IR of a target pipeline: host/ (native shared libraries), cuda/ (CUDA kernels)."""
