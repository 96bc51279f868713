"""The LLaMA-family decoder as a graph, built from a handful of numbers (a `LlamaConfig`).

config.json and GGUF imports describe their model with a LlamaConfig and build it here. The graph is the one
examples/*.q35 spell out in the model language, statement for statement, so both forms of a model give the
same IR (tests/test_frontend_hf.py checks this). Weight names are the model language's: `embed_tokens`,
`decoder.{i}.q_proj`, ..., `norm`, `lm_head`.

>>> cfg = LlamaConfig("t", vocab=256, hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, ffn=128)
>>> g = llama_graph(cfg, QuantPolicy(parse_scheme("fp16")), "t.json")
>>> len(g.weights), sum(w.params for w in g.weights)
(21, 106816)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from q35c.frontend.builder import BodyBuilder
from q35c.frontend.graph import Block, Graph, TensorType, Value, weight_uses
from q35c.frontend.quant import QuantPolicy, assign_schemes
from q35c.ir.schemes import parse_scheme
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_DIM, MAX_LAYERS, float_error, integer_error

# Linear layers of a decoder layer, in declaration order (shapes: LlamaConfig.shape).
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
# Checkpoints described by config.json are fp16/bf16: every weight fp16.
FP16_POLICY = QuantPolicy(parse_scheme("fp16"), (), "the checkpoint's precision (fp16)")


@dataclass(frozen=True)
class LlamaConfig:
    """The numbers that define a LLaMA-family decoder.

    `biases` names the linear layers that carry a bias vector (Qwen2: q_proj, k_proj, v_proj). The q35
    dialect has no bias operand yet, so biases are fp16 parameters of the layer (counted in parameters and
    weight bytes) that no op reads.
    """

    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    eps: float = 1e-5
    theta: float = 10000.0
    tied: bool = False
    biases: tuple[str, ...] = ()
    max_context: int | None = None

    def __post_init__(self) -> None:
        """Refuse numbers beyond q35c's limits (`q35c.util.limits`) before anything is built from them."""
        sizes = ("vocab", "hidden", "heads", "kv_heads", "head_dim", "ffn")
        for field in (*sizes, "layers"):
            problem = integer_error(getattr(self, field), f"{field}", MAX_LAYERS if field == "layers" else MAX_DIM)
            if problem is not None:
                raise Q35Error(f"the model's {problem}")
        for field in ("eps", "theta"):
            problem = float_error(getattr(self, field), field)
            if problem is not None:
                raise Q35Error(f"the model's {problem}")

    def shape(self, linear: str) -> tuple[int, int]:
        """[N, K] of a decoder linear layer."""
        q, kv, d, f = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.ffn
        return {
            "q_proj": (q, d),
            "k_proj": (kv, d),
            "v_proj": (kv, d),
            "o_proj": (d, q),
            "gate_proj": (f, d),
            "up_proj": (f, d),
            "down_proj": (d, f),
        }[linear]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every weight's full name and shape, as llama_graph names them."""
        shapes: dict[str, tuple[int, ...]] = {"embed_tokens": (self.vocab, self.hidden)}
        layer: dict[str, tuple[int, ...]] = {"input_layernorm": (self.hidden,)}
        for name in (*_ATTENTION, "post_attention_layernorm", *_MLP):
            if name == "post_attention_layernorm":
                layer[name] = (self.hidden,)
                continue
            layer[name] = self.shape(name)
            if name in self.biases:
                layer[name.replace("_proj", "_bias")] = (self.shape(name)[0],)
        for i in range(self.layers):
            shapes.update({f"decoder.{i}.{name}": shape for name, shape in layer.items()})
        shapes["norm"] = (self.hidden,)
        if not self.tied:
            shapes["lm_head"] = (self.vocab, self.hidden)
        return shapes


