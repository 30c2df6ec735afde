"""What users of datasets bring (issue 22): a directory written by ``Dataset.save_to_disk`` (or a
DatasetDict's) is a benchmark source; the parquet builder without ``split`` reads its one split; a
local dataset directory gets no "has no revision ... on the Hub" warning."""
from __future__ import annotations

import logging

import pytest

from bench_helpers import load
from harness.errors import DataError


@pytest.fixture
def saved(tmp_path):
    import datasets

    reviews = datasets.Dataset.from_dict({"text": ["good film", "bad film", "great film", "awful film"],
                                          "label": [1, 0, 1, 0]})
    reviews.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": reviews, "test": reviews.select([0, 1])}).save_to_disk(str(tmp_path / "dict"))
    reviews.to_parquet(str(tmp_path / "reviews.parquet"))
    return tmp_path


def hf(tmp_path, **params):
    return load("hf_classification", tmp_path, cache_dir=str(tmp_path / "hf-cache"), **params)


def test_a_saved_dataset_directory_is_a_benchmark(saved, caplog):
    """One Dataset (no split names) is the test split; the default train split names nothing."""
    caplog.set_level(logging.WARNING, logger="harness")
    data = hf(saved, path="single", labels=["0", "1"])  # no ./ needed: it exists beside the config
    assert [(e.source, e.label) for e in data.test] == [("good film", "1"), ("bad film", "0"), ("great film", "1"),
                                                        ("awful film", "0")]
    assert data.train is None
    assert caplog.messages == []  # a local directory: no "has no `revision:` ... on the Hub"
    with pytest.raises(DataError) as info:
        hf(saved, path="single", train_split="train", labels=["0", "1"])
    assert str(info.value) == (f"dataset '{saved / 'single'}' is a single Dataset saved with save_to_disk (no split "
                               "names): it is the evaluated split, so train_split: 'train' would train or tune on the "
                               "test rows; save a DatasetDict with named splits, or leave the key out")


def test_a_saved_dataset_dict_gives_its_splits(saved):
    data = hf(saved, path="./dict")
    assert len(data.test) == 2 and len(data.train) == 4 and data.labels == ["0", "1"]
    with pytest.raises(DataError) as info:
        hf(saved, path="./dict", test_split="validation")
    assert str(info.value) == (f"dataset '{saved / 'dict'}': test_split: no split 'validation'; the DatasetDict saved "
                               "there has the splits: test, train")


def test_the_parquet_builder_without_split_reads_its_one_split(saved):
    data = hf(saved, path="parquet", data_files="reviews.parquet", labels=["0", "1"])
    assert len(data.test) == 4 and data.train is None
    translation = load("hf_translation", saved, path="parquet", data_files="reviews.parquet", source_column="text",
                       reference_column="text", cache_dir=str(saved / "hf-cache"))
    assert len(translation.test) == 4
    with pytest.raises(DataError) as info:
        hf(saved, path="parquet", data_files="reviews.parquet", train_split="train", labels=["0", "1"])
    assert "data_files given as one file or a list, without split names, which is the evaluated split; " \
           "train_split: 'train' would read the same rows" in str(info.value)
