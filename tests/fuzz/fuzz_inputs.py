"""Generated inputs for q35c's command line, and an in-process runner that judges how each one ends.

Every category is a hypothesis strategy of `Case`s (a command line and the files it reads):

- `q35`: model-language files generated from the grammar (statements, number and tensor expressions, blocks);
- `q35-mutated`: those files and the bundled examples with characters, tokens and lines changed;
- `config`: Hugging Face config.json files with values of every kind and text mutations;
- `gguf`: GGUF files written with the `gguf` package, with metadata of the wrong kind or range, odd tensors, and
  damaged bytes;
- `spec`: quantization spec strings for `--quant` and `formats --explain`;
- `cli`: command lines with values of every kind for every option;
- `ir`: MLIR text of the tiny example (graph IR and a lowered stage) with mutations, for `opt` and `cost`.

`run_case` runs one in this process and returns an `Outcome`: an input may end with exit status 0 or 2 (bad
input, one `q35c: error:` line); anything else (a q35c bug: exit 70, a traceback, an exception escaping the
command line) or a run over `HANG_SECONDS` is a failure. tests/fuzz/test_fuzz.py runs a few hundred of them in
CI; benchmarks/fuzz.py runs thousands and prints the counts.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from q35c.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
HANG_SECONDS = 10.0
DIR = "{dir}"  # in a Case's argv: the directory its files are written to

# ------------------------------------------------------------------------------------------------------------
# Cases and outcomes
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A command line (`{dir}` standing for where `files` are written) and the files it reads."""

    argv: tuple[str, ...]
    files: tuple[tuple[str, bytes], ...] = ()

    def describe(self) -> str:
        sizes = ", ".join(f"{name} ({len(data)} bytes)" for name, data in self.files)
        return "q35c " + " ".join(self.argv) + (f"  [{sizes}]" if sizes else "")


@dataclass(frozen=True)
class Outcome:
    code: int | None
    stderr: str
    seconds: float
    escaped: str | None = None  # an exception that escaped the command line, as `Type: message`
    hang: bool = False

    @property
    def traceback(self) -> bool:
        """A q35c bug: exit 70 (internal error), a traceback printed, or an exception past `main`."""
        return self.escaped is not None or self.code not in (0, 2) or "Traceback" in self.stderr

    @property
    def ok(self) -> bool:
        return not self.traceback and not self.hang and self.seconds <= HANG_SECONDS

    def summary(self) -> str:
        if self.escaped is not None:
            return f"escaped: {self.escaped}"
        last = self.stderr.strip().splitlines()[-1:] or [""]
        return f"exit {self.code}: {last[0][:200]}"


class Hang(BaseException):
    """Raised by the alarm when a case runs past its time (a BaseException: `main` does not catch it)."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def run_case(case: Case, directory: Path, limit: float = HANG_SECONDS) -> Outcome:
    """Write the case's files into `directory` and run its command line in this process."""
    for name, data in case.files:
        (directory / name).write_bytes(data)
    argv = [arg.replace(DIR, str(directory)) for arg in case.argv]
    err = io.StringIO()
    code: int | None = None
    escaped: str | None = None
    hang = False
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    except Hang:
        hang = True
    except BaseException as error:  # whatever escapes the command line is what this reports
        escaped = f"{type(error).__name__}: {str(error)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(code, err.getvalue(), time.perf_counter() - start, escaped, hang)


def run_in_tmp(case: Case) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="q35c-fuzz-") as directory:
        return run_case(case, Path(directory))


# ------------------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------------------

EXTREME_INTS = (0, 1, -1, 2, 3, 7, 63, 64, 65, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64, 10**20)
EXTREME_FLOATS = (0.0, -0.0, 1e-50, 1e-5, 0.5, 1e38, 1e39, 1e300, float("inf"), float("-inf"), float("nan"))
TARGETS = ("host", "h100-sxm", "groq-lpu", "m2-max", "mi300x", "a100-sxm")

