"""What a model would do on each target: tokens/s, latency, energy per token, devices, and what limits it.

`compare(model, scheme, targets, batch=, prompt=, gen=, devices=)` compiles one module per phase for each
target's pipeline -- the decode step and the prefill, both with the batch in the IR -- and runs the target's
cost model on the workloads those modules give (`q35c.driver.cache`). These are the modules `q35c build
--dump-ir` and report directories show (`Scenario.phases`); no count is scaled after compilation.

- Decode: one step of B sequences, T = 1 new token each (B activation rows), every sequence with C cached
  tokens (B*C cache rows). Generating G tokens after a P-token prompt runs steps at contexts P, P+1, ...,
  P+G-1; a step's cost is linear in its context (only KV-cache traffic and attention work grow with it), so
  the mean of the G step times is the step time at the mean context P + (G-1)/2. The step is compiled at the
  integer nearest that mean, halves rounded up: C = P + floor(G/2) (off the mean by half a token when G is
  even). decode_tok_s = batch / step time; ms_per_token = step time.
- Prompt and gen default to 512 and 128 tokens, the prompt shortened for a model whose context is shorter.
- Prefill: B sequences of T = P tokens (B*P rows) with an empty cache. ttft_ms = its time;
  prefill_tok_s = batch * P / TTFT.
- Devices and placement (`targets.placement`): `--tp`/`--pp` as given, else `devices` placed by the rule
  (tensor parallel within a node, pipeline stages across), else the fewest whose placement holds weights + KV
  cache at P + G tokens (x B) + live activations on every device. A placement over several devices is compiled
  by the `shard` stage, and those sharded modules (one device's program, with its collectives) are the ones
  costed. A target that cannot hold the model (too few devices asked for, or more than it can use) gets a result
  with the reason and no figures; when no target can, `compare` raises Q35Error saying what each needs.
- Pipelines: per-user figures are one step through every stage in turn (decode_tok_s, ms_per_token,
  joules_per_token); with pp > 1 stages, `pipeline_tok_s` and `pipeline_joules_per_token` are the aggregate when
  every stage works on a different batch (a step completes every slowest-stage interval).
- Energy: joules_per_token = decode step energy / B; avg_power_w = the average power of one device during
  decode (never above its TDP); system_power_w = that times the devices.
- Ranges: decode_tok_s, ms_per_token, prefill_tok_s and joules_per_token each get `<figure>_low` and
  `<figure>_high`, the same workloads costed with the spec's uncertain numbers at their bounds, the device count
  held (`q35c.predict.ranges` gives the rule).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from q35c.analysis.workload import Workload, extract
from q35c.driver.cache import CACHE, Key, Options, Request, WorkloadCache
from q35c.driver.tree import map_forked
from q35c.frontend import load_graph, load_model
from q35c.frontend.examples import resolve_model
from q35c.predict import ranges
from q35c.targets.calibration import Efficiency, Row
from q35c.targets.placement import Placement
from q35c.targets.placement import lower_bound as placement_lower_bound
from q35c.targets.spec import spec_names
from q35c.targets.target import Cost, DoesNotFit, Footprint, Target, get_target
from q35c.util.errors import Location, Q35Error
from q35c.util.limits import MAX_DEVICES
from q35c.util.suggest import did_you_mean

DEFAULT_PROMPT = 512
DEFAULT_GEN = 128


@dataclass(frozen=True)
class Scenario:
    """What to run: batch B sequences, each a P-token prompt then G generated tokens."""

    batch: int = 1
    prompt: int = DEFAULT_PROMPT
    gen: int = DEFAULT_GEN

    def decode_context(self) -> int:
        """C of the decode step: the mean context P + (G-1)/2 of the G steps, rounded to the nearest integer,
        halves up (= P + floor(G/2))."""
        return self.prompt + self.gen // 2

    def phases(self) -> dict[str, tuple[int, int]]:
        """The modules compiled and costed, by phase: (T tokens per sequence, C cached tokens per sequence), each
        for `batch` sequences; `decode` when G > 0, `prefill` when P > 0."""
        found: dict[str, tuple[int, int]] = {}
        if self.gen > 0:
            found["decode"] = (1, self.decode_context())
        if self.prompt > 0:
            found["prefill"] = (self.prompt, 0)
        return found

    def note(self) -> str:
        """What was compiled, for a result's notes."""
        parts = []
        if self.gen > 0:
            mean = self.prompt + (self.gen - 1) / 2
            parts.append(
                f"decode: one step of {self.batch} sequence(s) x 1 token, each after C = {self.decode_context()} "
                f"cached tokens (the mean context P + (G-1)/2 = {mean:g}, rounded to the nearest integer, halves up)"
            )
        if self.prompt > 0:
            parts.append(f"prefill: {self.batch} sequence(s) x {self.prompt} tokens, empty cache")
        return "compiled and costed as is, the batch in the IR: " + "; ".join(parts)


