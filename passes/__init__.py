"""q35c's lowering passes, one file per pass (`materialize_weights`, `lower_graph`, `tile`, `unpack_bits`,
`schedule_memory`), the pure tile-size analysis they use (`tile_choice`), and shared IR builders (`_build/`).
Passes take what they need of a target as pass options; they never import `q35c.targets`."""
