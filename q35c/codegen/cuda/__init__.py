"""CUDA kernels from the GPU pipeline's final IR (`q35c build --emit cuda`; docs/cuda.md).

    emitted = cuda_phases("h100-sxm", keys)          # {"decode": PhaseSources, "prefill": PhaseSources}
    write_phases(emitted, Path("out/cuda"))

`emit` drives it, `linear` and `phases` make the kernels, `launch` the host entry points, `toolkit` runs nvcc
and ptxas, `resources` makes the ptxas data the GPU cost model reads (`targets/data/cuda_resources.json`).
"""
