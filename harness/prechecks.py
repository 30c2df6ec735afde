"""Checks of an experiment against its models and this machine, before anything runs.

``harness validate`` and ``harness run`` call :func:`check_models` after the config itself is
valid; ``run`` also calls :func:`check_runtime` (with the loaded data) before it touches the
output directory. Each problem becomes one :class:`~harness.errors.ConfigError` naming the file,
line, key and what is allowed, so a mistake that would fail every cell is found once:

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

import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ModelLoadError
from .params import not_a_regular_file
from .yamlio import line_of

if TYPE_CHECKING:  # pragma: no cover
    from .config import Component, ResolvedExperiment
    from .models import ModelSpec

MAX_JSON_DEPTH = 100
MAX_CONFIG_BYTES = 50_000_000  # config.json files are a few KB; a huge one is not a model config

# position schemes with no hard table: rotary, relative buckets, ALiBi, tables that grow on demand
UNBOUNDED_KEYS = ("rope_theta", "rope_scaling", "rotary_dim", "rotary_pct", "rotary_emb_base",
                  "relative_attention_num_buckets", "alibi", "use_alibi")
UNBOUNDED_TYPES = {"t5", "mt5", "umt5", "longt5", "bloom", "m2m_100", "nllb-moe", "llama", "mistral", "mixtral",
                   "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3", "gpt_neox", "falcon", "mpt", "olmo", "stablelm"}
# RoBERTa-style tables reserve padding_idx + 1 rows before the first position
OFFSET_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text",
                "longformer", "luke", "ibert", "markuplm"}
LENGTH_PARAM = re.compile(r"^max_(\w+_)?length$|^max_new_tokens$")
ROW_PARAMS = ("num_beams", "num_samples", "num_return_sequences")  # decoder rows per sentence


# ----------------------------------------------------------------------------- config.json


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The 1-based line where JSON nesting first exceeds ``limit`` levels, or None (strings are skipped)."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, m.start()) + 1
        elif tok in "]}":
            depth -= 1
    return None


def read_config_json(model_dir: str | Path) -> dict[str, Any]:
    """A model directory's config.json as a dict; ModelLoadError (``file:line: ...``) when it cannot be."""
    path = Path(model_dir) / "config.json"
    problem = not_a_regular_file(path)
    if problem:
        raise ModelLoadError(problem)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{path}: {path.stat().st_size:,} bytes; a model config is a few KB (allowed: at most "
                             f"{MAX_CONFIG_BYTES:,})")
    text = path.read_text(encoding="utf-8", errors="replace")
    line = json_too_deep(text)
    if line is not None:
        raise ModelLoadError(f"{path}:{line}: JSON nested more than {MAX_JSON_DEPTH} levels deep; allowed: at most "
                             f"{MAX_JSON_DEPTH}")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path}:1: expected a JSON object of model settings, got {type(cfg).__name__}")
    return cfg


