"""``accuracy``, ``macro_f1``, ``mcc``: classification metrics over label *names*.

``outputs`` are the predicted label names, ``examples[i].label`` the gold names. Values are
reported on a 0-100 scale, as GLUE does and as the sacrebleu metrics are, so one report can
show all scores side by side (MCC then lies in [-100, 100]).

Definitions follow scikit-learn's defaults, against which the tests check them:
- macro_f1: the unweighted mean of per-class F1 over the classes that occur in the gold
  labels or the predictions; a gold class never predicted has F1 0 (sklearn's
  ``zero_division=0``), and a label of the benchmark seen in neither does not count;
- mcc: the multiclass Matthews correlation (Gorodkin 2004), 0 when undefined (a constant
  prediction or a single gold class), as ``sklearn.metrics.matthews_corrcoef``.

numpy is enough for these, so sklearn is not imported. Non-goals: per-class reports
(the per-class F1 goes in ``details``), averaging modes other than macro, probabilities.
"""
from __future__ import annotations

from harness.api import Metric, MetricValue
from harness.errors import HarnessError
from harness.hookspecs import hookimpl


def confusion(outputs, examples) -> tuple[list[str], "object"]:
    """The sorted classes seen in gold or predictions, and the confusion matrix C[gold, pred]."""
    import numpy as np

    if len(outputs) != len(examples):
        raise HarnessError(f"{len(outputs)} predictions for {len(examples)} examples")
    gold = [str(ex.label) for ex in examples]
    pred = [str(o) for o in outputs]
    classes = sorted(set(gold) | set(pred))
    index = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, ([index[g] for g in gold], [index[p] for p in pred]), 1)
    return classes, cm


class _ClassificationMetric(Metric):
    task = "classification"
    version = "1"
    value_range = (0.0, 100.0)
    signature_source = "harness"  # the signature below is ours, not sacrebleu's

    def signature(self, n: int) -> str:
        return f"{self.name}|n:{n}|scale:100|version:{self.version}"

    def compute(self, outputs, examples, nbest=None) -> MetricValue:
        if not examples:
            return MetricValue(float("nan"), self.signature(0), {"n": 0})
        classes, cm = confusion(outputs, examples)
        value, details = self.from_confusion(classes, cm)
        return MetricValue(100.0 * value, self.signature(len(examples)), details)

    def from_confusion(self, classes, cm) -> tuple[float, dict]:
        raise NotImplementedError


class Accuracy(_ClassificationMetric):
    name = "accuracy"
    description = "Share of examples whose predicted label equals the gold label (0-100)."

    def from_confusion(self, classes, cm):
        correct, n = int(cm.trace()), int(cm.sum())
        return correct / n, {"correct": correct, "n": n}


class MacroF1(_ClassificationMetric):
    name = "macro_f1"
    title = "macro-F1"
    description = "Unweighted mean of per-class F1 over gold and predicted classes (0-100), as sklearn's macro F1."

    def from_confusion(self, classes, cm):
        import numpy as np

        tp = np.diag(cm).astype(float)
        # F1 = 2TP / (2TP + FP + FN); the denominator is 0 only for a class absent from both, which
        # cannot be among `classes`, but guard anyway to keep sklearn's zero_division=0 convention
        denom = 2 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return float(f1.mean()), {"per_class_f1": {c: round(float(v) * 100, 4) for c, v in zip(classes, f1)}}


class MCC(_ClassificationMetric):
    name = "mcc"
    title = "MCC"
    value_range = (-100.0, 100.0)
    description = "Matthews correlation coefficient, multiclass (Gorodkin 2004), times 100; 0 when undefined."

    def from_confusion(self, classes, cm):
        import numpy as np

        c = cm.astype(float)
        t, p = c.sum(axis=1), c.sum(axis=0)  # per class: gold count, predicted count
        s, correct = c.sum(), np.trace(c)
        cov_yp = correct * s - t @ p
        cov_yy, cov_pp = s * s - t @ t, s * s - p @ p
        denom = np.sqrt(cov_yy * cov_pp)
        return (float(cov_yp / denom) if denom > 0 else 0.0), {}


@hookimpl
def register_metrics(register):
    for cls in (Accuracy, MacroF1, MCC):
        register(cls)
