"""Prediction: what a model does on each target for a scenario (batch, prompt, generated tokens): compiles the
decode and prefill phases through the driver, runs each target's cost model, and collects per-target results."""
