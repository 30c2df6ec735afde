"""What a model's files say about it, read without torch: config.json, weights, sizes.

- :func:`read_config_json`: a model directory's config.json as a dict, refusing what would break
  the JSON parser or is no model config (not a regular file, absurdly large or deep, not JSON);
  :func:`hub_config_path`: the cached config.json of a Hub model, if any;
- :func:`pickled_weights_problem`: a directory without weights, or whose only weights are pickles
  holding more than tensors (read statically: parsed, never executed);
- :class:`ModelFacts` (:func:`model_facts`): kind, position-table sizes, vocabulary, widths and
  layers from a config; :func:`decode_row_bytes` and :func:`train_example_bytes`: lower bounds
  on the memory a decoder step or a training example needs (see :mod:`harness.experiment.checks`
  for the estimate's sources and how the checks use it).

Facts only: which experiment settings they forbid is decided in :mod:`harness.experiment.checks`;
what this machine has is :mod:`harness.models.machine`. Non-goals: remote code, GPU memory.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..params import not_a_regular_file

if TYPE_CHECKING:  # pragma: no cover
    from .spec import ModelSpec

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


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MARK = object()
UNREADABLE_GLOBAL = "(a global whose name is not a plain string)"


def _pickle_globals(stream, found: list[str]) -> None:
    """Append the globals one pickle on ``stream`` imports (GLOBAL, INST, STACK_GLOBAL) to ``found``.

    STACK_GLOBAL takes its module and name from the stack, where a payload can put them through
    the memo (``BINGET``) rather than as literal strings; so the pickle's stack is followed
    symbolically, with every opcode's stack effect from :mod:`pickletools` (strings tracked, other
    values opaque). A STACK_GLOBAL whose names are not both plain strings is reported as such:
    torch's weights-only loader would have to resolve it, and it is refused rather than guessed."""
    import pickletools

    stack: list = []
    memo: dict = {}
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _STRING_OPS:
            stack.append(str(arg) if not isinstance(arg, bytes) else arg.decode("latin-1"))
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
            continue
        if name in _MEMO_PUT:
            memo[arg] = stack[-1] if stack else None
            continue
        if name in _MEMO_GET:
            stack.append(memo.get(arg))
            continue
        if name == "STACK_GLOBAL":
            attr = stack.pop() if stack else None
            module = stack.pop() if stack else None
            found.append(f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str) and
                         module is not _MARK and attr is not _MARK else UNREADABLE_GLOBAL)
            stack.append(None)
            continue
        if name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        # any other opcode: pop what it takes (through the mark, for those that take a slice), push opaque results
        before = list(op.stack_before)
        if pickletools.stackslice in before:
            while stack and stack[-1] is not _MARK:
                stack.pop()
            if stack:
                stack.pop()
            before = [b for b in before if b is not pickletools.stackslice and b is not pickletools.markobject]
        for _ in before:
            if stack:
                stack.pop()
        for item in op.stack_after:
            stack.append(_MARK if item is pickletools.markobject else None)


def unsafe_pickle_globals(path: Path) -> list[str]:
    """Globals a torch checkpoint's pickles would import beyond plain tensors, read statically
    (parsed, never executed): every ``data.pkl`` of a zip checkpoint (one holding several
    archives is refused outright: torch reads one of them, and which is not for a scan to guess),
    or the leading pickles of the legacy format (magic number, protocol, system info, the object,
    storage keys)."""
    import io
    import zipfile

    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if not names:
                    return ["(a zip archive without data.pkl: not a torch checkpoint)"]
                if len(names) > 1:
                    return [f"(a zip holding {len(names)} archives: {', '.join(names[:3])})"]
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
    from .weights import zip_checkpoint_problem

    for p in sorted(f for f in files if PICKLE_WEIGHTS.match(f.name)):
        problem = zip_checkpoint_problem(p)  # several archives: what torch would read is not what is scanned
        if problem:
            return problem
        bad = unsafe_pickle_globals(p)
        if bad:
            return (f"{p}: its weights hold pickled objects that are not plain tensors ({', '.join(bad[:3])}), "
                    "refused for safety (convert it to safetensors from a trusted source)")
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
