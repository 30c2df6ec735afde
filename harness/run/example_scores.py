"""Per-example scores for ``predictions/*.jsonl``: what each metric says about each row.

Every row of a cell's published predictions gets a ``scores`` object, e.g.
``{"chrf": 54.3, "bleu": 21.0}`` for translation or ``{"correct": true, "accuracy": 1.0}`` for
classification. Where the values come from, per metric (keyed by the metric's label):

- a metric plugin that implements :meth:`harness.api.Metric.example_scores` (lm-eval's
  ``--log_samples`` values, Inspect's per-sample scores, ...): those values, as the plugin gives them;
- a metric exposing a sacrebleu scorer (``bleu``, ``chrf``, ``ter``): sacrebleu's *sentence*
  score of the row against all of its references, with the same options as the corpus score.
  BLEU's sentence scores use effective order, as ``sacrebleu.sentence_bleu`` does by default
  (without it, most sentences would score 0). Sentence scores do not average to the corpus value;
- classification rows always get ``correct`` (output == gold label).

Each metric's sentence-level signature is returned once (the manifest's ``metrics`` section holds
it), not repeated per row and not as a header line, which would break JSONL readers.
Non-goals: caching (scores are recomputed with the metrics on every run, deterministically, so a
resumed run writes byte-identical files) and per-example values for corpus metrics that have no
sentence form (macro-F1, MCC, diversity metrics).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from ..api import Example, Metric


def sacrebleu_scorer(metric: Metric) -> Any:
    """The metric's sacrebleu scorer (a ``sacrebleu.metrics.base.Metric``), or None."""
    make = getattr(metric, "scorer", None)
    if not callable(make):
        return None
    try:
        from sacrebleu.metrics.base import Metric as SacreMetric
    except ImportError:  # pragma: no cover - sacrebleu is a dependency
        return None
    scorer = make()
    if not isinstance(scorer, SacreMetric):
        return None
    if hasattr(scorer, "effective_order") and not scorer.effective_order:
        # sacrebleu.sentence_bleu's default; the signature (read from the scorer's attributes) says eff:yes
        scorer = copy.copy(scorer)
        scorer.effective_order = True
    return scorer


def _clean(v: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None (JSON has no NaN)."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def metric_example_scores(metric: Metric, outputs: Sequence[str], examples: Sequence[Example],
                          nbest: Sequence[Sequence[str]] | None = None, progress=None,
                          skipped: list[str] | None = None) -> tuple[list[Any] | None, str | None]:
    """One value per example for ``metric`` and the signature of how they were computed, or
    (None, None) when the metric has no per-example form. A plugin's own ``example_scores`` wins.

    Sentence scores of a metric that declares ``max_word_pairs`` (``ter``: output words x reference
    words of one segment) are not computed for longer segments (None; their ids are appended to
    ``skipped``): one pathological segment must not stall the run. ``progress(done, total)`` is
    called as the segments are scored."""
    if type(metric).example_scores is not Metric.example_scores:
        scores = metric.example_scores(list(outputs), list(examples), nbest)
        if scores is None:
            return None, None
        scores = [_clean(s) for s in scores]
        if len(scores) != len(outputs):
            raise ValueError(f"example_scores returned {len(scores)} values for {len(outputs)} examples")
        return scores, f"{metric.name}.example_scores"
    scorer = sacrebleu_scorer(metric)
    if scorer is None or not outputs:
        return None, None
    bound = getattr(metric, "max_word_pairs", None)
    scores: list[Any] = []
    for i, (h, ex) in enumerate(zip(outputs, examples)):
        refs = list(ex.all_references()) or [""]
        if bound is not None and len(h.split()) * max(len(r.split()) for r in refs) > bound:
            scores.append(None)
            if skipped is not None:
                skipped.append(str(ex.id))
        else:
            scores.append(_clean(round(float(scorer.sentence_score(h, refs).score), 6)))
        if progress is not None:
            progress(i + 1, len(outputs))
    return scores, f"sentence {scorer.get_signature()}"


def row_scores(task: str, rows: Sequence[dict], per_metric: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The ``scores`` object of each row: ``correct`` for classification, then each metric's value."""
    out = []
    for i, r in enumerate(rows):
        s: dict[str, Any] = {}
        if task == "classification":
            s["correct"] = str(r.get("output")) == str(r.get("reference"))
        for label, values in per_metric.items():
            s[label] = values[i]
        out.append(s)
    return out


def with_scores(rows: Sequence[dict], scores: Sequence[dict] | None) -> list[dict]:
    """``rows`` with their ``scores`` (rows unchanged when there are none)."""
    if not scores or len(scores) != len(rows):
        return list(rows)
    return [{**r, "scores": s} for r, s in zip(rows, scores)]
