"""Translation benchmarks from local files: aligned plain text (``parallel_text``) and tables
with named columns (``translation_table``: TSV, CSV or JSON Lines).

Both read strictly: text must decode in the declared ``encoding`` (default UTF-8), aligned
files must have the same number of lines, and an empty source or reference is an error unless
``skip_empty`` says to drop it (an empty segment is usually a misalignment, and it would score
as a free miss or hit). Example ids carry the line number, so a subset keeps stable ids.

Optional training files (``train_source``/``train_reference``, or ``train_path``) feed
fine-tuning strategies. Several references per segment: ``references: [a.de, b.de]``
(plural; a list under ``reference`` is a sweep of single-reference benchmarks) or
``reference_columns: [ref1, ref2]``; every metric then scores against all of them, as
sacrebleu does with several reference files. Non-goals: document context, compressed
files; Hub datasets and sacrebleu's test sets have their own modules.
"""
from __future__ import annotations

from pydantic import Field, model_validator

from harness.api import Benchmark, BenchmarkData, Example
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.params import InputPath, aligned

from ._common import (EncodingParams, QuotingParams, SubsetParams, TableFormat, cell_id, cell_text, check_format,
                     choose, read_lines, read_table)


def _clean_pairs(rows: list[tuple[str, str, str | tuple[str, ...], int]], skip_empty: bool, src_where, ref_where,
                 source: str) -> list[Example]:
    """rows: (id, source, reference or tuple of references, line) -> Examples, refusing or
    dropping empty segments. ``ref_where`` may be one function per reference."""
    if not rows:
        raise DataError(f"{source}: no examples (the file has no data lines)")
    out = []
    for ex_id, src, ref, loc in rows:
        refs = ref if isinstance(ref, tuple) else (ref,)
        wheres = ref_where if isinstance(ref_where, (list, tuple)) else [ref_where] * len(refs)
        sides = [(src, src_where, "source")] + [(r, w, "reference") for r, w in zip(refs, wheres)]
        for text, where, what in sides:
            if not text.strip():
                if skip_empty:
                    break
                raise DataError(f"{where(loc)}: empty {what} segment; remove it (from both sides if the files are "
                                "aligned) or set skip_empty: true to drop such pairs")
        else:
            out.append(Example(id=ex_id, source=src, reference=refs[0], references=refs if len(refs) > 1 else None))
    if not out:
        raise DataError(f"{source}: no examples left: skip_empty dropped all {len(rows)} selected pairs")
    return out


def read_aligned(src_path: str, ref_path: str | list[str], prefix: str, *, encoding: str = "utf-8",
                 limit: int | None = None, sample: bool = False, seed: int = 0,
                 skip_empty: bool = False) -> tuple[list[Example], int]:
    """Examples from line-aligned files (ids ``{prefix}{line}``) and the total line count.
    ``ref_path`` is one reference file or a list of them (several references per segment)."""
    ref_paths = ref_path if isinstance(ref_path, list) else [ref_path]
    src, refs = read_lines(src_path, encoding), [read_lines(p, encoding) for p in ref_paths]
    for path, ref in zip(ref_paths, refs):
        if len(src) != len(ref):
            raise DataError(f"{src_path} has {len(src)} lines but {path} has {len(ref)}; "
                            "the files must be aligned line by line (one segment per line in each)")
    rows = [(f"{prefix}{i + 1}", src[i], tuple(r[i] for r in refs) if len(refs) > 1 else refs[0][i], i + 1)
            for i in choose(len(src), limit, sample, seed)]
    return _clean_pairs(rows, skip_empty, lambda ln: f"{src_path}:{ln}",
                        [lambda ln, p=p: f"{p}:{ln}" for p in ref_paths], src_path), len(src)


class ParallelTextParams(EncodingParams, SubsetParams):
    # aligned(...): `harness validate` counts each group's lines and refuses files that differ
    source: InputPath = Field(description="source-language file, one segment per line", json_schema_extra=aligned("test"))
    reference: InputPath = Field(description="reference translations, aligned line by line with source",
                                 json_schema_extra=aligned("test"))
    references: list[InputPath] | None = Field(
        None, min_length=1, description="several reference files, each aligned with source (instead of reference)",
        json_schema_extra=aligned("test"))
    train_source: InputPath | None = Field(None, description="training source file (for fine-tuning strategies)",
                                           json_schema_extra=aligned("train"))
    train_reference: InputPath | None = Field(None, description="training targets, aligned with train_source",
                                              json_schema_extra=aligned("train"))
    dev_source: InputPath | None = Field(None, description="development source file (early stopping, dev curves)",
                                         json_schema_extra=aligned("dev"))
    dev_reference: InputPath | None = Field(None, description="development targets, aligned with dev_source",
                                            json_schema_extra=aligned("dev"))
    skip_empty: bool = Field(False, description="drop pairs with an empty side instead of refusing the file")

    @model_validator(mode="before")
    @classmethod
    def _first_reference(cls, data):
        # with ``references`` the first file is also ``reference`` (what single-reference code reads)
        if isinstance(data, dict) and isinstance(data.get("references"), list) and data["references"]:
            first = data["references"][0]
            if data.get("reference") is None:
                data = {**data, "reference": first}
            elif data["reference"] != first:
                raise ValueError("give reference (one file) or references (several files), not both")
        return data

    @model_validator(mode="after")
    def _pairs(self):
        if (self.train_source is None) != (self.train_reference is None):
            raise ValueError("train_source and train_reference must be given together")
        if (self.dev_source is None) != (self.dev_reference is None):
            raise ValueError("dev_source and dev_reference must be given together")
        return self


