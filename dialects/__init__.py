"""The q35 dialects (xDSL IRDL): `q35` (the graph: packed weights, linear, embed, rmsnorm, rope, attention, ...)
and `q35_storage` (the bridge from a packed weight to the tensors that store it)."""
