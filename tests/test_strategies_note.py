"""The study note's arms (issue #25): what each new strategy does to a batch, at test time, and to
the compute and the checkpoint cache.

- ``input_noise``: corruption without [MASK] (argument 4);
- ``matched_mask``: input_mask's training plus the same masking of the test inputs (argument 4);
- ``mask_augment``: a masked copy beside every clean batch (arguments 2 and 1);
- ``cutoff``: token/span cutoff with a Jensen-Shannon consistency term (Shen et al. 2020).

The conformance tests of tests/test_strategies.py (learns the task, seeded) run over these too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.models.spec import ModelSpec

from test_strategies import FAST, ctx_for, same_weights, sentiment_data, strategy, weights


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- cutoff positions


def _special():
    import torch

    # [CLS] 9 tokens [SEP] [PAD] / [CLS] 4 tokens [SEP] + padding / a pair: [CLS] 3 [SEP] 6 [SEP]
    return torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
                         [1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
                         [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]]).bool()


@pytest.mark.parametrize("n, rate, k", [(9, 0.3, 3), (4, 0.3, 1), (20, 0.1, 2), (4, 0.1, 1), (15, 0.1, 2),
                                         (5, 0.1, 1), (6, 1.0, 6), (0, 0.5, 0), (7, 0.0, 0)])
def test_cutoff_erases_round_rate_times_n_tokens_at_least_one(n, rate, k):
    from harness.training import cutoff_count

    assert cutoff_count(n, rate) == k


@pytest.mark.parametrize("span, expected", [(False, [[1, 3, 9], [2], [3, 7, 9]]),
                                            (True, [[5, 6, 7], [4], [1, 2, 3]])])
def test_cutoff_positions_under_a_seed(span, expected):
    import torch

    from harness.training import Cutoff, cutoff_positions

    special = _special()
    cut = cutoff_positions(special, Cutoff(0.3, span=span), torch.Generator().manual_seed(0))
    assert [r.nonzero().flatten().tolist() for r in cut] == expected
    assert not (cut & special).any(), "special tokens and padding are never cut"
    again = cutoff_positions(special, Cutoff(0.3, span=span), torch.Generator().manual_seed(0))
    assert torch.equal(cut, again)


def test_span_cutoff_is_one_run_of_consecutive_content_tokens():
    import torch

    from harness.training import Cutoff, cutoff_count, cutoff_positions

    gen = torch.Generator().manual_seed(3)
    special = torch.zeros(200, 30, dtype=torch.bool)
    special[:, 0] = True
    lengths = torch.randint(2, 29, (200,), generator=gen)
    for r, n in enumerate(lengths.tolist()):
        special[r, n + 1:] = True
    cut = cutoff_positions(special, Cutoff(0.25, span=True), gen)
    for r, n in enumerate(lengths.tolist()):
        pos = cut[r].nonzero().flatten().tolist()
        assert len(pos) == cutoff_count(n, 0.25)
        assert pos == list(range(pos[0], pos[0] + len(pos)))
    starts = {cut[r].nonzero().flatten().tolist()[0] for r in range(200)}
    assert len(starts) > 10, "the span starts anywhere in the sentence"


def test_erase_zeroes_word_embeddings_and_attention_or_puts_the_mask_token(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification

    from harness.training import Cutoff, erase

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    cut = torch.tensor([[False, False, True, False, True, False]])
    zero = erase(model, inputs, cut, Cutoff(0.3), mask_id=4)
    emb = model.get_input_embeddings()(ids)
    assert "input_ids" not in zero and zero["attention_mask"].tolist() == [[1, 1, 0, 1, 0, 1]]
    assert torch.equal(zero["inputs_embeds"][0, [2, 4]], torch.zeros(2, emb.shape[-1]))
    assert torch.equal(zero["inputs_embeds"][0, [0, 1, 3, 5]], emb[0, [0, 1, 3, 5]])
    masked = erase(model, inputs, cut, Cutoff(0.3, erase="mask"), mask_id=4)
    assert masked["input_ids"].tolist() == [[2, 10, 4, 12, 4, 3]] and masked["attention_mask"].tolist() == [[1] * 6]
    model(**zero), model(**masked)  # both are inputs the classifier takes


# ----------------------------------------------------------------------------- consistency terms


def test_consistency_terms_equal_a_hand_computation():
    import torch

    from harness.training import js_divergence, symmetric_kl

    a = torch.tensor([[0.0, math.log(3.0)]])  # p = (1/4, 3/4)
    b = torch.tensor([[math.log(3.0), 0.0]])  # q = (3/4, 1/4); m = (1/2, 1/2)
    # KL(p || m) = 1/4 ln(1/2) + 3/4 ln(3/2) = KL(q || m); JS = their mean
    js = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert js_divergence(a, b).item() == pytest.approx(js, abs=1e-6)
    assert js == pytest.approx(0.1308121, abs=1e-6)
    # KL(p || q) = 1/4 ln(1/3) + 3/4 ln 3 = 1/2 ln 3 = KL(q || p)
    assert symmetric_kl(a, b).item() == pytest.approx(0.5 * math.log(3.0), abs=1e-6)
    assert js_divergence(a, a).item() == pytest.approx(0.0, abs=1e-7)
    # the batch mean: a second, identical pair of rows adds nothing, a row of zeros halves it
    assert js_divergence(torch.cat([a, a]), torch.cat([b, a])).item() == pytest.approx(js / 2, abs=1e-6)


class _Stub:
    """A classifier whose logits say whether its input holds the mask token: (0, ln 3) on clean
    rows, (ln 3, 0) on rows with [MASK]. Records what it was given."""

    def __init__(self, mask_id: int):
        self.mask_id, self.seen = mask_id, []

    def __call__(self, **inputs):
        import torch

        self.seen.append(inputs)
        has_mask = (inputs["input_ids"] == self.mask_id).any(-1)
        logits = torch.where(has_mask[:, None], torch.tensor([math.log(3.0), 0.0]), torch.tensor([0.0, math.log(3.0)]))
        return type("Out", (), {"logits": logits})()


def test_second_view_loss_is_weighted_ce_plus_weighted_consistency():
    import contextlib

    import torch

    from harness.training import Cutoff, MaskVocab, SecondView, second_view_loss

    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])
    special = torch.tensor([[1, 0, 0, 0, 1], [1, 0, 0, 1, 1]]).bool()
    batch = {"input_ids": ids, "attention_mask": (~special[:, :1]).long().expand_as(ids).clone()}
    labels = torch.tensor([1, 1])
    stub = _Stub(mask_id=4)
    clean = stub(input_ids=ids).logits
    view = SecondView(Cutoff(0.5, erase="mask"), ce_weight=0.5, consistency="js", consistency_weight=2.0)
    loss, parts = second_view_loss(stub, batch, special, clean, labels, view, MaskVocab(4, torch.arange(5, 20)),
                                   torch.Generator().manual_seed(0), to_dev=lambda b: b,
                                   autocast=contextlib.nullcontext)
    # every cut row holds [MASK]: its prediction is (3/4, 1/4), label 1 -> CE = ln 4
    js = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert parts["view_loss"] == pytest.approx(math.log(4.0), abs=1e-6)
    assert parts["consistency_loss"] == pytest.approx(js, abs=1e-6)
    assert loss.item() == pytest.approx(0.5 * math.log(4.0) + 2.0 * js, abs=1e-6)
    cut_view = stub.seen[-1]["input_ids"]
    assert (cut_view == 4).sum(-1).tolist() == [2, 1]  # round(0.5 x 3) = 2, round(0.5 x 2) = 1
    plain = SecondView(Cutoff(0.5, erase="mask"))
    _, parts = second_view_loss(stub, batch, special, clean, labels, plain, MaskVocab(4, torch.arange(5, 20)),
                                torch.Generator().manual_seed(0), to_dev=lambda b: b, autocast=contextlib.nullcontext)
    assert set(parts) == {"view_loss"}, "consistency 'none' adds no term"


# ----------------------------------------------------------------------------- what each arm feeds the model


ARMS = [("unmasked", "unmasked", {}),
        ("input_mask", "input_mask", {"mask_prob": 0.3}),
        ("input_noise", "input_noise", {"mask_prob": 0.3}),
        ("matched_mask", "matched_mask", {"mask_prob": 0.3}),
        ("mask_augment", "mask_augment", {"mask_prob": 0.3}),
        ("aux_mlm", "aux_mlm", {"mask_prob": 0.3, "mlm_weight": 1.0}),
        ("tapt", "tapt", {"mask_prob": 0.3, "mlm_epochs": 2}),
        ("cutoff", "cutoff", {"cutoff_rate": 0.3}),
        ("span_cutoff", "cutoff", {"cutoff_rate": 0.3, "cutoff": "span"})]


@pytest.fixture(scope="module")
def note_arms(tmp_path_factory, tiny_bert):
    """Train every arm once with seed 0 (2 epochs), recording each training forward of the
    classifier and of the shared encoder (input ids, or the embeddings a cutoff view passes)."""
    import transformers

    root = tmp_path_factory.mktemp("note-arms")
    data = sentiment_data()
    spec = ModelSpec(path=str(tiny_bert), local=True)
    calls: dict[str, dict[str, list]] = {}
    clf_forward, enc_forward = transformers.BertForSequenceClassification.forward, transformers.BertModel.forward
    current = {"arm": None}

    def grab(kw):
        return {k: kw[k].detach().clone() for k in ("input_ids", "attention_mask", "inputs_embeds")
                if kw.get(k) is not None}

    def spy_clf(self, *a, **kw):
        if self.training:
            calls[current["arm"]]["classifier"].append(grab(kw))
        return clf_forward(self, *a, **kw)

    def spy_enc(self, *a, **kw):
        if self.training:
            got = grab(kw)
            if a and a[0] is not None:  # the classifier passes input_ids positionally
                got["input_ids"] = a[0].clone()
            calls[current["arm"]]["encoder"].append(got)
        return enc_forward(self, *a, **kw)

    transformers.BertForSequenceClassification.forward = spy_clf
    transformers.BertModel.forward = spy_enc
    specs = {}
    try:
        for arm, name, params in ARMS:
            current["arm"] = arm
            calls[arm] = {"classifier": [], "encoder": []}
            specs[arm] = strategy(name, **FAST, **params).prepare(spec, data, ctx_for(root / arm))
    finally:
        transformers.BertForSequenceClassification.forward = clf_forward
        transformers.BertModel.forward = enc_forward
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    return {"calls": calls, "specs": specs, "tokenizer": tok, "data": data, "root": root}


def _record(arms, arm: str) -> dict:
    return json.loads((Path(arms["specs"][arm].path) / "finetune.json").read_text())


def _rates(clean_batches, corrupted_batches, tok):
    import torch

    specials = torch.tensor(tok.all_special_ids)
    eligible = masked = changed = 0
    for c, m in zip(clean_batches, corrupted_batches):
        special = torch.isin(c["input_ids"], specials)
        assert torch.equal(m["input_ids"][special], c["input_ids"][special]), "special tokens are never corrupted"
        eligible += int((~special).sum())
        masked += int((m["input_ids"] == tok.mask_token_id).sum())
        changed += int((m["input_ids"] != c["input_ids"]).sum())
    return eligible, masked / eligible, changed / eligible


def test_input_noise_replaces_tokens_without_ever_using_the_mask_token(note_arms):
    calls, tok = note_arms["calls"], note_arms["tokenizer"]
    clean = calls["unmasked"]["classifier"]
    noisy = calls["input_noise"]["classifier"]
    assert len(noisy) == len(clean) == 16
    eligible, masked, changed = _rates(clean, noisy, tok)
    assert masked == 0, "0/100/0: no [MASK] anywhere"
    # mask_prob 0.3, every selected token replaced by one of the ~60 other words: ~29% change (sd ~1.5%)
    assert eligible > 800 and 0.24 < changed < 0.35
    mask_changed = _rates(clean, calls["input_mask"]["classifier"], tok)[2]
    assert abs(changed - mask_changed) < 0.05, "the same share of tokens is corrupted, only how differs"


def test_input_noise_selects_exactly_the_positions_input_mask_selects(note_arms):
    """One mask stream, one draw per batch: the selection is the same; 0/100/0 vs 80/10/10 only
    changes what a selected token becomes. Seen on the first batch (before training diverges)."""
    import torch

    from harness.training import Masking, MaskVocab, derive_seed, mask_tokens

    calls, tok = note_arms["calls"], note_arms["tokenizer"]
    clean = calls["unmasked"]["classifier"][0]["input_ids"]
    special = torch.isin(clean, torch.tensor(tok.all_special_ids))
    vocab = MaskVocab.from_tokenizer(tok)
    outs = {}
    for name, masking in (("input_noise", Masking(0.3, 0.0, 1.0)), ("input_mask", Masking(0.3, 0.8, 0.1))):
        gen = torch.Generator().manual_seed(derive_seed(0, "masks"))
        outs[name] = mask_tokens(clean, special, masking, vocab, gen)
        assert torch.equal(outs[name][0], calls[name]["classifier"][0]["input_ids"]), name
    assert torch.equal(outs["input_noise"][1], outs["input_mask"][1])


def test_mask_augment_trains_on_the_clean_batch_and_a_masked_copy_each_step(note_arms):
    import torch

    calls, tok = note_arms["calls"], note_arms["tokenizer"]
    clean = calls["unmasked"]["classifier"]
    got = calls["mask_augment"]["classifier"]
    assert len(got) == 2 * len(clean), "two classifier passes per step"
    first, second = got[0::2], got[1::2]
    assert all(torch.equal(a["input_ids"], c["input_ids"]) for a, c in zip(first, clean)), "the clean batch as is"
    eligible, masked, changed = _rates(clean, second, tok)
    assert 0.19 < masked < 0.29 and 0.22 < changed < 0.33  # mask_prob 0.3, 80/10/10
    assert all(torch.equal(s["attention_mask"], c["attention_mask"]) for s, c in zip(second, clean))


def test_mask_augment_sees_exactly_the_masked_copies_aux_mlm_sees(note_arms):
    """Argument (1) at equal compute: the same clean batches and the same masked copies (same
    masks under one seed) through the same encoder; only the loss on the copy differs."""
    import torch

    calls = note_arms["calls"]
    aug = calls["mask_augment"]["encoder"]
    aux = calls["aux_mlm"]["encoder"]
    assert len(aug) == len(aux) == 2 * len(calls["unmasked"]["encoder"])
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(aug, aux))
    assert all(torch.equal(a["attention_mask"], b["attention_mask"]) for a, b in zip(aug, aux))


def test_cutoff_view_erases_round_rate_tokens_per_sentence(note_arms):
    import torch

    from harness.training import cutoff_count

    calls, tok = note_arms["calls"], note_arms["tokenizer"]
    specials = torch.tensor(tok.all_special_ids)
    for arm, span in (("cutoff", False), ("span_cutoff", True)):
        got = calls[arm]["classifier"]
        clean = calls["unmasked"]["classifier"]
        assert len(got) == 2 * len(clean)
        for c, v in zip(got[0::2], got[1::2]):
            assert "inputs_embeds" not in c and "input_ids" not in v, "clean ids, then the erased embeddings"
            emb, att = v["inputs_embeds"], v["attention_mask"]
            special = torch.isin(c["input_ids"], specials)
            cut = (c["attention_mask"] == 1) & (att == 0)
            assert not (cut & special).any(), "special tokens are never cut"
            assert (emb[cut] == 0).all(), "a cut token's word embedding is zeroed"
            assert (emb[~cut & ~special] != 0).any(-1).all(), "the other tokens keep theirs"
            assert torch.equal(att, c["attention_mask"] * (~cut).long())
            for r in range(len(cut)):
                n = int((~special[r]).sum())
                pos = cut[r].nonzero().flatten().tolist()
                assert len(pos) == cutoff_count(n, 0.3), (arm, r)
                if span:
                    content = (~special[r]).nonzero().flatten().tolist()
                    i = content.index(pos[0])
                    assert pos == content[i:i + len(pos)]
    history = _record(note_arms, "cutoff")["history"]
    assert all(h["consistency_loss"] >= 0 and h["view_loss"] > 0 for h in history)


def test_cutoff_weights_change_the_model_and_enter_the_checkpoint_key(tmp_path, tiny_bert):
    data = sentiment_data(40)
    spec = ModelSpec(path=str(tiny_bert), local=True)
    a = strategy("cutoff", **FAST).prepare(spec, data, ctx_for(tmp_path))
    b = strategy("cutoff", **FAST, consistency_weight=0.0).prepare(spec, data, ctx_for(tmp_path))
    c = strategy("cutoff", **FAST, consistency="symmetric_kl").prepare(spec, data, ctx_for(tmp_path))
    assert len({a.path, b.path, c.path}) == 3
    assert not same_weights(weights(a.path), weights(b.path))
    assert strategy("cutoff", **FAST).prepare(spec, data, ctx_for(tmp_path)).path == a.path  # cached


# ----------------------------------------------------------------------------- equal steps, equal compute


def test_every_arm_takes_the_same_steps_over_the_same_examples(note_arms):
    records = {arm: _record(note_arms, arm) for arm, _, _ in ARMS}
    for arm, r in records.items():
        assert (r["steps"], r["examples_seen"], r["train_examples"]) == (16, 240, 120), arm


def test_encoder_sequences_per_step_say_which_arms_have_equal_compute(note_arms):
    """Sequences through the encoder: the plain arms 1 per example per step; aux_mlm, mask_augment
    and cutoff 2 (the clean batch and its corrupted copy); tapt with as many MLM epochs as
    fine-tuning epochs the same total as aux_mlm, in two stages (docs/note-arguments.md)."""
    calls = note_arms["calls"]

    def sequences(arm):
        return sum(len(next(iter(x.values()))) for x in calls[arm]["encoder"])

    plain = sequences("unmasked")
    assert plain == 240
    for arm in ("input_mask", "input_noise", "matched_mask"):
        assert sequences(arm) == plain, arm
    for arm in ("mask_augment", "aux_mlm", "cutoff", "span_cutoff", "tapt"):
        assert sequences(arm) == 2 * plain, arm


# ----------------------------------------------------------------------------- test-time masking


def test_matched_mask_trains_exactly_like_input_mask_and_shares_its_checkpoint(note_arms, tmp_path, tiny_bert):
    specs = note_arms["specs"]
    # trained apart (each arm has its own cache here): the same key, the same weights bit for bit
    assert Path(specs["matched_mask"].path).name == Path(specs["input_mask"].path).name
    assert Path(specs["input_mask"].path).name.startswith("input_mask-")
    assert same_weights(weights(specs["matched_mask"].path), weights(specs["input_mask"].path))
    # in one cache, whichever arm comes first trains it and the other reuses it
    data, spec = sentiment_data(40), ModelSpec(path=str(tiny_bert), local=True)
    first = strategy("matched_mask", **FAST, mask_prob=0.3).prepare(spec, data, ctx_for(tmp_path))
    second = strategy("input_mask", **FAST, mask_prob=0.3).prepare(spec, data, ctx_for(tmp_path, cache="cache"))
    assert first.path == second.path
    assert [p.name for p in (tmp_path / "cache" / "finetuned").iterdir() if not p.name.startswith(".")] == \
        [Path(first.path).name]
    other = strategy("matched_mask", **FAST, mask_prob=0.2).prepare(spec, data, ctx_for(tmp_path))
    assert other.path != first.path, "its parameters still key the checkpoint"
    assert strategy("input_mask").test_time_corruption() is None
    masking = strategy("matched_mask", mask_prob=0.3).test_time_corruption()
    assert (masking.prob, masking.mask_ratio, masking.random_ratio) == (0.3, 0.8, 0.1)


def test_test_time_masking_is_applied_at_prediction_seeded_by_example_and_recorded(note_arms, tmp_path,
                                                                                  monkeypatch):
    import dataclasses

    import torch
    import transformers

    from harness.api import CellContext
    from harness.run.classify import predict
    from harness.training import TEST_CORRUPTION_FILE

    spec, data, tok = note_arms["specs"]["matched_mask"], note_arms["data"], note_arms["tokenizer"]
    masking = strategy("matched_mask", mask_prob=0.3).test_time_corruption()
    seen = []
    forward = transformers.BertForSequenceClassification.forward

    def spy(self, *a, **kw):
        seen.append(kw["input_ids"].clone())
        return forward(self, *a, **kw)

    monkeypatch.setattr(transformers.BertForSequenceClassification, "forward", spy)
    ctx = CellContext(seed=7, workdir=tmp_path / "cell", cache_dir=tmp_path / "cache", device="cpu")
    clean = predict(spec, data, ctx)
    assert not (tmp_path / "cell" / TEST_CORRUPTION_FILE).exists()
    assert all((x != tok.mask_token_id).all() for x in seen), "without corruption the test text is clean"
    seen.clear()
    masked = predict(spec, data, ctx, corruption=masking)
    record = json.loads((tmp_path / "cell" / TEST_CORRUPTION_FILE).read_text())
    assert record["seed"] == 7 and record["masking"] == {"mask_prob": 0.3, "mask_ratio": 0.8, "random_ratio": 0.1,
                                                         "keep_ratio": 0.1}
    assert record["examples"] == len(data.test) == 60
    n_masked = sum(int((x == tok.mask_token_id).sum()) for x in seen)
    assert n_masked == record["tokens_masked"] > 0, "the recorded masks are what the classifier saw"
    assert record["tokens_selected"] == record["tokens_masked"] + record["tokens_replaced"] + record["tokens_unchanged"]
    assert 0.2 < record["tokens_selected"] / record["tokens_eligible"] < 0.4
    assert 0.65 < record["tokens_masked"] / record["tokens_selected"] < 0.95
    # per example: the recorded positions hold the recorded ids in what the model was fed
    enc = tok([ex.source for ex in data.test])["input_ids"]
    fed = {}
    for batch in seen:
        for row in batch.tolist():
            fed.setdefault(len([t for t in row if t != tok.pad_token_id]), []).append(row)
    first = record["per_example"][0]
    assert first["id"] == data.test[0].id
    candidates = fed[len(enc[0])]
    assert any(all(row[p] == i for p, i in zip(first["positions"], first["ids"])) for row in candidates)
    assert [p["label"] for p in masked] != [p["label"] for p in clean] or \
        [p["probs"] for p in masked] != [p["probs"] for p in clean]
    # each example's draw depends on its id and the seed, not on the test set's order or batches
    reordered = dataclasses.replace(data, test=list(reversed(data.test)))
    ctx2 = dataclasses.replace(ctx, workdir=tmp_path / "cell-2")
    predict(spec, reordered, ctx2, corruption=masking)
    again = {e["id"]: e for e in json.loads((tmp_path / "cell-2" / TEST_CORRUPTION_FILE).read_text())["per_example"]}
    assert all(again[e["id"]] == e for e in record["per_example"])
    ctx3 = dataclasses.replace(ctx, seed=8, workdir=tmp_path / "cell-3")
    predict(spec, data, ctx3, corruption=masking)
    other = json.loads((tmp_path / "cell-3" / TEST_CORRUPTION_FILE).read_text())["per_example"]
    assert other != record["per_example"], "another seed, other masks"


def test_runner_asks_the_strategy_for_test_time_corruption(tmp_path, tiny_bert, monkeypatch):
    """End to end: the matched_mask cell's test inputs are masked and its cell directory records it."""
    from harness.testing import run_config
    from harness.training import TEST_CORRUPTION_FILE

    from test_strategies import sentiment

    def write(name, examples):
        (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{e.source}\t{e.label}\n" for e in examples),
                                     encoding="utf-8")

    write("train.tsv", sentiment(60, 0, "a"))
    write("test.tsv", sentiment(30, 2, "c"))
    shared = {"learning_rate": 3e-3, "epochs": 2, "batch_size": 16, "mask_prob": 0.3}
    import harness.training.finetune as finetune

    trainings = []
    run_loop = finetune.run_loop

    def counting(*a, **kw):
        trainings.append(kw["objective"])
        return run_loop(*a, **kw)

    monkeypatch.setattr(finetune, "run_loop", counting)
    results = run_config({
        "name": "matched", "seeds": [0],
        "models": [{"path": str(tiny_bert), "label": "tiny"}],
        "benchmarks": [{"name": "text_classification", "label": "synthetic",
                        "params": {"train": "train.tsv", "test": "test.tsv"}}],
        "strategies": [{"name": "input_mask", "params": shared}, {"name": "matched_mask", "params": shared}],
        "metrics": ["accuracy"], "reporters": [], "baseline": {"strategy": "input_mask"},
    }, tmp_path / "out", base_dir=tmp_path)
    cells = {json.loads((p / "cell.json").read_text())["labels"]["strategy"]: p
             for p in (tmp_path / "out" / "cells").iterdir()}
    assert not (cells["input_mask"] / TEST_CORRUPTION_FILE).exists()
    record = json.loads((cells["matched_mask"] / TEST_CORRUPTION_FILE).read_text())
    assert record["examples"] == 30 and record["tokens_selected"] > 0 and record["seed"] == 0
    assert set(results.metrics["strategy"]) == {"input_mask", "matched_mask"}
    # one training, one checkpoint: matched_mask's cell decodes input_mask's (its test inputs masked)
    assert len(trainings) == 1
    checkpoints = [p for p in (tmp_path / "out" / ".cache" / "finetuned").iterdir() if not p.name.startswith(".")]
    assert len(checkpoints) == 1 and checkpoints[0].name.startswith("input_mask-")
    used = {arm: json.loads((cell / "finetune.json").read_text()) for arm, cell in cells.items()}
    assert used["input_mask"]["checkpoint"] == used["matched_mask"]["checkpoint"] == str(checkpoints[0])
    assert (used["input_mask"]["cache_hit"], used["matched_mask"]["cache_hit"]) == (False, True)
    assert len({p.name for p in cells.values()}) == 2, "two cells, each with its own key"


