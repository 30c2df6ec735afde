"""Every registered benchmark keeps the BenchmarkData contract that strategies, decoders and the
runner rely on: the declared task, a non-empty test split, unique ids, references for
translation, label names that index ``labels`` for classification, a stable fingerprint.

Each built-in benchmark needs an offline example below; a new benchmark without one fails
``test_every_benchmark_has_a_conformance_case`` rather than going untested.
"""
from __future__ import annotations

import json

import pytest

from bench_helpers import make
from harness.api import TASKS, BenchmarkData, CellContext
from harness.plugins import default_plugins


def _files(d):
    (d / "s.en").write_text("a cat\nthe dog\nred house\n", encoding="utf-8")
    (d / "s.de").write_text("eine katze\nder hund\nrotes haus\n", encoding="utf-8")
    (d / "t.jsonl").write_text("".join(json.dumps({"source": s, "reference": r, "translation": {"en": s, "de": r}}) + "\n"
                                       for s, r in [("a", "b"), ("c", "d")]), encoding="utf-8")
    (d / "c.tsv").write_text("text\tlabel\n" + "".join(f"text {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(40)),
                             encoding="utf-8")
    (d / "c.csv").write_text((d / "c.tsv").read_text(encoding="utf-8").replace("\t", ","), encoding="utf-8")
    (d / "pos.txt").write_text("".join(f"good {i}\n" for i in range(20)), encoding="utf-8")
    (d / "neg.txt").write_text("".join(f"bad {i}\n" for i in range(20)), encoding="utf-8")
    (d / "l.txt").write_text("".join(f"{i % 2} words {i}\n" for i in range(40)), encoding="utf-8")


CASES = {
    "parallel_text": {"source": "s.en", "reference": "s.de", "train_source": "s.en", "train_reference": "s.de"},
    "translation_table": {"path": "t.jsonl", "train_path": "t.jsonl"},
    "hf_translation": {"path": "json", "data_files": {"test": "t.jsonl", "train": "t.jsonl"}, "source_lang": "en",
                       "target_lang": "de", "train_split": "train", "cache_dir": "hf-cache"},
    "text_classification": {"path": "c.tsv"},
    "hf_classification": {"path": "csv", "data_files": {"train": "c.csv", "test": "c.csv"}, "cache_dir": "hf-cache"},
    "polarity_files": {"positive": "pos.txt", "negative": "neg.txt"},
    "labelled_lines": {"path": "l.txt", "label_names": {0: "negative", 1: "positive"}},
    "numbers": {"train_size": 20, "dev_size": 5, "test_size": 10},
    # without `source` its sources are empty (it serves kind: outputs models; the runner refuses it to a decoder)
    "references": {"references": ["s.de", "s.de"], "source": "s.en"},
    # needs sacrebleu's download; its offline behaviour is covered in test_benchmarks_sacrebleu.py
    "sacrebleu_testset": None,
}
BUILTIN = sorted(n for n, info in ((i.name, i) for i in default_plugins() if i.kind == "benchmark")
                 if info.package == "nlp-eval-harness")


def test_every_benchmark_has_a_conformance_case():
    assert sorted(CASES) == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_declared_parameters_are_documented(name):
    cls = default_plugins().get("benchmark", name)
    assert cls.task in TASKS and cls.description
    undocumented = [f for f, field in cls.Params.model_fields.items() if not field.description]
    assert undocumented == []


@pytest.mark.parametrize("name", [n for n in BUILTIN if CASES.get(n) is not None])
def test_load_keeps_the_contract(name, tmp_path):
    pytest.importorskip("num2words") if name == "numbers" else None
    _files(tmp_path)
    params = dict(CASES[name])
    if "data_files" in params:
        params["cache_dir"] = str(tmp_path / "hf-cache")
    bench = make(name, tmp_path, **params)
    data = bench.load(CellContext(seed=0, workdir=tmp_path, cache_dir=tmp_path / "cache"))
    assert isinstance(data, BenchmarkData) and data.task == bench.task
    for split in (data.test, data.train or [], data.dev or []):
        ids = [e.id for e in split]
        assert len(ids) == len(set(ids)) and all(isinstance(i, str) and i for i in ids)
        assert all(isinstance(e.source, str) and e.source.strip() for e in split)
    assert data.test
    if data.task == "translation":
        assert all(isinstance(e.reference, str) for e in data.test + (data.train or []))
    else:
        assert data.labels and len(set(data.labels)) == len(data.labels)
        assert all(e.label in data.labels for e in data.test + (data.train or []) + (data.dev or []))
    assert bench.fingerprint() == make(name, tmp_path, **params).fingerprint()