ints = st.one_of(st.sampled_from(EXTREME_INTS), st.integers(-(2**70), 2**70), st.integers(-3, 300))
floats = st.one_of(st.sampled_from(EXTREME_FLOATS), st.floats(allow_nan=True, allow_infinity=True))


def number_texts() -> st.SearchStrategy[str]:
    """Numbers as a user might type them, extreme ones included (4,301 digits, 1e999, -0, 0x10)."""
    return st.one_of(
        ints.map(str),
        floats.map(repr),
        st.sampled_from(("9" * 4301, "1e999", "1e-999", "-0", "0x10", "1_000", "", " ", "nan", "inf", "1.5")),
        st.text(alphabet="0123456789.eE+-", min_size=1, max_size=30),
    )


@st.composite
def mutate_text(draw: st.DrawFn, text: str, tokens: tuple[str, ...]) -> str:
    """`text` with a few characters, tokens or lines changed; sometimes a very long or deep expression."""
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        at = draw(st.integers(0, n))
        kind = draw(st.sampled_from(("delete", "insert", "token", "number", "line", "deep", "long", "bytes")))
        if kind == "delete" and n:
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif kind == "token":
            text = text[:at] + draw(st.sampled_from(tokens)) + text[at:]
        elif kind == "number":
            text = text[:at] + draw(number_texts()) + text[at:]
        elif kind == "line":
            lines = text.splitlines(keepends=True)
            if lines:
                i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                op = draw(st.sampled_from(("dup", "drop", "swap")))
                if op == "dup":
                    lines.insert(j, lines[i])
                elif op == "drop":
                    del lines[i]
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                text = "".join(lines)
        elif kind == "deep":
            depth = draw(st.sampled_from((50, 199, 200, 201, 1000, 100_000)))
            opener = draw(st.sampled_from(("(", "[", "{", "silu(", "f(")))
            text = text[:at] + opener * depth + "x" + ")" * depth + text[at:]
        elif kind == "long":
            terms = draw(st.sampled_from((10, 500, 5000)))
            text = text[:at] + "+".join(draw(st.sampled_from(("1", "x", "d", "1.5"))) for _ in range(terms)) + text[at:]
        else:
            raw = draw(st.binary(min_size=1, max_size=8))
            text = text[:at] + raw.decode("latin-1") + text[at:]
    return text


# ------------------------------------------------------------------------------------------------------------
# The model language
# ------------------------------------------------------------------------------------------------------------

Q35_TOKENS = (
    *("model", "context", "dtype", "dim", "const", "quant", "input", "param", "cache", "output", "block"),
    *("linear", "embed", "rmsnorm", "rope", "attention", "silu", "add", "mul", "T", "C", "x", "d"),
    *("=", "+", "-", "*", "/", "(", ")", "[", "]", "{", "}", ",", ":", '"', "#", "\n", " ", "\t", "\r"),
    *("f16", "f32", "i32", "q3p5:g=32", "int4:g=0", "eps = 1e39", "head_dim = 0", "x 100000 {", '"lm_head"'),
)


@st.composite
def int_expr(draw: st.DrawFn, value: int, depth: int = 2) -> str:
    """A number expression of the model language that evaluates to `value` (> 0)."""
    if depth == 0 or draw(st.booleans()):
        return str(value)
    kind = draw(st.sampled_from(("add", "sub", "mul", "div", "paren")))
    if kind == "add" and value > 1:
        a = draw(st.integers(1, value - 1))
        return f"{draw(int_expr(a, depth - 1))} + {draw(int_expr(value - a, depth - 1))}"
    if kind == "sub":
        b = draw(st.integers(1, 64))
        return f"{draw(int_expr(value + b, depth - 1))} - {b}"
    if kind == "mul":
        factors = [f for f in (2, 4, 8) if value % f == 0]
        if factors:
            f = draw(st.sampled_from(factors))
            return f"{draw(int_expr(value // f, depth - 1))} * {f}"
    if kind == "div":
        f = draw(st.sampled_from((2, 3, 4)))
        return f"({draw(int_expr(value * f, depth - 1))}) / {f}"
    return f"({draw(int_expr(value, depth - 1))})"


