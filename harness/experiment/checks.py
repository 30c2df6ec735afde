"""Checks of an experiment against its models, their engines and this machine, before anything runs.

:func:`harness.experiment.load.resolve_and_check` (``harness validate`` and ``harness run``)
calls :func:`check_engines` and :func:`check_models` after the config itself is valid; ``run``
also calls :func:`check_runtime` (with the loaded data) before it touches the output directory.
The facts they judge come from :mod:`harness.models.facts` (config.json, weights, sizes) and
:mod:`harness.models.machine` (devices, RAM); what each engine runs from :mod:`harness.engines`. Each problem becomes one :class:`~harness.errors.ConfigError` naming the file,
line, key and what is allowed, so a mistake that would fail every cell is found once:

- a model whose ``engine`` is not installed or cannot run one of the decoders (or decoder
  parameters) it meets in the grid, or a ``compute_type`` the engine cannot run here;

- a local model's ``config.json`` that is not a regular file, is nested absurdly deep (JSON
  nested thousands of levels makes Python's parser raise RecursionError) or is not JSON;
- a model directory without weights (``init: pretrained``), or whose weights exist only as
  pickles holding anything but tensors (torch refuses them per cell);
- (run only) a Hub id that is not in the local cache while offline (``HF_HUB_OFFLINE=1``) or
  while the Hub cannot be reached; validate leaves Hub ids alone so configs can be checked offline;
- a ``device`` this torch build or machine does not have (validate reads ``torch/version.py``
  and ``/dev/nvidia*`` without importing torch; run asks torch);
- length parameters (``max_source_length``, ``max_length``, ``max_target_length``,
  ``max_new_tokens``, any ``max_*length``) beyond the model's learned or fixed position table,
  which fails with torch's ``IndexError: index out of range in self``;
- a decoder step or training batch whose memory, estimated from the model config, exceeds
  this machine's RAM (e.g. ``num_beams: 1000000000``).

The memory estimate is a lower bound (logits and one step of key/value cache for decoding;
activations after Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", eq. 1, for training, at a length no longer than the longest example's
word count), compared with total RAM: it refuses what cannot fit, and never a config that
merely might not. Non-goals: GPU memory, models whose config lacks the sizes, remote code.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines import ENGINES, ct2_compute_type_problem, ct2_layout_problem
from ..errors import ConfigError, HarnessError, ModelLoadError
from ..models.facts import (MAX_JSON_DEPTH, ModelFacts, decode_row_bytes, hub_config_path, json_too_deep,
                            model_facts, offline, pickled_weights_problem, read_config_json, train_example_bytes)
from ..models.machine import device_problem, ram_bytes, torch_device_problem
from ..params import not_a_regular_file
from .yamlio import line_of

if TYPE_CHECKING:  # pragma: no cover
    from ..models.spec import ModelSpec
    from .config import Component, ResolvedExperiment

LENGTH_PARAM = re.compile(r"^max_(\w+_)?length$|^max_new_tokens$")
ROW_PARAMS = ("num_beams", "num_samples", "num_return_sequences")  # decoder rows per sentence


def _gb(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


# ----------------------------------------------------------------------------- the checks


@dataclass
class Where:
    """A component's place in the config, for error locations."""

    section: str
    index: int
    component: Component

    def loc(self, key: str) -> tuple:
        # the key path names the parameter even when it was left at its default; line_of then
        # points at the deepest line written (the entry or its params)
        return (self.section, self.index, "params", key)

    def describe(self, key: str) -> str:
        swept = dict(self.component.swept)
        value = getattr(self.component.params, key)
        if key in swept:
            return f" (in sweep {key}={value!r})"
        if key not in self.component.params.model_fields_set:
            return " (the default)"
        return ""


def _places(resolved: ResolvedExperiment) -> dict[int, Where]:
    """id(component) -> where it was written (section and index of its entry)."""
    out: dict[int, Where] = {}
    for section in ("benchmarks", "strategies", "decoders"):
        refs = getattr(resolved.experiment, section)
        for comp in resolved.components.get(section, []):
            for i, ref in enumerate(refs):
                if ref.name == comp.name and (ref.label or ref.name) == comp.base_label:
                    out[id(comp)] = Where(section, i, comp)
                    break
    return out


class _Collector:
    def __init__(self, resolved: ResolvedExperiment):
        self.resolved = resolved
        self.errors: list[ConfigError] = []
        self.seen: set[str] = set()

    def add(self, loc: tuple, message: str) -> None:
        from .config import keypath

        line = line_of(self.resolved.raw_lines or self.resolved.raw, loc)
        err = ConfigError(self.resolved.source, keypath(loc), message, line)
        if str(err) not in self.seen:
            self.seen.add(str(err))
            self.errors.append(err)


