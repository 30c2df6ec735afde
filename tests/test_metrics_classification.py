"""accuracy, macro_f1 and mcc against scikit-learn on the same predictions (scaled by 100)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.api import Example
from harness.errors import HarnessError
from harness.plugins import default_plugins

sk = pytest.importorskip("sklearn.metrics")
LABELS = ["negative", "neutral", "positive", "mixed"]


def metric(name):
    cls = default_plugins().get("metric", name)
    return cls(cls.Params())


def examples(gold):
    return [Example(id=str(i), source="x", label=g) for i, g in enumerate(gold)]


def sklearn_scores(gold, pred):
    return {"accuracy": 100 * sk.accuracy_score(gold, pred),
            "macro_f1": 100 * sk.f1_score(gold, pred, average="macro", zero_division=0),
            "mcc": 100 * sk.matthews_corrcoef(gold, pred)}


def ours(gold, pred):
    return {name: metric(name).compute(pred, examples(gold)).value for name in ("accuracy", "macro_f1", "mcc")}


@pytest.mark.parametrize("seed", range(12))
def test_random_predictions_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    n = int(rng.integers(5, 300))
    gold = [LABELS[i] for i in rng.integers(0, k, n)]
    # mostly right, sometimes a label the gold never uses
    pred = [g if rng.random() < 0.6 else LABELS[int(rng.integers(0, 4))] for g in gold]
    want, got = sklearn_scores(gold, pred), ours(gold, pred)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-9), name


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("gold,pred", [
    (["a", "b", "a", "b"], ["a", "b", "a", "b"]),              # all correct
    (["a", "b", "a", "b"], ["a", "a", "a", "a"]),              # a single class predicted
    (["a", "a", "a"], ["a", "a", "a"]),                        # a single gold class, all correct
    (["a", "a", "a"], ["b", "b", "a"]),                        # predictions outside the gold classes
    (["a", "b", "c"], ["b", "c", "a"]),                        # all wrong
    (["pos", "neg"], ["neg", "pos"]),                          # perfectly inverted: mcc -100
])
def test_edge_cases_match_sklearn(gold, pred):
    want, got = sklearn_scores(gold, pred), ours(gold, pred)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-9), (name, got, want)


def test_values_a_user_can_check_by_hand():
    gold = ["pos", "pos", "neg", "neg"]
    assert ours(gold, ["pos", "pos", "neg", "neg"]) == {"accuracy": 100.0, "macro_f1": 100.0, "mcc": 100.0}
    got = ours(gold, ["pos", "pos", "pos", "pos"])
    # neg: F1 0; pos: P=1/2, R=1, F1=2/3 -> macro 33.33; constant prediction -> MCC undefined -> 0
    assert got["accuracy"] == 50.0 and got["macro_f1"] == pytest.approx(100 / 3) and got["mcc"] == 0.0
    assert ours(["pos", "neg"], ["neg", "pos"])["mcc"] == -100.0


def test_details_signature_and_direction():
    mv = metric("accuracy").compute(["a", "b", "b"], examples(["a", "b", "a"]))
    assert mv.details == {"correct": 2, "n": 3}
    assert mv.signature == "accuracy|n:3|scale:100|version:1"
    f1 = metric("macro_f1").compute(["a", "b", "b"], examples(["a", "b", "a"]))
    assert f1.details["per_class_f1"] == {"a": pytest.approx(100 * 2 / 3, abs=1e-4), "b": pytest.approx(100 * 2 / 3, abs=1e-4)}
    assert all(default_plugins().get("metric", n).task == "classification" for n in ("accuracy", "macro_f1", "mcc"))
    assert all(default_plugins().get("metric", n).higher_is_better for n in ("accuracy", "macro_f1", "mcc"))


def test_empty_and_mismatched_inputs():
    assert math.isnan(metric("accuracy").compute([], []).value)
    with pytest.raises(HarnessError, match="2 predictions for 3 examples"):
        metric("mcc").compute(["a", "b"], examples(["a", "b", "a"]))
