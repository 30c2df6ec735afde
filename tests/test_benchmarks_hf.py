"""hf_translation and hf_classification, offline: datasets' packaged builders (json, csv,
parquet) read local files exactly as a Hub dataset's splits would be read. Hub ids fail with a
clear DataError because tests run with HF_HUB_OFFLINE=1."""
from __future__ import annotations

import json

import pytest

from bench_helpers import config_errors, load, make
from harness.errors import DataError


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def wmt_like(tmp_path):
    """The layout of wmt14 on the Hub: a `translation` column of {lang: text} dicts."""
    jsonl(tmp_path / "test.jsonl", [{"translation": {"en": "the cat", "de": "die Katze"}},
                                    {"translation": {"en": "a dog", "de": "ein Hund"}},
                                    {"translation": {"en": "red house", "de": "rotes Haus"}}])
    jsonl(tmp_path / "train.jsonl", [{"translation": {"en": f"s{i}", "de": f"z{i}"}} for i in range(20)])
    return tmp_path


def hf(tmp_path, plugin="hf_translation", **params):
    return load(plugin, tmp_path, cache_dir=str(tmp_path / "hf-cache"), **params)


def test_translation_dict_column_and_train_split(wmt_like):
    data = hf(wmt_like, path="json", data_files={"test": "test.jsonl", "train": "train.jsonl"},
              source_lang="en", target_lang="de", train_split="train", train_limit=5)
    assert [(e.id, e.source, e.reference) for e in data.test] == [
        ("test-0", "the cat", "die Katze"), ("test-1", "a dog", "ein Hund"), ("test-2", "red house", "rotes Haus")]
    assert len(data.train) == 5 and all(e.id.startswith("train-") for e in data.train)
    reverse = hf(wmt_like, path="json", data_files={"test": "test.jsonl"}, source_lang="de", target_lang="en", limit=1)
    assert [(e.source, e.reference) for e in reverse.test] == [("die Katze", "the cat")]


def test_named_columns_from_csv(tmp_path):
    (tmp_path / "t.csv").write_text("id,src,tgt\nk1,hello,hallo\nk2,good day,guten Tag\n", encoding="utf-8")
    data = hf(tmp_path, path="csv", data_files={"test": "t.csv"}, source_column="src", reference_column="tgt",
              id_column="id")
    assert [(e.id, e.source, e.reference) for e in data.test] == [("k1", "hello", "hallo"), ("k2", "good day", "guten Tag")]


def test_unknown_split_column_and_language_are_named(wmt_like):
    with pytest.raises(DataError) as info:
        hf(wmt_like, path="json", data_files={"test": "test.jsonl"}, source_lang="en", target_lang="de",
           split="validation")
    assert str(info.value) == "dataset 'json': split: no split 'validation'; the splits it has: test"
    with pytest.raises(DataError) as info:
        hf(wmt_like, path="json", data_files={"test": "test.jsonl"}, source_column="en", reference_column="de")
    assert str(info.value) == ("dataset 'json' split 'test': no column 'en' (source_column), 'de' (reference_column); "
                               "columns present: translation")
    with pytest.raises(DataError) as info:
        hf(wmt_like, path="json", data_files={"test": "test.jsonl"}, source_lang="en", target_lang="fr")
    assert str(info.value) == ("dataset 'json' split 'test' row 0: 'translation' has no 'en'/'fr' "
                               "(source_lang/target_lang); languages present: de, en")


def test_empty_reference_row(tmp_path):
    jsonl(tmp_path / "e.jsonl", [{"s": "a", "r": "b"}, {"s": "c", "r": " "}])
    with pytest.raises(DataError, match=r"dataset 'json' split 'test' row 1: empty reference \(' '\); "
                                        "set skip_empty: true"):
        hf(tmp_path, path="json", data_files={"test": "e.jsonl"}, source_column="s", reference_column="r")
    data = hf(tmp_path, path="json", data_files={"test": "e.jsonl"}, source_column="s", reference_column="r",
              skip_empty=True)
    assert [e.id for e in data.test] == ["test-0"]


def test_hub_id_offline_is_one_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # never reach for the network here, even if the environment forgot HF_HUB_OFFLINE
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as info:
        hf(tmp_path, path="wmt/wmt14", name="de-en", revision="main", source_lang="en", target_lang="de")
    msg = str(info.value)
    assert msg.startswith("cannot load dataset 'wmt/wmt14', name=de-en, revision=main: the Hugging Face Hub is "
                          "not reachable")
    assert "use path: json/csv/parquet with data_files" in msg