def _model_config(spec: ModelSpec, i: int, out: _Collector) -> dict | None:
    """Read what validate can afford to read about model ``i``; report what makes it unusable."""
    loc = ("models", i)
    if spec.outputs:  # a file of system outputs: no config, weights or engine to check
        return None
    if spec.local:
        try:
            cfg = read_config_json(spec.path)
        except ModelLoadError as e:
            out.add(loc, f"model '{spec.display}': {e}")
            return None
        for other in sorted(Path(spec.path).glob("*.json")):  # tokenizer/generation configs, read per cell
            if other.name != "config.json" and not not_a_regular_file(other) and other.stat().st_size < 5_000_000:
                line = json_too_deep(other.read_text(encoding="utf-8", errors="replace"))
                if line is not None:
                    out.add(loc, f"model '{spec.display}': {other}:{line}: JSON nested more than {MAX_JSON_DEPTH} "
                                 f"levels deep; allowed: at most {MAX_JSON_DEPTH}")
        problem = None
        if spec.init == "pretrained" and getattr(spec, "engine", "transformers") == "transformers":
            problem = pickled_weights_problem(Path(spec.path))
            if problem:
                out.add(loc, f"model '{spec.display}': {problem}")
        if problem is None:
            problem = model_files_problem(spec)
            if problem:
                out.add(loc, f"model '{spec.display}': {problem}")
        return cfg
    cached = hub_config_path(spec)
    if cached is None:  # validate checks configs offline too; run asks whether it can be fetched
        return None
    try:
        return read_config_json(Path(cached).parent)
    except ModelLoadError:
        return None  # a broken cache entry: the loader says what is wrong


def model_files_problem(spec: ModelSpec) -> str | None:
    """The first damaged file of a local model directory, read without torch (one line naming it):
    truncated or malformed safetensors, an index naming missing shards, a zip checkpoint holding
    several archives, no tokenizer files (unless ``tokenizer:`` names them elsewhere) or a broken
    tokenizer file. Found here, by validate and before any cell, rather than as a Python
    exception in every cell."""
    from ..models.weights import tokenizer_problem, weights_problems

    directory = Path(spec.path)
    if spec.init == "pretrained":
        problems = weights_problems(directory)
        if problems:
            return problems[0]
    tokenizer_dir = Path(spec.tokenizer) if spec.tokenizer and Path(spec.tokenizer).is_dir() else None
    if spec.tokenizer is None or tokenizer_dir is not None:
        return tokenizer_problem(tokenizer_dir or directory)
    return None  # a Hub tokenizer id: its loader reports what is wrong


def _check_heads(out: _Collector, resolved: ResolvedExperiment, configs: dict[str, dict]) -> None:
    """A classification cell whose strategy keeps the model's head (``trains_head = False``, as
    ``none``) on a pretrained model whose config.json has no sequence-classification head would
    fail in the cell: say so now, with the strategies that fine-tune one."""
    places = _places(resolved)
    builders = sorted({i.name for i in resolved.plugins if i.kind == "strategy" and getattr(i.cls, "trains_head", True)
                       and "classification" in getattr(i.cls, "tasks", ())})
    models = {m.path: i for i, m in enumerate(resolved.experiment.models)}
    failing: dict[tuple, list[str]] = {}  # (model, strategy) -> the benchmarks of its cells
    for cell in resolved.cells():
        spec, strategy = cell.model, cell.strategy
        if cell.task != "classification" or spec.init != "pretrained" or getattr(strategy.cls, "trains_head", True):
            continue
        cfg = configs.get(spec.path)
        archs = [a for a in (cfg or {}).get("architectures") or [] if isinstance(a, str)]
        if cfg is None or any(a.endswith("ForSequenceClassification") for a in archs):
            continue
        benches = failing.setdefault((spec.path, id(strategy), ", ".join(archs) or "none"), [])
        if cell.benchmark.label not in benches:
            benches.append(cell.benchmark.label)
    by_id = {id(c): c for c in resolved.components["strategies"]}
    for (path, strategy_id, archs), benches in failing.items():
        spec, strategy = resolved.experiment.models[models[path]], by_id[strategy_id]
        where = places.get(strategy_id)
        written = where is not None and "strategies" in (resolved.raw or {})
        loc = (where.section, where.index) if written else ("models", models[path])
        default = "" if written else " (the default: the config names no strategies)"
        out.add(loc, f"model '{spec.display}' has no sequence-classification head (config.json architectures: "
                     f"{archs}), and strategy '{strategy.label}'{default} evaluates a model with the head it has, so its "
                     f"classification cells on {', '.join(repr(b) for b in benches)} would fail; a strategy that "
                     f"fine-tunes a head: {', '.join(builders) or '(none registered)'}")


