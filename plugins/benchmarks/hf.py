"""Benchmarks from Hugging Face ``datasets``: ``hf_translation`` and ``hf_classification``.

``path`` is what :func:`datasets.load_dataset` takes: a Hub id (``wmt/wmt14`` with
``name: de-en``, ``nyu-mll/glue`` with ``name: sst2``), a packaged builder for local files
(``json``, ``csv``, ``parquet`` with ``data_files``), or a local dataset directory: a directory
of data files, or what ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` wrote (read with
``datasets.load_from_disk``). A path that exists relative to the config file's directory, or is
written ``./dir``, ``../dir`` or absolute, is local (as datasets itself decides: an existing
directory wins over a Hub id); local paths must exist at ``harness validate``.

One split: a single saved ``Dataset`` has no split names, and neither have ``data_files`` given
as one file or a list (datasets calls that split ``train``). Such a source is the evaluated
split (``split`` / ``test_split``, whatever its default), and the other splits (``train_split``,
``dev_split``) are left out unless named, which is an error: the rows would be the test rows.

Reproducibility: pin ``revision`` for Hub datasets. The cell cache key includes path, name,
split and revision, plus the bytes of local data files; without a revision a Hub dataset that
changes upstream is not noticed. Loading errors (offline, unknown split, unknown column)
become one DataError naming the dataset, the key and the choices.

Non-goals: streaming, dataset scripts (``trust_remote_code``), multi-reference examples.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harness.api import Benchmark, BenchmarkData, Example
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.params import Params, path_kind

from ._common import LabelParams, RawExample, SubsetParams, choose, name_labels, present

LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")
DataFiles = str | list[str] | dict[str, str | list[str]]


def _resolve(value: str, info: ValidationInfo, split: str | None = None, *, dirs_ok: bool = False) -> str:
    """Like harness.params.InputPath, but glob patterns (which datasets accepts) must match a file;
    ``dirs_ok``: a dataset directory is allowed too (``path``, not ``data_files``)."""
    ctx = info.context or {}
    p = Path(value).expanduser()
    if not p.is_absolute() and ctx.get("base_dir") is not None:
        p = Path(ctx["base_dir"]) / p
    where = f" (split {split!r})" if split else ""
    if ctx.get("check_files", True) and not glob.has_magic(str(p)) and not p.exists():
        raise ValueError(f"file not found: {p}{where}")
    kind = path_kind(p)
    allowed = ("regular file", "directory", "missing") if dirs_ok else ("regular file", "missing")
    if ctx.get("check_files", True) and kind not in allowed:
        raise ValueError(f"{p} is a {kind}{where}; allowed: a regular file"
                         + (" or a dataset directory" if dirs_ok else " or a glob pattern matching files"))
    if ctx.get("check_files", True) and glob.has_magic(str(p)) and not glob.glob(str(p)):
        raise ValueError(f"no file matches {p}{where}")
    return str(p)


class HFDatasetParams(Params):
    path: str = Field(description="Hub dataset id, a builder for local files (json, csv, parquet) or ./local_dir")
    name: str | None = Field(None, description="dataset configuration, e.g. sst2 for nyu-mll/glue, de-en for wmt14")
    revision: str | None = Field(None, description="Hub revision (tag/branch/commit); pin it for reproducible results")
    data_files: DataFiles | None = Field(
        None, description="local files for a builder path: a file, a list, or {split: file(s)}; relative to the config")
    cache_dir: str | None = Field(None, description="datasets cache directory (default: HF_DATASETS_CACHE)")

    @field_validator("path")
    @classmethod
    def _local_dir(cls, v: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        # an existing path beside the config is local even without ./ (datasets decides the same way)
        if v.startswith(LOCAL_PREFIXES) or (v not in BUILDERS and base is not None and (Path(base) / v).exists()):
            return _resolve(v, info, dirs_ok=True)
        return v

    @property
    def local(self) -> bool:
        """A local path (resolved to an absolute one), not a Hub id or a builder name."""
        return os.path.isabs(self.path)

    def saved(self) -> str | None:
        """``"dataset"`` or ``"dict"`` when ``path`` is a directory written by ``save_to_disk``, else None."""
        return saved_kind(self.path) if self.local else None

    def one_split(self) -> str | None:
        """Why the source holds a single unnamed split (a saved Dataset; data_files without split
        names), or None when its splits have names."""
        if self.saved() == "dataset":
            return "a single Dataset saved with save_to_disk (no split names)"
        if self.path in BUILDERS and isinstance(self.data_files, (str, list)):
            return "data_files given as one file or a list, without split names"
        return None

    @field_validator("data_files")
    @classmethod
    def _files(cls, v, info: ValidationInfo):
        if v is None:
            return v
        if isinstance(v, str):
            return _resolve(v, info)
        if isinstance(v, list):
            return [_resolve(x, info) for x in v]
        return {k: _resolve(x, info, k) if isinstance(x, str) else [_resolve(y, info, k) for y in x]
                for k, x in v.items()}

    def describe(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)}" for k in ("name", "revision") if getattr(self, k))
        return f"dataset '{self.path}'{extra}"

    def local_files(self) -> list[str]:
        files: list[str] = []
        if self.path.startswith(LOCAL_PREFIXES):
            files.append(self.path)
        df = self.data_files
        items = [df] if isinstance(df, str) else list(df) if isinstance(df, list) else \
            [y for x in (df or {}).values() for y in ([x] if isinstance(x, str) else x)]
        for pattern in items:
            files += sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        return files


def saved_kind(path: str) -> str | None:
    """What ``save_to_disk`` left in ``path``: ``"dict"`` (a DatasetDict: dataset_dict.json and a
    directory per split), ``"dataset"`` (one Dataset: state.json, dataset_info.json, arrow files)."""
    d = Path(path)
    if (d / "dataset_dict.json").is_file():
        return "dict"
    if (d / "state.json").is_file() and (d / "dataset_info.json").is_file():
        return "dataset"
    return None


def _split_names(message: str) -> str | None:
    import re

    m = re.search(r"Should be one of \[(.*?)\]", message)
    return m.group(1).replace("'", "") if m else None


def _load_saved(p: HFDatasetParams, split: str, key: str, evaluated: bool):
    import datasets

    what = p.describe()
    try:
        ds = datasets.load_from_disk(p.path)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load {what} (saved with save_to_disk): {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{what}: {key}: no split {split!r}; the DatasetDict saved there has the splits: "
                            f"{present(sorted(ds))}")
        return ds[split]
    if not evaluated:
        raise DataError(f"{what} is {p.one_split()}: it is the evaluated split, so {key}: {split!r} would train or "
                        "tune on the test rows; save a DatasetDict with named splits, or leave the key out")
    return ds


def load_split(p: HFDatasetParams, split: str, key: str, evaluated: bool = False):
    """One split of the dataset; every failure a user can cause becomes a DataError. ``evaluated``:
    the split the benchmark scores, which a one-split source is (:meth:`HFDatasetParams.one_split`)."""
    import datasets

    what = p.describe()
    if p.saved() is not None:
        return _load_saved(p, split, key, evaluated)
    if p.one_split() is not None:
        if not evaluated:
            raise DataError(f"{what}: {p.one_split()}, which is the evaluated split; {key}: {split!r} would read the "
                            f"same rows. Name the splits: data_files: {{test: ..., {split}: ...}}")
        split = "train"  # what datasets calls the one split of unnamed data_files
    try:
        return datasets.load_dataset(p.path, p.name, split=split, revision=p.revision, data_files=p.data_files,
                                     cache_dir=p.cache_dir)
    except ConnectionError as e:
        raise DataError(f"cannot load {what}: the Hugging Face Hub is not reachable ({e}). Run once with network "
                        "access so it is cached (then HF_DATASETS_OFFLINE=1 works), or export it to local files "
                        "and use path: json/csv/parquet with data_files") from None
    except ValueError as e:
        if "Unknown split" in str(e):
            names = _split_names(str(e))
            raise DataError(f"{what}: {key}: no split {split!r}; "
                            + (f"the splits it has: {names}" if names else str(e))) from None
        if "save_to_disk" in str(e):  # a saved dataset in a layout saved_kind() does not know
            raise DataError(f"cannot load {what}: it was written by save_to_disk, but holds neither "
                            "dataset_dict.json nor state.json and dataset_info.json") from None
        raise DataError(f"cannot load {what} ({key}={split!r}): {e}") from None
    except FileNotFoundError as e:
        raise DataError(f"cannot load {what}: {e}") from None


def require_columns(ds, what: str, split: str, wanted: dict[str, str | None]) -> None:
    missing = [f"{col!r} ({key})" for key, col in wanted.items() if col is not None and col not in ds.column_names]
    if missing:
        raise DataError(f"{what} split {split!r}: no column {', '.join(missing)}; columns present: "
                        f"{present(ds.column_names)}")


BUILDERS = ("json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder", "webdataset")


def warn_unpinned(p: HFDatasetParams, ctx) -> None:
    # a local path (a directory beside the config, a saved dataset) has no Hub revision to pin
    if p.revision is None and p.path not in BUILDERS and not p.local and not p.path.startswith(LOCAL_PREFIXES):
        ctx.log.warning("%s has no `revision:`; cached cells will not notice if the dataset changes on the Hub",
                        p.describe())


def _subset(ds, limit: int | None, sample: bool, seed: int):
    """Select rows before materialising them, so train_limit on a large Hub corpus stays cheap."""
    idx = choose(len(ds), limit, sample, seed)
    return (ds if len(idx) == len(ds) else ds.select(idx)), idx


def _hf_fingerprint(params: HFDatasetParams) -> str:
    from harness.store import canonical_hash, file_digest, portable_params

    # content, not absolute paths: a moved checkout keeps its cached cells
    files = [file_digest(Path(f)) for f in params.local_files() if os.path.exists(f)]
    return canonical_hash({"params": portable_params(params.model_dump(mode="json")), "files": files})


# ----------------------------------------------------------------------------- translation


class HFTranslationParams(HFDatasetParams, SubsetParams):
    split: str = Field("test", description="split evaluated")
    train_split: str | None = Field(None, description="split used as training data by fine-tuning strategies")
    source_column: str | None = Field(None, description="column with the source text (or use source_lang)")
    reference_column: str | None = Field(None, description="column with the reference (or use target_lang)")
    translation_column: str = Field("translation", description="column of {lang: text} dicts (with source_lang)")
    source_lang: str | None = Field(None, description="source key in the translation column, e.g. en")
    target_lang: str | None = Field(None, description="target key in the translation column, e.g. de")
    id_column: str | None = Field(None, description="column of example ids (default: split and row number)")
    skip_empty: bool = Field(False, description="drop rows with an empty source or reference instead of refusing")

    @model_validator(mode="after")
    def _columns_or_langs(self):
        cols = (self.source_column is not None, self.reference_column is not None)
        langs = (self.source_lang is not None, self.target_lang is not None)
        if not ((all(cols) and not any(langs)) or (all(langs) and not any(cols))):
            raise ValueError("give either source_column and reference_column, or source_lang and target_lang "
                             f"(keys of the {self.translation_column!r} column of {{lang: text}} dicts)")
        return self


class HFTranslation(Benchmark):
    name = "hf_translation"
    task = "translation"
    description = "A Hugging Face dataset (Hub or local files) with source/reference columns or a translation dict."
    Params = HFTranslationParams

    def fingerprint(self) -> str:
        return _hf_fingerprint(self.params)

    def _examples(self, split: str, key: str, limit, sample, prefix: str) -> tuple[list[Example], int]:
        p = self.params
        what = p.describe()
        ds = load_split(p, split, key, evaluated=key == "split")
        if len(ds) == 0:
            raise DataError(f"{what} split {split!r} ({key}) has no rows")
        if p.source_lang:
            require_columns(ds, what, split, {"translation_column": p.translation_column, "id_column": p.id_column})
        else:
            require_columns(ds, what, split, {"source_column": p.source_column,
                                              "reference_column": p.reference_column, "id_column": p.id_column})
        sub, idx = _subset(ds, limit, sample, p.sample_seed)
        if p.source_lang:
            pairs = []
            for i, d in zip(idx, sub[p.translation_column]):
                if not isinstance(d, dict) or p.source_lang not in d or p.target_lang not in d:
                    langs = present(sorted(d)) if isinstance(d, dict) else f"not a dict: {d!r}"
                    raise DataError(f"{what} split {split!r} row {i}: {p.translation_column!r} has no "
                                    f"{p.source_lang!r}/{p.target_lang!r} (source_lang/target_lang); "
                                    f"languages present: {langs}")
                pairs.append((d[p.source_lang], d[p.target_lang]))
        else:
            pairs = list(zip(sub[p.source_column], sub[p.reference_column]))
        ids = [str(x) for x in sub[p.id_column]] if p.id_column else [f"{prefix}{i}" for i in idx]
        out = []
        for ex_id, i, (src, ref) in zip(ids, idx, pairs):
            for text, what_side in ((src, "source"), (ref, "reference")):
                if not isinstance(text, str) or not text.strip():
                    if p.skip_empty:
                        break
                    raise DataError(f"{what} split {split!r} row {i}: empty {what_side} ({text!r}); "
                                    "set skip_empty: true to drop such rows")
            else:
                out.append(Example(id=ex_id, source=src, reference=ref))
        if not out:
            raise DataError(f"{what} split {split!r}: no examples left: skip_empty dropped all {len(idx)} selected rows")
        return out, len(ds)

    def load(self, ctx):
        p = self.params
        warn_unpinned(p, ctx)
        test, total = self._examples(p.split, "split", p.limit, p.sample, f"{p.split}-")
        train = None
        if p.train_split:
            train, _ = self._examples(p.train_split, "train_split", p.train_limit, True, f"{p.train_split}-")
        return BenchmarkData(task="translation", test=test, train=train,
                             meta={"source": p.describe(), "split": p.split, "test_rows": total})


# ----------------------------------------------------------------------------- classification


class HFClassificationParams(HFDatasetParams, LabelParams, SubsetParams):
    train_split: str | None = Field("train", description="training split (null: none, e.g. for a fine-tuned model)")
    dev_split: str | None = Field(None, description="development split, e.g. validation")
    test_split: str = Field("test", description="split evaluated; GLUE hides test labels, use validation there")
    text_column: str = Field("text", description="column with the text (glue/sst2: sentence)")
    text_pair_column: str | None = Field(None, description="second text for pair tasks (e.g. glue/mrpc: sentence2)")
    label_column: str = Field("label", description="column with the label (a ClassLabel's names are used)")
    id_column: str | None = Field(None, description="column of example ids (default: split and row number)")

    @model_validator(mode="after")
    def _distinct_splits(self):
        named = [s for s in (self.train_split, self.dev_split, self.test_split) if s is not None]
        dup = sorted({s for s in named if named.count(s) > 1})
        if dup:
            raise ValueError(f"split {', '.join(map(repr, dup))} is used twice among train_split, dev_split, "
                             "test_split; training on the evaluation data would inflate scores")
        return self


class HFClassification(Benchmark):
    name = "hf_classification"
    task = "classification"
    description = "A Hugging Face text-classification dataset (e.g. nyu-mll/glue sst2, ag_news), Hub or local."
    Params = HFClassificationParams

    def fingerprint(self) -> str:
        return _hf_fingerprint(self.params)

    def _raw(self, split: str, key: str, limit, sample) -> tuple[list[RawExample], Any]:
        p = self.params
        what = p.describe()
        ds = load_split(p, split, key, evaluated=key == "test_split")
        require_columns(ds, what, split, {"text_column": p.text_column, "text_pair_column": p.text_pair_column,
                                          "label_column": p.label_column, "id_column": p.id_column})
        if len(ds) == 0:
            raise DataError(f"{what} split {split!r} ({key}) has no rows")
        feature = ds.features[p.label_column]
        sub, idx = _subset(ds, limit, sample, p.sample_seed)
        texts = list(sub[p.text_column])
        pairs = list(sub[p.text_pair_column]) if p.text_pair_column else [None] * len(idx)
        ids = [str(x) for x in sub[p.id_column]] if p.id_column else [f"{split}-{i}" for i in idx]
        rows = []
        for i, ex_id, text, pair, label in zip(idx, ids, texts, pairs, sub[p.label_column]):
            where = f"{what} split {split!r} row {i}"
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: empty text ({p.text_column})")
            rows.append(RawExample(where, ex_id, text, label, pair))
        return rows, feature

    def load(self, ctx):
        p = self.params
        warn_unpinned(p, ctx)
        test, feature = self._raw(p.test_split, "test_split", p.limit, p.sample)
        # a one-split source is the test split: its default train_split names nothing
        given = p.model_fields_set if p.one_split() else {"train_split", "dev_split"}
        train = self._raw(p.train_split, "train_split", p.train_limit, True)[0] \
            if p.train_split and "train_split" in given else None
        dev = self._raw(p.dev_split, "dev_split", None, False)[0] if p.dev_split and "dev_split" in given else None
        class_names = list(feature.names) if hasattr(feature, "names") and hasattr(feature, "str2int") else None
        splits, labels = name_labels({"train": train, "dev": dev, "test": test}, labels=p.labels,
                                     label_names=p.label_names, class_names=class_names,
                                     train_source=f"{p.describe()} split {p.train_split!r}")
        return BenchmarkData(task="classification", train=splits["train"], dev=splits["dev"], test=splits["test"],
                             labels=labels, meta={"source": p.describe(), "split": p.test_split})


@hookimpl
def register_benchmarks(register):
    register(HFTranslation)
    register(HFClassification)