def test_unpinned_hub_dataset_is_warned_about(tmp_path, monkeypatch, caplog):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with caplog.at_level("WARNING", logger="harness"), pytest.raises(DataError):
        hf(tmp_path, "hf_classification", path="nyu-mll/glue", name="sst2", text_column="sentence")
    assert ("dataset 'nyu-mll/glue', name=sst2 has no `revision:`; cached cells will not notice if the dataset "
            "changes on the Hub") in caplog.messages
    caplog.clear()
    with caplog.at_level("WARNING", logger="harness"):
        (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\n", encoding="utf-8")
        hf(tmp_path, "hf_classification", path="csv", data_files={"train": "t.csv", "test": "t.csv"})
    assert caplog.messages == []  # local files need no revision


def test_hf_config_errors(tmp_path, wmt_like):
    errs = config_errors(tmp_path, """\
        - name: hf_translation
          params: {path: json, data_files: {test: nope.jsonl}, source_lang: en, target_lang: de, source_column: x}
        """)
    assert errs == [
        f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.data_files: file not found: {tmp_path / 'nope.jsonl'} (split 'test')"]
    errs = config_errors(tmp_path, """\
        - name: hf_translation
          params: {path: ./missing_dir, source_lang: en}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.path: file not found: {tmp_path / 'missing_dir'}"]
    errs = config_errors(tmp_path, """\
        - name: hf_translation
          params: {path: wmt/wmt14, name: de-en, source_lang: en}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: give either source_column and reference_column, "
                    "or source_lang and target_lang (keys of the 'translation' column of {lang: text} dicts)"]


def test_hf_data_files_must_be_regular_files(tmp_path):
    import os

    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "pipe.jsonl")
    for name, kind in (("adir", "directory"), ("pipe.jsonl", "FIFO (named pipe)")):
        errs = config_errors(tmp_path, f"""\
            - name: hf_translation
              params: {{path: json, data_files: {{test: {name}}}, source_lang: en, target_lang: de}}
            """)
        assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.data_files: {tmp_path / name} is a {kind} "
                        "(split 'test'); allowed: a regular file or a glob pattern matching files"]


def test_fingerprint_covers_local_data_files(wmt_like):
    params = dict(path="json", data_files={"test": "test.jsonl"}, source_lang="en", target_lang="de")
    fp = make("hf_translation", wmt_like, **params).fingerprint()
    assert fp == make("hf_translation", wmt_like, **params).fingerprint()
    assert fp != make("hf_translation", wmt_like, **{**params, "revision": "v2"}).fingerprint()
    jsonl(wmt_like / "test.jsonl", [{"translation": {"en": "changed", "de": "anders"}}])
    assert fp != make("hf_translation", wmt_like, **params).fingerprint()


# ----------------------------------------------------------------------------- classification


@pytest.fixture
def classlabel_parquet(tmp_path):
    """Parquet keeps datasets' features, so this reads back with a ClassLabel like glue/sst2 from the Hub."""
    import datasets

    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"]),
                               "idx": datasets.Value("int32")})
    train = {"sentence": ["good film", "bad film", "great", "awful", "fine"], "label": [1, 0, 1, 0, 1],
             "idx": [0, 1, 2, 3, 4]}
    datasets.Dataset.from_dict(train, features=feats).to_parquet(str(tmp_path / "train.parquet"))
    datasets.Dataset.from_dict({"sentence": ["nice", "dull"], "label": [1, 0], "idx": [10, 11]},
                               features=feats).to_parquet(str(tmp_path / "validation.parquet"))
    datasets.Dataset.from_dict({"sentence": ["hidden"], "label": [-1], "idx": [20]},
                               features=feats).to_parquet(str(tmp_path / "test.parquet"))
    return tmp_path


def test_classlabel_names_are_the_labels(classlabel_parquet):
    files = {s: f"{s}.parquet" for s in ("train", "validation", "test")}
    data = hf(classlabel_parquet, "hf_classification", path="parquet", data_files=files, text_column="sentence",
              test_split="validation", id_column="idx")
    assert data.labels == ["negative", "positive"]
    assert [(e.id, e.source, e.label) for e in data.test] == [("10", "nice", "positive"), ("11", "dull", "negative")]
    assert [e.label for e in data.train] == ["positive", "negative", "positive", "negative", "positive"]
    assert data.dev is None


def test_hidden_test_labels_are_refused(classlabel_parquet):
    files = {s: f"{s}.parquet" for s in ("train", "validation", "test")}
    with pytest.raises(DataError) as info:
        hf(classlabel_parquet, "hf_classification", path="parquet", data_files=files, text_column="sentence",
           dev_split="validation")
    assert str(info.value) == ("dataset 'parquet' split 'test' row 0: label -1 means 'no label' (hidden test labels, "
                               "as in GLUE); evaluate on a labelled split instead (e.g. the validation split)")


def test_string_labels_from_a_local_dataset_directory(tmp_path):
    ds = tmp_path / "reviews"
    ds.mkdir()
    (ds / "train.csv").write_text("text,label\ngood,pos\nbad,neg\nok,pos\n", encoding="utf-8")
    (ds / "test.csv").write_text("text,label\nfine,pos\nmeh,neutral\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        hf(tmp_path, "hf_classification", path="./reviews")
    assert str(info.value) == (f"dataset '{ds}' split 'test' row 1: label 'neutral' does not occur in the training "
                               f"data (dataset '{ds}' split 'train'); known labels: neg, pos")
    data = hf(tmp_path, "hf_classification", path="./reviews", limit=1)
    assert data.labels == ["neg", "pos"]
    assert [(e.id, e.label) for e in data.test] == [("test-0", "pos")]


def test_hf_classification_unknown_text_column(classlabel_parquet):
    with pytest.raises(DataError) as info:
        hf(classlabel_parquet, "hf_classification", path="parquet", data_files={"train": "train.parquet",
                                                                                "test": "validation.parquet"})
    assert str(info.value) == ("dataset 'parquet' split 'test': no column 'text' (text_column); "
                               "columns present: sentence, label, idx")