def _length_limits(facts: ModelFacts, key: str, section: str) -> int | None:
    if section == "decoders" and key == "max_new_tokens":
        return facts.decoder_positions if facts.kind == "seq2seq" else \
            (facts.decoder_positions - 1 if facts.decoder_positions else None)
    if key == "max_target_length":
        return facts.decoder_positions if facts.kind == "seq2seq" else facts.encoder_positions
    return facts.encoder_positions


def check_models(resolved: ResolvedExperiment) -> list[ConfigError]:
    """Every model against its own config, this machine, and the components it meets in cells."""
    out = _Collector(resolved)
    facts: dict[str, ModelFacts] = {}
    configs: dict[str, dict] = {}
    for i, spec in enumerate(resolved.experiment.models):
        problem = device_problem(spec.device)
        if problem:
            out.add(("models", i, "device"), f"device '{spec.device}' is not available: {problem}")
        cfg = _model_config(spec, i, out)
        if cfg is None:
            continue
        f = model_facts(cfg, spec)
        facts[spec.path] = f
        configs[spec.path] = cfg
        if "max_source_length" in spec.model_fields_set and f.encoder_positions is not None:
            limit = f.encoder_positions
            if spec.max_source_length > limit:
                out.add(("models", i, "max_source_length"),
                        f"{spec.max_source_length} is longer than model '{spec.display}' can read: its position "
                        f"table has {limit} entries (longer inputs fail with IndexError); allowed: an integer in "
                        f"1..{limit}")
    for i, spec in enumerate(resolved.experiment.models):
        f = facts.get(spec.path)
        if f is None or spec.prompt_template is None or f.encoder_positions is None:
            continue
        words = len(spec.prompt_template.replace("{source}", " ").split()) + 1  # + at least one source token
        if words >= f.encoder_positions:
            out.add(("models", i, "prompt_template"),
                    f"the prompt alone has at least {words} tokens, and model '{spec.display}' reads at most "
                    f"{f.encoder_positions} (its position table), leaving no room to generate; allowed: a template "
                    f"of fewer than {f.encoder_positions - 1} words")
    if not facts:
        return out.errors
    _check_heads(out, resolved, configs)
    places = _places(resolved)
    ram = ram_bytes()
    pairs = {}
    for cell in resolved.cells():
        for comp in (cell.benchmark, cell.strategy, cell.decoder):
            if comp is not None and cell.model.path in facts:
                pairs[(cell.model.path, id(comp))] = (cell.model, comp)
    for spec, comp in pairs.values():
        where = places.get(id(comp))
        if where is None:
            continue
        f = facts[spec.path]
        for key in type(comp.params).model_fields:
            value = getattr(comp.params, key)
            if not LENGTH_PARAM.match(key) or not isinstance(value, int) or isinstance(value, bool):
                continue
            if key not in comp.params.model_fields_set and key != "max_new_tokens":
                continue  # a default truncation length only matters if the data is longer: check_runtime
            limit = _length_limits(f, key, where.section)
            if limit is not None and value > limit:
                what = {"max_new_tokens": "generate", "max_target_length": "take as a target"}.get(key, "read")
                out.add(where.loc(key),
                        f"{value}{where.describe(key)} is longer than model '{spec.display}' can {what}: its position "
                        f"table has {f.decoder_positions if key == 'max_new_tokens' else limit} entries (longer "
                        f"sequences fail with IndexError); allowed: an integer <= {limit} for this model")
        if where.section == "decoders" and ram and f.vocab:
            _check_decode_memory(out, where, comp, spec, f, ram, sentences=1)
    return out.errors


