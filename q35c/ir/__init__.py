"""The IR's vocabulary outside the dialect definitions: the names of every discardable `q35.*` attribute with
typed access (`attrs`), and quantization scheme spec strings with their storage layout (`schemes`)."""
