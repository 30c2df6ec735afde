"""The ``comet`` metric in a run: per-example scores, paired tests, a leaderboard column, a
signature that keeps checkpoints and versions apart, sources and references encoded once, and
every kind of bad input refused with one line.

The checkpoints are the COMET-built fixtures of tests/test_comet_reference.py (tiny random
models: their scores are not translation quality, only COMET's arithmetic).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.api import Example
from harness.plugins import default_plugins
from harness.testing import WORDS, run_config, write_translation_files

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "comet"
REGRESSION, KIWI, XCOMET = FIXTURE / "regression", FIXTURE / "kiwi", FIXTURE / "xcomet"


def sentences(n: int, seed: int, tag: str) -> list[str]:
    """Sentences of the tiny Marian's words, each with a word no other test uses (nothing cached)."""
    rnd = random.Random(seed)
    words = list(WORDS)
    return [f"{tag}{i} " + " ".join(rnd.choice(words) for _ in range(rnd.randint(2, 9))) for i in range(n)]


def comet(**params):
    cls = default_plugins().get("metric", "comet")
    return cls(cls.Params.model_validate(params))


def direct_scores(model_dir, sources, outputs, references):
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    return Scorer(inspect_checkpoint(model_dir), "cpu", "float32").score(sources, outputs, references).scores


# ----------------------------------------------------------------------------- a run

RUN_CONFIG: dict[Path, dict] = {}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_marian):
    import torch

    from harness.comet import inspect_checkpoint, load_scorer

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("comet-run")
    srcs, refs = sentences(24, 0, "runsrc"), sentences(24, 1, "runref")
    src, ref = write_translation_files(d, srcs, refs)
    scorer = load_scorer(inspect_checkpoint(REGRESSION), "cpu")
    before = dict(scorer.stats)
    config = {
        "name": "comet-run",
        "models": [{"path": str(tiny_marian), "label": "tiny", "device": "cpu"}],
        "benchmarks": [{"name": "parallel_text", "label": "toy",
                        "params": {"source": str(src), "reference": str(ref)}}],
        "decoders": [{"name": "greedy", "params": {"max_new_tokens": 6}},
                     {"name": "beam", "params": {"num_beams": 3, "max_new_tokens": 6}},
                     {"name": "sample", "params": {"max_new_tokens": 6}}],
        "metrics": ["bleu", "chrf", {"name": "comet", "params": {"checkpoint": str(REGRESSION), "device": "cpu"}}],
        "reporters": [],
    }
    res = run_config(config, d / "out")
    after = dict(scorer.stats)
    RUN_CONFIG[d / "out"] = config
    return d / "out", res, srcs, refs, before, after


def test_a_run_gives_per_example_comet_scores_equal_to_comets_and_their_mean(run):
    out, res, srcs, refs, _, _ = run
    m = res.metrics
    rows = m[m.metric == "comet"]
    assert len(rows) == 3 and set(m.metric) == {"bleu", "chrf", "comet"}
    for _, row in rows.iterrows():
        preds = [json.loads(x) for x in (out / "predictions" / f"tiny__toy__none__{row['decoder']}__0.jsonl")
                 .read_text(encoding="utf-8").splitlines()]
        per = [p["scores"]["comet"] for p in preds]
        outputs = [p["output"] for p in preds]
        assert per == pytest.approx(direct_scores(REGRESSION, srcs, outputs, refs), abs=1e-12)
        assert row["value"] == pytest.approx(sum(per) / len(per), abs=1e-12)
        assert [p["scores"]["chrf"] is not None for p in preds] == [True] * len(preds)


def test_the_signature_names_checkpoint_content_version_references_batching_and_dtype(run):
    from harness.comet import checkpoint_digest, inspect_checkpoint

    _, res, *_ = run
    sig = set(res.metrics[res.metrics.metric == "comet"].signature)
    digest = checkpoint_digest(inspect_checkpoint(REGRESSION))[:16]
    assert sig == {f"comet|model:regression_metric|checkpoint:sha256:{digest}|impl:harness.comet-1|refs:yes"
                   f"|batch:16,sorted|dtype:float32"}