# ----------------------------------------------------------------------------- config edge and cache keys


@pytest.mark.parametrize("name, params, message", [
    ("input_noise", {"mask_ratio": 0.5}, "must sum to 1"),
    ("input_noise", {"random_ratio": 0.5, "keep_ratio": 0.5}, None),
    ("matched_mask", {"mask_ratio": 0.9, "random_ratio": 0.2}, "must sum to 1"),
    ("mask_augment", {"augment_weight": 0}, "greater than 0"),
    ("cutoff", {"cutoff_rate": 0}, "greater than 0"),
    ("cutoff", {"cutoff": "word"}, "'token' or 'span'"),
    ("cutoff", {"consistency": "kl"}, "'js', 'symmetric_kl' or 'none'"),
])
def test_parameters_are_validated_at_the_config_edge(tmp_path, name, params, message):
    from harness.experiment.load import load_experiment_dict
    from harness.errors import ConfigErrors

    (tmp_path / "d.tsv").write_text("text\tlabel\na\tx\n", encoding="utf-8")
    cfg = {"name": "x", "models": [{"path": "bert-base-uncased"}],
           "benchmarks": [{"name": "text_classification", "params": {"path": "d.tsv"}}],
           "strategies": [{"name": name, "params": params}], "metrics": ["accuracy"]}
    if message is None:
        load_experiment_dict(cfg, base_dir=tmp_path)
        return
    with pytest.raises(ConfigErrors) as e:
        load_experiment_dict(cfg, base_dir=tmp_path)
    assert message in str(e.value) and "strategies[0].params" in str(e.value)


