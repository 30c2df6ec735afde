"""The training loop: AdamW with warm-up/decay, gradient accumulation and clipping, mixed
precision, seeded data order / dropout / masks, dev evaluations and early stopping."""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .data import Encoded, collate, derive_seed, length_grouped_batches, sorted_batches
from .masking import MaskVocab, mask_tokens
from .params import FineTuneParams, Objective
from .views import second_view_loss

if TYPE_CHECKING:  # pragma: no cover
    from .mlm_head import MLMHead


@dataclass
class LoopResult:
    steps: int
    epochs_run: float
    examples_seen: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    stopped_early: bool = False

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.seconds if self.seconds else 0.0

    def as_record(self, n_train: int) -> dict[str, Any]:
        """The run as finetune.json records it."""
        return {"train_examples": n_train, "steps": self.steps, "examples_seen": self.examples_seen,
                "epochs": self.epochs_run,
                "seconds": round(self.seconds, 3), "examples_per_second": round(self.examples_per_second, 3),
                "stopped_early": self.stopped_early, "best_dev": self.best, "history": self.history,
                "dev_evals": self.evals}


def cpu_bfloat16(device: str, dtype_name: str) -> bool:
    """Mixed precision on the CPU: only when asked for by name (``dtype: bfloat16``; ``auto``
    trains in float32 there). CPUs with AVX-512 BF16 or AMX run it ~1.7x faster (MiniLM)."""
    return device == "cpu" and dtype_name == "bfloat16"


def uses_autocast(device: str, dtype_name: str) -> bool:
    """Whether training runs under mixed precision: on accelerators (but MPS) unless float32 is
    asked for, on the CPU only with an explicit ``dtype: bfloat16``."""
    if cpu_bfloat16(device, dtype_name):
        return True
    return not (device == "cpu" or device.startswith("mps") or dtype_name == "float32")


def autocast_for(device: str, dtype_name: str):
    """Mixed precision (master weights stay float32) where :func:`uses_autocast` says so; on the
    CPU autocast to bfloat16 (no loss scaling needed)."""
    import torch

    if not uses_autocast(device, dtype_name):
        return contextlib.nullcontext, None
    if cpu_bfloat16(device, dtype_name):
        return (lambda: torch.autocast(device_type="cpu", dtype=torch.bfloat16)), None
    if dtype_name == "auto":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        amp = getattr(torch, dtype_name)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    return (lambda: torch.autocast(device_type="cuda", dtype=amp)), scaler