def hub_config_path(spec: ModelSpec) -> str | None:
    """The cached config.json of a Hub model, or None when it is not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        found = try_to_load_from_cache(spec.path, "config.json", revision=spec.revision)
    except Exception:  # noqa: BLE001 - a malformed id is reported by the loader itself
        return None
    return found if isinstance(found, str) else None


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


# ----------------------------------------------------------------------------- pickled weights

# the pickled weight files transformers loads (training_args.bin, optimizer.pt... it never opens)
PICKLE_WEIGHTS = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
# what torch.save puts in a checkpoint of plain tensors (torch.load(weights_only=True) allows these)
SAFE_GLOBALS = re.compile(r"^(torch\._utils\._rebuild_\w+|torch\.\w+Storage|torch\.(float|bfloat|int|uint|bool|complex)"
                          r"\w*|torch\.(Size|device|dtype)|collections\.OrderedDict|_codecs\.encode"
                          r"|torch\.serialization\._get_layout|torch\.storage\.UntypedStorage)$")


def _pickle_globals(stream, found: list[str]) -> None:
    """Append the globals one pickle on ``stream`` imports (GLOBAL, INST, STACK_GLOBAL) to ``found``."""
    import pickletools

    strings: list[str] = []
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")


def unsafe_pickle_globals(path: Path) -> list[str]:
    """Globals a torch checkpoint's pickles would import beyond plain tensors, read statically
    (parsed, never executed): the ``data.pkl`` of a zip checkpoint, or the leading pickles of
    the legacy format (magic number, protocol, system info, the object, storage keys)."""
    import io
    import zipfile

    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if not names:
                    return ["(a zip archive without data.pkl: not a torch checkpoint)"]
                _pickle_globals(io.BytesIO(z.read(names[0])), found)
        else:
            with open(path, "rb") as f:
                for _ in range(5):
                    if not f.peek(1):
                        break
                    _pickle_globals(f, found)
    except Exception:  # noqa: BLE001 - not a pickle torch can read either
        return ["(unreadable pickle)"]
    return sorted({g for g in found if not SAFE_GLOBALS.match(g)})


def pickled_weights_problem(model_dir: Path) -> str | None:
    """A directory with no weights transformers can load, or whose only weights are pickles that
    would run code (torch refuses them)."""
    files = [p for p in model_dir.iterdir() if p.is_file()]
    if any(p.suffix == ".safetensors" for p in files):
        return None  # transformers loads these and ignores the pickles
    if not any(PICKLE_WEIGHTS.match(p.name) for p in files):
        return (f"{model_dir} holds no weights (model.safetensors, model-*-of-*.safetensors or pytorch_model.bin); "
                "set init: random to build the architecture from config.json with seeded random weights, or point "
                "path: at a directory with weights")
    for p in sorted(f for f in files if PICKLE_WEIGHTS.match(f.name)):
        bad = unsafe_pickle_globals(p)
        if bad:
            return (f"{p}: its weights hold pickled objects that are not plain tensors ({', '.join(bad[:3])}), "
                    "refused for safety (convert it to safetensors from a trusted source)")
    return None


# ----------------------------------------------------------------------------- devices


def _torch_build() -> tuple[str, bool]:
    """(torch version, has CUDA or ROCm) from torch/version.py, without importing torch."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
    except (AttributeError, ImportError, OSError, TypeError, IndexError):
        return "?", True  # unknown: let run's check decide
    version = re.search(r"^__version__\s*=\s*'([^']*)'", text, re.M)
    gpu = re.search(r"^(cuda|hip)\s*(:[^=]*)?=\s*'", text, re.M)
    return (version.group(1) if version else "?"), gpu is not None


def _nvidia_build() -> bool:
    """ROCm builds also answer to "cuda" but expose /dev/kfd, not /dev/nvidiaN: count only for CUDA."""
    version, _ = _torch_build()
    return "rocm" not in version


def _visible_cuda_devices() -> int | None:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([x for x in env.split(",") if x.strip() and not x.strip().startswith("-")])
    if not Path("/dev").is_dir():
        return None
    return len([p for p in Path("/dev").iterdir() if re.fullmatch(r"nvidia\d+", p.name)])


def device_problem(device: str) -> str | None:
    """Why ``device`` is unavailable here, judged without importing torch (validate), or None."""
    if device.startswith("cuda"):
        version, gpu_build = _torch_build()
        if not gpu_build:
            return f"this torch build ({version}) has no CUDA support; allowed here: auto, cpu"
        count = _visible_cuda_devices() if _nvidia_build() else None
        index = int(device.split(":")[1]) if ":" in device else 0
        if count is not None and count == 0 and Path("/dev").is_dir() and not Path("/dev/dxg").exists():
            return "this machine has no CUDA device; allowed here: auto, cpu"
        if count is not None and index >= count > 0:
            return f"this machine has {count} CUDA device(s); allowed: cuda:0..cuda:{count - 1}, auto, cpu"
    if device == "mps" and not (platform.system() == "Darwin" and platform.machine() == "arm64"):
        return "mps is Apple silicon's GPU and this is not an Apple silicon Mac; allowed here: auto, cpu"
    return None


