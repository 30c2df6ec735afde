"""Classification sources from local files: text_classification and polarity_files.

What fine-tuning strategies rely on: examples carry label *names*, ``labels`` lists the names
in class-id order, and a label the training data never shows is refused with its location.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from bench_helpers import config_errors, load
from conftest import shared_data
from harness.errors import DataError


def tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    tsv(tmp_path / "train.tsv", ["sentence", "label"],
        [("a great movie", "positive"), ("awful", "negative"), ("fine", "positive"), ("bad", "negative")])
    tsv(tmp_path / "dev.tsv", ["sentence", "label"], [("good", "positive")])
    tsv(tmp_path / "test.tsv", ["sentence", "label"], [("great", "positive"), ("bad movie", "negative")])
    return tmp_path


def test_separate_files_give_named_labels_in_sorted_order(files):
    data = load("text_classification", files, train="train.tsv", dev="dev.tsv", test="test.tsv",
                text_column="sentence")
    assert data.task == "classification"
    assert data.labels == ["negative", "positive"]
    assert [(e.id, e.source, e.label) for e in data.test] == [("test-2", "great", "positive"),
                                                              ("test-3", "bad movie", "negative")]
    assert [e.label for e in data.train] == ["positive", "negative", "positive", "negative"]
    assert [(e.id, e.label) for e in data.dev] == [("dev-2", "positive")]
    assert all(e.source_pair is None and e.reference is None for e in data.test)


def test_explicit_labels_fix_the_class_order(files):
    data = load("text_classification", files, train="train.tsv", test="test.tsv", text_column="sentence",
                labels=["positive", "negative"])
    assert data.labels == ["positive", "negative"]
    assert data.dev is None


def test_numeric_labels_stay_strings_or_get_mapped(tmp_path):
    tsv(tmp_path / "tr.tsv", ["text", "label"], [("x", 1), ("y", 0), ("z", 10), ("w", 2)])
    tsv(tmp_path / "te.tsv", ["text", "label"], [("x", 10), ("y", 0)])
    data = load("text_classification", tmp_path, train="tr.tsv", test="te.tsv")
    assert data.labels == ["0", "1", "2", "10"]                 # numeric order, not "10" < "2"
    assert [e.label for e in data.test] == ["10", "0"]

    tsv(tmp_path / "tr2.tsv", ["text", "label"], [("x", 1), ("y", 0)])
    tsv(tmp_path / "te2.tsv", ["text", "label"], [("x", 1), ("y", 0)])
    # YAML gives int keys; class ids follow the raw values, whatever order the mapping is written in
    data = load("text_classification", tmp_path, train="tr2.tsv", test="te2.tsv",
                label_names={1: "positive", 0: "negative"})
    assert data.labels == ["negative", "positive"]
    assert [e.label for e in data.test] == ["positive", "negative"]
    assert [e.label for e in data.train] == ["positive", "negative"]


def test_unseen_test_label_names_file_line_and_known_labels(files):
    tsv(files / "test3.tsv", ["sentence", "label"], [("ok", "positive"), ("meh", "neutral")])
    with pytest.raises(DataError) as info:
        load("text_classification", files, train="train.tsv", test="test3.tsv", text_column="sentence")
    assert str(info.value) == (f"{files / 'test3.tsv'}:3: label 'neutral' does not occur in the training data "
                               f"({files / 'train.tsv'}); known labels: negative, positive")
    with pytest.raises(DataError) as info:
        load("text_classification", files, train="train.tsv", test="test.tsv", text_column="sentence",
             labels=["positive", "neutral"])
    assert str(info.value) == (f"{files / 'train.tsv'}:3: label 'negative' is not one of the names given in "
                               "`labels`; known labels: positive, neutral")


def test_label_names_must_cover_every_raw_label(tmp_path):
    tsv(tmp_path / "tr.tsv", ["text", "label"], [("x", 1), ("y", 0), ("z", 2)])
    with pytest.raises(DataError) as info:
        load("text_classification", tmp_path, train="tr.tsv", test="tr.tsv", label_names={0: "neg", 1: "pos"})
    assert str(info.value) == f"{tmp_path / 'tr.tsv'}:4: label '2' is not in label_names (known: '0', '1')"


def test_one_training_class_is_refused(tmp_path):
    tsv(tmp_path / "tr.tsv", ["text", "label"], [("x", "pos"), ("y", "pos")])
    with pytest.raises(DataError, match=r"tr\.tsv: every training example has label 'pos'; a classifier needs "
                                        "at least two classes"):
        load("text_classification", tmp_path, train="tr.tsv", test="tr.tsv")


def test_jsonl_with_text_pairs_ids_and_int_labels(tmp_path):
    rows = [{"id": "p1", "premise": "a cat sat", "hypothesis": "an animal sat", "label": 0},
            {"id": "p2", "premise": "a dog ran", "hypothesis": "nothing moved", "label": 2},
            {"id": "p3", "premise": "x", "hypothesis": "y", "label": 1}]
    (tmp_path / "nli.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load("text_classification", tmp_path, train="nli.jsonl", test="nli.jsonl", text_column="premise",
                text_pair_column="hypothesis", id_column="id",
                label_names={0: "entailment", 1: "neutral", 2: "contradiction"})
    assert data.labels == ["entailment", "neutral", "contradiction"]
    assert [(e.id, e.source, e.source_pair, e.label) for e in data.test] == [
        ("p1", "a cat sat", "an animal sat", "entailment"), ("p2", "a dog ran", "nothing moved", "contradiction"),
        ("p3", "x", "y", "neutral")]


def test_bad_rows_are_located(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": true}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.jsonl:2: label must be a string or an integer, got true"):
        load("text_classification", tmp_path, train="b.jsonl", test="b.jsonl")
    (tmp_path / "c.csv").write_text('text,label\n"",pos\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.csv:2: empty text \('text'\)"):
        load("text_classification", tmp_path, test="c.csv", labels=["neg", "pos"])
    (tmp_path / "d.csv").write_text("review,stars\nok,1\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load("text_classification", tmp_path, test="d.csv", labels=["neg", "pos"])
    assert str(info.value) == (f"{tmp_path / 'd.csv'}: no column 'text' (text_column), 'label' (label_column); "
                               "columns present: review, stars")


def test_one_file_split_is_seeded_stratified_and_disjoint(tmp_path):
    rows = [(f"text {i}", "pos" if i % 4 else "neg") for i in range(200)]  # 150 pos, 50 neg
    tsv(tmp_path / "all.tsv", ["text", "label"], rows)
    data = load("text_classification", tmp_path, path="all.tsv", dev_fraction=0.1, test_fraction=0.2)
    assert (len(data.train), len(data.dev), len(data.test)) == (140, 20, 40)
    assert Counter(e.label for e in data.test) == {"pos": 30, "neg": 10}  # class balance kept
    assert Counter(e.label for e in data.dev) == {"pos": 15, "neg": 5}
    ids = [e.id for split in (data.train, data.dev, data.test) for e in split]
    assert sorted(ids) == sorted(f"line-{i}" for i in range(2, 202))        # every line used exactly once
    again = load("text_classification", tmp_path, path="all.tsv", dev_fraction=0.1, test_fraction=0.2)
    assert [e.id for e in again.test] == [e.id for e in data.test]
    other = load("text_classification", tmp_path, path="all.tsv", dev_fraction=0.1, test_fraction=0.2, sample_seed=1)
    assert [e.id for e in other.test] != [e.id for e in data.test]
    nodev = load("text_classification", tmp_path, path="all.tsv", dev_fraction=0, test_fraction=0.5)
    assert nodev.dev is None and len(nodev.test) == 100


def test_limit_and_seeded_train_limit(tmp_path):
    tsv(tmp_path / "tr.tsv", ["text", "label"], [(f"t{i}", i % 2) for i in range(50)])
    tsv(tmp_path / "te.tsv", ["text", "label"], [(f"e{i}", i % 2) for i in range(20)])
    data = load("text_classification", tmp_path, train="tr.tsv", test="te.tsv", limit=5, train_limit=10)
    assert [e.source for e in data.test] == ["e0", "e1", "e2", "e3", "e4"]
    assert len(data.train) == 10 and [e.source for e in data.train] != [f"t{i}" for i in range(10)]
    again = load("text_classification", tmp_path, train="tr.tsv", test="te.tsv", limit=5, train_limit=10)
    assert [e.id for e in again.train] == [e.id for e in data.train]


def test_text_classification_config_errors(tmp_path, files):
    errs = config_errors(tmp_path, """\
        - name: text_classification
          params: {test: test.tsv}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: without train the label names cannot be "
                    "inferred; give labels: [names in class-id order] or label_names: {raw: name}"]
    errs = config_errors(tmp_path, """\
        - name: text_classification
          params: {path: train.tsv, dev: dev.tsv}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: path is split into train/dev/test itself; "
                    "do not also give train or dev"]
    errs = config_errors(tmp_path, """        - name: text_classification
          params: {train: train.tsv}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: give either test (with optional train and dev) "
                    "or path (one file split by dev_fraction/test_fraction)"]
    errs = config_errors(tmp_path, """\
        - name: text_classification
          params: {path: train.tsv, dev_fraction: 0.5, test_fraction: 0.5}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: dev_fraction + test_fraction must be < 1 "
                    "(got 0.5 + 0.5), or nothing is left to train on"]
    errs = config_errors(tmp_path, """\
        - name: text_classification
          params: {train: train.tsv, test: test.tsv, labels: [a, b, a], label_names: {0: c}}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.labels: labels repeat 'a'; each name is one class"]
    errs = config_errors(tmp_path, """\
        - name: text_classification
          params: {train: train.tsv, test: test.tsv, labels: [a, b], label_names: {0: c}}
        """, task="classification")
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: label_names uses 'c', which labels does not "
                    "list (labels: a, b)"]