def test_sources_and_references_are_encoded_once_for_all_decoders(run):
    out, res, srcs, refs, before, after = run
    outputs = {p["output"] for key in res.metrics.cell.unique() for p in res.predictions(key)}
    # every distinct text once: 24 sources, 24 references, the three decoders' distinct outputs
    assert after["texts_encoded"] - before["texts_encoded"] == len(set(srcs) | set(refs) | outputs)


def test_comet_gets_the_paired_tests_intervals_and_a_leaderboard_column(run):
    import harness
    from harness.report import analyze
    from harness.results import load_run

    out, *_ = run
    data = analyze(load_run(out))  # the baseline: greedy, the first decoder
    rows = {r.config.label: r for r in data.benchmarks[0].rows["comet"]}
    for d in ("beam", "sample"):
        r = rows[d]
        assert r.test == "ar" and r.p == r.p_ar and r.p_bootstrap is not None
        assert r.ci_kind == "bootstrap" and r.ci_low <= r.value <= r.ci_high
    board = harness.leaderboard([out])
    col = board[board.metric == "comet"]
    assert len(col) == 3 and col["value"].notna().all()
    assert sorted(col["rank"]) == [1, 2, 3]


def test_a_resumed_run_scores_its_cached_cells_again_to_the_same_bits(run):
    out, res, *_ = run
    again = run_config(RUN_CONFIG[out], out)  # every cell cached: only the metrics run again
    first = {(r["cell"], r["metric"]): r["value"] for _, r in res.metrics.iterrows()}
    assert {(r["cell"], r["metric"]): r["value"] for _, r in again.metrics.iterrows()} == first


# ----------------------------------------------------------------------------- the metric alone


def test_ten_systems_on_one_test_set_encode_its_sources_and_references_once():
    from harness.comet import inspect_checkpoint, load_scorer

    srcs, refs = sentences(12, 2, "tensrc"), sentences(12, 3, "tenref")
    examples = [Example(id=str(i), source=s, reference=r) for i, (s, r) in enumerate(zip(srcs, refs))]
    systems = [sentences(12, 10 + k, f"sys{k}_") for k in range(10)]
    scorer = load_scorer(inspect_checkpoint(REGRESSION), "cpu")
    before = scorer.stats["texts_encoded"]
    metric = comet(checkpoint=str(REGRESSION), device="cpu")
    for outputs in systems:
        value = metric.compute(outputs, examples).value
        assert value == pytest.approx(sum(metric.example_scores(outputs, examples)) / 12, abs=1e-12)
    assert scorer.stats["texts_encoded"] - before == 12 + 12 + 10 * 12


def test_xcomet_reports_span_counts_and_mqm_and_can_drop_its_reference():
    srcs, refs = sentences(6, 4, "xs"), sentences(6, 5, "xr")
    examples = [Example(id=str(i), source=s, reference=r) for i, (s, r) in enumerate(zip(srcs, refs))]
    outputs = sentences(6, 6, "xo")
    with_ref = comet(checkpoint=str(XCOMET), device="cpu").compute(outputs, examples)
    qe = comet(checkpoint=str(XCOMET), device="cpu", use_references=False).compute(outputs, examples)
    assert "|refs:yes|" in with_ref.signature and "|refs:no|" in qe.signature
    assert with_ref.value == pytest.approx(sum(direct_scores(XCOMET, srcs, outputs, refs)) / 6, abs=1e-12)
    assert qe.value == pytest.approx(sum(direct_scores(XCOMET, srcs, outputs, None)) / 6, abs=1e-12)
    assert with_ref.details["class"] == "xcomet_metric" and 0 <= with_ref.details["mqm_mean"] <= 1
    assert set(with_ref.details["error_spans"]) <= {"minor", "major", "critical"}


