"""The driver: loads a model, runs a target's pipeline of named stages through the one pass runner (IR printing and
dumps after each stage, errors, shared prefixes of several pipelines), and caches compiled workloads by the stages
actually run."""