# The per-target figures of report.json / --format json, in the order they are written.
RESULT_KEYS = (
    "target",
    "family",
    "devices",
    "tp",
    "pp",
    "decode_tok_s",
    "decode_tok_s_low",
    "decode_tok_s_high",
    "ms_per_token",
    "ms_per_token_low",
    "ms_per_token_high",
    "prefill_tok_s",
    "prefill_tok_s_low",
    "prefill_tok_s_high",
    "ttft_ms",
    "joules_per_token",
    "joules_per_token_low",
    "joules_per_token_high",
    "pipeline_tok_s",
    "pipeline_joules_per_token",
    "avg_power_w",
    "system_power_w",
    "weight_bytes",
    "kv_bytes",
    "bottleneck",
    "roofline_fraction",
)


@dataclass(frozen=True)
class TargetResult:
    """One target's prediction (see the module docstring for each figure's definition)."""

    target: str
    family: str
    devices: int
    decode_tok_s: float | None
    ms_per_token: float | None
    prefill_tok_s: float | None
    ttft_ms: float | None
    joules_per_token: float | None
    avg_power_w: float | None
    system_power_w: float | None
    weight_bytes: float
    kv_bytes: float
    bottleneck: str
    roofline_fraction: float | None
    decode_tok_s_low: float | None = None
    decode_tok_s_high: float | None = None
    ms_per_token_low: float | None = None
    ms_per_token_high: float | None = None
    prefill_tok_s_low: float | None = None
    prefill_tok_s_high: float | None = None
    joules_per_token_low: float | None = None
    joules_per_token_high: float | None = None
    tp: int = 1
    pp: int = 1
    pipeline_tok_s: float | None = None
    pipeline_joules_per_token: float | None = None
    decode: Cost | None = None
    prefill: Cost | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    limit: str = "does not fit"
    placement: Placement = field(default_factory=Placement)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: getattr(self, k) for k in RESULT_KEYS}
        data["decode_cost"] = None if self.decode is None else self.decode.to_dict()
        data["prefill_cost"] = None if self.prefill is None else self.prefill.to_dict()
        data["notes"] = list(self.notes)
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class Report:
    """The comparison of one model and scheme across targets."""

    model: str
    scheme: str | None
    scenario: Scenario
    targets: tuple[TargetResult, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scheme": self.scheme,
            "batch": self.scenario.batch,
            "prompt": self.scenario.prompt,
            "gen": self.scenario.gen,
            "targets": [t.to_json() for t in self.targets],
        }


def resolve_targets(names: Sequence[str] | str) -> list[str]:
    """Target names from a list or a comma-separated string; `all` is every target. Q35Error for unknown ones."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    valid = spec_names()
    if not items:
        raise Q35Error(f"no target given (valid targets: all, {', '.join(valid)})")
    result: list[str] = []
    for item in items:
        for name in valid if item == "all" else [item]:
            if name not in valid:
                hint = did_you_mean(name, valid)
                raise Q35Error(f"unknown target '{name}' (valid targets: all, {', '.join(valid)}){hint and '; '}{hint}")
            if name not in result:
                result.append(name)
    return result


# The graph IR of each model file and scheme, which placements only read: the predictors of one run (a report's
# plan and its comparison) share one module, and so the placements cached on it (`targets/placement.py`).
_GRAPHS: dict[tuple[str, str | None, str, int, int], ModuleOp] = {}


def _graph_of(model: str, scheme: str | None) -> ModuleOp:
    path = resolve_model(model)
    stat = os.stat(path)
    key = (model, scheme, path, stat.st_mtime_ns, stat.st_size)
    if key not in _GRAPHS:
        if len(_GRAPHS) >= 8:
            _GRAPHS.clear()
        _GRAPHS[key] = load_model(model, quant=scheme).module
    return _GRAPHS[key]


def footprint(decode: Workload, scenario: Scenario) -> Footprint:
    """What must be resident: weights, the KV cache at P + G tokens for B sequences, a decode step's activations."""
    return Footprint(
        weight_bytes=float(decode.weight_bytes),
        kv_bytes=decode.kv_bytes_per_token * (scenario.prompt + scenario.gen) * scenario.batch,
        activation_bytes=decode.peak_activation_bytes,
    )