class _Model:
    """Collects the lines of a generated model and the names it declares."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.params: list[str] = []
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


@st.composite
def tensor_expr(draw: st.DrawFn, m: _Model, names: tuple[str, ...], depth: int, indent: str) -> str:
    """A tensor expression of type [T, d] over `names`, declaring the params it needs (before the line)."""
    if depth == 0:
        return draw(st.sampled_from(names))
    kind = draw(st.sampled_from(("name", "linear", "rmsnorm", "silu", "add", "mul", "rope", "attention")))
    inner = tensor_expr(m, names, depth - 1, indent)
    if kind == "linear":
        w = m.fresh("w")
        m.lines.append(f"{indent}param {w}: [d, d]")
        m.params.append(w)
        return f"linear({draw(inner)}, {w})"
    if kind == "rmsnorm":
        g = m.fresh("g")
        m.lines.append(f"{indent}param {g}: [d]")
        eps = draw(st.sampled_from(("", ", eps = eps", ", eps = 1e-6", ", eps = 1e-5 * 2")))
        return f"rmsnorm({draw(inner)}, {g}{eps})"
    if kind == "silu":
        return f"silu({draw(inner)})"
    if kind in ("add", "mul"):
        op = "+" if kind == "add" else "*"
        form = draw(st.sampled_from(("op", "call")))
        a, b = draw(inner), draw(inner)
        return f"{a} {op} {b}" if form == "op" else f"{kind}({a}, {b})"
    if kind == "rope":
        return f"rope({draw(inner)}, pos, head_dim = hd, theta = 10000.0)"
    if kind == "attention":
        k, v = m.fresh("kc"), m.fresh("vc")
        m.lines += [f"{indent}cache {k}: [C, d]", f"{indent}cache {v}: [C, d]"]
        q = draw(inner)
        return f"attention({q}, {draw(inner)}, {draw(inner)}, {k}, {v}, head_dim = hd)"
    return draw(st.sampled_from(names))


@st.composite
def q35_text(draw: st.DrawFn) -> str:
    """A model-language file from the grammar: dims and consts with expressions, a scheme, inputs, statements,
    sometimes a block, and an output. Most are valid; some break a shape or divisibility rule."""
    m = _Model()
    d = draw(st.sampled_from((8, 16, 32, 64, 128, 256)))
    hd = draw(st.sampled_from([h for h in (2, 4, 8, 16) if d % h == 0]))
    if draw(st.booleans()):
        m.lines.append(f'model "{draw(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True))}"')
    if draw(st.booleans()):
        m.lines.append(f"context {draw(int_expr(draw(st.integers(1, 4096))))}")
    if draw(st.booleans()):
        m.lines.append(f"dtype {draw(st.sampled_from(('f16', 'f32')))}")
    m.lines.append(f"dim d = {draw(int_expr(d))}")
    m.lines.append(f"dim hd = {draw(int_expr(hd))}")
    m.lines.append(f"const eps = {draw(st.sampled_from(('1e-5', '1e-6', '0.00001', '1.0 / 100000')))}")
    if draw(st.booleans()):
        m.lines.append(f"quant {draw(st.sampled_from(SPECS))}")
    m.lines += ["input x: [T, d]", "input pos: [T] i32"]
    for _ in range(draw(st.integers(0, 3))):
        m.lines.append(f"x = {draw(tensor_expr(m, ('x',), draw(st.integers(1, 3)), ''))}")
    if draw(st.booleans()):
        count = draw(int_expr(draw(st.integers(1, 6))))
        header = len(m.lines)
        m.lines.append(f"block layer x {count} {{")
        for _ in range(draw(st.integers(1, 3))):
            m.lines.append(f"    x = x + {draw(tensor_expr(m, ('x',), draw(st.integers(1, 3)), '    '))}")
        m.lines.append("}")
        assert m.lines[header].startswith("block")
    out = m.fresh("w")
    m.lines.append(f"param {out}: [{draw(int_expr(draw(st.sampled_from((8, 64, 256)))))}, d]")
    m.lines.append(f"output logits = linear(x, {out})")
    if draw(st.booleans()):
        matrix = draw(st.sampled_from(m.params or [out]))
        m.lines.append(f'quant "{matrix}" = {draw(st.sampled_from(SPECS))}')
    return "\n".join(m.lines) + "\n"


@cache
def example_texts() -> tuple[str, ...]:
    return tuple(p.read_text() for p in sorted((ROOT / "examples").glob("*.q35")))


def _info(name: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    return ("info", f"{DIR}/{name}", *extra)


q35_args = st.sampled_from(((), ("--json",), ("--quant", "int4:g=32"), ("--quant", "q3p5:g=32")))


def q35_cases() -> st.SearchStrategy[Case]:
    return st.builds(lambda text, extra: Case(_info("m.q35", extra), (("m.q35", text.encode()),)), q35_text(), q35_args)


@st.composite
def q35_mutated_cases(draw: st.DrawFn) -> Case:
    base = draw(st.one_of(q35_text(), st.sampled_from(example_texts())))
    text = draw(mutate_text(base, Q35_TOKENS))
    data = text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text.encode("latin-1", "replace")
    command = draw(st.sampled_from((_info("m.q35", ()), ("build", f"{DIR}/m.q35", "--emit", "graph"))))
    return Case(command, (("m.q35", data),))


# ------------------------------------------------------------------------------------------------------------
# config.json
# ------------------------------------------------------------------------------------------------------------

CONFIG_KEYS = (
    *("architectures", "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers"),
    *("num_key_value_heads", "vocab_size", "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings"),
    *("tie_word_embeddings", "attention_bias", "mlp_bias", "rope_scaling", "sliding_window", "use_sliding_window"),
)
json_leaves = st.one_of(
    ints, floats, st.text(max_size=10), st.booleans(), st.none(), st.sampled_from(("LlamaForCausalLM", "Qwen2"))
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


@cache
def example_configs() -> tuple[dict[str, object], ...]:
    return tuple(json.loads(p.read_text()) for p in sorted((ROOT / "examples" / "hf").glob("*.json")))


@st.composite
def config_cases(draw: st.DrawFn) -> Case:
    data = dict(draw(st.sampled_from(example_configs())))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(CONFIG_KEYS))
        if draw(st.integers(0, 4)) == 0:
            data.pop(key, None)
        else:
            data[key] = draw(json_values)
    text = json.dumps(data, indent=draw(st.sampled_from((None, 2))))
    if draw(st.integers(0, 3)) == 0:
        text = draw(mutate_text(text, ("{", "}", "[", "]", '"', ":", ",", "null", "NaN", "Infinity", "\\u0000")))
    quant = draw(st.sampled_from(((), ("--quant", "q3p5"), ("--quant", "int8"))))
    return Case(_info("config.json", quant), (("config.json", text.encode("utf-8", "surrogatepass")),))


# ------------------------------------------------------------------------------------------------------------
# GGUF
# ------------------------------------------------------------------------------------------------------------

GGUF_KEYS = (
    *("block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count"),
    *("attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base", "attention.key_length"),
    "vocab_size",
)
_TINY_GGUF = {
    "block_count": 2,
    "context_length": 512,
    "embedding_length": 64,
    "feed_forward_length": 128,
    "attention.head_count": 4,
    "attention.head_count_kv": 2,
    "attention.layer_norm_rms_epsilon": 1e-5,
    "rope.freq_base": 10000.0,
}
_GGUF_LAYER = {
    "attn_norm": (64,),
    "attn_q": (64, 64),
    "attn_k": (32, 64),
    "attn_v": (32, 64),
    "attn_output": (64, 64),
    "ffn_norm": (64,),
    "ffn_gate": (128, 64),
    "ffn_up": (128, 64),
    "ffn_down": (64, 128),
}


def gguf_value() -> st.SearchStrategy[tuple[str, object]]:
    """A metadata value with its GGUF kind: numbers of every width and extreme values, strings, arrays."""
    return st.one_of(
        st.tuples(st.sampled_from(("UINT32", "UINT64")), st.sampled_from((0, 1, 2, 3, 7, 64, 65, 2**32 - 1))),
        st.tuples(st.just("UINT64"), st.sampled_from((2**64 - 1, 2**63, 10**12))),
        st.tuples(st.sampled_from(("INT32", "INT64")), st.sampled_from((-1, -(2**31), 0, 4))),
        st.tuples(st.sampled_from(("FLOAT32", "FLOAT64")), st.sampled_from(EXTREME_FLOATS)),
        st.tuples(st.just("FLOAT64"), st.just(1e300)),
        st.tuples(st.just("STRING"), st.text(max_size=8)),
        st.tuples(st.just("BOOL"), st.booleans()),
        st.tuples(st.just("ARRAY"), st.lists(st.integers(0, 100), max_size=4)),
    )


def write_gguf_bytes(metadata: dict[str, tuple[str, object]], shapes: dict[str, tuple[int, ...]], arch: str) -> bytes:
    """A GGUF file written by gguf.GGUFWriter: `metadata` under `<arch>.`, F32 tensors of `shapes` (zeros)."""
    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="q35c-gguf-") as directory:
        path = Path(directory) / "m.gguf"
        writer = gguf.GGUFWriter(str(path), arch)
        writer.add_name("fuzz")
        for key, (kind, value) in metadata.items():
            vtype = gguf.GGUFValueType[kind]
            sub = gguf.GGUFValueType.UINT32 if kind == "ARRAY" else None
            writer.add_key_value(f"{arch}.{key}", value, vtype, sub_type=sub)
        for name, shape in shapes.items():
            writer.add_tensor(name, np.zeros(shape, np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


@st.composite
def gguf_cases(draw: st.DrawFn) -> Case:
    metadata: dict[str, tuple[str, object]] = {
        k: ("FLOAT32" if isinstance(v, float) else "UINT32", v) for k, v in _TINY_GGUF.items()
    }
    clean = draw(st.sampled_from((True, False, False)))  # a valid file, to reach what follows the checks
    for _ in range(0 if clean else draw(st.sampled_from((0, 1, 1, 2, 3)))):
        key = draw(st.sampled_from(GGUF_KEYS))
        if draw(st.integers(0, 4)) == 0:
            metadata.pop(key, None)
        else:
            metadata[key] = draw(gguf_value())
    layers = 2 if clean else draw(st.sampled_from((2, 2, 2, 0, 1, 3)))
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (256, 64), "output_norm.weight": (64,)}
    for i in range(layers):
        shapes.update({f"blk.{i}.{name}.weight": shape for name, shape in _GGUF_LAYER.items()})
    if draw(st.booleans()):
        shapes["output.weight"] = (256, 64)
    if not clean and draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(shapes)))
        shapes[name] = tuple(draw(st.lists(st.sampled_from((1, 2, 32, 63, 64, 128)), min_size=1, max_size=3)))
    arch = "llama" if clean else draw(st.sampled_from(("llama", "llama", "llama", "qwen2", "gpt2", "")))
    try:
        data = write_gguf_bytes(metadata, shapes, arch)
    except (ValueError, TypeError, OverflowError, KeyError):  # a value the writer itself refuses
        data = write_gguf_bytes({}, shapes, arch)
    if not clean and draw(st.integers(0, 5)) == 0:
        cut = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:cut]
        else:
            data = data[:cut] + draw(st.binary(min_size=1, max_size=8)) + data[cut + 8 :]
    quant = draw(st.sampled_from(((), ("--quant", "q3p5:g=32"), ("--json",))))
    return Case(_info("m.gguf", quant), (("m.gguf", data),))


# ------------------------------------------------------------------------------------------------------------
# Quantization specs
# ------------------------------------------------------------------------------------------------------------

SPECS = (
    *("fp16", "int8", "int8:g=32", "int4", "int4:g=32", "int4:g=64", "q3p5", "q3p5:g=32", "q3p5:g=64"),
    *("q3p5:container=byte", "q3p5:g=32:container=byte", "q4_0", "q8_0"),
)


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """Spec strings from their grammar `NAME[:key=value]*`, with odd names, keys, values and separators."""
    names = st.sampled_from(("fp16", "int8", "int4", "q3p5", "q4_0", "q8_0", "Q3P5", " int4 "))
    name = draw(st.one_of(names, st.text(max_size=6)))
    parts = [name]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(("g", "container", "G", "", "bits", "g ")))
        value = draw(st.one_of(number_texts(), st.sampled_from(("dense", "byte", "", "=", "64:64"))))
        sep = draw(st.sampled_from(("=", "=", "==", "", ":")))
        parts.append(f"{key}{sep}{value}")
    joiner = draw(st.sampled_from((":", ":", "::", ",")))
    return joiner.join(parts)


@st.composite
def spec_cases(draw: st.DrawFn) -> Case:
    spec = draw(st.one_of(spec_texts(), st.sampled_from(SPECS), st.text(max_size=12)))
    command = draw(
        st.sampled_from(
            (
                ("formats", "--explain", spec),
                ("info", "tiny", "--quant", spec),
                ("build", "tiny", "--emit", "graph", "--quant", spec),
                ("formats", "--k", "4096", "--explain", spec),
            )
        )
    )
    return Case(command)


# ------------------------------------------------------------------------------------------------------------
# Command lines
# ------------------------------------------------------------------------------------------------------------

values = st.one_of(number_texts(), st.sampled_from(("", "-", "--", "all", "tiny", "h100-sxm,groq-lpu", ",,", "a=b")))
targets = st.one_of(st.sampled_from((*TARGETS, "all", "bogus", "host,bogus", "", ",", "H100-SXM")), st.text(max_size=6))


@st.composite
def cli_cases(draw: st.DrawFn) -> Case:
    commands = ("formats", "info", "build-emit", "build-cost", "targets", "compare", "cost", "opt", "verify")
    command = draw(st.sampled_from(commands))
    if command == "verify":
        shape = "x".join(draw(st.lists(values, min_size=1, max_size=4)))
        model = draw(st.sampled_from(("llama-2-7b", "llama-3.1-405b", f"{DIR}/none.mlir")))
        form = draw(st.sampled_from((("--linear", shape, "--quant", draw(st.sampled_from(SPECS))), (model,))))
        flip = ("--flip-bit", ",".join(draw(st.lists(values, min_size=1, max_size=4))))
        return Case(("verify", *form, *(flip if draw(st.booleans()) else ())))
    if command == "formats":
        return Case(("formats", "--k", draw(values)))
    if command == "info":
        return Case(("info", draw(st.sampled_from(("tiny", "llama-2-7b", "nonesuch", "", "examples")))))
    if command == "targets":
        return Case(("targets", draw(targets)))
    if command == "compare":
        return Case(("compare", f"{DIR}/a", draw(values)))
    if command == "cost":
        return Case(("cost", f"{DIR}/none.mlir", "--target", draw(targets), "--devices", draw(values)))
    if command == "opt":
        return Case(("opt", f"{DIR}/none.mlir", "-p", draw(st.text(max_size=20))))
    if command == "build-emit":
        flag = draw(st.sampled_from(("--seq", "--context")))
        return Case(("build", "tiny", "--emit", "graph", flag, draw(values)))
    argv = ["build", "tiny", "--target", draw(targets)]
    small = st.one_of(st.integers(0, 64).map(str), values)
    options = st.sampled_from(("--batch", "--prompt", "--gen", "--devices", "--format"))
    for option in draw(st.lists(options, max_size=3, unique=True)):
        argv += [option, draw(st.sampled_from(("table", "json", "csv"))) if option == "--format" else draw(small)]
    if draw(st.integers(0, 4)) == 0:
        argv += [
            "--option",
            draw(st.sampled_from(("tile-n=", "budget-bytes=", "keep-int-codes=", "x=", ""))) + draw(values),
        ]
    return Case(tuple(argv))


# ------------------------------------------------------------------------------------------------------------
# IR text
# ------------------------------------------------------------------------------------------------------------

IR_TOKENS = (
    *('"', "!q35.packed<", "#q35.scheme<", "tensor<", "x", "0x", "%", "^bb0", "{", "}", "(", ")", "<", ">", ":"),
    *("0", "-1", "9223372036854775808", "q3p5, g = 0", "func.func", "builtin.module", "dense<", "\n", "//"),
)


@cache
def ir_texts() -> tuple[str, ...]:
    """The tiny example's decode step for the host as `--dump-ir` writes it: graph IR, after tiling, final."""
    with tempfile.TemporaryDirectory(prefix="q35c-ir-") as directory:
        argv = ["build", "tiny", "--target", "host", "--dump-ir", directory]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) == 0
        dumps = sorted(Path(directory).glob("decode/*.mlir"))
        tiled = [p for p in dumps if "tile" in p.name][:1]
        return tuple(p.read_text() for p in (dumps[0], *tiled, dumps[-1]))