def test_sst2_shared_data(tmp_path):
    d = shared_data("sst2")
    data = load("text_classification", tmp_path, train=str(d / "train.tsv"), dev=str(d / "dev.tsv"),
                test=str(d / "test.tsv"), text_column="sentence", label_names={0: "negative", 1: "positive"})
    assert (len(data.train), len(data.dev), len(data.test)) == (60614, 6735, 872)
    assert data.labels == ["negative", "positive"]
    assert Counter(e.label for e in data.test) == {"negative": 428, "positive": 444}  # as the data README says
    assert (data.test[0].source, data.test[0].label) == ("it 's a charming and often affecting journey . ", "positive")


# ----------------------------------------------------------------------------- polarity_files


def test_polarity_files_split_per_class(tmp_path):
    (tmp_path / "p.txt").write_text("".join(f"good {i}\n" for i in range(30)), encoding="utf-8")
    (tmp_path / "n.txt").write_text("".join(f"bad {i}\n" for i in range(20)), encoding="utf-8")
    data = load("polarity_files", tmp_path, positive="p.txt", negative="n.txt")
    assert data.labels == ["negative", "positive"]
    assert Counter(e.label for e in data.test) == {"positive": 3, "negative": 2}
    assert Counter(e.label for e in data.train) == {"positive": 24, "negative": 16}
    assert all(e.source.startswith("good") == (e.label == "positive") for e in data.train + data.dev + data.test)
    assert all(e.id.startswith("pos-") == (e.label == "positive") for e in data.test)
    named = load("polarity_files", tmp_path, positive="p.txt", negative="n.txt", positive_label="pos",
                 negative_label="neg", limit=2)
    assert named.labels == ["neg", "pos"] and len(named.test) == 2


