"""`q35c build MODEL --target host --emit so|obj|llvm -o DIR`: the host pipeline's final IR as native code.

    library = build_library(LibraryRequest("tiny", "q3p5:g=32", Scenario(1, 4, 8)), Path("out"), "so")

compiles the scenario's phases (the decode step and the prefill, as `q35c build --target host` and the cost
model do), merges their final modules into one with a C entry per function (`abi`), runs
`reassociate-reductions` through the pass runner, lowers with mlir-opt (`lowering.lower`),
translates to LLVM IR and compiles with clang. DIR receives, through a temporary sibling renamed at the end:

    libq35.so  (--emit so)   the shared library; libq35.o (--emit obj) or libq35.ll (--emit llvm) instead
    libq35.h                    the C declarations of every entry
    libq35.json                 the manifest `runtime.HostLibrary` reads: model, scheme, phases, entries
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from q35c.codegen.host.abi import Entry, header, merge_phases, with_layouts
from q35c.codegen.host.lowering import CLANG_FLAGS, lower
from q35c.codegen.host.runtime import HEADER, LIBRARY, MANIFEST
from q35c.codegen.host.toolchain import Toolchain, find_toolchain
from q35c.driver.pipeline import Runner, Stage, StageCallback, module_text
from q35c.passes.copy_to_memcpy import CopyToMemcpyPass
from q35c.passes.fuse_unpack import FuseUnpackPass
from q35c.passes.integer_matvec import IntegerMatvecPass
from q35c.passes.reassociate_reductions import ReassociateReductionsPass
from q35c.passes.reduce_in_registers import ReduceInRegistersPass
from q35c.passes.runtime_kv_cache import RuntimeKVCachePass
from q35c.passes.unstage_tiles import UnstageTilesPass
from q35c.predict.predictor import Predictor, Scenario
from q35c.targets.pipeline import parse_options
from q35c.util.errors import Location, Q35Error
from q35c.util.output import AtomicDirectory

TARGET = "host"
KV_STAGE = Stage(
    "runtime-kv-cache", (RuntimeKVCachePass(),), "attention masks cache rows by position; steps return new k, v rows"
)
EMITS = {"so": LIBRARY, "obj": "libq35.o", "llvm": "libq35.ll"}
# Weight rows a one-token integer kernel computes at once, their storage interleaved (`integer-matvec`'s
# `interleave-rows`): each group of activations loaded serves 8 rows, and the rows stream as one run of memory.
# Measured on a C model of the kernel (docs/host-code.md, 4096x11008 cold): 4 rows 1.8 ms, 8 rows 1.4-1.5,
# 16 rows 1.4, plain rows 2.2; llama.cpp's repacked Q4_K layout interleaves 8 too.
INTERLEAVE_ROWS = 8


def native_stage(integer_activations: bool = True, interleave_rows: int = INTERLEAVE_ROWS) -> Stage:
    """The host passes after the target pipeline; without `integer_activations` (the pipeline option
    `integer-activations=false`) no `integer-matvec`: activations stay floating point, linear kernels take
    `fuse-unpack`'s float path. `interleave_rows` (the option `interleave-rows`): the rows of weights read only by
    integer kernels are interleaved in storage by blocks of this many (0 or 1: plain)."""
    matvec = (IntegerMatvecPass(interleave_rows=interleave_rows),) if integer_activations else ()
    passes = (UnstageTilesPass(), *matvec, FuseUnpackPass(), ReassociateReductionsPass(), ReduceInRegistersPass())
    return Stage(
        "native",
        (*passes, CopyToMemcpyPass()),
        "linear kernels (one token or a block of rows) as integer dot products on int16 activations, "
        "unpacking in vector registers once per block; "
        "float sums in reductions may be reordered (vector lanes)",
    )


NATIVE_STAGE = native_stage()


@dataclass(frozen=True)
class LibraryRequest:
    """What to compile: a model, its scheme, the scenario fixing the phases' shapes, pipeline options."""

    model: str
    quant: str | None
    scenario: Scenario
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])
    capacity: int | None = None  # a KV cache filled at run time, of this many rows per sequence (generation)

    def phase_keys(self) -> dict[str, tuple[str, str | None, int, int, int]]:
        if self.capacity is not None:
            s = self.scenario
            return {"decode": (self.model, self.quant, 1, self.capacity, s.batch)} | (
                {"prefill": (self.model, self.quant, s.prompt, 0, s.batch)} if s.prompt else {}
            )
        options = tuple(sorted(self.options.items()))
        return Predictor(self.model, self.quant, self.scenario, options).phase_keys()


@dataclass(frozen=True)
class BuiltLibrary:
    """A written library directory: its path, the file emitted and the entries exported."""

    directory: Path
    artifact: Path
    entries: tuple[Entry, ...]
    manifest: dict[str, Any]


def compile_phase_modules(
    request: LibraryRequest, callback: Callable[[str], StageCallback | None] | None = None
) -> tuple[dict[str, ModuleOp], dict[str, tuple[str, str | None, int, int, int]]]:
    """The final host module of each phase of the request (verified after every stage), and the phase keys.
    With a cache `capacity`, each phase's graph first goes through `runtime-kv-cache` (`generation_modules`)."""
    from q35c.driver.compile import compile_phases

    keys = request.phase_keys()
    if request.capacity is not None:
        return generation_modules(keys, request.options, callback), keys
    results = compile_phases(keys, TARGET, request.options, callback)
    return {phase: result.module for phase, result in results.items()}, keys


