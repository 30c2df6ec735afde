"""Classification benchmarks from local files: ``text_classification`` (TSV/CSV/JSONL with named
columns) and ``polarity_files`` (one file of positive and one of negative sentences, the
rt-polarity layout of Pang & Lee 2005).

Both give :class:`BenchmarkData` with ``task="classification"``, examples whose ``label`` is a
label *name*, and ``labels``: the names in class-id order, which fine-tuning strategies use as
the model's id2label. Label names come from, in order: ``labels`` (explicit), ``label_names``
(raw value -> name, e.g. ``{0: negative, 1: positive}``), else the sorted training labels
("0", "1" stay strings). A dev/test label the training data never shows is a DataError naming
the file, the line and the known labels.

Without separate files, one file is split with a seeded, per-class (stratified) draw of
``dev_fraction`` and ``test_fraction``, so every cell and rerun sees the same split.
Non-goals: multi-label tasks, regression (STS-B), cross-validation folds.
"""
from __future__ import annotations

from pydantic import Field, model_validator

from harness.api import Benchmark, BenchmarkData
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.params import InputPath

from ._common import (EncodingParams, LabelParams, QuotingParams, RawExample, SplitFractions, SubsetParams, TableFormat,
                     cell_id, cell_text, check_format, choose, name_labels, read_lines, read_table, stratified_split)


def _limit(rows: list | None, limit: int | None, sample: bool, seed: int) -> list | None:
    if rows is None:
        return None
    return [rows[i] for i in choose(len(rows), limit, sample, seed)]


def _split_one(rows: list[RawExample], p, source: str) -> dict[str, list[RawExample] | None]:
    parts = stratified_split([str(r.label) for r in rows], p.dev_fraction, p.test_fraction, p.sample_seed)
    out = {k: [rows[i] for i in idx] for k, idx in parts.items()}
    for k in ("train", "test"):
        if not out[k]:
            raise DataError(f"{source}: the {k} split of its {len(rows)} examples is empty (dev_fraction={p.dev_fraction}, "
                            f"test_fraction={p.test_fraction}); use more data or other fractions")
    if not out["dev"]:
        out["dev"] = None
    return out


class TextClassificationParams(EncodingParams, QuotingParams, SplitFractions, LabelParams, SubsetParams):
    train: InputPath | None = Field(None, description="training table (for fine-tuning strategies)")
    dev: InputPath | None = Field(None, description="development table")
    test: InputPath | None = Field(None, description="test table (evaluated)")
    path: InputPath | None = Field(None, description="one table split into train/dev/test (instead of train/dev/test)")
    format: TableFormat = Field("auto", description="auto: from the extension (.tsv .tab .csv .jsonl .ndjson)")
    text_column: str = Field("text", description="column with the text")
    text_pair_column: str | None = Field(None, description="column with a second text (pair tasks, e.g. NLI)")
    label_column: str = Field("label", description="column with the label")
    id_column: str | None = Field(None, description="column of example ids (default: split and line number)")

    @model_validator(mode="after")
    def _files(self):
        if (self.path is None) == (self.test is None):
            raise ValueError("give either test (with optional train and dev) or path (one file split by "
                             "dev_fraction/test_fraction)")
        if self.path is not None and (self.train or self.dev):
            raise ValueError("path is split into train/dev/test itself; do not also give train or dev")
        if self.path is None and self.train is None and self.labels is None and self.label_names is None:
            raise ValueError("without train the label names cannot be inferred; give labels: [names in class-id "
                             "order] or label_names: {raw: name}")
        for key in ("train", "dev", "test", "path"):
            check_format(self.format, getattr(self, key), key)
        return self


class TextClassification(Benchmark):
    name = "text_classification"
    task = "classification"
    description = "TSV/CSV/JSONL files with text (and optional text pair) and label columns."
    Params = TextClassificationParams

    def _read(self, path: str, prefix: str) -> list[RawExample]:
        p = self.params
        table = read_table(path, p.format, p.encoding, p.quoting)
        table.require({"text_column": p.text_column, "text_pair_column": p.text_pair_column,
                       "label_column": p.label_column, "id_column": p.id_column})
        rows, seen = [], {}
        for line, rec in table.rows:
            where = f"{path}:{line}"
            text = cell_text(table, line, rec, p.text_column)
            if not text.strip():
                raise DataError(f"{where}: empty text ({p.text_column!r})")
            pair = cell_text(table, line, rec, p.text_pair_column) if p.text_pair_column else None
            if p.label_column not in rec:
                raise DataError(f"{where}: the record has no {p.label_column!r} key")
            ex_id = f"{prefix}{line}"
            if p.id_column:
                ex_id = cell_id(table, line, rec, p.id_column)
                if ex_id in seen:
                    raise DataError(f"{where}: id {ex_id!r} repeats line {seen[ex_id]}; ids must be unique")
                seen[ex_id] = line
            rows.append(RawExample(where, ex_id, text, rec[p.label_column], pair))
        if not rows:
            raise DataError(f"{path}: no examples (only a header row)")
        return rows

    def load(self, ctx):
        p = self.params
        if p.path:
            raw = _split_one(self._read(p.path, "line-"), p, p.path)
            train_source = f"train split of {p.path}"
        else:
            raw = {"train": self._read(p.train, "train-") if p.train else None,
                   "dev": self._read(p.dev, "dev-") if p.dev else None,
                   "test": self._read(p.test, "test-")}
            train_source = str(p.train)
        raw["test"] = _limit(raw["test"], p.limit, p.sample, p.sample_seed)
        raw["train"] = _limit(raw["train"], p.train_limit, True, p.sample_seed)
        splits, labels = name_labels(raw, labels=p.labels, label_names=p.label_names, train_source=train_source)
        return BenchmarkData(task="classification", train=splits["train"], dev=splits["dev"], test=splits["test"],
                             labels=labels, meta={"source": p.path or p.test})


