"""fine_tune: what a strategy calls -- the train/dev splits, the models, the MLM stages, the loop,
and the checkpoint they produce (cached)."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, HarnessError
from .checkpoints import cached_checkpoint
from .data import classification_label_ids, derive_seed, encode_inputs, encode_translation, subset
from .heads import (PROBE_MASKING, float32_spec, has_pretrained_mlm_head, load_classifier, load_mlm_model,
                    mlm_probe_loss, prepare_mlm_head)
from .loop import run_loop, uses_autocast
from .masking import MaskVocab
from .mlm_head import MLMHead
from .params import FineTuneParams, MLMHeadParams, MLMStage, Objective

if TYPE_CHECKING:  # pragma: no cover
    from ..api import BenchmarkData, CellContext, Example
    from ..models.spec import ModelSpec


def _train_split(data: BenchmarkData, strategy: str) -> list[Example]:
    if not data.train:
        raise DataError(f"strategy '{strategy}' fine-tunes on the benchmark's train split, but the benchmark has "
                        "no training examples; give it a train split (e.g. train files in its params) or use "
                        "strategy 'none'")
    return data.train


def _dev_split(data: BenchmarkData, params: FineTuneParams, seed: int, strategy: str, task: str) -> list | None:
    """The dev examples that early stopping or a dev curve (``eval_steps`` alone) evaluates on."""
    early = params.early_stopping_patience is not None
    if not early and params.eval_steps is None:
        return None
    if early and params.early_stopping_metric == "accuracy" and task != "classification":
        raise HarnessError(f"strategy '{strategy}': early_stopping_metric 'accuracy' applies to classification; "
                           f"use 'loss' for {task}")
    if not data.dev:
        if early:
            raise DataError(f"strategy '{strategy}': early_stopping_patience needs a dev split, but the benchmark "
                            "has none; give it a dev split or set early_stopping_patience: null")
        raise DataError(f"strategy '{strategy}': eval_steps evaluates on a dev split, but the benchmark has "
                        "none; give it a dev split or set eval_steps: null")
    return subset(data.dev, params.dev_limit, seed, "dev-subset")

@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' per-load reports of newly initialised heads and its progress bars: the
    new heads are intended (classification or MLM) and the reports would flood a study's log."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()

def fine_tune(spec: ModelSpec, data: BenchmarkData, ctx: CellContext, *, strategy: str, version: str,
              params: FineTuneParams, objective: Objective, mlm_stage: MLMStage | None = None,
              mlm_head_params: MLMHeadParams | None = None, trains_as: tuple[str, str] | None = None) -> ModelSpec:
    """Fine-tune ``spec`` on ``data.train`` (cached); return the spec of the fine-tuned checkpoint.

    With ``mlm_stage``, masked-LM training on the training texts runs first (TAPT) and the
    resulting encoder is then fine-tuned with ``objective``. Whenever an MLM head is used
    (aux_mlm, TAPT) and the checkpoint has none, a new one is built as BERT's
    (:func:`start_new_mlm_head`) and, with ``mlm_head_params.mlm_head_warmup_steps``, trained
    alone first; ``finetune.json``'s ``mlm_head`` records its MLM loss at each stage.

    ``trains_as``: ``(name, version)`` of the strategy whose training this is, for a strategy that
    trains exactly as another and differs only at test time (``matched_mask`` runs ``input_mask``'s
    training): the checkpoint is keyed, named and recorded as that strategy's, so the two share
    one; messages still name ``strategy``. Default: ``(strategy, version)``.
    """
    from ..models.hf import load_tokenizer, resolve_device

    if params.train_seed is not None:
        ctx = dataclasses.replace(ctx, seed=params.train_seed)
    task = data.task
    train_examples = subset(_train_split(data, strategy), params.train_limit, ctx.seed, "train-subset")
    dev_examples = _dev_split(data, params, ctx.seed, strategy, task)
    if task == "classification" and (not data.labels or len(data.labels) < 2):
        raise DataError(f"strategy '{strategy}': classification needs at least two labels, the benchmark has "
                        f"{data.labels or 'none'}")
    device = resolve_device(ctx.device if ctx.device != "auto" else spec.device)
    where = f"strategy '{strategy}'"
    if objective.second_view is not None and task != "classification":
        raise HarnessError(f"{where}: a second (corrupted) view of each batch is for classification, not {task}")

    head_params = mlm_head_params or MLMHeadParams()
    head_masking = objective.mlm_masking or (mlm_stage.masking if mlm_stage is not None else PROBE_MASKING)

    def build(outdir: Path) -> dict[str, Any]:
        tokenizer = load_tokenizer(spec)
        pad_id = _pad_id(tokenizer)
        record: dict[str, Any] = {"device": device,
                                  "mixed_precision": spec.dtype if uses_autocast(device, spec.dtype) else "no"}
        with quiet_transformers():
            model, enc, dev_enc = _task_model(spec, task, data, train_examples, dev_examples, tokenizer, params,
                                              ctx, device, where)
            # The MLM head shares the classifier's encoder: TAPT adapts exactly the encoder that is then
            # fine-tuned (its pooler and new head untouched), aux_mlm trains both losses on it at once.
            mlm_head = MLMHead(load_mlm_model(spec, seed=ctx.seed, device=device, encoder_source=model)) \
                if objective.kind == "aux_mlm" or mlm_stage is not None else None
        vocab = None
        if mlm_head is not None or objective.input_masking is not None or objective.second_view is not None:
            vocab = MaskVocab.from_tokenizer(tokenizer, model.config.vocab_size, where=where)

        def probe(head: MLMHead) -> float | None:
            return mlm_probe_loss(head, enc, vocab, seed=ctx.seed, device=device, pad_id=pad_id,
                                  batch_size=params.batch_size)

        if mlm_head is not None:
            pretrained_head = has_pretrained_mlm_head(spec, mlm_head.model)
            # architectures that promise a head the weights do not hold (ELECTRA's discriminator): say so
            if not pretrained_head and has_pretrained_mlm_head(spec):
                new = mlm_head.model.harness_new_weights
                ctx.log.warning("model %s: its checkpoint (a pre-training architecture) has no masked-LM head (%d "
                                "head weights missing, e.g. %s); "
                                "a new head is built as BERT's (warm-up steps: %d)", spec.path, len(new),
                                ", ".join(new[:2]), head_params.mlm_head_warmup_steps)
            record["mlm_head"] = prepare_mlm_head(
                mlm_head, enc, vocab, pretrained=pretrained_head, probe=probe, params=params,
                warmup_steps=head_params.mlm_head_warmup_steps,
                warmup_learning_rate=head_params.mlm_head_warmup_learning_rate, masking=head_masking,
                seed=ctx.seed, device=device, dtype_name=spec.dtype, pad_id=pad_id, progress=ctx.progress,
                log=ctx.log)
        if mlm_stage is not None:
            res = run_loop(mlm_head.model, enc, task="mlm", params=params,
                           objective=Objective("mlm", mlm_masking=mlm_stage.masking), seed=derive_seed(ctx.seed, "tapt"),
                           device=device, dtype_name=spec.dtype, pad_id=pad_id, mask_vocab=vocab, mlm_head=mlm_head,
                           lr=mlm_stage.learning_rate, epochs=mlm_stage.epochs, max_steps=mlm_stage.max_steps,
                           progress=ctx.progress, log=ctx.log)
            record["mlm_stage"] = res.as_record(len(enc))
            record["mlm_head"]["loss_after_mlm_stage"] = probe(mlm_head)
            mlm_head = None  # stage 2 is plain fine-tuning
        res = run_loop(model, enc, task=task, params=params, objective=objective, seed=ctx.seed, device=device,
                       dtype_name=spec.dtype, pad_id=pad_id, mask_vocab=vocab, mlm_head=mlm_head, dev=dev_enc,
                       progress=ctx.progress, log=ctx.log)
        if mlm_head is not None:
            record["mlm_head"]["loss_after_training"] = probe(mlm_head)
        with quiet_transformers():
            model.save_pretrained(outdir)
            tokenizer.save_pretrained(outdir)
        record.update(res.as_record(len(enc)))
        return record

    # the checkpoint's identity is what training does, not what the cell does with it afterwards
    trained_by, trained_version = trains_as or (strategy, version)
    return cached_checkpoint(spec, data, ctx, strategy=trained_by, version=trained_version, params=params,
                             build=build, uses_dev=dev_examples is not None, device=device)


def _task_model(base, task, data, train_examples, dev_examples, tokenizer, params, ctx, device, where):
    """The model to fine-tune and its encoded train/dev splits."""
    dev_enc = None
    if task == "classification":
        model = load_classifier(base, list(data.labels), seed=ctx.seed, device=device, log=ctx.log)
        # Targets follow the model's own id order (a reused head may order labels differently).
        label2id = {str(v): int(k) for k, v in model.config.id2label.items()}
        enc = encode_inputs(tokenizer, train_examples, params.max_length, where)
        enc.targets = classification_label_ids(train_examples, label2id, f"{where}, train split")
        if dev_examples is not None:
            dev_enc = encode_inputs(tokenizer, dev_examples, params.max_length, where)
            dev_enc.targets = classification_label_ids(dev_examples, label2id, f"{where}, dev split")
        return model, enc, dev_enc
    if task == "translation":
        from ..models.hf import load_config, load_hf_model

        config = load_config(base)
        if not getattr(config, "is_encoder_decoder", False):
            archs = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
            raise HarnessError(f"{where}: translation fine-tuning needs an encoder-decoder (seq2seq) model; "
                               f"'{base.path}' (architectures: {archs}; model_type "
                               f"{getattr(config, 'model_type', '?')}) is not one")
        model = load_hf_model(float32_spec(base), "AutoModelForSeq2SeqLM", seed=ctx.seed, device=device)
        enc = encode_translation(tokenizer, train_examples, params.max_length, params.max_target_length, where)
        if dev_examples is not None:
            dev_enc = encode_translation(tokenizer, dev_examples, params.max_length, params.max_target_length, where)
        return model, enc, dev_enc
    raise HarnessError(f"{where} does not support task '{task}'")


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
