"""Fine-tuning strategies on a tiny random BERT: each runs, changes what it should, and is seeded.

The conformance tests are parametrized over every registered strategy that fine-tunes a
classifier, so a new strategy plugin is held to the same contract.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.api import BenchmarkData, CellContext, Example
from harness.errors import DataError
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins

LABELS = ["neg", "pos"]
# every registered strategy that fine-tunes a classifier (none evaluates the model as it is)
FINE_TUNING = sorted(n for n in default_plugins().registry("strategy").names()
                     if n != "none" and "classification" in default_plugins().get("strategy", n).tasks)
# strategies that train exactly as another and share its checkpoints (they differ at test time)
TRAINS_AS = {"matched_mask": "input_mask"}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy shared CPU two spinning threads
    make each step ~10x slower; results do not depend on the thread count here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sentiment(n: int, seed: int, prefix: str) -> list[Example]:
    """Easy synthetic sentiment: a polar word plus filler words that lean to its class.

    The fillers give each polar word its own contexts; with shared contexts a masked-LM
    objective would (rightly) pull "good" and "bad" together and fight the task.
    """
    rng = random.Random(seed)
    polar = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful"]}
    fillers = {"pos": "the movie is one two three".split(), "neg": "a house was four five six".split()}
    out = []
    for i in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = [rng.choice(fillers[label]) for _ in range(rng.randint(1, 9))]
        words.insert(rng.randint(0, len(words)), rng.choice(polar[label]))
        out.append(Example(id=f"{prefix}{i}", source=" ".join(words), label=label))
    return out


def sentiment_data(n_train: int = 120) -> BenchmarkData:
    return BenchmarkData(task="classification", train=sentiment(n_train, 0, "train-"), dev=sentiment(40, 1, "dev-"),
                         test=sentiment(60, 2, "test-"), labels=list(LABELS))


def strategy(name: str, **params):
    cls = default_plugins().get("strategy", name)
    return cls(cls.Params.model_validate(params))


def ctx_for(root: Path, seed: int = 0, cache: str = "cache") -> CellContext:
    return CellContext(seed=seed, workdir=root / f"cell-{seed}", cache_dir=root / cache, device="cpu")


def weights(path: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def same_weights(a: dict, b: dict, prefix: str = "") -> bool:
    import torch

    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in keys)


FAST = dict(epochs=2, batch_size=16)
LEARN = dict(learning_rate=3e-3, epochs=6, batch_size=16, warmup_ratio=0.0)
# a tiny random encoder is easily swamped by the MLM gradient (see aux_mlm in docs/studies.md)
# (a short head warm-up too, so the conformance tests hold it to the same seeding contract)
EXTRA = {"aux_mlm": {"mlm_weight": 0.03, "mlm_head_warmup_steps": 3},
         "tapt": {"mlm_epochs": 1, "mlm_head_warmup_steps": 3}}


# ----------------------------------------------------------------------------- conformance


def test_every_fine_tuning_strategy_is_covered():
    assert set(FINE_TUNING) >= {"unmasked", "input_mask", "aux_mlm", "tapt"}


@pytest.mark.parametrize("name", FINE_TUNING)
def test_strategy_learns_the_task_and_writes_a_labelled_checkpoint(tmp_path, tiny_bert, name):
    from harness.run.classify import predict

    data = sentiment_data(200)
    ctx = ctx_for(tmp_path)
    spec = ModelSpec(path=str(tiny_bert), local=True, label="tiny")
    out = strategy(name, **LEARN, **EXTRA.get(name, {})).prepare(spec, data, ctx)
    assert out.local and out.init == "pretrained" and out.display == "tiny"
    config = json.loads((Path(out.path) / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["architectures"] == ["BertForSequenceClassification"]
    preds = predict(out, data, ctx)
    accuracy = sum(p["label"] == ex.label for p, ex in zip(preds, data.test)) / len(data.test)
    assert accuracy >= 0.9, f"{name}: accuracy {accuracy} on an easy task"
    record = json.loads((ctx.workdir / "finetune.json").read_text())
    assert record["strategy"] == TRAINS_AS.get(name, name) and record["seed"] == 0 and record["train_examples"] == 200
    assert record["cache_hit"] is False and record["checkpoint"] == out.path


@pytest.mark.parametrize("name", FINE_TUNING)
def test_same_seed_gives_identical_checkpoints_other_seed_differs(tmp_path, tiny_bert, name):
    data = sentiment_data()
    spec = ModelSpec(path=str(tiny_bert), local=True)
    strat = strategy(name, **FAST, **EXTRA.get(name, {}))
    a = weights(strat.prepare(spec, data, ctx_for(tmp_path, 0, "cache-a")).path)
    b = weights(strat.prepare(spec, data, ctx_for(tmp_path, 0, "cache-b")).path)  # trained again, not cached
    c = weights(strat.prepare(spec, data, ctx_for(tmp_path, 1, "cache-a")).path)
    assert same_weights(a, b)
    assert not same_weights(a, c)


# ----------------------------------------------------------------------------- what each arm sees


@pytest.fixture(scope="module")
def arms(tmp_path_factory, tiny_bert):
    """Train every arm once with seed 0, recording what the classifier and the encoder are fed."""
    import transformers

    root = tmp_path_factory.mktemp("arms")
    data = sentiment_data()
    spec = ModelSpec(path=str(tiny_bert), local=True)
    calls: dict[str, dict[str, list]] = {}
    clf_forward = transformers.BertForSequenceClassification.forward
    enc_forward = transformers.BertModel.forward
    current = {"arm": None}

    def spy_clf(self, *a, **kw):
        if self.training:
            calls[current["arm"]]["classifier"].append({k: kw[k].clone() for k in ("input_ids", "attention_mask")})
        return clf_forward(self, *a, **kw)

    def spy_enc(self, *a, **kw):
        if self.training:
            ids = kw["input_ids"] if kw.get("input_ids") is not None else a[0]
            calls[current["arm"]]["encoder"].append(ids.clone())
        return enc_forward(self, *a, **kw)

    transformers.BertForSequenceClassification.forward = spy_clf
    transformers.BertModel.forward = spy_enc
    out = {}
    try:
        for arm, name, params in [("unmasked", "unmasked", {}), ("input_mask", "input_mask", {"mask_prob": 0.3}),
                                  ("aux_mlm", "aux_mlm", {"mlm_weight": 0.5}), ("aux_mlm0", "aux_mlm", {"mlm_weight": 0}),
                                  ("tapt", "tapt", {})]:
            current["arm"] = arm
            calls[arm] = {"classifier": [], "encoder": []}
            out[arm] = strategy(name, **FAST, **params).prepare(spec, data, ctx_for(root / arm))
    finally:
        transformers.BertForSequenceClassification.forward = clf_forward
        transformers.BertModel.forward = enc_forward
    return {"calls": calls, "specs": out, "root": root, "tokenizer": transformers.AutoTokenizer.from_pretrained(tiny_bert)}


def test_all_arms_see_the_same_batches_in_the_same_order(arms):
    import torch

    calls = arms["calls"]
    ref = calls["unmasked"]["classifier"]
    assert len(ref) == 16  # 120 examples / 16 per batch = 8 batches, 2 epochs
    for arm in ("input_mask", "aux_mlm", "aux_mlm0", "tapt"):
        got = calls[arm]["classifier"]
        assert len(got) == len(ref), arm
        assert all(torch.equal(g["attention_mask"], r["attention_mask"]) for g, r in zip(got, ref)), arm
    for arm in ("aux_mlm", "aux_mlm0", "tapt"):  # these feed the classifier clean inputs
        assert all(torch.equal(g["input_ids"], r["input_ids"]) for g, r in zip(calls[arm]["classifier"], ref)), arm


def test_input_mask_feeds_masked_ids_and_never_masks_special_tokens(arms):
    import torch

    tok = arms["tokenizer"]
    mask_id, specials = tok.mask_token_id, torch.tensor(tok.all_special_ids)
    clean = arms["calls"]["unmasked"]["classifier"]
    masked = arms["calls"]["input_mask"]["classifier"]
    n_eligible = n_mask = n_changed = 0
    for c, m in zip(clean, masked):
        special = torch.isin(c["input_ids"], specials)  # [CLS], [SEP] and [PAD]
        assert torch.equal(m["input_ids"][special], c["input_ids"][special])
        n_eligible += int((~special).sum())
        n_mask += int((m["input_ids"] == mask_id).sum())
        n_changed += int((m["input_ids"] != c["input_ids"]).sum())
    assert all((c["input_ids"] != mask_id).all() for c in clean), "unmasked training never sees [MASK]"
    # mask_prob 0.3: ~24% of the ~900 eligible tokens become [MASK], ~27% change in all (sd ~1.5%)
    assert 0.19 < n_mask / n_eligible < 0.29
    assert 0.22 < n_changed / n_eligible < 0.33
    assert n_changed > n_mask, "some selected tokens become random tokens"
    # masks are redrawn at every step: the second epoch masks the same examples differently
    first, second = masked[:8], masked[8:]
    assert not all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, second))


def test_aux_mlm_feeds_masked_inputs_to_the_shared_encoder(arms):
    tok = arms["tokenizer"]
    calls = arms["calls"]["aux_mlm"]
    # the classifier's own encoder call sees clean ids; the extra MLM call on the same batch sees masks
    clean, extra = calls["encoder"][0::2], calls["encoder"][1::2]
    assert len(calls["encoder"]) == 2 * len(calls["classifier"])
    assert all((x != tok.mask_token_id).all() for x in clean)
    assert sum(int((x == tok.mask_token_id).sum()) for x in extra) > 20
    assert all(x.shape == c.shape for x, c in zip(extra, clean))
    assert len(arms["calls"]["aux_mlm0"]["encoder"]) == len(arms["calls"]["aux_mlm0"]["classifier"])


def test_aux_mlm_with_weight_zero_equals_unmasked_and_positive_weight_differs(arms):
    specs = arms["specs"]
    unmasked = weights(specs["unmasked"].path)
    assert same_weights(weights(specs["aux_mlm0"].path), unmasked)
    assert not same_weights(weights(specs["aux_mlm"].path), unmasked)
    history = json.loads((Path(specs["aux_mlm"].path) / "finetune.json").read_text())["history"]
    assert all(h["mlm_loss"] > 0 for h in history), "the loss includes the masked-LM term"
    history0 = json.loads((Path(specs["aux_mlm0"].path) / "finetune.json").read_text())["history"]
    assert not any("mlm_loss" in h for h in history0)


def test_tapt_runs_a_masked_lm_stage_on_the_training_text(arms):
    record = json.loads((Path(arms["specs"]["tapt"].path) / "finetune.json").read_text())
    stage = record["mlm_stage"]
    assert stage["train_examples"] == 120 and stage["steps"] == 8  # one epoch of 8 batches
    assert all("mlm_loss" in h for h in stage["history"])
    encoder_calls = arms["calls"]["tapt"]["encoder"]
    # 8 masked-LM batches first (with [MASK]), then the classifier's 16 clean batches
    mask_id = arms["tokenizer"].mask_token_id
    assert all((x == mask_id).any() for x in encoder_calls[:8])
    assert all(not (x == mask_id).any() for x in encoder_calls[8:])


def test_input_mask_at_rate_zero_trains_exactly_like_unmasked(tmp_path, tiny_bert):
    """The masking-rate sweep's rate 0 is the unmasked arm: the same checkpoint, bit for bit."""
    data = sentiment_data()
    spec = ModelSpec(path=str(tiny_bert), local=True)
    zero = weights(strategy("input_mask", **FAST, mask_prob=0.0).prepare(spec, data, ctx_for(tmp_path)).path)
    plain = weights(strategy("unmasked", **FAST).prepare(spec, data, ctx_for(tmp_path)).path)
    assert same_weights(zero, plain)
    low = weights(strategy("input_mask", **FAST, mask_prob=0.05).prepare(spec, data, ctx_for(tmp_path)).path)
    assert not same_weights(low, plain)