def test_a_reference_free_model_ignores_references_and_says_so():
    srcs = sentences(5, 7, "ks")
    examples = [Example(id=str(i), source=s, reference="egal") for i, s in enumerate(srcs)]
    v = comet(checkpoint=str(KIWI), device="cpu").compute(sentences(5, 8, "ko"), examples)
    assert "|model:unified_metric|" in v.signature and "|refs:no|" in v.signature


def test_a_reference_based_model_on_an_example_without_reference_is_a_data_error():
    from harness.errors import DataError

    examples = [Example(id="a", source="x", reference="y"), Example(id="b", source="x", reference=None)]
    with pytest.raises(DataError, match="example 'b' has no reference, and .*regression_metric"):
        comet(checkpoint=str(REGRESSION), device="cpu").compute(["u", "v"], examples)


def test_several_references_score_against_the_first():
    examples = [Example(id="a", source="the cat", reference="die katze", references=("die katze", "eine katze"))]
    got = comet(checkpoint=str(REGRESSION), device="cpu").example_scores(["katze"], examples)
    assert got == direct_scores(REGRESSION, ["the cat"], ["katze"], ["die katze"])


# ----------------------------------------------------------------------------- out of memory


def test_an_out_of_memory_batch_is_split_and_scores_do_not_change(monkeypatch):
    import torch

    from harness.comet.encoder import Encoder
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    srcs, mt, refs = sentences(9, 20, "os"), sentences(9, 21, "om"), sentences(9, 22, "or")
    want = direct_scores(REGRESSION, srcs, mt, refs)
    real = Encoder.__call__

    def tight(self, ids, mask):  # "memory" for two rows at a time
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, ids, mask)

    monkeypatch.setattr(Encoder, "__call__", tight)
    s = Scorer(inspect_checkpoint(REGRESSION), "cpu", "float32")
    assert s.score(srcs, mt, refs).scores == want
    assert s.stats["batches"] >= 14  # 27 texts in batches of at most 2


def test_a_segment_that_never_fits_fails_the_metric_alone_with_one_line(monkeypatch, tmp_path, tiny_marian):
    from harness.comet.encoder import Encoder

    def never(self, ids, mask):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(Encoder, "__call__", never)
    src, ref = write_translation_files(tmp_path, sentences(3, 30, "never"), sentences(3, 31, "neverref"))
    config = {"name": "oom", "models": [{"path": str(tiny_marian), "label": "tiny", "device": "cpu"}],
              "benchmarks": [{"name": "parallel_text", "label": "toy",
                              "params": {"source": str(src), "reference": str(ref)}}],
              "decoders": [{"name": "greedy", "params": {"max_new_tokens": 4}}],
              "metrics": ["bleu", {"name": "comet", "params": {"checkpoint": str(REGRESSION), "device": "cpu"}}],
              "reporters": []}
    res = run_config(config, tmp_path / "out")
    assert list(res.metrics.metric) == ["bleu"]  # the predictions and the other metrics are kept
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    errors = [e for c in manifest["cells"] for e in c.get("metric_errors", [])]
    assert len(errors) == 1 and errors[0].startswith("metric 'comet' failed: comet: out of memory encoding one "
                                                     "segment of ")
    assert "on cpu (float32): use a device with more memory" in errors[0] and "\n" not in errors[0]
    assert (tmp_path / "out" / "predictions").is_dir()


# ----------------------------------------------------------------------------- bad input, at validation

CONFIG = """\
name: comet-bad
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders: [DECODER]
metrics: [bleu, METRIC]
reporters: []
"""


