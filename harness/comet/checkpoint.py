"""Reading a COMET checkpoint directory without torch: its class, hyper-parameters, tensor shapes
and the encoder files it needs; every problem found here is one :class:`CometCheckpointError` line.

A COMET checkpoint, as unbabel-comet writes it (and as the Hub's ``Unbabel/*`` repositories hold
it), is a directory with

- ``hparams.yaml``: ``class_identifier`` (the model class) and the hyper-parameters;
- ``checkpoints/model.ckpt``: a pytorch-lightning checkpoint in torch's zip format (or torch's
  legacy format): a pickle whose ``state_dict`` holds the weights and whose ``hyper_parameters``
  are the arguments the model was built with. COMET builds the model from these (``hparams.yaml``
  only names the class), so they win here too; ``hparams.yaml`` stands in when the checkpoint has
  none.

The pickle is parsed by an unpickler that knows a short list of globals (torch's tensor rebuild
functions and storage types, ``collections.OrderedDict``) and maps them to inert records (shape,
dtype): nothing is imported or executed, and a checkpoint that names any other global is refused
with one line naming it. The weights themselves are read later by ``torch.load(weights_only=True)``
(:mod:`harness.comet.models`), which refuses the same things.

The encoder (``pretrained_model``: ``xlm-roberta-large``, ``microsoft/infoxlm-large``,
``facebook/xlm-roberta-xl``) gives the tokenizer and the encoder's ``config.json``; its weights
are in the checkpoint. It is found as a directory (absolute, or relative to the checkpoint
directory), or as a Hub id in the local Hugging Face cache: never downloaded.

Non-goals: COMET's ranking models (``ranking_metric``, no current public checkpoint), encoders
other than XLM-R and XLM-R XL (BERT, MiniLM, RemBERT), and checkpoints of COMET < 1.0.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

CLASSES = ("regression_metric", "referenceless_regression_metric", "unified_metric", "xcomet_metric")
ENCODERS = ("XLM-RoBERTa", "XLM-RoBERTa-XL")
# the activations COMET's feed-forward takes, by their torch.nn name (COMET title-cases the hparam)
ACTIVATIONS = ("Tanh", "Sigmoid", "Softplus", "Softsign", "Hardtanh", "Tanhshrink", "Mish", "Identity")
POOLS = ("avg", "max", "cls", "default")

# what COMET's classes default to when a checkpoint's hyper-parameters leave a key out
_DEFAULTS: dict[str, dict[str, Any]] = {
    "regression_metric": dict(encoder_model="XLM-RoBERTa", pretrained_model="xlm-roberta-large", pool="avg",
                              layer="mix", layer_transformation="softmax", layer_norm=True,
                              hidden_sizes=[3072, 1024], activations="Tanh", final_activation=None),
    "referenceless_regression_metric": dict(encoder_model="XLM-RoBERTa", pretrained_model="xlm-roberta-large",
                                            pool="avg", layer="mix", layer_transformation="softmax", layer_norm=True,
                                            hidden_sizes=[2048, 1024], activations="Tanh", final_activation=None),
    "unified_metric": dict(encoder_model="XLM-RoBERTa", pretrained_model="microsoft/infoxlm-large",
                           sent_layer="mix", layer_transformation="sparsemax", layer_norm=True, word_layer=24,
                           hidden_sizes=[3072, 1024], activations="Tanh", final_activation=None,
                           input_segments=["mt", "src", "ref"], word_level_training=False,
                           error_labels=["minor", "major"]),
    "xcomet_metric": dict(encoder_model="XLM-RoBERTa-XL", pretrained_model="facebook/xlm-roberta-xl",
                          sent_layer="mix", layer_transformation="sparsemax", layer_norm=False, word_layer=36,
                          hidden_sizes=[2560, 1280], activations="Tanh", final_activation=None),
}


class CometCheckpointError(ModelLoadError):
    """A directory that is not a COMET checkpoint this implementation can score with (one line)."""


# ----------------------------------------------------------------------------- the pickle, read statically


@dataclass(frozen=True)
class TensorMeta:
    """What the checkpoint says about one tensor, without its data."""

    shape: tuple[int, ...]
    dtype: str


class _StorageType:
    def __init__(self, dtype: str):
        self.dtype = dtype


class _Storage:
    def __init__(self, dtype: str):
        self.dtype = dtype


_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
             "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8"}


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    return TensorMeta(tuple(int(s) for s in size), getattr(storage, "dtype", "?"))


def _rebuild_parameter(data, *rest):
    return data


def _encode(text, encoding="latin1"):  # how protocol-2 pickles spell bytes: _codecs.encode(str, "latin1")
    if not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode of a non-string")
    return text.encode(encoding)


_ALLOWED: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "collections.OrderedDict": OrderedDict,
    "_codecs.encode": _encode,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
}


class _Refused:
    """Stands in for a refused global so that parsing goes on and every refused name is listed."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass


class _Reader(pickle.Unpickler):
    def __init__(self, stream):
        super().__init__(stream)
        self.refused: set[str] = set()

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in _ALLOWED:
            return _ALLOWED[full]
        if module in ("torch", "torch.storage") and name in _STORAGES:
            return _StorageType(_STORAGES[name])
        self.refused.add(full)
        return type("Refused", (_Refused,), {})

    def persistent_load(self, pid):
        # zip format: ("storage", storage type, key, location, numel); legacy: (..., view metadata)
        if isinstance(pid, tuple) and pid and pid[0] == "storage":
            return _Storage(getattr(pid[1], "dtype", "?"))
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.60}")


@dataclass
class CheckpointContent:
    """What ``model.ckpt`` holds, read without torch."""

    tensors: dict[str, TensorMeta]  # state_dict: name -> shape and dtype
    hyper_parameters: dict[str, Any] | None  # the init arguments pytorch-lightning saved, if any
    zip_format: bool


def read_checkpoint_pickle(path: Path) -> CheckpointContent:
    """Parse ``path`` (torch zip or legacy format) with the restricted unpickler."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if not names:
                    raise CometCheckpointError(f"{path}: a zip archive without data.pkl: not a torch checkpoint")
                reader = _Reader(io.BytesIO(z.read(names[0])))
                obj = reader.load()
            zipped = True
        else:
            with open(path, "rb") as f:
                head = []
                for _ in range(3):  # magic number, protocol version, system info: restricted too
                    reader = _Reader(f)
                    head.append(reader.load())
                    if reader.refused:
                        break
                else:
                    if not (isinstance(head[0], int) and isinstance(head[2], dict)):
                        raise pickle.UnpicklingError("no legacy torch header")
                    reader = _Reader(f)
                    obj = reader.load()
            zipped = False
    except CometCheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure: not a checkpoint torch could read either
        raise CometCheckpointError(f"{path} is not a torch checkpoint that can be read ({type(e).__name__}: "
                                   f"{str(e)[:120]})") from None
    if reader.refused:
        names = ", ".join(sorted(reader.refused)[:4])
        raise CometCheckpointError(
            f"{path}: refused: it pickles objects that are not tensors ({names}); only tensors and plain "
            f"containers are read from a checkpoint, nothing else is unpickled. With a COMET install you trust, "
            f"keep what scoring needs: torch.save({{k: ckpt[k] for k in ('state_dict', 'hyper_parameters')}}, path)")
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise CometCheckpointError(f"{path} holds no state_dict: not a pytorch-lightning (COMET) checkpoint")
    tensors = {str(k): v for k, v in obj["state_dict"].items() if isinstance(v, TensorMeta)}
    hp = obj.get("hyper_parameters")
    return CheckpointContent(tensors, dict(hp) if isinstance(hp, dict) else None, zipped)


# ----------------------------------------------------------------------------- the encoder's files


@dataclass(frozen=True)
class EncoderFiles:
    directory: Path
    config: dict[str, Any]  # the encoder's config.json
    tokenizer_json: Path | None  # tokenizer.json (preferred), else the SentencePiece model is converted
    special_tokens: dict[str, str]  # cls / sep / pad token strings
    clean_up_tokenization_spaces: bool


def _hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _from_hub_cache(repo_id: str) -> Path | None:
    """The snapshot directory of ``repo_id`` in the local Hugging Face cache holding its config.json."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=_hub_cache_dir())
    except Exception:  # noqa: BLE001 - not a valid repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def _token(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def encoder_files(name: str, checkpoint_dir: Path, override: str | Path | None) -> EncoderFiles:
    """The tokenizer and config of the encoder named ``name`` (or the ``override`` directory)."""
    if override is not None:
        d, where = Path(override), f"encoder directory {override}"
    else:
        p = Path(name).expanduser()
        cand = p if p.is_absolute() else checkpoint_dir / p
        if cand.is_dir():
            d, where = cand, f"encoder '{name}' ({cand})"
        else:
            d = _from_hub_cache(name)
            if d is None:
                raise CometCheckpointError(
                    f"{checkpoint_dir}: its encoder '{name}' (pretrained_model) is neither a directory beside the "
                    f"checkpoint nor in the Hugging Face cache ({_hub_cache_dir()}); it gives the tokenizer and "
                    f"config.json (the weights are in the checkpoint): fetch them once with `hf download {name} "
                    f"--include '*.json' '*.model'`, or set params.encoder to a directory holding them")
            where = f"encoder '{name}' (Hugging Face cache {d})"
    cfg_file = d / "config.json"
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CometCheckpointError(f"{where}: no readable config.json ({type(e).__name__})") from None
    tok_json = d / "tokenizer.json"
    if not tok_json.is_file():
        tok_json = None
        if not (d / "sentencepiece.bpe.model").is_file():
            raise CometCheckpointError(f"{where}: no tokenizer (tokenizer.json or sentencepiece.bpe.model)")
    specials = {"cls": "<s>", "sep": "</s>", "pad": "<pad>"}
    clean_up = False  # transformers' default since 4.45 when tokenizer_config.json does not say
    for fname in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            data = json.loads((d / fname).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for k in specials:
            specials[k] = _token(data.get(f"{k}_token")) or specials[k]
        if fname == "tokenizer_config.json" and isinstance(data.get("clean_up_tokenization_spaces"), bool):
            clean_up = data["clean_up_tokenization_spaces"]
    return EncoderFiles(d, config, tok_json, specials, clean_up)


def tokenizer_size(path: Path) -> int | None:
    """1 + the largest id a ``tokenizer.json`` can produce (model vocabulary and added tokens)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1]
        ids += [int(t["id"]) for t in data.get("added_tokens") or []]
        return max(ids) + 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# ----------------------------------------------------------------------------- the whole checkpoint


PREFIX = "encoder.model."


@dataclass
class CheckpointInfo:
    """A COMET checkpoint that can be scored with, as validated (torch-free)."""

    directory: Path
    ckpt: Path
    class_identifier: str
    hparams: dict[str, Any]  # effective hyper-parameters: the checkpoint's, COMET's class defaults filling gaps
    encoder: EncoderFiles
    tensors: dict[str, TensorMeta] = field(repr=False)
    num_layers: int = 0  # hidden states the encoder gives: embeddings + one per transformer layer
    hidden_size: int = 0
    vocab_rows: int = 0
    hparams_source: str = "checkpoint"  # where the hyper-parameters came from: checkpoint | hparams.yaml

    @property
    def xl(self) -> bool:
        return self.hparams["encoder_model"] == "XLM-RoBERTa-XL"

    @property
    def unified(self) -> bool:
        return self.class_identifier in ("unified_metric", "xcomet_metric")

    @property
    def word_level(self) -> bool:
        return self.class_identifier == "xcomet_metric" or bool(self.hparams.get("word_level_training"))

    @property
    def input_segments(self) -> tuple[str, ...]:
        if self.class_identifier == "xcomet_metric":
            return ("mt", "src", "ref")
        if self.class_identifier == "regression_metric":
            return ("mt", "src", "ref")
        if self.class_identifier == "referenceless_regression_metric":
            return ("mt", "src")
        return tuple(self.hparams["input_segments"])

    @property
    def references(self) -> str:
        """"required", "optional" (used unless turned off) or "unused" (reference-free)."""
        segs = self.input_segments
        if "ref" not in segs:
            return "unused"
        if self.class_identifier == "regression_metric" or "src" not in segs:
            return "required"
        return "optional"

    def uses_references(self, wanted: bool | None) -> bool:
        """Whether scoring reads references, given the user's wish (None: whenever the model can)."""
        return self.references != "unused" if wanted is None else wanted

    def reference_problem(self, wanted: bool | None) -> str | None:
        """Why ``use_references: wanted`` cannot be honoured by this model, or None."""
        kind = f"{self.class_identifier} with inputs [{', '.join(self.input_segments)}]"
        if wanted is True and self.references == "unused":
            return (f"{self.directory} is a reference-free (quality estimation) COMET model ({kind}): it cannot "
                    f"use references; remove use_references or set it to false")
        if wanted is False and self.references == "required":
            return (f"{self.directory} is a reference-based COMET model ({kind}): it cannot score without "
                    f"references; use a reference-free checkpoint (e.g. Unbabel/wmt22-cometkiwi-da) or remove "
                    f"use_references")
        return None


def _shape(info_tensors: dict[str, TensorMeta], key: str, where: Path) -> tuple[int, ...]:
    meta = info_tensors.get(key)
    if meta is None:
        raise CometCheckpointError(f"{where}: the state_dict has no '{key}': not a checkpoint of this COMET class")
    return meta.shape


_MEMO: dict[tuple, CheckpointInfo] = {}  # validation runs per config and per cell: read each checkpoint once


def _stat(p: Path) -> tuple:
    try:
        st = p.stat()
        return (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return ()


def inspect_checkpoint(directory: str | Path, encoder: str | Path | None = None) -> CheckpointInfo:
    """Validate a COMET checkpoint directory (and its encoder files) without torch."""
    d = Path(directory)
    key = (str(d.resolve()), None if encoder is None else str(Path(encoder).resolve()),
           _stat(d / "hparams.yaml"), _stat(d / "checkpoints" / "model.ckpt"))
    info = _MEMO.get(key)
    if info is None:
        info = _inspect(d, encoder)
        if len(_MEMO) > 32:
            _MEMO.clear()
        _MEMO[key] = info
    return info


def _inspect(d: Path, encoder: str | Path | None) -> CheckpointInfo:
    hp_file, ckpt = d / "hparams.yaml", d / "checkpoints" / "model.ckpt"
    if not hp_file.is_file() or not ckpt.is_file():
        missing = " and ".join(str(p.relative_to(d)) for p in (hp_file, ckpt) if not p.is_file())
        raise CometCheckpointError(f"{d} is not a COMET checkpoint directory: no {missing} (expected hparams.yaml "
                                   f"and checkpoints/model.ckpt, as unbabel-comet and the Hub's Unbabel/* hold them)")
    import yaml

    try:
        yaml_hp = yaml.safe_load(hp_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise CometCheckpointError(f"{hp_file}: not plain YAML ({type(e).__name__})") from None
    if not isinstance(yaml_hp, dict) or "class_identifier" not in yaml_hp:
        raise CometCheckpointError(f"{hp_file}: no class_identifier: not the hparams.yaml of a COMET model")
    cls = yaml_hp["class_identifier"]
    if cls == "ranking_metric":
        raise CometCheckpointError(f"{hp_file}: class_identifier ranking_metric (COMET-rank, 2020) is not supported: "
                                   f"it scores by embedding distances and no current public checkpoint uses it; "
                                   f"supported: {', '.join(CLASSES)}")
    if cls not in CLASSES:
        raise CometCheckpointError(f"{hp_file}: unknown class_identifier {cls!r}; supported: {', '.join(CLASSES)}")
    content = read_checkpoint_pickle(ckpt)
    # COMET builds the model from the checkpoint's own hyper-parameters; hparams.yaml only names the class
    hp = {**_DEFAULTS[cls], **(content.hyper_parameters if content.hyper_parameters is not None else yaml_hp)}
    # COMET >= 2.2.4 reads "sparsemax_patch" in hparams.yaml as softmax (its issue #244); anything but
    # "sparsemax" is softmax in its layer mixing anyway
    if yaml_hp.get("layer_transformation") == "sparsemax_patch":
        hp["layer_transformation"] = "softmax"
    if hp["encoder_model"] not in ENCODERS:
        raise CometCheckpointError(f"{hp_file}: encoder_model {hp['encoder_model']!r} is not supported; "
                                   f"supported: {', '.join(ENCODERS)}")
    for key in ("activations", "final_activation"):
        act = hp.get(key)
        if act is not None and str(act).title() not in ACTIVATIONS:
            raise CometCheckpointError(f"{hp_file}: {key} {act!r} is not supported; allowed: "
                                       f"{', '.join(ACTIVATIONS)}{' or null' if key == 'final_activation' else ''}")
    if cls in ("regression_metric", "referenceless_regression_metric") and hp.get("pool") not in POOLS:
        raise CometCheckpointError(f"{hp_file}: pool {hp.get('pool')!r} is not supported; allowed: {', '.join(POOLS)}")
    if cls == "unified_metric":
        segs = list(hp.get("input_segments") or [])
        if not segs or segs[0] != "mt" or not set(segs[1:]) <= {"src", "ref"} or len(set(segs)) != len(segs):
            raise CometCheckpointError(f"{hp_file}: input_segments {segs} is not one COMET builds "
                                       f"([mt, src], [mt, ref] or [mt, src, ref])")
    enc = encoder_files(str(hp["pretrained_model"]), d, encoder)
    t = content.tensors
    rows, width = _shape(t, PREFIX + "embeddings.word_embeddings.weight", ckpt)
    layers = 1 + len({k.split(".")[4] for k in t if k.startswith(PREFIX + "encoder.layer.")})
    info = CheckpointInfo(d, ckpt, cls, hp, enc, t, num_layers=layers, hidden_size=width, vocab_rows=rows,
                          hparams_source="checkpoint" if content.hyper_parameters is not None else "hparams.yaml")
    _check_encoder(info)
    _check_heads(info, hp_file)
    return info


def _check_encoder(info: CheckpointInfo) -> None:
    cfg, where = info.encoder.config, info.encoder.directory
    if cfg.get("hidden_size") not in (None, info.hidden_size):
        raise CometCheckpointError(f"{where}/config.json: hidden_size {cfg.get('hidden_size')} but the checkpoint's "
                                   f"encoder has {info.hidden_size}: this is not the checkpoint's encoder")
    if cfg.get("vocab_size") not in (None, info.vocab_rows):
        raise CometCheckpointError(f"{where}/config.json: vocab_size {cfg.get('vocab_size')} but the checkpoint's "
                                   f"embedding has {info.vocab_rows} rows: this is not the checkpoint's encoder")
    if cfg.get("num_hidden_layers") not in (None, info.num_layers - 1):
        raise CometCheckpointError(f"{where}/config.json: num_hidden_layers {cfg.get('num_hidden_layers')} but the "
                                   f"checkpoint has {info.num_layers - 1} encoder layers")
    heads = cfg.get("num_attention_heads")
    if not isinstance(heads, int) or heads < 1 or info.hidden_size % heads:
        raise CometCheckpointError(f"{where}/config.json: num_attention_heads {heads!r} does not divide hidden_size "
                                   f"{info.hidden_size}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise CometCheckpointError(f"{where}/config.json: position_embedding_type "
                                   f"{cfg.get('position_embedding_type')!r} is not supported; allowed: absolute")
    if str(cfg.get("hidden_act", "gelu")) not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
        raise CometCheckpointError(f"{where}/config.json: hidden_act {cfg.get('hidden_act')!r} is not supported; "
                                   f"allowed: gelu, gelu_new, gelu_pytorch_tanh, relu")
    size = tokenizer_size(info.encoder.tokenizer_json) if info.encoder.tokenizer_json else None
    if size is not None and size > info.vocab_rows:
        raise CometCheckpointError(f"{info.encoder.tokenizer_json}: the tokenizer has {size} pieces but the "
                                   f"checkpoint's embedding has {info.vocab_rows} rows: the encoder vocabulary does "
                                   f"not match the checkpoint (wrong params.encoder or pretrained_model?)")


def _check_heads(info: CheckpointInfo, hp_file: Path) -> None:
    t, hp, ckpt = info.tensors, info.hparams, info.ckpt
    layer = hp.get("sent_layer" if info.unified else "layer", "mix")
    if layer == "mix":
        n = len([k for k in t if k.startswith("layerwise_attention.scalar_parameters.")])
        if n != info.num_layers:
            raise CometCheckpointError(f"{ckpt}: {n} layer-mixing weights for {info.num_layers} encoder layers")
    elif not (isinstance(layer, int) and 0 <= layer < info.num_layers):
        raise CometCheckpointError(f"{hp_file}: layer {layer!r} is not 'mix' or an encoder layer "
                                   f"0..{info.num_layers - 1}")
    widths = {"regression_metric": 6, "referenceless_regression_metric": 4}.get(info.class_identifier, 1)
    sizes = [int(s) for s in hp["hidden_sizes"]]
    want = [widths * info.hidden_size, *sizes]
    for i, (fan_in, fan_out) in enumerate(zip(want, [*sizes, 1])):
        shape = _shape(t, f"estimator.ff.{3 * i}.weight", ckpt)
        if shape != (fan_out, fan_in):
            raise CometCheckpointError(f"{ckpt}: estimator layer {i} is {shape[::-1]} (in, out), hidden_sizes "
                                       f"{sizes} say {(fan_in, fan_out)}")
    if info.word_level:
        wl = hp.get("word_layer")
        if not (isinstance(wl, int) and 0 <= wl < info.num_layers):
            raise CometCheckpointError(f"{hp_file}: word_layer {wl!r} is not an encoder layer 0..{info.num_layers - 1}")
        labels = 1 + (3 if info.class_identifier == "xcomet_metric" else len(hp["error_labels"]))
        shape = _shape(t, "hidden2tag.weight", ckpt)
        if shape != (labels, info.hidden_size):
            raise CometCheckpointError(f"{ckpt}: hidden2tag is {shape}, the error labels need ({labels}, "
                                       f"{info.hidden_size})")