def torch_device_problem(device: str) -> str | None:
    """The same question asked of torch itself (run imports torch anyway)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} reports no usable CUDA device; allowed here: auto, cpu"
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            return f"this machine has {n} CUDA device(s); allowed: cuda:0..cuda:{n - 1}, auto, cpu"
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return f"torch {torch.__version__} reports MPS unavailable; allowed here: auto, cpu"
    return None


# ----------------------------------------------------------------------------- model sizes


@dataclass
class ModelFacts:
    """What the checks need from a model config."""

    kind: str  # seq2seq | causal | classifier
    encoder_positions: int | None  # longest input (None: no fixed table)
    decoder_positions: int | None  # longest generated/target sequence (seq2seq) or whole sequence (causal)
    vocab: int | None
    hidden: int | None
    layers: int  # all layers a training step goes through
    decoder_layers: int  # layers holding a key/value cache while decoding
    heads: int


def _first(cfg: dict, *keys: str) -> Any:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def model_facts(cfg: dict, spec: ModelSpec) -> ModelFacts:
    text_cfg = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    archs = " ".join(cfg.get("architectures") or [])
    kind = spec.kind
    if kind == "auto":
        kind = "seq2seq" if cfg.get("is_encoder_decoder") else \
            "causal" if ("CausalLM" in archs or "LMHead" in archs) else "classifier" if archs else "causal"
    mtype = str(cfg.get("model_type", ""))
    bounded = mtype not in UNBOUNDED_TYPES and not any(k in text_cfg for k in UNBOUNDED_KEYS) and \
        text_cfg.get("position_embedding_type", "absolute") == "absolute"
    pos = _first(text_cfg, "max_position_embeddings", "n_positions", "max_positions", "n_ctx") if bounded else None
    if pos is not None and mtype in OFFSET_TYPES:
        pad = text_cfg.get("pad_token_id")
        pos -= (pad if isinstance(pad, int) else 1) + 1
    enc_pos = _first(text_cfg, "max_source_positions") or pos if bounded else None
    dec_pos = _first(text_cfg, "max_target_positions") or pos if bounded else None
    layers_total = (_first(text_cfg, "encoder_layers") or 0) + (_first(text_cfg, "decoder_layers") or 0) \
        or _first(text_cfg, "num_hidden_layers", "n_layer", "num_layers") or 1
    dec_layers = _first(text_cfg, "decoder_layers", "num_decoder_layers", "num_hidden_layers", "n_layer",
                        "num_layers") or 1
    return ModelFacts(kind=kind, encoder_positions=enc_pos, decoder_positions=dec_pos,
                      vocab=_first(text_cfg, "decoder_vocab_size", "vocab_size"),
                      hidden=_first(text_cfg, "d_model", "hidden_size", "n_embd", "dim"),
                      layers=layers_total, decoder_layers=dec_layers,
                      heads=_first(text_cfg, "decoder_attention_heads", "num_attention_heads", "n_head") or 1)


def ram_bytes() -> int | None:
    """Physical memory (MemTotal): an estimate above it cannot fit, whatever else is running."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def dtype_bytes(spec: ModelSpec) -> int:
    return 2 if spec.dtype in ("float16", "bfloat16") else 4


def decode_row_bytes(facts: ModelFacts, spec: ModelSpec) -> int:
    """Bytes one hypothesis (one beam of one sentence) needs at a decoder step, at least: its
    vocabulary logits and log-probabilities in float32, plus one position of key/value cache
    (self-attention, and cross-attention for encoder-decoders) in every decoder layer."""
    kv = 2 * facts.decoder_layers * (facts.hidden or 0) * dtype_bytes(spec) * (2 if facts.kind == "seq2seq" else 1)
    return 2 * 4 * (facts.vocab or 0) + kv


def train_example_bytes(facts: ModelFacts, spec: ModelSpec, length: int, vocab_logits: bool) -> int:
    """Activation bytes of one training example of ``length`` tokens (forward kept for backward):
    per layer s*h*(34 + 5*a*s/h) bytes at 16-bit (Korthikanti et al. 2022, eq. 1), scaled to the
    dtype; plus float32 logits and their gradient when the loss is over the vocabulary."""
    h = facts.hidden or 0
    per_layer = length * h * (34 + 5 * facts.heads * length / max(h, 1)) * dtype_bytes(spec) / 2
    logits = 2 * 4 * length * (facts.vocab or 0) if vocab_logits else 0
    return int(facts.layers * per_layer + logits)


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
        if spec.init == "pretrained" and getattr(spec, "engine", "transformers") == "transformers":
            problem = pickled_weights_problem(Path(spec.path))
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
    for i, spec in enumerate(resolved.experiment.models):
        problem = device_problem(spec.device)
        if problem:
            out.add(("models", i, "device"), f"device '{spec.device}' is not available: {problem}")
        cfg = _model_config(spec, i, out)
        if cfg is None:
            continue
        f = model_facts(cfg, spec)
        facts[spec.path] = f
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
        if not spec.local or ram is None:
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