def _check_decode_memory(out: _Collector, where: Where, comp: Component, spec: ModelSpec, f: ModelFacts, ram: int,
                         sentences: int) -> None:
    p = comp.params
    # hypotheses kept per sentence: beams, or samples for a sampling decoder (whichever it has)
    per_sentence = [(k, getattr(p, k)) for k in ROW_PARAMS if isinstance(getattr(p, k, None), int)]
    wide, beams = max(per_sentence, key=lambda kv: kv[1], default=("num_beams", 1))
    row = decode_row_bytes(f, spec)
    need = beams * sentences * row
    if need <= ram:
        return
    fit = ram // row
    if beams * row > ram or sentences == 1:
        key, allowed = wide, max(fit, 0)
        detail = f"{beams:,} {wide.removeprefix('num_').replace('_', ' ')}"
    else:
        key, allowed = "batch_size", max(fit // beams, 0)
        detail = f"{sentences:,} sentences x {beams:,} {wide.removeprefix('num_').replace('_', ' ')}"
    if key not in type(p).model_fields:
        key = "batch_size" if "batch_size" in type(p).model_fields else key
    out.add(where.loc(key),
            f"one decoder step of {detail}{where.describe(key)} with model "
            f"'{spec.display}' (vocabulary {f.vocab:,}) needs at least {_gb(need)}, more than this machine's "
            f"{_gb(ram)} of RAM; allowed: {key} <= {allowed:,}")


def check_runtime(resolved: ResolvedExperiment, jobs: list, datasets: dict[str, Any]) -> list[str]:
    """What ``run`` checks beyond validate, with torch imported and the data loaded: devices as
    torch sees them, a Hub that cannot be reached for uncached models, and decode/training memory
    for the real number of examples. Returns error lines (``file:line: key: message``)."""
    out = _Collector(resolved)
    used = {job.cell.model.path for job in jobs}
    for i, spec in enumerate(resolved.experiment.models):
        if spec.path not in used:
            continue
        problem = torch_device_problem(spec.device) if spec.device != "auto" else None
        if problem:
            out.add(("models", i, "device"), f"device '{spec.device}' is not available: {problem}")
        if not spec.local and hub_config_path(spec) is None:
            rev = f" (revision {spec.revision})" if spec.revision else ""
            if offline():
                out.add(("models", i), f"Hub model '{spec.path}'{rev} is not in the local Hugging Face cache and the "
                                       "Hub is switched off (HF_HUB_OFFLINE=1); download it once with network access "
                                       f"(huggingface-cli download {spec.path}) or set path: to a local model "
                                       "directory")
            elif not _hub_reachable():
                out.add(("models", i), f"Hub model '{spec.path}'{rev} is not in the local Hugging Face cache and the "
                                       f"Hub ({_hub_endpoint()}) cannot be reached; run once with network access, or "
                                       "set path: to a local model directory")
    ram = ram_bytes()
    places = _places(resolved)
    seen = set()
    for job in jobs:
        cell = job.cell
        spec = cell.model
        if not spec.local or spec.outputs or ram is None:
            continue
        try:
            f = model_facts(read_config_json(spec.path), spec)
        except ModelLoadError:
            continue
        data = datasets.get(cell.benchmark.label)
        if data is None or not f.vocab:
            continue
        if cell.decoder is not None and places.get(id(cell.decoder)) and (spec.path, id(cell.decoder)) not in seen:
            seen.add((spec.path, id(cell.decoder)))
            bs = getattr(cell.decoder.params, "batch_size", 1)
            _check_decode_memory(out, places[id(cell.decoder)], cell.decoder, spec, f, ram,
                                 sentences=max(1, min(bs if isinstance(bs, int) else 1, len(data.test))))
        strat = cell.strategy
        p = strat.params
        if data.train and places.get(id(strat)) and (spec.path, id(strat), "len") not in seen:
            seen.add((spec.path, id(strat), "len"))
            _check_default_lengths(out, places[id(strat)], spec, f, data)
        if data.train and places.get(id(strat)) and isinstance(getattr(p, "batch_size", None), int) \
                and (spec.path, id(strat)) not in seen:
            seen.add((spec.path, id(strat)))
            n = min(p.batch_size, len(data.train))
            words = max(len((ex.source or "").split()) + len((ex.source_pair or "").split())
                        + len((ex.reference or "").split()) for ex in data.train) + 2
            length = min(words, getattr(p, "max_length", words) or words)
            vocab_logits = f.kind == "seq2seq" or "mlm" in strat.name or strat.name == "tapt"
            need = n * train_example_bytes(f, spec, length, vocab_logits)
            if need > ram:
                per = max(train_example_bytes(f, spec, length, vocab_logits), 1)
                where = places[id(strat)]
                out.add(where.loc("batch_size"),
                        f"{p.batch_size}{where.describe('batch_size')}: a training batch of {n:,} examples of "
                        f"{length} tokens with model '{spec.display}' needs at least {_gb(need)}, more than this "
                        f"machine's {_gb(ram)} of RAM; allowed: batch_size <= {max(ram // per, 1):,}")
    return [str(e) for e in out.errors]


def _check_default_lengths(out: _Collector, where: Where, spec: ModelSpec, f: ModelFacts, data: Any) -> None:
    """A default truncation length beyond the position table fails only on data that long: report
    it when an example is at least that long (whitespace words + 2 special tokens, a lower bound on
    subword tokens). ``max_length`` also truncates evaluation inputs, so every split counts."""
    p = where.component.params
    for key, side in (("max_length", "source"), ("max_target_length", "reference")):
        value = getattr(p, key, None)
        limit = _length_limits(f, key, where.section)
        if not isinstance(value, int) or limit is None or value <= limit or key in p.model_fields_set:
            continue
        examples = list(data.train) if side == "reference" else [*data.train, *(data.dev or []), *data.test]
        longest = max(examples, key=lambda ex: len((getattr(ex, side) or "").split()))
        tokens = len((getattr(longest, side) or "").split()) + 2
        if tokens > limit:
            out.add(where.loc(key),
                    f"{value} (the default) is longer than model '{spec.display}' can read (its position table has "
                    f"{limit} entries), and example '{longest.id}' has at least {tokens} tokens, which "
                    f"would fail with IndexError; allowed: an integer <= {limit} for this model (longer inputs are "
                    "truncated)")


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    url = urlparse(_hub_endpoint())
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_data_dir(resolved: ResolvedExperiment) -> list[ConfigError]:
    """A data directory (``data_dir:`` or $HARNESS_DATA_DIR) that does not exist, when a benchmark
    preset would look for its local copy there: said once, not silently taken as "no copy"."""
    from .presets import DATA_DIR_ENV, data_dir_from, data_dir_missing

    if not resolved.origins:
        return []
    value = resolved.experiment.data_dir
    where = "data_dir" if value is not None else None
    if value is None:
        value = os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return []
    p = data_dir_from(resolved.experiment.data_dir, resolved.base_dir)
    if p is not None and p.is_dir():
        return []
    message = data_dir_missing(p, str(value), where is None, list(resolved.origins))
    if where is None:
        return [ConfigError(resolved.source, "", message)]
    out = _Collector(resolved)
    out.add(("data_dir",), message)
    return out.errors


def check_engines(resolved: ResolvedExperiment) -> list[ConfigError]:
    """One error per model whose engine is not installed, and per decoder (or decoder parameter)
    that meets a model whose engine cannot run it in some cell of the grid."""
    out = _Collector(resolved)
    models = resolved.experiment.models
    for i, spec in enumerate(models):
        info = ENGINES.get(spec.engine)
        if info is None:
            continue
        if importlib.util.find_spec(info.package) is None:
            out.add(("models", i, "engine"), f"engine {info.name} needs the {info.package} package, which is not "
                                             f"installed: {info.install}")
        elif spec.engine == "ctranslate2" and spec.compute_type != "auto":
            problem = ct2_compute_type_problem(spec.compute_type, spec.device)
            if problem:
                out.add(("models", i, "compute_type"), problem)
        if spec.device.startswith("mps"):
            out.add(("models", i, "device"), f"engine {info.name} runs on cpu or cuda, not on device '{spec.device}'")
        if spec.local and spec.engine == "ctranslate2":
            try:
                problem = ct2_layout_problem(read_config_json(spec.path))
            except HarnessError:
                problem = None  # an unreadable config.json is reported by check_models
            if problem:
                out.add(("models", i, "engine"), f"model '{spec.display}': {problem}")
    places = _places(resolved)
    for cell in resolved.cells():
        info = ENGINES.get(cell.model.engine)
        if info is None or cell.decoder is None:
            continue
        where = places.get(id(cell.decoder))
        loc = ("decoders", where.index) if where is not None else ("decoders",)
        dec = cell.decoder
        if dec.name not in info.decoders:
            why = f": {info.no_diverse}" if dec.name == "diverse_beam" and info.no_diverse else ""
            out.add(loc + ("name",), f"decoder '{dec.name}' cannot run on model '{cell.model.display}' "
                                     f"(engine {info.name}{why}); engine {info.name} runs: {', '.join(info.decoders)}")
            continue
        for param, (allowed, why) in info.params.get(dec.name, {}).items():
            value = getattr(dec.params, param)
            if not any(value is a or (value == a and type(value) is type(a)) for a in allowed):
                out.add(loc + ("params", param), f"model '{cell.model.display}' (engine {info.name}) cannot honour "
                                                 f"{param}={value!r}: {why}; allowed: "
                                                 f"{', '.join('null' if a is None else str(a).lower() for a in allowed)}")
    return out.errors