@pytest.fixture
def workdir(tmp_path, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    write_translation_files(tmp_path)
    return tmp_path


def validate(workdir, metric="bleu", decoder="greedy", env=None):
    (workdir / "exp.yaml").write_text(CONFIG.replace("METRIC", metric).replace("DECODER", decoder))
    return subprocess.run([sys.executable, "-m", "harness.cli", "validate", "exp.yaml"], cwd=workdir,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def one_error(res) -> str:
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for enc in ("encoder-xlmr", "encoder-xlmr-xl"):
        if not (dst.parent / enc).exists():
            shutil.copytree(FIXTURE / enc, dst.parent / enc)
    return dst


def test_a_good_comet_config_validates_without_importing_torch(workdir):
    (workdir / "exp.yaml").write_text(CONFIG.replace("DECODER", "greedy").replace(
        "METRIC", f"{{name: comet, params: {{checkpoint: {REGRESSION}}}}}"))
    code = ("import sys\nfrom harness.cli import main\ntry:\n    main(['validate', 'exp.yaml'])\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=workdir, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and "metrics: bleu, comet" in out.stdout


def test_a_directory_that_is_not_a_checkpoint(workdir):
    (workdir / "notcomet").mkdir()
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: notcomet}}"))
    assert "metrics[1].params" in line
    assert (f"{workdir / 'notcomet'} is not a COMET checkpoint directory: no hparams.yaml and "
            f"checkpoints/model.ckpt") in line


def test_a_missing_directory(workdir):
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: nowhere}}"))
    assert "metrics[1].params.checkpoint" in line and "directory not found" in line


def test_a_mismatched_encoder_vocabulary(workdir):
    enc = workdir / "other-encoder"
    shutil.copytree(FIXTURE / "encoder-xlmr", enc)
    data = json.loads((enc / "tokenizer.json").read_text())
    data["model"]["vocab"] += [[f"▁extra{i}", -12.0] for i in range(200)]
    (enc / "tokenizer.json").write_text(json.dumps(data))
    line = one_error(validate(workdir, f"{{name: comet, params: {{checkpoint: {REGRESSION}, "
                                       f"encoder: other-encoder}}}}"))
    assert "the tokenizer has 510 pieces but the checkpoint's embedding has 311 rows: the encoder vocabulary " \
           "does not match the checkpoint" in line


def test_an_encoder_of_another_size(workdir):
    enc = workdir / "wide-encoder"
    shutil.copytree(FIXTURE / "encoder-xlmr", enc)
    cfg = json.loads((enc / "config.json").read_text())
    (enc / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64}))
    line = one_error(validate(workdir, f"{{name: comet, params: {{checkpoint: {REGRESSION}, encoder: wide-encoder}}}}"))
    assert "hidden_size 64 but the checkpoint's encoder has 32: this is not the checkpoint's encoder" in line


def test_an_encoder_neither_beside_nor_in_the_hub_cache(workdir, tmp_path_factory):
    model = copy_model(REGRESSION, workdir / "models" / "hub-encoder")
    hp = (model / "hparams.yaml").read_text().replace("pretrained_model: ../encoder-xlmr",
                                                      "pretrained_model: xlm-roberta-large")
    (model / "hparams.yaml").write_text(hp)
    # the checkpoint's own hyper-parameters win over hparams.yaml, as in COMET: rewrite them too
    import torch

    ckpt = torch.load(model / "checkpoints" / "model.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["pretrained_model"] = "xlm-roberta-large"
    torch.save(ckpt, model / "checkpoints" / "model.ckpt")
    empty = tmp_path_factory.mktemp("hf-cache")
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/hub-encoder}}",
                              env={"HF_HUB_CACHE": str(empty)}))
    assert "its encoder 'xlm-roberta-large' (pretrained_model) is neither a directory beside the checkpoint nor " \
           f"in the Hugging Face cache ({empty})" in line and "hf download xlm-roberta-large" in line


def test_a_reference_free_model_given_references_and_the_reverse(workdir):
    line = one_error(validate(workdir, f"{{name: comet, params: {{checkpoint: {KIWI}, use_references: true}}}}"))
    assert f"{KIWI} is a reference-free (quality estimation) COMET model (unified_metric with inputs [mt, src]): " \
           "it cannot use references" in line
    line = one_error(validate(workdir, f"{{name: comet, params: {{checkpoint: {REGRESSION}, use_references: false}}}}"))
    assert f"{REGRESSION} is a reference-based COMET model (regression_metric with inputs [mt, src, ref]): it " \
           "cannot score without references" in line