def test_rt_polarity_original_bytes_need_the_encoding(tmp_path):
    d = shared_data("rt_polarity")
    with pytest.raises(DataError) as info:
        load("polarity_files", tmp_path, positive=str(d / "rt-polarity.pos"), negative=str(d / "rt-polarity.neg"))
    msg = str(info.value)
    assert msg.startswith(f"{d / 'rt-polarity.pos'}:44: not utf-8 text (byte 0xf3 at offset 4645). ")
    assert "encoding: cp1252" in msg

    data = load("polarity_files", tmp_path, positive=str(d / "rt-polarity.pos"), negative=str(d / "rt-polarity.neg"),
                encoding="cp1252")
    assert (len(data.train), len(data.dev), len(data.test)) == (8530, 1066, 1066)
    assert Counter(e.label for e in data.test) == {"negative": 533, "positive": 533}
    # read as cp1252 on purpose, the originals equal the re-encoded UTF-8 copies
    utf8 = load("polarity_files", tmp_path, positive=str(d / "rt-polarity.pos.utf8.txt"),
                negative=str(d / "rt-polarity.neg.utf8.txt"))
    assert [(e.id, e.source) for e in utf8.test] == [(e.id, e.source) for e in data.test]
    pos44 = next(e for e in data.train + data.dev + data.test if e.id == "pos-44")
    assert "\u00f3" in pos44.source  # the byte 0xf3 of line 44 is an ó in cp1252


def test_harness_run_reports_data_errors_with_exit_code_2(tmp_path, tiny_bert):
    """Bad data stops `harness run` before any model loads: one line per problem, no traceback."""
    from click.testing import CliRunner

    from harness.cli import main

    tsv(tmp_path / "tr.tsv", ["text", "label"], [("good", "pos"), ("bad", "neg")])
    tsv(tmp_path / "te.tsv", ["text", "label"], [("meh", "neutral")])
    (tmp_path / "p.txt").write_bytes("caf\xe9\n".encode("cp1252"))
    (tmp_path / "exp.yaml").write_text(
        f"name: t\nmodels: [{{path: {tiny_bert}}}]\nbenchmarks:\n"
        "  - {name: text_classification, label: tiny, params: {train: tr.tsv, test: te.tsv}}\n"
        "  - {name: polarity_files, label: rt, params: {positive: p.txt, negative: p.txt}}\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == [
        f"error: {tmp_path / 'exp.yaml'}: benchmarks: 'tiny': {tmp_path / 'te.tsv'}:2: label 'neutral' does not occur "
        f"in the training data ({tmp_path / 'tr.tsv'}); known labels: neg, pos",
        f"error: {tmp_path / 'exp.yaml'}: benchmarks: 'rt': {tmp_path / 'p.txt'}:1: not utf-8 text (byte 0xe9 at "
        "offset 3). If the file uses another encoding, name it with the benchmark's `encoding:` parameter "
        "(e.g. encoding: cp1252), or convert the file: iconv -f cp1252 -t utf-8 p.txt > p.utf8.txt"]
    assert not (tmp_path / "out").exists()