@dataclass
class Predictor:
    """Compiles and costs one model and scheme on targets, sharing compiled workloads through a cache."""

    model: str
    scheme: str | None
    scenario: Scenario
    options: Options = ()
    cache: WorkloadCache = field(default_factory=lambda: CACHE)
    _graph: ModuleOp | None = field(default=None, repr=False)
    _graph_need: Footprint | None = field(default=None, repr=False)
    _placements: dict[tuple[str, int | None, int | None, int | None], Placement | ValueError] = field(
        default_factory=dict[tuple[str, int | None, int | None, int | None], Placement | ValueError], repr=False
    )

    def phase_keys(self) -> dict[str, Key]:
        """The compile key of each phase's module (`Scenario.phases`)."""
        b = self.scenario.batch
        return {phase: (self.model, self.scheme, t, c, b) for phase, (t, c) in self.scenario.phases().items()}

    def keys(self) -> list[Key]:
        return list(dict.fromkeys(self.phase_keys().values()))

    def prepare(self, targets: Sequence[Target]) -> None:
        """Compile everything the targets need at once (see `q35c.driver.cache`)."""
        self.cache.prepare([(key, t) for key in self.keys() for t in targets], self.options)

    def workload(self, phase: str, target: Target) -> Workload | None:
        """The workload of `phase`'s module compiled for `target` (None when the scenario has no such phase)."""
        key = self.phase_keys().get(phase)
        return None if key is None else self.cache.get(key, target, self.options)

    def decode_workload(self, target: Target) -> Workload | None:
        return self.workload("decode", target)

    def prefill_workload(self, target: Target) -> Workload | None:
        return self.workload("prefill", target)

    def graph(self) -> ModuleOp:
        """The model's graph IR (one device, one token): what placements are checked and sized on."""
        if self._graph is None:
            self._graph = _graph_of(self.model, self.scheme)
        return self._graph

    def placement(
        self, target: Target, devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> Placement:
        """Where the model runs on `target` (`Target.place`), sized from its graph IR: every weight's storage, the
        KV cache at P + G tokens x B, the largest activation of a graph op. Q35Error for a placement that cannot
        be realised; DoesNotFit when no allowed one holds the model. Each answer is kept: `prepare_placed` and
        `predict` ask the same question."""
        asked = (target.name, devices, tp, pp)
        if asked not in self._placements:
            try:
                self._placements[asked] = self._place(target, devices, tp, pp)
            except (Q35Error, DoesNotFit) as err:
                self._placements[asked] = err
        found = self._placements[asked]
        if isinstance(found, ValueError):
            raise found
        return found

    def graph_need(self) -> Footprint:
        """What the model needs on one device, from its graph IR: the weights' storage and the KV cache as any
        compiled module has them (compiling changes neither), the largest activation of a graph op."""
        s = self.scenario
        if self._graph_need is None:
            work = extract(self.graph(), batch=1)
            self._graph_need = Footprint(
                weight_bytes=float(work.weight_bytes),
                kv_bytes=work.kv_bytes_per_token * (s.prompt + s.gen) * s.batch,
                activation_bytes=work.peak_activation_bytes * s.batch,
            )
        return self._graph_need

    def _place(self, target: Target, devices: int | None, tp: int | None, pp: int | None) -> Placement:
        s = self.scenario
        need = self.graph_need()
        return target.place(self.graph(), need, (s.prompt + s.gen) * s.batch, devices=devices, tp=tp, pp=pp)

    def cannot_hold(
        self, target: Target, devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> DoesNotFit | None:
        """Why `target` cannot hold the model (`placement`'s DoesNotFit), or None when it can or the placement
        cannot be realised (a Q35Error `predict` raises)."""
        try:
            self.placement(target, devices, tp, pp)
        except DoesNotFit as err:
            return err
        except Q35Error:
            return None
        return None

    def placements(
        self, targets: Sequence[Target], devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> dict[str, Placement]:
        """The placement of each target that has one over several devices (those that fail are left out: `predict`
        says why)."""
        found: dict[str, Placement] = {}
        for target in targets:
            try:
                placement = self.placement(target, devices, tp, pp)
            except (Q35Error, DoesNotFit):
                continue
            if placement.devices > 1:
                found[target.name] = placement
        return found

    def sizing_phase(self) -> str:
        """The phase whose module, compiled for one device, sizes what a target must hold: the decode step, else
        the prefill."""
        return "decode" if "decode" in self.phase_keys() else "prefill"

    def prepare_needed(
        self, targets: Sequence[Target], devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> None:
        """Compile, in one run, exactly what `predict` reads for each target: every phase's module as is where
        the model runs on one device, and every phase's placed (`placed`) where it runs on several (what those
        must hold comes from the graph IR, as their placement does, with the default pipeline options); a target
        that cannot hold the model is costed from nothing but its size. Placements come from the graph IR: they
        are worked out while the sizing modules of targets that may run on one device compile, but for targets
        that may use one device only, which are placed first (at once: nothing is sharded) so that those that
        cannot hold the model are not compiled (`predict` sizes them from the graph IR), and those the graph's
        size alone puts on several devices (`_surely_spread`), whose modules as is nothing reads."""
        keys = self.phase_keys()
        sizing = keys[self.sizing_phase()]
        single = [t for t in targets if t.limits().total == 1]
        compiled = [t for t in targets if t not in single or not self._sized_from_graph(t, devices, tp, pp)]
        as_is = [t for t in compiled if not self._surely_spread(t, devices, tp, pp)]

        def rest() -> list[Request]:
            own: list[Request] = []
            placed: list[Request] = []
            for target in compiled:
                try:
                    placement = self.placement(target, devices, tp, pp)
                except (DoesNotFit, Q35Error):
                    continue  # `predict` sizes it from the graph IR, or raises the placement's error
                if placement.devices == 1:
                    own += [(key, target) for key in keys.values() if key != sizing]
                else:
                    extra = tuple(sorted(placement.options().items()))
                    placed += [(key, target, extra) for key in keys.values()]
            return [*own, *placed]

        self.cache.prepare([(sizing, target) for target in as_is], self.options, more=rest)

    def _surely_spread(
        self, target: Target, devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> bool:
        """Whether, with the default pipeline options, `target` is known before placing it to run the model over
        several devices (as asked, or the graph IR's footprint exceeding one device): what it must hold then comes
        from the graph IR, as its placement does, and its sizing module is not compiled as is."""
        if self.options:
            return False
        if tp is not None or pp is not None:
            return (tp or 1) * (pp or 1) > 1
        if devices is not None:
            return devices > 1
        return placement_lower_bound(self.graph_need().total, target.device_bytes()) > 1

    def _need(self, target: Target, placement: Placement | None) -> Footprint:
        """What `target` must hold: with the default pipeline options and a placement over several devices, the
        graph IR's footprint (what the placement was decided on); else the sizing module's as compiled."""
        if not self.options and placement is not None and placement.devices > 1:
            return self.graph_need()
        sizing = self.workload(self.sizing_phase(), target)
        assert sizing is not None, "a scenario needs a prompt or generated tokens"
        return footprint(sizing, self.scenario)

    def _sized_from_graph(
        self, target: Target, devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> bool:
        """Whether `target` cannot hold the model and, with the default pipeline options (which keep every
        weight's storage as the graph IR has it), its result comes from the graph IR's size, compiling
        nothing."""
        return not self.options and self.cannot_hold(target, devices, tp, pp) is not None

    def prepare_placed(
        self, targets: Sequence[Target], devices: int | None = None, tp: int | None = None, pp: int | None = None
    ) -> None:
        """Compile at once every sharded module the targets' placements need (`placed`), rather than one target
        at a time as `predict` reaches it: the model is loaded once per phase and shared stages run once."""
        placed = self.placements(targets, devices, tp, pp)
        if placed:
            chosen = [t for t in targets if t.name in placed]
            per_target = {name: tuple(sorted(p.options().items())) for name, p in placed.items()}
            self.cache.prepare([(key, t) for key in self.keys() for t in chosen], self.options, per_target=per_target)

    def placed(self, phase: str, target: Target, placement: Placement) -> Workload | None:
        """The workload of `phase`'s module compiled for `target` and sharded for `placement`."""
        key = self.phase_keys().get(phase)
        if key is None:
            return None
        if placement.devices == 1:
            return self.cache.get(key, target, self.options)
        options = tuple(sorted({**dict(self.options), **placement.options()}.items()))
        return self.cache.get(key, target, options)

    def predict(
        self,
        target: Target,
        devices: int | None = None,
        *,
        tp: int | None = None,
        pp: int | None = None,
        with_ranges: bool = True,
    ) -> TargetResult:
        """The prediction on `target` (placed by `tp`/`pp`, else on `devices`, else on the fewest that hold the
        model: `Target.place`); `with_ranges` also costs the spec's uncertain numbers at their bounds
        (`q35c.predict.ranges`). Q35Error for a placement that cannot be realised."""
        s = self.scenario
        if self._sized_from_graph(target, devices, tp, pp):
            err = self.cannot_hold(target, devices, tp, pp)
            assert err is not None
            return unfit(target, self.graph_need(), str(err), err.label)
        try:
            placement = self.placement(target, devices, tp, pp)
        except DoesNotFit as err:
            return unfit(target, self._need(target, None), str(err), err.label)
        need = self._need(target, placement)
        if placement.devices > 1:
            decode_w, prefill_w = self.placed("decode", target, placement), self.placed("prefill", target, placement)
        else:
            decode_w, prefill_w = self.decode_workload(target), self.prefill_workload(target)
        sizing = decode_w if decode_w is not None else prefill_w
        assert sizing is not None, "a scenario needs a prompt or generated tokens"
        count = placement.devices

        def costs(t: Target) -> tuple[Cost | None, Cost | None]:
            decode = None if decode_w is None else t.estimate(decode_w)
            prefill = None if prefill_w is None else t.estimate(prefill_w)
            return decode, prefill

        decode, prefill = costs(target)
        main = decode if decode is not None else prefill
        assert main is not None
        values = figures(decode, prefill, s, count)
        spans = ranges.spread(target, lambda t: figures(*costs(t), s, count), values) if with_ranges else {}
        staged = decode is not None and placement.pp > 1
        return TargetResult(
            target=target.name,
            family=target.family,
            devices=count,
            **values,  # type: ignore[arg-type]
            **{f"{name}_{side}": span[i] for name, span in spans.items() for i, side in enumerate(("low", "high"))},
            weight_bytes=need.weight_bytes,
            kv_bytes=need.kv_bytes,
            bottleneck=describe_bottleneck(main),
            roofline_fraction=main.roofline_seconds / main.seconds if main.seconds else None,
            tp=placement.tp,
            pp=placement.pp,
            pipeline_tok_s=s.batch / decode.interval_seconds if staged and decode is not None else None,
            pipeline_joules_per_token=decode.interval_joules / s.batch if staged and decode is not None else None,
            decode=decode,
            prefill=prefill,
            notes=(target.explain_devices(need, placement, sizing), s.note(), *target.notes()),
            placement=placement,
        )


def figures(decode: Cost | None, prefill: Cost | None, s: Scenario, devices: int) -> dict[str, float | None]:
    """The figures of a result from the costs of its phases (None for a phase the scenario does not run)."""
    return {
        "decode_tok_s": None if decode is None else s.batch / decode.seconds,
        "ms_per_token": None if decode is None else decode.seconds * 1e3,
        "prefill_tok_s": None if prefill is None else s.batch * s.prompt / prefill.seconds,
        "ttft_ms": None if prefill is None else prefill.seconds * 1e3,
        "joules_per_token": None if decode is None else decode.joules / s.batch,
        "avg_power_w": None if decode is None else decode.joules / decode.seconds / devices,
        "system_power_w": None if decode is None else decode.joules / decode.seconds,
    }


def unfit(target: Target, need: Footprint, reason: str, label: str = "does not fit") -> TargetResult:
    """The result for a target that cannot hold the model: no figures, the reason instead."""
    return TargetResult(
        target=target.name,
        family=target.family,
        devices=0,
        decode_tok_s=None,
        ms_per_token=None,
        prefill_tok_s=None,
        ttft_ms=None,
        joules_per_token=None,
        avg_power_w=None,
        system_power_w=None,
        weight_bytes=need.weight_bytes,
        kv_bytes=need.kv_bytes,
        bottleneck=label,
        roofline_fraction=None,
        error=reason,
        limit=label,
    )


def describe_bottleneck(cost: Cost) -> str:
    """The resource that bound the most time, with its share: `hbm bandwidth (93%)`."""
    if not cost.limits or cost.seconds <= 0:
        return "nothing"
    name = cost.bottleneck
    return f"{name} ({100 * cost.limits[name] / cost.seconds:.0f}%)"


def scenario_lengths(prompt: int | None, gen: int | None, limit: int | None, source: str) -> tuple[int, int]:
    """(prompt, gen): the given ones, which must fit the model's context length `limit`, or the defaults
    (`DEFAULT_PROMPT`, `DEFAULT_GEN`), the prompt shortened where they would not fit."""
    given_gen = DEFAULT_GEN if gen is None else gen
    if limit is not None and prompt is None:
        given_gen = min(given_gen, limit)
    given_prompt = DEFAULT_PROMPT if prompt is None else prompt
    if limit is not None and prompt is None:
        given_prompt = max(0, min(given_prompt, limit - given_gen))
    if min(given_prompt, given_gen) < 0:
        raise Q35Error("prompt and gen must be at least 0")
    if limit is not None and given_prompt + given_gen > limit:
        raise Q35Error(
            f"prompt {given_prompt} + gen {given_gen} tokens exceed the model's context length {limit}",
            Location(source),
        )
    return given_prompt, given_gen


def compare(
    model: str,
    scheme: str | None,
    targets: Sequence[str] | str,
    *,
    batch: int = 1,
    prompt: int | None = None,
    gen: int | None = None,
    devices: int | None = None,
    tp: int | None = None,
    pp: int | None = None,
    options: Mapping[str, str] | None = None,
) -> Report:
    """Predict `model` quantized with `scheme` on each of `targets` (names, a comma list, or `all`); `options`
    are pipeline options (`targets/pipeline.py`) for every target's compile; `devices`, or `tp` and `pp`, the
    placement (see `Predictor.predict`). With one target, a placement that cannot be realised is a Q35Error; with
    several, that target's result says why."""
    for name, value in (("devices", devices), ("tp", tp), ("pp", pp)):
        if value is not None and not 1 <= value <= MAX_DEVICES:
            raise Q35Error(f"{name} must be between 1 and {MAX_DEVICES}, got {value}")
    if devices is not None and (tp is not None or pp is not None) and devices != (tp or 1) * (pp or 1):
        raise Q35Error(f"--devices {devices} disagrees with --tp {tp or 1} x --pp {pp or 1}")
    chosen = [get_target(name) for name in resolve_targets(targets)]
    graph = load_graph(model, quant=scheme)
    prompt, gen = scenario_lengths(prompt, gen, graph.max_context, graph.source)
    if batch < 1 or prompt + gen < 1:
        raise Q35Error("batch must be at least 1, and prompt + gen at least 1")
    predictor = Predictor(model, scheme, Scenario(batch, prompt, gen), tuple(sorted((options or {}).items())))
    predictor.prepare_needed(chosen, devices, tp, pp)

    def result(index: int) -> TargetResult:
        target = chosen[index]
        try:
            return predictor.predict(target, devices, tp=tp, pp=pp)
        except Q35Error as err:
            if len(chosen) == 1:
                raise
            return unfit(target, Footprint(0.0, 0.0, 0.0), f"{target.name}: {err.message}", "placement")

    # Everything is compiled: the targets are costed in parallel where there are several cores.
    results = tuple(map_forked(result, len(chosen)) if len(chosen) > 1 else [result(0)])
    if all(r.error is not None for r in results):
        raise Q35Error("; ".join(r.error for r in results if r.error is not None))
    return Report(model, scheme, predictor.scenario, results)


def predict_row(row: Row, efficiency: Efficiency | None = None) -> float:
    """The predicted tok/s of a calibration row (decode: generation rate; prefill: prompt tokens / TTFT), with the
    family's stored efficiency constants or the ones given."""
    target = get_target(row.target)
    if efficiency is not None:
        target = replace(target, efficiency=efficiency)
    predictor = Predictor(row.model, row.scheme, Scenario(row.batch, row.prompt, row.gen))
    result = predictor.predict(target, row.devices, with_ranges=False)
    value = result.decode_tok_s if row.phase == "decode" else result.prefill_tok_s
    if value is None:
        raise ValueError(f"row {row.id}: no {row.phase} phase in prompt {row.prompt}, gen {row.gen}")
    return value
