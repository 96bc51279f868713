"""What requantizing a real model's weights costs: a numpy forward pass over a GGUF file's weights, the schemes as
encode/decode round trips, perplexity, KL divergence and top-1 agreement on a text corpus, q3p5 slot
assignment, and the containers `q35c quantize` writes (docs/accuracy.md)."""