def test_arms_start_from_the_same_head_for_one_seed(tmp_path, tiny_bert):
    """With learning rate 0 nothing trains: the checkpoints show the initial state of each arm."""
    data = sentiment_data(40)
    spec = ModelSpec(path=str(tiny_bert), local=True)
    frozen = dict(learning_rate=0.0, epochs=1, batch_size=16)
    base = weights(strategy("unmasked", **frozen).prepare(spec, data, ctx_for(tmp_path, 5)).path)
    for name, extra in [("input_mask", {}), ("aux_mlm", {"mlm_weight": 1.0}), ("tapt", {"mlm_learning_rate": 0.0})]:
        other = weights(strategy(name, **frozen, **extra).prepare(spec, data, ctx_for(tmp_path, 5)).path)
        assert same_weights(other, base), name
    other_seed = weights(strategy("unmasked", **frozen).prepare(spec, data, ctx_for(tmp_path, 6)).path)
    assert not same_weights(other_seed, base, "classifier.")
    assert same_weights(other_seed, base, "bert.encoder."), "only the new head depends on the seed"
    # TAPT with a real masked-LM stage changes the encoder but starts from the same head
    tapt = weights(strategy("tapt", **frozen, mlm_learning_rate=1e-2).prepare(spec, data, ctx_for(tmp_path, 5)).path)
    assert same_weights(tapt, base, "classifier.")
    assert not same_weights(tapt, base, "bert.encoder.")


