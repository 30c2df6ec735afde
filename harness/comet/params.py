"""The parameters every plugin that scores with a COMET checkpoint takes, validated at the config edge.

:class:`ScorerParams` (checkpoint, encoder, device, dtype, batching) checks the checkpoint directory
when the config is validated: that it is a COMET checkpoint of a supported class, that its pickle
holds nothing but tensors, that its encoder's tokenizer and config are found and fit the weights.
Each problem is one line naming the directory; ``harness validate`` reports it before anything
runs, and torch is not imported for it. Plugins subclass it to add what they need (the ``comet``
metric's ``use_references``, the ``qe_rerank`` decoder's candidates) and call
:meth:`ScorerParams.info` and :meth:`ScorerParams.scorer`.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..params import InputDir, Params
from .checkpoint import CheckpointInfo, CometCheckpointError, inspect_checkpoint

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ScorerParams(Params):
    checkpoint: InputDir = Field(
        description="a COMET checkpoint directory (hparams.yaml + checkpoints/model.ckpt), e.g. a download of "
                    "Unbabel/wmt22-comet-da; relative to the config file")
    encoder: InputDir | None = Field(
        None, description="directory with the encoder's config.json and tokenizer (null: the checkpoint's "
                          "pretrained_model, as a directory beside it or in the Hugging Face cache)")
    batch_size: int = Field(16, ge=1, description="segments (or joint inputs) per encoder batch, sorted by length")
    max_tokens: int | None = Field(None, ge=1, description="also cap a batch at this many padded tokens (null: no cap)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="float32 gives COMET's scores; 16-bit halves a GPU's memory and moves scores "
                               "(fixture: bfloat16 by up to 5e-3, float16 5e-4)")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE.match(v):
            raise ValueError(f"unknown device {v!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        return v

    @model_validator(mode="after")
    def _readable_checkpoint(self, info: ValidationInfo):
        if not (info.context or {}).get("check_files", True):
            return self
        try:
            problem = self.problem(self.checkpoint_info())
        except CometCheckpointError as e:
            raise ValueError(str(e)) from None
        if problem:
            raise ValueError(problem)
        return self

    def problem(self, info: CheckpointInfo) -> str | None:
        """What a subclass refuses about this checkpoint (None: nothing)."""
        return None

    def checkpoint_info(self) -> CheckpointInfo:
        return inspect_checkpoint(self.checkpoint, self.encoder)

    def scorer(self):
        """The loaded :class:`harness.comet.Scorer`, with this config's batch settings."""
        from . import load_scorer

        s = load_scorer(self.checkpoint_info(), self.device, self.dtype)
        s.batch_size, s.max_tokens = self.batch_size, self.max_tokens
        return s

    def batch_signature(self) -> str:
        return f"batch:{self.batch_size}" + (f"/{self.max_tokens}tok" if self.max_tokens else "") + ",sorted"