def test_qe_reranking_with_a_reference_based_model_and_mbr_with_a_reference_free_one(workdir):
    line = one_error(validate(workdir, decoder=f"{{name: qe_rerank, params: {{metric_params: "
                                               f"{{checkpoint: {REGRESSION}}}}}}}"))
    assert "decoders[0].params: metric comet:" in line and "is a reference-based COMET model (regression_metric" in line
    assert "qe_rerank scores without references" in line
    line = one_error(validate(workdir, decoder="{name: qe_rerank, params: {metric: bleu}}"))
    assert "metric: 'bleu' gives no reference-free scores (no qe_scores); allowed: comet" in line
    line = one_error(validate(workdir, decoder="{name: qe_rerank, params: {metric_params: {checkpoint: nowhere}}}"))
    assert "metric_params.checkpoint: directory not found" in line
    line = one_error(validate(workdir, decoder=f"{{name: mbr, params: {{utility: comet, utility_params: "
                                               f"{{checkpoint: {KIWI}}}}}}}"))
    assert "utility comet:" in line and "scores without references, and MBR scores candidates against " \
                                        "pseudo-references" in line
    line = one_error(validate(workdir, decoder="{name: mbr, params: {utility: comet, utility_params: "
                                               "{checkpoint: nowhere}}}"))
    assert "utility_params.checkpoint: directory not found" in line


def test_a_checkpoint_that_pickles_more_than_tensors_is_refused_and_never_run(workdir, tmp_path):
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    model = copy_model(REGRESSION, workdir / "models" / "evil")
    ckpt = torch.load(model / "checkpoints" / "model.ckpt", weights_only=True)
    ckpt["callbacks"] = {"x": Payload()}
    torch.save(ckpt, model / "checkpoints" / "model.ckpt")
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/evil}}"))
    assert "refused: it pickles objects that are not tensors (posix.system)" in line
    assert not marker.exists()
    # a realistic one: hyper-parameters kept as an argparse.Namespace
    import argparse

    ckpt["callbacks"] = {}
    ckpt["hyper_parameters"] = argparse.Namespace(**ckpt["hyper_parameters"])
    torch.save(ckpt, model / "checkpoints" / "model.ckpt")
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/evil}}"))
    assert "(argparse.Namespace)" in line and "torch.save({k: ckpt[k] for k in ('state_dict', " in line


def test_an_unsupported_class_and_a_non_yaml_hparams(workdir):
    model = copy_model(REGRESSION, workdir / "models" / "ranking")
    (model / "hparams.yaml").write_text((model / "hparams.yaml").read_text().replace(
        "class_identifier: regression_metric", "class_identifier: ranking_metric"))
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/ranking}}"))
    assert "class_identifier ranking_metric (COMET-rank, 2020) is not supported" in line
    (model / "hparams.yaml").write_text("!!python/object:os.system {}\n")
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/ranking}}"))
    assert "hparams.yaml: not plain YAML (ConstructorError)" in line


def test_a_truncated_checkpoint(workdir):
    model = copy_model(REGRESSION, workdir / "models" / "cut")
    p = model / "checkpoints" / "model.ckpt"
    p.write_bytes(p.read_bytes()[:5000])
    line = one_error(validate(workdir, "{name: comet, params: {checkpoint: models/cut}}"))
    assert f"{p.resolve()} is not a torch checkpoint that can be read" in line or \
           f"{p} is not a torch checkpoint that can be read" in line


# ----------------------------------------------------------------------------- caches and tokenizers


def test_a_cache_smaller_than_the_work_forgets_old_embeddings_and_changes_no_score():
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    srcs, mt, refs = sentences(20, 40, "cs"), sentences(20, 41, "cm"), sentences(20, 42, "cr")
    small = Scorer(inspect_checkpoint(REGRESSION), "cpu", "float32", cache_bytes=10 * 32 * 4)  # ten embeddings
    assert small.score(srcs, mt, refs).scores == direct_scores(REGRESSION, srcs, mt, refs)
    assert len(small._embeddings) == 10
    small.score(srcs, mt, refs)
    assert small.stats["texts_encoded"] == 110  # the ten kept (the last references) are reused, 50 encoded again