# ----------------------------------------------------------------------------- MLM head


def test_mlm_head_reuses_a_pretrained_head_and_ties_it_to_the_shared_encoder(tmp_path, tiny_bert):
    import torch
    from transformers import BertForMaskedLM

    from harness.training import load_classifier, load_mlm_model

    ckpt = tmp_path / "mlm"
    torch.manual_seed(3)
    BertForMaskedLM.from_pretrained(tiny_bert).save_pretrained(ckpt)  # gives it an (initialised) MLM head
    (ckpt / "tokenizer.json").write_bytes((Path(tiny_bert) / "tokenizer.json").read_bytes())
    saved = weights(str(ckpt))["cls.predictions.transform.dense.weight"]
    spec = ModelSpec(path=str(ckpt), local=True)
    clf = load_classifier(spec, LABELS, seed=0, device="cpu")
    mlm = load_mlm_model(spec, seed=0, device="cpu", encoder_source=clf)
    assert torch.equal(mlm.cls.predictions.transform.dense.weight, saved), "the pretrained head is kept"
    assert mlm.bert is clf.bert, "one encoder, shared"
    assert mlm.get_output_embeddings().weight is clf.get_input_embeddings().weight

    # tiny_bert has no MLM head: a new one, seeded
    plain = ModelSpec(path=str(tiny_bert), local=True)
    heads = [load_mlm_model(plain, seed=s, device="cpu").cls.predictions.transform.dense.weight for s in (0, 0, 1)]
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])