def make_optimizer(params: FineTuneParams, named_parameters, lr: float):
    import torch

    decay, no_decay = [], []
    seen = set()
    for name, p in named_parameters:
        if not p.requires_grad or id(p) in seen:  # tied weights appear twice
            continue
        seen.add(id(p))
        # Biases and normalisation weights are 1-D; decaying them hurts (as in BERT and Trainer).
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": params.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel is what Trainer uses by default and is fastest on CPU and CUDA alike
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - devices without a fused kernel
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def lr_lambda(total: int, warmup: int, kind: str) -> Callable[[int], float]:
    """Learning-rate factor per optimizer step, as transformers' linear/constant schedules with
    warm-up: rising linearly from 0 over ``warmup`` steps, then decaying linearly to 0 at
    ``total`` (linear) or staying at 1 (constant)."""
    def f(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if kind == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def run_loop(model, train: Encoded, *, task: str, params: FineTuneParams, objective: Objective, seed: int,
             device: str, dtype_name: str, pad_id: int, mask_vocab: MaskVocab | None = None,
             mlm_head: MLMHead | None = None, dev: Encoded | None = None, lr: float | None = None,
             epochs: int | None = None, max_steps: int | None = None,
             progress: Callable[[int, int | None], None] = lambda d, t: None, log=None) -> LoopResult:
    """Train ``model`` in place. ``task``: classification | translation | mlm."""
    import torch
    import torch.nn.functional as F

    lr = params.learning_rate if lr is None else lr
    epochs = params.epochs if epochs is None else epochs
    max_steps = params.max_steps if max_steps is None else max_steps
    bs, accum = params.batch_size, params.gradient_accumulation_steps
    batches_per_epoch = math.ceil(len(train) / bs)
    steps_per_epoch = math.ceil(batches_per_epoch / accum)
    total = max_steps if max_steps is not None else epochs * steps_per_epoch
    warmup = params.warmup_steps if params.warmup_steps is not None else math.ceil(params.warmup_ratio * total)

    trainable = list(model.named_parameters())
    if mlm_head is not None:
        trainable += list(mlm_head.model.named_parameters())
    optimizer = make_optimizer(params, trainable, lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup, params.lr_scheduler))
    autocast, scaler = autocast_for(device, dtype_name)
    order_rng = random.Random(derive_seed(seed, "data-order"))
    mask_gen = torch.Generator().manual_seed(derive_seed(seed, "masks"))
    torch.manual_seed(derive_seed(seed, "dropout"))
    all_params = [p for group in optimizer.param_groups for p in group["params"]]  # each tensor once
    encoder = model.base_model

    # Dev evaluations: for early stopping, or (eval_steps alone) only to record the learning curve.
    evaluating = dev is not None and task != "mlm" and (
        params.early_stopping_patience is not None or params.eval_steps is not None)
    early = evaluating and params.early_stopping_patience is not None
    smoothing = params.label_smoothing if task != "mlm" else 0.0
    eval_every = params.eval_steps or steps_per_epoch
    higher_better = params.early_stopping_metric == "accuracy"
    best_value, best_state, bad_evals = None, None, 0

    def to_dev(b):
        return {k: v.to(device, non_blocking=True) for k, v in b.items()}

    def loss_of(batch) -> tuple[Any, dict[str, float]]:
        labels = batch.pop("labels", None)
        special = batch.pop("special")
        if objective.kind == "mlm":
            corrupted, selected = mask_tokens(batch["input_ids"], special, objective.mlm_masking, mask_vocab, mask_gen)
            inputs = to_dev({**batch, "input_ids": corrupted, "input_ids_clean": batch["input_ids"]})
            with autocast():
                loss = mlm_head.loss(encoder, inputs, selected.to(device))
            if loss is None:
                return None, {}
            return loss, {"mlm_loss": loss.item()}
        model_in = dict(batch)
        if objective.input_masking is not None:
            model_in["input_ids"], _ = mask_tokens(batch["input_ids"], special, objective.input_masking,
                                                   mask_vocab, mask_gen)
        with autocast():
            if task == "translation":
                labels = labels.to(device)
                out = model(**to_dev(model_in), labels=labels)
                loss = out.loss if not smoothing else F.cross_entropy(
                    out.logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=smoothing)
            else:
                logits = model(**to_dev(model_in)).logits
                loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=smoothing)
        parts = {"task_loss": loss.item()}
        if objective.second_view is not None:
            view, view_parts = second_view_loss(model, batch, special, logits, labels, objective.second_view,
                                                mask_vocab, mask_gen, to_dev=to_dev, autocast=autocast,
                                                smoothing=smoothing)
            loss = loss + view
            parts.update(view_parts)
        if objective.kind == "aux_mlm" and objective.mlm_weight > 0:
            # Skipped at weight 0 (no gradient to gain), which keeps lambda=0 identical to unmasked.
            corrupted, selected = mask_tokens(batch["input_ids"], special, objective.mlm_masking, mask_vocab, mask_gen)
            inputs = to_dev({**batch, "input_ids": corrupted, "input_ids_clean": batch["input_ids"]})
            with autocast():
                mlm = mlm_head.loss(encoder, inputs, selected.to(device))
            if mlm is not None:
                parts["mlm_loss"] = mlm.item()
                loss = loss + objective.mlm_weight * mlm
        return loss, parts

    model.train()
    if mlm_head is not None:
        mlm_head.model.train()
    history: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    step, seen, epoch, stopped = 0, 0, 0, False
    window: dict[str, list[float]] = {}
    log_every = max(1, min(50, steps_per_epoch // 4 or 1))
    t0 = time.perf_counter()
    progress(0, total)
    while step < total and not stopped:
        batches = length_grouped_batches(train.lengths, bs, order_rng, group=params.group_by_length)
        for i, idx in enumerate(batches):
            batch = collate(train, idx, pad_id, task=None if task == "mlm" else task)
            loss, parts = loss_of(batch)
            seen += len(idx)
            if loss is not None:
                for k, v in parts.items():
                    window.setdefault(k, []).append(v)
                loss = loss / accum
                (scaler.scale(loss) if scaler else loss).backward()
            if (i + 1) % accum != 0 and i + 1 != len(batches):
                continue
            if scaler:
                scaler.unscale_(optimizer)
            if params.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(all_params, params.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress(step, total)
            if step % log_every == 0 or step == total:
                entry = {"step": step, "epoch": round(epoch + (i + 1) / len(batches), 3),
                         "lr": scheduler.get_last_lr()[0]}
                entry.update({k: round(sum(v) / len(v), 5) for k, v in window.items() if v})
                history.append(entry)
                window = {}
            if evaluating and (step % eval_every == 0 or step == total):
                result = evaluate_loss(model, dev, task, bs, pad_id, device, autocast)
                result["step"] = step
                evals.append(result)
                if log is not None:
                    log.info("step %d/%d: dev %s", step, total, result)
                model.train()
                if early:
                    value = result[params.early_stopping_metric]
                    better = best_value is None or (value > best_value if higher_better else value < best_value)
                    if better:
                        best_value, bad_evals = value, 0
                        best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    else:
                        bad_evals += 1
                    if bad_evals >= params.early_stopping_patience:
                        stopped = True
            if step >= total or stopped:
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    best = None
    if best_state is not None:
        model.load_state_dict(best_state)
        best = next(e for e in evals if e[params.early_stopping_metric] == best_value)
    model.eval()
    return LoopResult(steps=step, epochs_run=round(seen / max(1, len(train)), 3), examples_seen=seen,
                      seconds=seconds, history=history, evals=evals, best=best, stopped_early=stopped)


def evaluate_loss(model, dev: Encoded, task: str, batch_size: int, pad_id: int, device: str,
                  autocast=contextlib.nullcontext) -> dict[str, float]:
    """Dev loss (and accuracy for classification) on clean inputs."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total_loss, total_n, correct = 0.0, 0, 0
    with torch.inference_mode():
        for idx in sorted_batches(dev.lengths, batch_size):
            batch = collate(dev, idx, pad_id, task=task)
            labels = batch.pop("labels").to(device)
            batch.pop("special")
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                if task == "translation":
                    logits = model(**batch, labels=labels).logits.float()
                    mask = labels != -100
                    total_loss += F.cross_entropy(logits[mask], labels[mask], reduction="sum").item()
                    total_n += int(mask.sum())
                else:
                    logits = model(**batch).logits.float()
                    total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
                    correct += int((logits.argmax(-1) == labels).sum())
                    total_n += len(idx)
    out = {"loss": total_loss / max(1, total_n)}
    if task != "translation":
        out["accuracy"] = correct / max(1, total_n)
    return out