PASSES = (
    *("", "materialize-weights", "materialize-weights,lower-graph", "unpack-bits", "bogus{", "schedule-memory"),
    *("materialize-weights,lower-graph,tile{budget-bytes=0}", "tile{tile-n=9223372036854775807}", "tile{tile-k=-1}"),
    "materialize-weights,lower-graph,tile{tile-t=1 tile-n=3 tile-k=5}",
)


@st.composite
def ir_cases(draw: st.DrawFn) -> Case:
    base = draw(st.sampled_from(ir_texts()))
    text = base if draw(st.integers(0, 5)) == 0 else draw(mutate_text(base, IR_TOKENS))
    if draw(st.integers(0, 5)) == 0:
        text = '"' + draw(st.text(alphabet="abcdef\\", min_size=20, max_size=60))  # an unclosed string literal
    elif draw(st.integers(0, 5)) == 0:  # nesting where xDSL's parser recurses
        opener, closer = draw(st.sampled_from((("[", "]"), ("{b = ", "}"), ("tensor<", "xf32>"), ("[{b = ", "}]"))))
        depth = draw(st.sampled_from((10, 24, 26, 60, 5000)))
        text = f"builtin.module attributes {{a = {opener * depth}1{closer * depth}}} {{}}\n"
    data = text.encode("utf-8", "surrogatepass")
    command = draw(
        st.sampled_from(
            (
                ("opt", f"{DIR}/m.mlir", "-p", draw(st.sampled_from(PASSES))),
                ("cost", f"{DIR}/m.mlir", "--target", "host"),
            )
        )
    )
    return Case(command, (("m.mlir", data),))


CATEGORIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "q35": q35_cases,
    "q35-mutated": q35_mutated_cases,
    "config": config_cases,
    "gguf": gguf_cases,
    "spec": spec_cases,
    "cli": cli_cases,
    "ir": ir_cases,
}