# ----------------------------------------------------------------------------- early stopping and errors


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def test_early_stopping_restores_the_best_dev_checkpoint(tmp_path, tiny_bert, metric):
    from transformers import AutoTokenizer

    from harness.models.hf import load_hf_model
    from harness.training import classification_label_ids, encode_inputs, evaluate_loss

    data = sentiment_data(120)
    out = strategy("unmasked", learning_rate=2e-2, epochs=6, batch_size=16, warmup_ratio=0.0, eval_steps=2,
                   early_stopping_patience=3, early_stopping_metric=metric).prepare(
        ModelSpec(path=str(tiny_bert), local=True), data, ctx_for(tmp_path))
    record = json.loads((Path(out.path) / "finetune.json").read_text())
    evals = record["dev_evals"]
    assert len(evals) >= 3 and record["best_dev"] in evals
    best = min(e["loss"] for e in evals) if metric == "loss" else max(e["accuracy"] for e in evals)
    assert record["best_dev"][metric] == best
    if metric == "accuracy":  # dev accuracy reaches 1.0 early; ties are no improvement, so it stops
        assert record["stopped_early"] and record["steps"] < 48
        assert len(evals) - evals.index(record["best_dev"]) - 1 == 3, "stopped after `patience` evaluations"
    # the saved model is the best one, not the last one
    model = load_hf_model(out, "AutoModelForSequenceClassification", device="cpu")
    tok = AutoTokenizer.from_pretrained(out.path)
    dev = encode_inputs(tok, data.dev, 128, "dev")
    dev.targets = classification_label_ids(data.dev, {"neg": 0, "pos": 1}, "dev")
    again = evaluate_loss(model, dev, "classification", 16, 0, "cpu")
    assert again["loss"] == pytest.approx(record["best_dev"]["loss"], rel=1e-4)