class PolarityFilesParams(EncodingParams, SplitFractions, SubsetParams):
    positive: InputPath = Field(description="file of positive examples, one per line")
    negative: InputPath = Field(description="file of negative examples, one per line")
    positive_label: str = Field("positive", description="name of the positive class (class id 1)")
    negative_label: str = Field("negative", description="name of the negative class (class id 0)")

    @model_validator(mode="after")
    def _distinct(self):
        if self.positive_label == self.negative_label:
            raise ValueError(f"positive_label and negative_label are both {self.positive_label!r}")
        return self


class PolarityFiles(Benchmark):
    name = "polarity_files"
    task = "classification"
    description = "One file of positive and one of negative sentences (rt-polarity layout), split with a seed."
    Params = PolarityFilesParams

    def load(self, ctx):
        p = self.params
        rows = []
        for path, label, prefix in ((p.positive, p.positive_label, "pos-"), (p.negative, p.negative_label, "neg-")):
            for i, text in enumerate(read_lines(path, p.encoding), 1):
                if not text.strip():
                    raise DataError(f"{path}:{i}: empty line; every line must be one example")
                rows.append(RawExample(f"{path}:{i}", f"{prefix}{i}", text, label))
        raw = _split_one(rows, p, f"{p.negative} + {p.positive}")
        raw["test"] = _limit(raw["test"], p.limit, p.sample, p.sample_seed)
        raw["train"] = _limit(raw["train"], p.train_limit, True, p.sample_seed)
        splits, labels = name_labels(raw, labels=[p.negative_label, p.positive_label])
        return BenchmarkData(task="classification", train=splits["train"], dev=splits["dev"], test=splits["test"],
                             labels=labels, meta={"source": p.positive})


class LabelledLinesParams(EncodingParams, SplitFractions, LabelParams, SubsetParams):
    path: InputPath = Field(description="one example per line: the label, a separator, the text")
    separator: str = Field(" ", min_length=1, description="between label and text (its first occurrence; "
                                                          "MPQA and SentEval use a space)")
    skip_empty: bool = Field(False, description="drop lines whose text is empty (MPQA has 3) instead of refusing")


class LabelledLines(Benchmark):
    """``LABEL<separator>text`` per line (MPQA as SentEval ships it), split with a seed like ``path``."""

    name = "labelled_lines"
    task = "classification"
    description = "One file, one example per line: label, separator, text (MPQA layout), split with a seed."
    Params = LabelledLinesParams

    def load(self, ctx):
        p = self.params
        rows = []
        for i, line in enumerate(read_lines(p.path, p.encoding), 1):
            label, sep, text = line.partition(p.separator)
            if sep and label and not text.strip() and p.skip_empty:
                continue
            if not sep or not label or not text.strip():
                hint = " (skip_empty: true drops lines with an empty text)" if sep and label else ""
                raise DataError(f"{p.path}:{i}: expected label{p.separator!r}text, got {line[:60]!r}{hint}")
            rows.append(RawExample(f"{p.path}:{i}", f"line-{i}", text, label))
        raw = _split_one(rows, p, p.path)
        raw["test"] = _limit(raw["test"], p.limit, p.sample, p.sample_seed)
        raw["train"] = _limit(raw["train"], p.train_limit, True, p.sample_seed)
        splits, labels = name_labels(raw, labels=p.labels, label_names=p.label_names,
                                     train_source=f"train split of {p.path}")
        return BenchmarkData(task="classification", train=splits["train"], dev=splits["dev"], test=splits["test"],
                             labels=labels, meta={"source": p.path})


@hookimpl
def register_benchmarks(register):
    register(TextClassification)
    register(PolarityFiles)
    register(LabelledLines)