def test_an_encoder_with_only_a_sentencepiece_model_is_converted_as_transformers_does(tmp_path):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from harness.comet import inspect_checkpoint
    from harness.comet.tokenizer import CometTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences(400, 50, "") + ["Der Hund läuft schnell!"]), encoding="utf-8")
    enc = tmp_path / "spm-encoder"
    enc.mkdir()
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(enc / "sentencepiece.bpe"), vocab_size=120,
                                   model_type="unigram", character_coverage=1.0, hard_vocab_limit=False)
    shutil.copy(FIXTURE / "encoder-xlmr" / "config.json", enc / "config.json")
    (enc / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}))
    info = inspect_checkpoint(REGRESSION, enc)
    assert info.encoder.tokenizer_json is None
    ours = CometTokenizer(info.encoder, max_positions=80)
    texts = sentences(10, 51, "") + ["Der Hund läuft schnell!", "", " ".join(["Hund"] * 100)]
    theirs = AutoTokenizer.from_pretrained(str(enc))(texts, truncation=True, max_length=78)["input_ids"]
    assert [list(p.ids) for p in ours(texts)] == theirs
    assert (ours.cls_id, ours.sep_id, ours.pad_id) == (0, 2, 1)


def test_16_bit_scores_are_close_and_signed_as_such():
    srcs, mt, refs = sentences(8, 60, "bs"), sentences(8, 61, "bm"), sentences(8, 62, "br")
    examples = [Example(id=str(i), source=s, reference=r) for i, (s, r) in enumerate(zip(srcs, refs))]
    half = comet(checkpoint=str(REGRESSION), device="cpu", dtype="bfloat16")
    got = half.example_scores(mt, examples)
    assert got == pytest.approx(direct_scores(REGRESSION, srcs, mt, refs), abs=1e-2)
    assert got != direct_scores(REGRESSION, srcs, mt, refs)
    assert half.compute(mt, examples).signature.endswith("|dtype:bfloat16")


def test_a_checkpoint_in_torchs_legacy_format_is_read_and_scores_the_same(tmp_path):
    import torch

    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    model = copy_model(REGRESSION, tmp_path / "models" / "legacy")
    ckpt = torch.load(model / "checkpoints" / "model.ckpt", weights_only=True)
    torch.save(ckpt, model / "checkpoints" / "model.ckpt", _use_new_zipfile_serialization=False)
    info = inspect_checkpoint(model)
    assert not __import__("zipfile").is_zipfile(info.ckpt) and info.hparams_source == "checkpoint"
    srcs, mt, refs = sentences(5, 70, "ls"), sentences(5, 71, "lm"), sentences(5, 72, "lr")
    assert Scorer(info, "cpu", "float32").score(srcs, mt, refs).scores == direct_scores(REGRESSION, srcs, mt, refs)


def test_without_hyper_parameters_in_the_checkpoint_hparams_yaml_stands_in(tmp_path):
    import torch

    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    model = copy_model(REGRESSION, tmp_path / "models" / "stripped")
    ckpt = torch.load(model / "checkpoints" / "model.ckpt", weights_only=True)
    torch.save({"state_dict": ckpt["state_dict"]}, model / "checkpoints" / "model.ckpt")
    info = inspect_checkpoint(model)
    assert info.hparams_source == "hparams.yaml" and info.hparams["layer_transformation"] == "sparsemax"
    srcs, mt, refs = sentences(4, 73, "hs"), sentences(4, 74, "hm"), sentences(4, 75, "hr")
    assert Scorer(info, "cpu", "float32").score(srcs, mt, refs).scores == direct_scores(REGRESSION, srcs, mt, refs)