def test_unknown_training_label_names_the_example(tmp_path, tiny_bert):
    data = sentiment_data(20)
    data.train.append(Example(id="train-odd", source="the movie", label="neutral"))
    with pytest.raises(DataError, match=r"strategy 'unmasked', train split: example train-odd has label 'neutral'; "
                                        r"allowed labels: neg, pos"):
        strategy("unmasked", **FAST).prepare(ModelSpec(path=str(tiny_bert), local=True), data, ctx_for(tmp_path))


def test_mixed_single_texts_and_pairs_are_refused(tmp_path, tiny_bert):
    data = sentiment_data(20)
    data.train[3] = Example(id="train-3", source="the movie", source_pair="a movie", label="pos")
    with pytest.raises(DataError, match=r"some examples have a second text \(source_pair\) and some do not"):
        strategy("unmasked", **FAST).prepare(ModelSpec(path=str(tiny_bert), local=True), data, ctx_for(tmp_path))


def test_train_limit_takes_a_seeded_subset_shared_by_the_arms(tmp_path, tiny_bert):
    from harness.training import subset

    data = sentiment_data(100)
    a, b = subset(data.train, 30, 0, "train-subset"), subset(data.train, 30, 1, "train-subset")
    assert len(a) == 30 and a == subset(data.train, 30, 0, "train-subset") and a != b
    assert [x.id for x in a] == sorted((x.id for x in a), key=lambda i: int(i.split("-")[1]))
    strategy("input_mask", **FAST, train_limit=30).prepare(ModelSpec(path=str(tiny_bert), local=True), data,
                                                           ctx_for(tmp_path))
    assert json.loads((tmp_path / "cell-0" / "finetune.json").read_text())["train_examples"] == 30


# ----------------------------------------------------------------------------- a new MLM head, built as BERT's

NUMBERS = "one two three four five six seven eight nine ten".split()


def counting(n: int, seed: int) -> BenchmarkData:
    """Runs of consecutive number words: every masked word is predictable from its neighbours."""
    rng = random.Random(seed)
    exs = []
    for i in range(n):
        k, length = rng.randrange(0, 5), rng.randint(4, 6)
        exs.append(Example(id=f"c{i}", source=" ".join(NUMBERS[k:k + length]), label=LABELS[k % 2]))
    return BenchmarkData(task="classification", train=exs, test=exs[:10], labels=list(LABELS))


