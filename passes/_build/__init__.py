"""Shared IR builders for the passes: linalg generics and named ops (`linalg`), code unpacking bodies
(`unpack_codes`), and the staging and double-buffering of kernel tiles (`staging`, `double_buffer`)."""