def _decoder(cfg: LlamaConfig, x: Value, pos: Value, context: int, b: BodyBuilder, loc: Location) -> Block:
    """The decoder layer, exactly as examples/*.q35 write it."""
    x = b.input("x", x.type, loc)  # type: ignore[arg-type]
    pos = b.input("pos", pos.type, loc)  # type: ignore[arg-type]
    w = {"input_layernorm": b.param("input_layernorm", (cfg.hidden,), loc)}
    for name in _ATTENTION:
        w[name] = b.param(name, cfg.shape(name), loc)
        if name in cfg.biases:
            b.param(name.replace("_proj", "_bias"), (cfg.shape(name)[0],), loc)
    w["post_attention_layernorm"] = b.param("post_attention_layernorm", (cfg.hidden,), loc)
    for name in _MLP:
        w[name] = b.param(name, cfg.shape(name), loc)
        if name in cfg.biases:
            b.param(name.replace("_proj", "_bias"), (cfg.shape(name)[0],), loc)
    cache = TensorType((context, cfg.kv_heads * cfg.head_dim))
    k_cache = b.cache("k_cache", cache, loc)
    v_cache = b.cache("v_cache", cache, loc)

    def op(name: str, *args: Value, out: str = "", **attrs: int | float) -> Value:
        return b.op(name, args, attrs, name=out, loc=loc)

    hd, eps, theta = cfg.head_dim, cfg.eps, cfg.theta
    h = op("rmsnorm", x, w["input_layernorm"], eps=eps, out="h")
    q = op("rope", op("linear", h, w["q_proj"]), pos, head_dim=hd, theta=theta, out="q")
    k = op("rope", op("linear", h, w["k_proj"]), pos, head_dim=hd, theta=theta, out="k")
    v = op("linear", h, w["v_proj"], out="v")
    attn = {"num_heads": cfg.heads, "num_kv_heads": cfg.kv_heads, "head_dim": hd}
    a = op("attention", q, k, v, k_cache, v_cache, **attn, out="a")
    x = op("add", x, op("linear", a, w["o_proj"]), out="x")
    h = op("rmsnorm", x, w["post_attention_layernorm"], eps=eps, out="h")
    gated = op("mul", op("silu", op("linear", h, w["gate_proj"])), op("linear", h, w["up_proj"]))
    x = op("add", x, op("linear", gated, w["down_proj"]), out="x")
    return Block("decoder", b.build([x]), loc)


def llama_graph(
    cfg: LlamaConfig, policy: QuantPolicy, source: str, *, seq: int = 1, context: int = 0, notes: tuple[str, ...] = ()
) -> Graph:
    """The graph of `cfg` with T = `seq` tokens in flight over C = `context` cached tokens."""
    loc = Location(source)
    ids = itertools.count()
    main = BodyBuilder(ids=ids)
    token_ids = main.input("ids", TensorType((seq,), "i32"), loc)
    pos = main.input("pos", TensorType((seq,), "i32"), loc)
    embed_tokens = main.param("embed_tokens", (cfg.vocab, cfg.hidden), loc)
    x = main.op("embed", [token_ids, embed_tokens], name="x", loc=loc)
    block = _decoder(cfg, x, pos, context, BodyBuilder(ids=ids), loc)
    (x,) = main.repeat(block, cfg.layers, [x, pos], [0], loc)
    norm = main.param("norm", (cfg.hidden,), loc)
    lm_head = embed_tokens if cfg.tied else main.param("lm_head", (cfg.vocab, cfg.hidden), loc)
    normed = main.op("rmsnorm", [x, norm], {"eps": cfg.eps}, loc=loc)
    logits = main.op("linear", [normed, lm_head], name="logits", loc=loc)
    body = main.build([logits])
    dims = (
        ("vocab", cfg.vocab),
        ("hidden", cfg.hidden),
        ("heads", cfg.heads),
        ("kv_heads", cfg.kv_heads),
        ("head_dim", cfg.head_dim),
        ("ffn", cfg.ffn),
        ("layers", cfg.layers),
    )
    return Graph(
        name=cfg.name,
        source=source,
        main=body,
        blocks=(block,),
        weights=assign_schemes(weight_uses(body, (block,)), policy),
        dims=dims,
        seq=seq,
        context=context,
        max_context=cfg.max_context,
        notes=notes,
    )
