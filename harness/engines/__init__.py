"""Engines: what runs a model's decoders (``engine:`` on a model entry).

``transformers`` (the default) runs the harness's own search code (:mod:`harness.decoding`)
over the Hugging Face model. Another engine takes the whole decode: it converts the model once
into its own format and offers the searches the built-in decoders call, under the names of
:mod:`harness.decoding.core` (``greedy_search``, ``beam_search``, ``sample_search`` and their
``BeamConfig`` / ``SampleConfig``), so ``greedy``, ``beam`` and ``sample`` run on it unchanged
(:func:`harness.decoding.run_search` hands it over).

This module is the table of engines and what validating a config needs to know about them
(torch-free); :func:`harness.engines.load.load_generation_model` loads a model for the engine its
spec names. An engine runs only the decoders listed in :data:`ENGINES`; any other
decoder, or a decoder parameter it cannot honour, is refused when the config is validated
(:func:`harness.experiment.checks.check_engines` reads this table), naming the decoders it does
run, as is a ``compute_type`` the engine cannot run on this machine. Torch-free: engine packages
are imported only to check a compute type and when a model is loaded. Non-goals: engine plugins
from third parties (an engine is a model-loading choice, not a pluggy hook, in this version);
classification models (engines decode only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

@dataclass(frozen=True)
class EngineInfo:
    name: str
    package: str  # the import name that must be installed
    install: str  # how to install it
    decoders: tuple[str, ...]  # decoders it runs
    # decoder -> param -> (values it honours, why others are refused)
    params: dict[str, dict[str, tuple[tuple, str]]] = field(default_factory=dict)
    no_diverse: str = ""  # why other decoders are refused, for the error line


ENGINES: dict[str, EngineInfo] = {
    "ctranslate2": EngineInfo(
        name="ctranslate2", package="ctranslate2", install='pip install "nlp-eval-harness[ct2]"',
        decoders=("beam", "greedy", "sample"),
        params={"sample": {"epsilon": ((0.0,), "CTranslate2 has no epsilon sampling (use top_k / top_p)")},
                "beam": {"early_stopping": ((None, True), "CTranslate2 stops a sentence once num_beams hypotheses "
                                                          "are finished (early_stopping: true)")}},
        no_diverse="CTranslate2 has no diverse (group) beam search"),
}


def ct2_device(device: str) -> tuple[str, int]:
    """CTranslate2's device and index for a model's ``device`` (auto: CUDA when CTranslate2 sees a GPU)."""
    import ctranslate2

    if device.startswith("cuda") or (device == "auto" and ctranslate2.get_cuda_device_count() > 0):
        return "cuda", int(device.partition(":")[2] or 0)
    return "cpu", 0


def ct2_compute_type_problem(compute_type: str, device: str) -> str | None:
    """Why CTranslate2 cannot run ``compute_type`` on ``device`` on this machine (None: it can).
    Checked when the config is validated, so a run does not start cells that all fail."""
    import ctranslate2

    where, _ = ct2_device(device)
    supported = sorted(ctranslate2.get_supported_compute_types(where))
    if compute_type in supported:
        return None
    return (f"{compute_type} is not available on {where} here (CTranslate2 {ctranslate2.__version__}); "
            f"allowed: auto, {', '.join(supported)}")


CT2_SEQ2SEQ_TYPES = ("bart", "m2m_100", "marian", "mbart", "mt5", "pegasus", "t5", "t5gemma", "t5gemma2", "umt5")
"""model_types of the text encoder-decoders CTranslate2 4.x converts (its converters' registry,
restricted to transformers' seq2seq LMs; tests/test_engine_ct2.py compares it with the installed
CTranslate2). Kept here so that validating a config imports neither CTranslate2 nor torch."""


def ct2_layout_problem(config: dict) -> str | None:
    """Why CTranslate2 cannot convert a model with this config.json, when it can tell (None: no
    known problem)."""
    if not config.get("is_encoder_decoder", False):
        return "engine ctranslate2 runs encoder-decoder models only in this version; use engine: transformers"
    model_type = config.get("model_type")
    if model_type and model_type not in CT2_SEQ2SEQ_TYPES:
        return (f"engine ctranslate2 cannot convert {model_type} models (it converts these encoder-decoders: "
                f"{', '.join(CT2_SEQ2SEQ_TYPES)}); use engine: transformers")
    return None
