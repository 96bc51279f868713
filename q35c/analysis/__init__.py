"""Analyses: pure functions over compiled IR (no rewriting): alias graphs (`opgraph`), buffer liveness and peak
bytes per memory level (`liveness`), and the work each kernel does (`kernels`), gathered into a `Workload` per
module (`workload`) for the cost models. Passes and targets call them; they import only the IR layer."""