@pytest.fixture(scope="module")
def headless_encoder(tmp_path_factory, tiny_bert):
    """A tiny BERT encoder that has learnt masked-LM on counting text, saved WITHOUT its MLM head
    (architectures: BertModel), like the packaged MiniLM: its embeddings and hidden states carry
    what a head needs, but a new head has to learn to read them."""
    from transformers import AutoTokenizer

    from harness.training import (FineTuneParams, Masking, MaskVocab, MLMHead, Objective, encode_inputs,
                                  load_mlm_model, run_loop)

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    mlm = load_mlm_model(ModelSpec(path=str(tiny_bert), local=True), seed=0, device="cpu")
    enc = encode_inputs(tok, counting(400, 7).train, 64, "pretraining")
    res = run_loop(mlm, enc, task="mlm", params=FineTuneParams(batch_size=16, warmup_ratio=0.0),
                   objective=Objective("mlm", mlm_masking=Masking(0.3, 0.8, 0.1)), seed=0, device="cpu",
                   dtype_name="float32", pad_id=0, mask_vocab=MaskVocab.from_tokenizer(tok), mlm_head=MLMHead(mlm),
                   lr=1e-2, max_steps=300)
    assert res.history[-1]["mlm_loss"] < 1.0
    path = tmp_path_factory.mktemp("headless")
    mlm.bert.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _mlm_setup(model_dir, data):
    """The classifier, the new MLM head on its encoder, encoded training texts and the mask vocabulary."""
    from transformers import AutoTokenizer

    from harness.training import MaskVocab, MLMHead, encode_inputs, load_classifier, load_mlm_model

    spec = ModelSpec(path=str(model_dir), local=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    clf = load_classifier(spec, LABELS, seed=0, device="cpu")
    head = MLMHead(load_mlm_model(spec, seed=0, device="cpu", encoder_source=clf))
    enc = encode_inputs(tok, data.train, 64, "test")
    return clf, head, enc, MaskVocab.from_tokenizer(tok, clf.config.vocab_size)


def _probe(head, enc, vocab) -> float:
    from harness.training import mlm_probe_loss

    return mlm_probe_loss(head, enc, vocab, seed=0, device="cpu", pad_id=0, batch_size=16)


def test_new_mlm_head_decodes_with_the_input_embedding_matrix_itself(headless_encoder):
    import math

    from harness.training import has_pretrained_mlm_head, start_new_mlm_head

    assert json.loads((headless_encoder / "config.json").read_text())["architectures"] == ["BertModel"]
    assert not has_pretrained_mlm_head(ModelSpec(path=str(headless_encoder), local=True))
    data = counting(120, 0)
    clf, head, enc, _ = _mlm_setup(headless_encoder, data)
    info = start_new_mlm_head(head.model, enc)
    decoder = head.model.get_output_embeddings()
    embeddings = clf.get_input_embeddings().weight
    assert decoder.weight is embeddings and decoder.weight.data_ptr() == embeddings.data_ptr(), "one tensor, tied"
    assert head.head is head.model.cls and list(dict(head.model.cls.predictions.transform.named_children())) == \
        ["dense", "transform_act_fn", "LayerNorm"], "BERT's transform: dense, activation, LayerNorm"
    assert info == {"new_head": True, "tied_to_input_embeddings": True,
                    "bias_init": "log unigram frequency of the training tokens (add-one smoothed)"}
    # the bias is the add-one-smoothed log frequency of the non-special training tokens
    counts: dict[int, int] = {}
    for row, sp in zip(enc.input_ids, enc.special):
        for t, s in zip(row, sp):
            if not s:
                counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values()) + decoder.weight.shape[0]
    for t in (max(counts, key=counts.get), min(counts, key=counts.get)):
        assert float(decoder.bias[t].detach()) == pytest.approx(math.log((counts[t] + 1) / total), abs=1e-6)
    assert float(decoder.bias[0].detach()) == pytest.approx(math.log(1 / total), abs=1e-6), "[PAD]: never a target"


def test_tied_new_head_starts_far_below_ln_v_an_untied_one_does_not(headless_encoder):
    """ln V is the loss of a head that knows nothing. Tied to the encoder's trained embeddings,
    the new head reads the encoder's hidden states from its first step; with an untied random
    output layer the same head (same prior bias) starts at about the unigram entropy."""
    import math

    import torch

    from harness.training import start_new_mlm_head

    _, head, enc, vocab = _mlm_setup(headless_encoder, counting(120, 0))
    ln_v = math.log(head.model.config.vocab_size)  # 4.13
    start_new_mlm_head(head.model, enc)
    tied = _probe(head, enc, vocab)
    assert tied < ln_v - 2.5, (tied, ln_v)
    assert _probe(head, enc, vocab) == tied, "the probe is fixed: same sample, same masks"
    decoder = head.model.get_output_embeddings()
    torch.manual_seed(0)
    decoder.weight = torch.nn.Parameter(torch.randn_like(decoder.weight) * 0.02)
    untied = _probe(head, enc, vocab)
    assert untied > tied + 0.8 and untied > ln_v - 2.2, (tied, untied)