class ParallelText(Benchmark):
    name = "parallel_text"
    task = "translation"
    description = "Aligned plain-text files: source and reference, one segment per line."
    Params = ParallelTextParams

    def load(self, ctx):
        p = self.params
        test, total = read_aligned(p.source, p.references or p.reference, "test-", encoding=p.encoding, limit=p.limit,
                                   sample=p.sample, seed=p.sample_seed, skip_empty=p.skip_empty)
        train = None
        if p.train_source:
            train, _ = read_aligned(p.train_source, p.train_reference, "train-", encoding=p.encoding,
                                    limit=p.train_limit, sample=True, seed=p.sample_seed, skip_empty=p.skip_empty)
        dev = None
        if p.dev_source:
            dev, _ = read_aligned(p.dev_source, p.dev_reference, "dev-", encoding=p.encoding, limit=None,
                                  sample=False, seed=p.sample_seed, skip_empty=p.skip_empty)
        return BenchmarkData(task="translation", test=test, train=train, dev=dev,
                             meta={"source": p.source, "test_lines": total})


class TranslationTableParams(EncodingParams, QuotingParams, SubsetParams):
    path: InputPath = Field(description="test table: TSV/CSV with a header row, or JSON Lines")
    train_path: InputPath | None = Field(None, description="training table with the same columns (for fine-tuning)")
    format: TableFormat = Field("auto", description="auto: from the extension (.tsv .tab .csv .jsonl .ndjson)")
    source_column: str = Field("source", description="column holding the source text")
    reference_column: str = Field("reference", description="column holding the reference translation")
    reference_columns: list[str] | None = Field(
        None, min_length=1, description="several reference columns (instead of reference_column)")
    id_column: str | None = Field(None, description="column of example ids (default: the line number)")
    skip_empty: bool = Field(False, description="drop rows with an empty source or reference instead of refusing")

    @model_validator(mode="after")
    def _format_known(self):
        check_format(self.format, self.path, "path")
        check_format(self.format, self.train_path, "train_path")
        return self


def read_translation_table(path: str, p: TranslationTableParams, prefix: str, limit: int | None,
                           sample: bool) -> tuple[list[Example], int]:
    table = read_table(path, p.format, p.encoding, p.quoting)
    ref_columns = p.reference_columns or [p.reference_column]
    table.require({"source_column": p.source_column, "id_column": p.id_column,
                   **{f"reference_columns[{k}]" if p.reference_columns else "reference_column": c
                      for k, c in enumerate(ref_columns)}})
    rows, seen = [], {}
    for i in choose(len(table.rows), limit, sample, p.sample_seed):
        line, rec = table.rows[i]
        ex_id = f"{prefix}{line}"
        if p.id_column:
            ex_id = cell_id(table, line, rec, p.id_column)
            if ex_id in seen:
                raise DataError(f"{path}:{line}: id {ex_id!r} ({p.id_column}) repeats line {seen[ex_id]}; ids must be unique")
            seen[ex_id] = line
        refs = tuple(cell_text(table, line, rec, c) for c in ref_columns)
        rows.append((ex_id, cell_text(table, line, rec, p.source_column), refs if len(refs) > 1 else refs[0], line))
    where = lambda ln: f"{path}:{ln}"  # noqa: E731
    return _clean_pairs(rows, p.skip_empty, where, where, path), len(table.rows)


class TranslationTable(Benchmark):
    name = "translation_table"
    task = "translation"
    description = "A TSV/CSV/JSONL table with named source and reference columns."
    Params = TranslationTableParams

    def load(self, ctx):
        p = self.params
        test, total = read_translation_table(p.path, p, "test-", p.limit, p.sample)
        train = None
        if p.train_path:
            train, _ = read_translation_table(p.train_path, p, "train-", p.train_limit, True)
        return BenchmarkData(task="translation", test=test, train=train, meta={"source": p.path, "test_rows": total})


@hookimpl
def register_benchmarks(register):
    register(ParallelText)
    register(TranslationTable)
