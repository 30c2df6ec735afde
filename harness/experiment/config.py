"""Experiment configs: YAML data → validated :class:`Experiment` → grid of :class:`Cell`.

:func:`resolve` validates a config once, without loading any model or reading a model's files
beyond "is this a model directory": schema (pydantic), plugin names (with did-you-mean), plugin
parameters (each plugin's ``Params``), files that must exist, task compatibility and label
uniqueness. Every problem becomes a :class:`ConfigError` that names the file, line, key path and
allowed values. It checks nothing against the models and this machine: that is
:mod:`harness.experiment.checks`, which :mod:`harness.experiment.load` runs after it.

Sweeps: a list given for a scalar parameter expands into one entry per value (the cartesian
product over all swept keys of an entry). The grid is models × benchmarks × strategies ×
decoders × seeds, restricted to compatible combinations (decoders apply to generation tasks).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..errors import ConfigError, ConfigErrors, HarnessError, UnknownPluginError, unknown_choice_message
from ..models.spec import ModelSpec
from ..params import Params, Seed, StrictModel, allowed_range, is_sweep
from ..plugins import PluginSet, default_plugins
from .subset import SUBSET_KEYS, Subset, SubsetParams
from .yamlio import line_of

GENERATION_TASKS = ("translation",)
DEFAULT_METRICS = {"translation": ["bleu", "chrf", "ter"], "classification": ["accuracy", "macro_f1", "mcc"]}
NO_DECODER = "-"
NO_STRATEGY = "none"  # the identity strategy: the only one a model of given outputs (kind: outputs) takes


class PluginRef(StrictModel):
    """A plugin named in the config: ``greedy`` or ``{name: beam, label: b4, params: {...}}``."""

    name: str = Field(description="registered plugin name")
    label: str | None = Field(None, description="name in reports (default: plugin name + swept values)")
    params: dict[str, Any] = Field(default_factory=dict, description="plugin parameters; lists sweep")
    benchmarks: list[str] | None = Field(
        None, description="strategies and decoders: apply only to these benchmark labels (default: all)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"name": v} if isinstance(v, str) else v

    @field_validator("label")
    @classmethod
    def _one_line(cls, v):
        from ..params import display_label

        return display_label(v)


class Baseline(StrictModel):
    decoder: str | None = Field(None, description="decoder label to compare others against")
    strategy: str | None = Field(None, description="strategy label to compare others against")
    model: str | None = Field(None, description="model label to compare others against (checked first: each "
                                                "model is compared with this one at the same decoder and strategy)")


class Experiment(StrictModel):
    """The whole YAML experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="experiment name (letters, digits, _ . -)")
    description: str = ""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1,
                              description="one cell per seed; integers in 0..2**32-1")
    models: list[ModelSpec] = Field(min_length=1)
    benchmarks: list[PluginRef] = Field(min_length=1)
    strategies: list[PluginRef] = Field(default_factory=lambda: [PluginRef(name="none")], min_length=1)
    decoders: list[PluginRef] = Field(default_factory=lambda: [PluginRef(name="greedy")], min_length=1)
    metrics: list[PluginRef] = Field(default_factory=list)
    reporters: list[PluginRef] = Field(default_factory=lambda: [PluginRef(name="html")])
    executor: PluginRef = Field(default_factory=lambda: PluginRef(name="local"))
    baseline: Baseline = Field(default_factory=Baseline)
    output_dir: str | None = Field(None, description="default output directory (relative to the config)")
    threads: int | None = Field(None, ge=1, description="torch threads per cell (default: the usable cores, see "
                                                        "harness.run.threads.decide_threads); `--threads` overrides")
    data_dir: str | None = Field(None, description="where benchmark presets find local copies (relative to the "
                                                   "config; default $HARNESS_DATA_DIR); see `harness benchmarks`")
    training_threads: int = Field(1, ge=1, description="torch threads while a strategy trains (default 1, so a seed "
                                                       "gives the same checkpoint on any machine; another count is "
                                                       "part of the checkpoint's key)")
    limit: int | None = Field(None, ge=1, description="evaluate only this many test examples of every benchmark "
                                                      "(replaces each benchmark's own limit)")
    sample: bool = Field(False, description="with limit: a seeded random sample instead of the first examples")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, v):
        # `baseline: null` or `--set decoders=null` asks for the default, as if the key were absent
        if isinstance(v, dict):
            return {k: x for k, x in v.items()
                    if not (x is None and k in cls.model_fields and not cls.model_fields[k].is_required())}
        return v

    @field_validator("name")
    @classmethod
    def _name_is_not_a_path(cls, v: str) -> str:
        # the default output directory is runs/<name>: '.' and '..' would put the run (its .lock,
        # .report-cache, results) in runs/ itself or beside it
        if set(v) <= {"."}:
            raise ValueError(f"'{v}' would name a directory outside runs/ (the default output directory is "
                             "runs/<name>); allowed: letters, digits, _ . -, not only dots")
        return v

    @field_validator("sample")
    @classmethod
    def _sample_needs_limit(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("limit") is None:  # (limit is declared first, so it is in info.data)
            raise ValueError("true needs limit: N (the number of test examples to sample per benchmark)")
        return v


SECTION_KIND = {"benchmarks": "benchmark", "strategies": "strategy", "decoders": "decoder",
                "metrics": "metric", "reporters": "reporter", "executor": "executor"}


@dataclass(frozen=True)
class Component:
    """One resolved plugin use: a plugin class, its validated params and its report label."""

    kind: str
    name: str
    label: str
    params: Params
    swept: tuple[tuple[str, Any], ...] = ()
    cls: type = field(default=object, compare=False, repr=False)
    scope: tuple[str, ...] | None = None  # benchmark labels it applies to (None: all)
    base_label: str = ""  # label before sweep values were appended
    subset: Subset | None = None  # benchmarks: the test examples the core keeps (--limit; harness.experiment.subset)

    def applies_to(self, benchmark: Component) -> bool:
        return self.scope is None or benchmark.base_label in self.scope

    def instantiate(self):
        return self.cls(self.params)

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    benchmark: Component
    strategy: Component
    decoder: Component | None
    seed: int

    @property
    def task(self) -> str:
        return self.benchmark.cls.task

    def labels(self) -> dict[str, Any]:
        return {"model": self.model.display, "benchmark": self.benchmark.label,
                "strategy": self.strategy.label,
                "decoder": self.decoder.label if self.decoder else NO_DECODER, "seed": self.seed}

    @property
    def title(self) -> str:
        lab = self.labels()
        return " / ".join(str(lab[k]) for k in ("model", "benchmark", "strategy", "decoder")) + f" / seed {self.seed}"


@dataclass
class ResolvedExperiment:
    source: str
    base_dir: Path
    raw: dict[str, Any]  # after overrides, as plain data (for the manifest)
    experiment: Experiment
    components: dict[str, list[Component]]  # section -> expanded components
    plugins: PluginSet
    origins: dict[str, str] = field(default_factory=dict)  # benchmark label -> "preset X: where its data is"
    # benchmark label -> why its preset's local copy was not read (the remote source is, instead)
    fallbacks: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # said by validate and run, on stderr
    raw_lines: Any = field(default=None, repr=False, compare=False)  # the config with line numbers, for errors

    def cells(self) -> list[Cell]:
        out = []
        models = [(m, model_tasks(m)) for m in self.experiment.models]  # reads config.json once per model
        for (model, served), bench, strat in itertools.product(
                models, self.components["benchmarks"], self.components["strategies"]):
            task = bench.cls.task
            if task not in strat.cls.tasks or task not in served or not strat.applies_to(bench):
                continue
            if model.outputs:  # given outputs: nothing to fine-tune or decode (harness.models.outputs)
                if strat.name == NO_STRATEGY:
                    out += [Cell(model, bench, strat, None, seed) for seed in self.experiment.seeds]
                continue
            decoders = [d for d in self.components["decoders"] if d.applies_to(bench)] \
                if task in GENERATION_TASKS else [None]
            for dec, seed in itertools.product(decoders, self.experiment.seeds):
                out.append(Cell(model, bench, strat, dec, seed))
        return out

    def metrics_for(self, task: str) -> list[Component]:
        return [m for m in self.components["metrics"] if m.cls.task == task]

    @property
    def executor(self) -> Component:
        return self.components["executor"][0]

    @property
    def reporters(self) -> list[Component]:
        return self.components["reporters"]


# ----------------------------------------------------------------------------- helpers


def model_tasks(spec: ModelSpec) -> tuple[str, ...]:
    """Tasks a model can serve, so that one experiment can hold a translation model and a
    classifier without pairing each with the other's benchmarks. Decided from ``kind`` or,
    for a local model, from its config.json (no weights are read); a Hub model with
    ``kind: auto`` is assumed to fit every task."""
    kind = spec.kind
    if kind == "outputs":
        return ("translation",)
    if kind == "auto" and spec.local:
        from ..models.facts import read_config_json

        try:
            cfg = read_config_json(spec.path)
        except HarnessError:  # reported by harness.experiment.checks.check_models
            cfg = {}
        archs = " ".join(cfg.get("architectures") or [])
        if cfg.get("is_encoder_decoder"):
            kind = "seq2seq"
        elif "CausalLM" in archs or "LMHead" in archs:
            kind = "causal"
        elif archs:
            kind = "classifier"
    return {"seq2seq": ("translation",), "causal": ("translation",), "classifier": ("classification",)}.get(
        kind, ("translation", "classification"))


def keypath(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(ann: Any) -> Any:
    while True:
        origin = typing.get_origin(ann)
        if origin in (list, tuple):
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = args[0] if len(args) == 1 else ann
            if len(args) != 1:
                return ann
        else:
            return ann


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    cur: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        cur = _unwrap(cur.model_fields[part].annotation)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _field_at(cls: type[BaseModel], loc: tuple):
    """The pydantic field a validation error location ends in (list indices skipped), or None."""
    cur: Any = cls
    found = None
    for part in loc:  # skips list indices and pydantic's tags (union members, validator names)
        if isinstance(cur, type) and issubclass(cur, BaseModel) and part in cur.model_fields:
            found = cur.model_fields[part]
            cur = _unwrap(found.annotation)
    return found


# pydantic's type errors for numbers say what is wrong but not what is allowed; these get the range
NUMBER_TYPE_ERRORS = {"int_parsing", "int_type", "int_from_float", "int_parsing_size", "float_parsing",
                      "float_type", "finite_number"}


def _data_loc(raw: Any, loc: tuple) -> tuple:
    """Keep the parts of a pydantic error location that index the user's data (drops
    pydantic's internal tags such as 'function-after[...]')."""
    out, node = [], raw
    for i, part in enumerate(loc):
        try:
            node = node[part]
            out.append(part)
        except (KeyError, IndexError, TypeError):
            if i == len(loc) - 1 and isinstance(part, (str, int)) and not str(part).endswith("]"):
                out.append(part)  # a missing key: the last part names it
    return tuple(out)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def convert_validation_error(e: ValidationError, source: str, raw_root: Any, prefix: tuple,
                             raw_at_prefix: Any, model_cls: type[BaseModel], note: str = "") -> list[ConfigError]:
    errors = []
    for err in e.errors():
        loc = prefix + _data_loc(raw_at_prefix, tuple(err["loc"]))
        typ, msg = err["type"], err["msg"]
        if typ == "extra_forbidden":
            key = loc[-1]
            parent = _model_at(model_cls, tuple(err["loc"])[:-1])
            allowed = list(parent.model_fields) if parent is not None else []
            allowed = [a for a in allowed if a != "local"]
            msg = unknown_choice_message("unknown key", key, allowed).replace("Allowed:", "Allowed keys:")
        elif typ == "missing":
            msg = "required key is missing"
        else:
            msg = msg.removeprefix("Value error, ")
            if typ == "int_parsing_size":
                msg = "Input is too large for an integer"
            if "input" in err and not isinstance(err["input"], (dict, list)) and typ not in ("value_error",):
                msg += f" (got {_short(err['input'])})"
            if typ in NUMBER_TYPE_ERRORS:
                allowed = allowed_range(_field_at(model_cls, tuple(err["loc"])))
                if allowed:
                    msg += f"; allowed: {allowed}"
        if note:
            msg += f" {note}"
        errors.append(ConfigError(source, keypath(loc), msg, line_of(raw_root, loc)))
    return errors


def plain_data(x: Any) -> Any:
    """YAML containers with line numbers (LineDict/LineList) as plain dicts and lists."""
    if isinstance(x, dict):
        return {k: plain_data(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain_data(v) for v in x]
    return x


# ----------------------------------------------------------------------------- overrides


def apply_override(raw: Any, assignment: str) -> None:
    """Apply one ``--set key.path=value`` (value parsed as YAML) in place (see harness.experiment.overrides)."""
    from .overrides import apply, parse_set

    apply(raw, parse_set(assignment))


# ----------------------------------------------------------------------------- resolve


def _expand_ref(kind: str, ref: PluginRef, loc: tuple, source: str, raw_root: Any, base_dir: Path,
                plugins: PluginSet, check_files: bool, errors: list[ConfigError]) -> list[Component]:
    try:
        cls = plugins.get(kind, ref.name)
    except UnknownPluginError as e:
        message = str(e)
        if kind == "benchmark":  # a benchmark may also be a preset
            from .presets import presets

            message = unknown_choice_message("unknown benchmark", ref.name, [*e.choices, *presets()]) + \
                " (plugins and presets: `harness benchmarks`)"
        errors.append(ConfigError(source, keypath(loc + ("name",)), message, line_of(raw_root, loc + ("name",))))
        return []
    params_cls = cls.Params
    swept = [k for k, v in ref.params.items() if is_sweep(params_cls, k, v)]
    for k in swept:
        if not ref.params[k]:
            errors.append(ConfigError(source, keypath(loc + ("params", k)), "an empty list sweeps over nothing",
                                      line_of(raw_root, loc + ("params", k))))
            return []
    combos = list(itertools.product(*(ref.params[k] for k in swept))) or [()]
    out, seen_msgs = [], set()
    for combo in combos:
        values = {**plain_data(ref.params), **dict(zip(swept, combo))}
        try:
            params = params_cls.model_validate(values, context={"base_dir": base_dir, "check_files": check_files})
        except ValidationError as e:
            note = f"(in sweep {', '.join(f'{k}={v!r}' for k, v in zip(swept, combo))})" if swept else ""
            for ce in convert_validation_error(e, source, raw_root, loc + ("params",), values, params_cls, note):
                if str(ce) not in seen_msgs:
                    seen_msgs.add(str(ce))
                    errors.append(ce)
            continue
        label = ref.label or ref.name
        if swept:
            label += "[" + ",".join(f"{k}={v}" for k, v in zip(swept, combo)) + "]"
        out.append(Component(kind, ref.name, label, params, tuple(zip(swept, combo)), cls,
                             tuple(ref.benchmarks) if ref.benchmarks is not None else None, ref.label or ref.name))
    return out


def _core_subset(exp: Experiment, ref: PluginRef, i: int, fields: dict, raw: Any, source: str,
                 errors: list[ConfigError]) -> tuple[PluginRef, Subset | None]:
    """The test subset the core takes of benchmark ``i`` (harness.experiment.subset), and its ref
    without the params that became it: ``limit``/``sample``/``sample_seed`` its plugin does not
    declare, and, under the experiment-wide ``limit``, its own ``limit``/``sample`` (replaced)."""
    taken = {k: ref.params[k] for k in SUBSET_KEYS if k in ref.params and k not in fields}
    subset = None
    if taken:
        try:
            p = SubsetParams.model_validate(plain_data(taken))
        except ValidationError as e:
            errors.extend(convert_validation_error(e, source, raw, ("benchmarks", i, "params"), taken, SubsetParams))
            p = None
        if p is not None and p.limit is not None:
            subset = Subset(p.limit, p.sample, p.sample_seed)
    if exp.limit is not None:
        seed = ref.params.get("sample_seed", 0)
        subset = Subset(exp.limit, exp.sample, seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)
        taken |= {k: None for k in ("limit", "sample") if k in ref.params}
    if taken:
        ref = ref.model_copy(update={"params": {k: v for k, v in ref.params.items() if k not in taken}})
    return ref, subset


def _missing_local_copy(preset, remote_plugin: str, ref: PluginRef, i: int, data_dir: Path | None, how: str,
                        plugins: PluginSet, raw: Any, source: str, errors: list[ConfigError],
                        warnings: list[str]) -> str | bool | None:
    """A preset with a local layout whose copy is not read: refused (an error, returns False) when
    the params given are the local copy's only, or when the remote source cannot be fetched
    (offline, unreachable, not cached); else a warning, and the note for the run's errors."""
    from . import presets

    loc = ("benchmarks", i, "name")
    local_fields = plugins.get("benchmark", preset.local.benchmark).Params.model_fields
    remote_fields = plugins.get("benchmark", remote_plugin).Params.model_fields
    only_local = [k for k in ref.params if k not in remote_fields and k in local_fields and k not in SUBSET_KEYS]
    if only_local:
        note = presets.layout_note(preset, data_dir, how)
        keys = ", ".join(only_local)
        errors.append(ConfigError(source, keypath(("benchmarks", i, "params")), (
            f"preset '{preset.name}': {keys} {'is a parameter' if len(only_local) == 1 else 'are parameters'} of its "
            f"local copy ({preset.local.benchmark}), and the local copy is missing: {note}. Its remote source "
            f"({presets.remote_origin(preset.remote)}, {remote_plugin}) does not take "
            f"{'it' if len(only_local) == 1 else 'them'}: point data_dir: (or --data-dir) at the directory "
            f"holding the files, or drop {keys}"), line_of(raw, ("benchmarks", i))))
        return False
    fb = presets.missing_local_copy(preset, data_dir, how=how)
    if fb is None:
        return None
    if fb.problem is not None:
        errors.append(ConfigError(source, keypath(loc), (
            f"preset '{preset.name}': {fb.note}. Its remote source ({fb.remote}) would be downloaded instead, but "
            f"{fb.problem} and it is not cached: point data_dir: (or --data-dir) at the directory holding the files"),
            line_of(raw, loc)))
        return False
    how_read = "from its library's cache" if fb.cached else "which downloads it over the network"
    warnings.append(f"{source}: {keypath(loc)}: preset '{preset.name}': {fb.note}; reading its remote source "
                    f"({fb.remote}) instead, {how_read}")
    return fb.note


def _expand_presets(exp: Experiment, raw: Any, source: str, base_dir: Path, plugins: PluginSet,
                    errors: list[ConfigError], warnings: list[str]
                    ) -> tuple[dict[str, str], dict[int, Subset], dict[str, str]]:
    """Replace benchmark presets by the plugin reference they stand for (in ``exp.benchmarks``)
    and take the test subsets the core applies (``limit``); returns label -> where the preset's
    data comes from, benchmark index -> its subset, and label -> why its local copy is not read."""
    from . import presets

    registry = plugins.registry("benchmark")
    data_dir = presets.data_dir_from(exp.data_dir, base_dir)
    how = f" (${presets.DATA_DIR_ENV})" if exp.data_dir is None and data_dir is not None else ""
    origins: dict[str, str] = {}
    subsets: dict[int, Subset] = {}
    fallbacks: dict[str, str] = {}
    refs = []
    readers = [r.label or r.name for r in exp.benchmarks if r.name not in registry and presets.get(r.name) is not None
               and presets.get(r.name).local is not None]
    no_dir = data_dir is not None and not data_dir.is_dir() and bool(readers)
    if no_dir:  # one error for the directory, rather than one per preset that would read it
        value = exp.data_dir if exp.data_dir is not None else os.environ.get(presets.DATA_DIR_ENV, "")
        message = presets.data_dir_missing(data_dir, str(value), exp.data_dir is None, readers)
        # at once: every preset reading it would otherwise fail on its own (its params, its source)
        raise ConfigErrors([ConfigError(source, "", message) if exp.data_dir is None else
                            ConfigError(source, "data_dir", message, line_of(raw, ("data_dir",)))])
    for i, ref in enumerate(exp.benchmarks):
        if ref.name not in registry and presets.get(ref.name) is not None:
            preset = presets.get(ref.name)
            try:
                x = presets.expand(ref.name, plain_data(ref.params), data_dir)
            except HarnessError as e:
                errors.append(ConfigError(source, keypath(("benchmarks", i, "name")), str(e),
                                          line_of(raw, ("benchmarks", i, "name"))))
                continue
            label = ref.label or ref.name
            if preset.local is not None and not x.local:
                note = _missing_local_copy(preset, x.plugin, ref, i, data_dir, how, plugins, raw, source, errors,
                                           warnings)
                if note is False:
                    continue
                if note is not None:
                    fallbacks[label] = note
            ref = ref.model_copy(update={"name": x.plugin, "params": x.params, "label": label})
            origins[ref.label] = x.origin
        if ref.name in registry:
            ref, subset = _core_subset(exp, ref, i, plugins.get("benchmark", ref.name).Params.model_fields, raw,
                                       source, errors)
            if subset is not None:
                subsets[i] = subset
        refs.append(ref)
    exp.benchmarks = refs
    return origins, subsets, fallbacks


def resolve(raw: Any, source: str, base_dir: Path, *, plugins: PluginSet | None = None,
            check_files: bool = True) -> ResolvedExperiment:
    plugins = plugins or default_plugins()
    if not isinstance(raw, dict):
        kinds = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
        got = "an empty file" if raw is None else f"a {next((v for k, v in kinds.items() if isinstance(raw, k)), 'scalar')}"
        raise ConfigError(source, "", f"an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got {got}")
    ctx = {"base_dir": base_dir, "check_files": check_files}
    try:
        exp = Experiment.model_validate(raw, context=ctx)
    except ValidationError as e:
        raise ConfigErrors(convert_validation_error(e, source, raw, (), raw, Experiment)) from None

    errors: list[ConfigError] = []
    warnings: list[str] = []
    origins, subsets, fallbacks = _expand_presets(exp, raw, source, base_dir, plugins, errors, warnings)
    components: dict[str, list[Component]] = {}
    for section, kind in SECTION_KIND.items():
        refs = getattr(exp, section)
        if section == "executor":
            components[section] = _expand_ref(kind, refs, (section,), source, raw, base_dir, plugins, check_files, errors)
            continue
        if section == "metrics" and not refs:
            tasks = {plugins.get("benchmark", b.name).task for b in exp.benchmarks if b.name in plugins.registry("benchmark")}
            refs = [PluginRef(name=m) for t in sorted(tasks) for m in DEFAULT_METRICS.get(t, [])]
        comps = []
        for i, ref in enumerate(refs):
            expanded = _expand_ref(kind, ref, (section, i), source, raw, base_dir, plugins, check_files, errors)
            if section == "benchmarks" and i in subsets:
                expanded = [dataclasses.replace(c, subset=subsets[i]) for c in expanded]
            comps += expanded
        components[section] = comps
    if errors:
        raise ConfigErrors(errors)

    # `benchmarks:` scopes of strategies and decoders must name existing benchmark labels
    bench_labels = sorted({c.base_label for c in components["benchmarks"]})
    for section in ("strategies", "decoders"):
        for i, ref in enumerate(getattr(exp, section)):
            for j, want in enumerate(ref.benchmarks or []):
                if want not in bench_labels:
                    loc = (section, i, "benchmarks", j)
                    errors.append(ConfigError(source, keypath(loc), unknown_choice_message(
                        "no benchmark labelled", want, bench_labels), line_of(raw, loc)))
    # labels must be unique among the entries that meet in one benchmark, else reports would
    # merge different things (a strategy label may repeat for disjoint benchmark scopes)
    for section in ("benchmarks", "strategies", "decoders", "metrics"):
        groups = [[c for c in components[section] if c.applies_to(b)] for b in components["benchmarks"]] \
            if section in ("strategies", "decoders") else [components[section]]
        reported: set[str] = set()
        for group in groups:
            labels = [c.label for c in group]
            for dup in sorted({x for x in labels if labels.count(x) > 1} - reported):
                reported.add(dup)
                errors.append(ConfigError(source, section, f"two entries are labelled '{dup}'; give one a distinct `label:`",
                                          line_of(raw, (section,))))
    model_labels = [m.display for m in exp.models]
    for dup in {x for x in model_labels if model_labels.count(x) > 1}:
        errors.append(ConfigError(source, "models", f"two models are labelled '{dup}'; give one a distinct `label:`",
                                  line_of(raw, ("models",))))
    if len(set(exp.seeds)) != len(exp.seeds):
        errors.append(ConfigError(source, "seeds", f"seeds repeat: {exp.seeds}", line_of(raw, ("seeds",))))

    # every strategy and metric must apply to at least one benchmark
    tasks = {c.cls.task for c in components["benchmarks"]}
    for i, c in enumerate(components["strategies"]):
        if not tasks & set(c.cls.tasks):
            errors.append(ConfigError(source, f"strategies[{i}].name",
                                      f"strategy '{c.name}' supports {', '.join(c.cls.tasks)}, but the benchmarks are {', '.join(sorted(tasks))}",
                                      line_of(raw, ("strategies", i))))
    for c in components["metrics"]:
        if c.cls.task not in tasks:
            errors.append(ConfigError(source, "metrics", f"metric '{c.name}' is for {c.cls.task}, but no benchmark has that task "
                                      f"(benchmarks are {', '.join(sorted(tasks))})", line_of(raw, ("metrics",))))
    baseline_labels = {"decoder": [c.label for c in components["decoders"]],
                       "strategy": [c.label for c in components["strategies"]],
                       "model": [m.display for m in exp.models]}
    for key, labels in baseline_labels.items():
        want = getattr(exp.baseline, key)
        if want is not None and want not in labels:
            errors.append(ConfigError(source, f"baseline.{key}", unknown_choice_message(f"no {key} labelled", want, labels),
                                      line_of(raw, ("baseline", key))))
    if errors:
        raise ConfigErrors(errors)
    resolved = ResolvedExperiment(source, base_dir, plain_data(raw), exp, components, plugins, origins,
                                  fallbacks=fallbacks, warnings=warnings, raw_lines=raw)
    mismatches = _task_mismatches(exp, tasks)
    if not resolved.cells():
        raise ConfigError(source, "", "the grid is empty: no model and strategy fit any benchmark's task "
                          "(translation needs a seq2seq or causal model, classification an encoder)"
                          + "".join(f"; {m}" for _, m in mismatches))
    if mismatches:  # a model in no cell would silently be missing from every result
        raise ConfigErrors([ConfigError(source, f"models[{i}]", f"{m}; it fits none of the benchmarks "
                                        f"({', '.join(sorted(tasks))}), so it would be in no cell",
                                        line_of(raw, ("models", i))) for i, m in mismatches])
    return resolved


def _task_mismatches(exp: Experiment, tasks: set[str]) -> list[tuple[int, str]]:
    """For an empty grid: what each model was taken for, from what in its config.json, and the
    ``kind:`` that would make it fit."""
    from ..models.facts import read_config_json

    out = []
    for i, m in enumerate(exp.models):
        served = model_tasks(m)
        if set(served) & tasks:
            continue
        try:
            cfg = read_config_json(m.path) if m.local else {}
        except HarnessError:
            cfg = {}
        archs = ", ".join(cfg.get("architectures") or []) or "none listed"
        what = f"model '{m.display}' (architectures: {archs}; model_type {cfg.get('model_type', '?')})"
        taken = "a classifier" if served == ("classification",) else "a text generator"
        if m.kind != "auto":
            out.append((i, f"{what} is kind: {m.kind}, which serves {', '.join(served)} only"))
        elif "translation" in tasks and served == ("classification",):
            if "Generation" in archs or "ForConditionalGeneration" in archs:
                hint = ("its architecture generates text but is neither a ...ForCausalLM nor an encoder-decoder (a "
                        "multimodal checkpoint such as Gemma 3's): set kind: causal on its entry to run it as a "
                        "decoder-only LM")
            else:
                hint = ("translation needs a seq2seq or causal model; if this one generates text, set kind: causal "
                        "(decoder-only) or kind: seq2seq on its entry")
            out.append((i, f"{what} was taken for {taken}: {hint}"))
        else:
            out.append((i, f"{what} was taken for {taken}; a classification benchmark needs an encoder with a "
                           "classification head or a strategy that trains one (kind: classifier)"))
    return out