def test_head_warm_up_moves_only_the_head_and_lowers_the_mlm_loss(headless_encoder):
    import torch

    from harness.training import FineTuneParams, Masking, start_new_mlm_head, warm_up_mlm_head

    clf, head, enc, vocab = _mlm_setup(headless_encoder, counting(120, 0))
    start_new_mlm_head(head.model, enc)
    encoder_before = {k: v.clone() for k, v in clf.bert.state_dict().items()}
    head_before = {k: v.clone() for k, v in head.model.cls.state_dict().items()}
    before = _probe(head, enc, vocab)
    res = warm_up_mlm_head(head, enc, params=FineTuneParams(batch_size=16), steps=40, learning_rate=1e-2,
                           masking=Masking(0.15, 0.8, 0.1), vocab=vocab, seed=0, device="cpu", dtype_name="float32",
                           pad_id=0)
    after = _probe(head, enc, vocab)
    assert res.steps == 40
    assert after < before / 2, (before, after)  # measured here: 1.10 -> 0.36
    assert all(torch.equal(v, encoder_before[k]) for k, v in clf.bert.state_dict().items()), \
        "the encoder, and the tied word embeddings with it, are frozen"
    moved = {k for k, v in head.model.cls.state_dict().items() if not torch.equal(v, head_before[k])}
    assert {"predictions.transform.dense.weight", "predictions.transform.LayerNorm.weight",
            "predictions.bias"} <= moved
    assert "predictions.decoder.weight" not in moved
    assert all(p.requires_grad for p in clf.bert.parameters()), "unfrozen again for the joint objective"


@pytest.mark.parametrize("name", ["aux_mlm", "tapt"])
def test_finetune_json_records_the_mlm_loss_before_and_after_the_head_warm_up(tmp_path, headless_encoder, name):
    extra = {"aux_mlm": {"mlm_weight": 0.5}, "tapt": {"mlm_epochs": 3, "mlm_learning_rate": 1e-2}}[name]
    out = strategy(name, **FAST, **extra, mlm_head_warmup_steps=20, mlm_head_warmup_learning_rate=1e-2).prepare(
        ModelSpec(path=str(headless_encoder), local=True), counting(120, 0), ctx_for(tmp_path))
    record = json.loads((Path(out.path) / "finetune.json").read_text())
    assert json.loads((tmp_path / "cell-0" / "finetune.json").read_text())["mlm_head"] == record["mlm_head"]
    head = record["mlm_head"]
    assert head["new_head"] is True and head["tied_to_input_embeddings"] is True and head["warmup_steps"] == 20
    assert head["warmup"]["steps"] == 20 and all("mlm_loss" in h for h in head["warmup"]["history"])
    assert head["loss_after_warmup"] < head["loss_before_warmup"] / 2
    assert head["loss_at_start"] == head["loss_after_warmup"]
    last = "loss_after_training" if name == "aux_mlm" else "loss_after_mlm_stage"
    assert set(head) == {"new_head", "tied_to_input_embeddings", "bias_init", "loss_before_warmup", "warmup_steps",
                         "warmup", "loss_after_warmup", "loss_at_start", last}
    assert isinstance(head[last], float)
    if name == "tapt":  # the paper's shape: mlm_epochs over the training texts, then fine-tuning
        assert record["mlm_stage"]["steps"] == 3 * 8 and record["mlm_stage"]["epochs"] == 3.0
        assert record["steps"] == 2 * 8


def test_without_warm_up_the_record_says_so(tmp_path, tiny_bert):
    out = strategy("aux_mlm", **FAST, mlm_weight=0.1).prepare(ModelSpec(path=str(tiny_bert), local=True),
                                                             sentiment_data(40), ctx_for(tmp_path))
    head = json.loads((Path(out.path) / "finetune.json").read_text())["mlm_head"]
    assert head["warmup_steps"] == 0 and "loss_after_warmup" not in head
    assert head["loss_at_start"] == head["loss_before_warmup"]


def test_a_pretrained_mlm_head_is_kept_and_not_warmed_up(tmp_path, tiny_bert):
    import torch
    from transformers import BertForMaskedLM

    ckpt = tmp_path / "mlm"
    torch.manual_seed(3)
    BertForMaskedLM.from_pretrained(tiny_bert).save_pretrained(ckpt)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (ckpt / f).write_bytes((Path(tiny_bert) / f).read_bytes())
    out = strategy("aux_mlm", **FAST, mlm_head_warmup_steps=20).prepare(
        ModelSpec(path=str(ckpt), local=True), sentiment_data(40), ctx_for(tmp_path))
    head = json.loads((Path(out.path) / "finetune.json").read_text())["mlm_head"]
    assert head == {"new_head": False, "warmup_steps": 0, "loss_at_start": head["loss_at_start"],
                    "loss_after_training": head["loss_after_training"]}
    assert isinstance(head["loss_at_start"], float)
