"""The report's Training section: one row and one learning curve per fine-tuned checkpoint.

Every fine-tuning cell copies its checkpoint's training record into ``cells/<key>/finetune.json``
(:func:`harness.training.cached_checkpoint`): steps, epochs, time, the training loss averaged over
windows of steps (``history``) and, when the strategy evaluated on a dev split (``eval_steps`` or
early stopping), the dev loss and accuracy at each evaluation (``dev_evals``). Cells that decode
one checkpoint (greedy and beam of one strategy and seed; every seed under ``train_seed``) carry
the same record, so :func:`training_runs` keeps one :class:`TrainingRun` per checkpoint key.

What the numbers are, so that a curve is not over-read:

- training loss: ``task_loss`` (the auxiliary ``mlm_loss`` when a run has no task loss), the mean
  over a logging window of the batches as the optimizer saw them (dropout on, masked inputs for
  ``input_mask``, label smoothing included when ``label_smoothing`` > 0);
- dev loss: plain cross-entropy on clean dev inputs in eval mode, no smoothing;
- units: nats per target token for translation, nats per example for classification.

Missing, unreadable or malformed ``finetune.json`` files are skipped silently, as
:func:`harness.report.analysis.study.mlm_heads` does: an old run or a hand-made one still gets its report.

Non-goals: TAPT's MLM-stage curve and the MLM head's losses (the MLM head section shows those),
comparing curves statistically, smoothing them, and results.json (its schema is unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import CellInfo, finite
from .runs import finetune_records

PLOT_LIMIT = 12
"""Checkpoints drawn in the learning-curves plot; the table lists every one."""

UNITS = {"translation": "nats per target token", "classification": "nats per example"}


@dataclass
class TrainingRun:
    """One fine-tuned checkpoint, as its ``finetune.json`` records it."""

    key: str                                   # checkpoint key (finetune.json ``key``; the cell key if absent)
    benchmark: str                             # benchmarks whose cells decode it (", "-joined when several)
    model: str
    strategy: str                              # strategy labels whose cells use it (", "-joined when several)
    seed: int                                  # the seed it was trained with (``train_seed`` when set)
    task: str | None                           # translation | classification (from metrics.csv)
    cells: int                                 # cells that decode this checkpoint
    train_examples: int | None
    steps: int | None
    epochs: float | None                       # examples seen / training examples
    seconds: float | None                      # training time (of the run that trained it, also on a cache hit)
    examples_per_second: float | None
    history: list[tuple[int, float]] = field(default_factory=list)   # (optimizer step, windowed train loss)
    dev: list[tuple[int, float, float | None]] = field(default_factory=list)  # (step, dev loss, dev accuracy)
    stopped_early: bool = False
    best_dev_step: int | None = None           # early stopping: the step whose weights were kept
    label_smoothing: float | None = None       # > 0: the training loss includes the smoothing term
    threads: int | None = None                 # torch threads it was trained with (None: not recorded, older runs)
    label: str = ""                            # filled by training_runs: what tells the runs apart

    @property
    def final_train_loss(self) -> float | None:
        return self.history[-1][1] if self.history else None

    @property
    def final_dev_loss(self) -> float | None:
        return self.dev[-1][1] if self.dev else None

    @property
    def final_dev_accuracy(self) -> float | None:
        return self.dev[-1][2] if self.dev else None

    @property
    def best_dev_loss(self) -> float | None:
        return min(d[1] for d in self.dev) if self.dev else None

    @property
    def stop_step(self) -> int | None:
        """The step training stopped at, when early stopping ended it."""
        return self.steps if self.stopped_early else None


def _num(v: Any) -> float | None:
    return float(v) if finite(v) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _history(rec: dict[str, Any]) -> list[tuple[int, float]]:
    out = []
    for h in rec.get("history") or []:
        if not isinstance(h, dict):
            continue
        step, loss = _int(h.get("step")), _num(h.get("task_loss"))
        loss = loss if loss is not None else _num(h.get("mlm_loss"))
        if step is not None and loss is not None:
            out.append((step, loss))
    return out


def _dev(rec: dict[str, Any]) -> list[tuple[int, float, float | None]]:
    out = []
    for e in rec.get("dev_evals") or []:
        if not isinstance(e, dict):
            continue
        step, loss = _int(e.get("step")), _num(e.get("loss"))
        if step is not None and loss is not None:
            out.append((step, loss, _num(e.get("accuracy"))))
    return out


def training_runs(outdir: str | Path, cells: list[CellInfo]) -> list[TrainingRun]:
    """One :class:`TrainingRun` per fine-tuned checkpoint that the run's cells decoded, in the
    order of their first cell; each labelled by the parts (benchmark, model, strategy, seed) that
    differ between the runs. Cells without a readable ``finetune.json`` (strategy ``none``,
    failed cells, old runs) contribute nothing."""
    runs: dict[str, TrainingRun] = {}
    for c, rec in finetune_records(outdir, cells):
        key = rec.get("key") if isinstance(rec.get("key"), str) and rec.get("key") else c.key
        run = runs.get(key)
        if run is not None:
            run.cells += 1
            for attr, value in (("benchmark", c.benchmark), ("strategy", c.strategy)):
                names = getattr(run, attr).split(", ")
                if value not in names:
                    setattr(run, attr, ", ".join(names + [value]))
            run.task = run.task or c.task
            continue
        seed = _int(rec.get("seed"))
        best = rec.get("best_dev") if isinstance(rec.get("best_dev"), dict) else {}
        params = rec.get("params") if isinstance(rec.get("params"), dict) else {}
        runs[key] = TrainingRun(
            key=key, benchmark=c.benchmark, model=c.model, strategy=c.strategy, seed=c.seed if seed is None else seed,
            task=c.task, cells=1, train_examples=_int(rec.get("train_examples")), steps=_int(rec.get("steps")),
            epochs=_num(rec.get("epochs")), seconds=_num(rec.get("seconds")),
            examples_per_second=_num(rec.get("examples_per_second")), history=_history(rec), dev=_dev(rec),
            stopped_early=rec.get("stopped_early") is True, best_dev_step=_int(best.get("step")),
            label_smoothing=_num(params.get("label_smoothing")), threads=_int(rec.get("torch_threads")))
    out = list(runs.values())
    label_runs(out)
    return out


THREADS_NOTE = ("Threads: the torch threads a checkpoint was trained with (training_threads:, default 1). Its float "
                "sums depend on that count, so it is part of the checkpoint's key: the same seed and count give "
                "the same checkpoint on any machine. \u2013: not recorded (trained by an older harness).")


def label_runs(runs: list[TrainingRun]) -> None:
    """Set each run's label to the parts that vary between the runs (model / strategy / seed; the
    benchmark too when several trained), the model and strategy when nothing varies, and the
    checkpoint key's first characters when two labels would still be the same."""
    parts = [("benchmark", lambda r: r.benchmark), ("model", lambda r: r.model),
             ("strategy", lambda r: r.strategy), ("seed", lambda r: f"seed {r.seed}")]
    varying = [get for _, get in parts if len({get(r) for r in runs}) > 1]
    shown = varying or [lambda r: r.model, lambda r: r.strategy]
    for r in runs:
        r.label = " / ".join(get(r) for get in shown)
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.label] = counts.get(r.label, 0) + 1
    for r in runs:
        if counts[r.label] > 1:
            r.label = f"{r.label} ({r.key[:8]})"


def loss_label(task: str | None) -> str:
    unit = UNITS.get(task or "")
    return f"loss ({unit})" if unit else "loss"


def training_plot_data(runs: list[TrainingRun], limit: int = PLOT_LIMIT) -> dict[str, Any] | None:
    """The learning-curves plot's numbers: one panel per task (their losses have different
    units), a line per checkpoint (training loss; dev loss when recorded), the first ``limit``
    checkpoints with a curve; ``omitted`` counts the others. None when no run has a curve."""
    drawable = [r for r in runs if r.history or r.dev]
    if not drawable:
        return None
    shown = drawable[:limit]
    panels: dict[str, dict[str, Any]] = {}
    for r in shown:
        task = r.task or ""
        panel = panels.setdefault(task, {"task": task, "y_label": loss_label(r.task), "lines": []})
        panel["lines"].append({"name": r.label, "index": shown.index(r),
                               "train": {"x": [s for s, _ in r.history], "y": [v for _, v in r.history]},
                               "dev": {"x": [d[0] for d in r.dev], "y": [d[1] for d in r.dev]}})
    return {"panels": list(panels.values()), "shown": len(shown), "omitted": len(drawable) - len(shown),
            "limit": limit, "has_dev": any(r.dev for r in shown)}