def generation_modules(
    keys: Mapping[str, tuple[str, str | None, int, int, int]],
    options: Mapping[str, Any],
    callback: Callable[[str], StageCallback | None] | None = None,
) -> dict[str, ModuleOp]:
    """The final host module of each phase for token-by-token generation: the graph's attention reads a cache
    filled at run time (masked from the step's first position on) and every step returns its new k and v rows
    (`passes/runtime_kv_cache.py`). These modules are not the cost model's (their cache is a run-time buffer), so
    they stay out of its cache of workloads."""
    from q35c.driver.compile import compile_model
    from q35c.frontend import load_model

    modules: dict[str, ModuleOp] = {}
    for phase, (model, scheme, seq, context, batch) in keys.items():
        loaded = load_model(model, quant=scheme, seq=seq, context=context, batch=batch)
        Runner(verify=True, target=TARGET, source=loaded.path).apply(KV_STAGE, loaded.module)
        modules[phase] = compile_model(loaded, TARGET, options, None if callback is None else callback(phase)).module
    return modules


def lower_to_llvm_ir(
    modules: Mapping[str, ModuleOp],
    tools: Toolchain,
    integer_activations: bool = True,
    interleave_rows: int = INTERLEAVE_ROWS,
) -> tuple[str, tuple[Entry, ...]]:
    """LLVM IR text of the merged phase modules, and the entries it exports."""
    merged, entries = merge_phases(modules)
    Runner(verify=True, target=TARGET).apply(native_stage(integer_activations, interleave_rows), merged)
    entries = with_layouts(merged, entries)
    lowered = lower(module_text(merged), tools)
    return tools.translate(lowered), entries


def clang_flags(emit: str, tools: Toolchain) -> tuple[str, ...]:
    openmp = ("-fopenmp",) if tools.openmp is not None else ()
    if emit == "obj":
        return (*CLANG_FLAGS, *openmp, "-c")
    link = (f"-L{tools.openmp}", f"-Wl,-rpath,{tools.openmp}") if tools.openmp is not None else ()
    if tools.runtime is not None:
        link = (*link, f"-Wl,-rpath,{tools.runtime.parent}")
    return (*CLANG_FLAGS, *openmp, "-shared", *link)


def libraries(emit: str, tools: Toolchain) -> tuple[str, ...]:
    """What a shared library links after the code: MLIR's C runner utilities (`memrefCopy`)."""
    return (str(tools.runtime),) if emit == "so" and tools.runtime is not None else ()


def manifest_for(request: LibraryRequest, keys: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """What the library was compiled from (`emit_library` adds its entries)."""
    return {
        "model": request.model,
        "quant": request.quant,
        "target": TARGET,
        "batch": request.scenario.batch,
        "prompt": request.scenario.prompt,
        "gen": request.scenario.gen,
        "options": dict(sorted(request.options.items())),
        **({} if request.capacity is None else {"kv_capacity": request.capacity}),
        "phases": {phase: {"seq": key[2], "context": key[3], "batch": key[4]} for phase, key in keys.items()},
    }


def check_destination(path: Path) -> None:
    """Q35Error unless `path` is free, an empty directory or an earlier library directory (it is replaced)."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and ((path / MANIFEST).is_file() or not any(path.iterdir())):
        return
    raise Q35Error(
        f"{path} exists and is not a q35c library directory (no {MANIFEST}): choose another -o, or remove it",
        Location(str(path)),
    )


def emit_library(
    modules: Mapping[str, ModuleOp],
    manifest: dict[str, Any],
    output: Path,
    emit: str = "so",
    tools: Toolchain | None = None,
) -> BuiltLibrary:
    """Write the library directory for the phases' final modules (see the module docstring)."""
    if emit not in EMITS:
        raise Q35Error(f"unknown native output '{emit}' (choose from {', '.join(EMITS)})")
    check_destination(output)
    tools = tools if tools is not None else find_toolchain()
    options = parse_options(manifest.get("options") or {})
    integer = bool(options.get("integer-activations", True))
    llvm_ir, entries = lower_to_llvm_ir(modules, tools, integer, int(options.get("interleave-rows", INTERLEAVE_ROWS)))
    manifest = {**manifest, "entries": [e.to_json() for e in entries], "openmp": tools.openmp is not None}
    title = f"{manifest.get('model')} ({manifest.get('quant') or 'default scheme'}) for the host, compiled by q35c"
    with AtomicDirectory(output) as out:
        ll = out.tmp / EMITS["llvm"]
        ll.write_text(llvm_ir)
        if emit != "llvm":
            tools.compile(ll, out.tmp / EMITS[emit], clang_flags(emit, tools), libraries(emit, tools))
            ll.unlink()
        (out.tmp / HEADER).write_text(header(output.name, title, entries))
        (out.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BuiltLibrary(output, output / EMITS[emit], entries, manifest)


def build_library(
    request: LibraryRequest,
    output: Path,
    emit: str = "so",
    callback: Callable[[str], StageCallback | None] | None = None,
) -> BuiltLibrary:
    """Compile the request's phases for the host and write its library directory."""
    check_destination(output)  # before compiling: bad setup or a bad -o is reported at once
    tools = find_toolchain()
    modules, keys = compile_phase_modules(request, callback)
    return emit_library(modules, manifest_for(request, keys), output, emit, tools)