# what the checkpoint key holds of each strategy that existed before issue #25 (training version,
# name, version, parameters at their defaults), computed on main before these arms were added:
# their cached checkpoints must keep their keys
EXISTING_KEYS = {"unmasked": "3519d6cfc78a2262", "input_mask": "aa20bd9d96359c57", "aux_mlm": "fa64306d842cdd1c",
                 "tapt": "0a2f77bc0cb5e8bb"}


def test_existing_strategies_keep_their_checkpoint_keys():
    from harness.plugins import default_plugins
    from harness.store import canonical_hash
    from harness.training import TRAINING_VERSION, checkpoint_params

    for name, key in EXISTING_KEYS.items():
        cls = default_plugins().get("strategy", name)
        # (TRAINING_VERSION 4 re-keys every checkpoint on purpose: training runs at a fixed thread count, issue 22)
        assert canonical_hash(["3", name, cls.version, checkpoint_params(cls.Params())]) == key, name


def test_a_second_view_is_refused_for_translation(tmp_path, tiny_marian):
    from harness.api import BenchmarkData, Example
    from harness.errors import HarnessError
    from harness.training import FineTuneParams, Masking, Objective, SecondView, fine_tune

    train = [Example(id=f"t{i}", source="the cat sat", reference="die katze sass") for i in range(4)]
    data = BenchmarkData(task="translation", test=train, train=train)
    with pytest.raises(HarnessError, match="strategy 'x': a second \\(corrupted\\) view of each batch is for "
                                           "classification, not translation"):
        fine_tune(ModelSpec(path=str(tiny_marian), local=True), data, ctx_for(tmp_path), strategy="x", version="1",
                  params=FineTuneParams(), objective=Objective(second_view=SecondView(Masking(0.15, 0.8, 0.1))))
