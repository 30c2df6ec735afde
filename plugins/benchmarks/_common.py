"""Reading benchmark files, choosing subsets and naming labels: shared by the benchmark plugins.

Scope: text files (plain lines, TSV, CSV, JSONL) decoded strictly (an undecodable byte is a
:class:`DataError` naming the file, the line and the fix, never a silently replaced character),
seeded subsets (``limit``/``sample``/``train_limit`` and stratified dev/test splits), and the
mapping of raw classification labels to label *names* in class-id order.

Non-goals: compressed files, JSON arrays (only JSON Lines), CSV dialect sniffing, and
multi-reference translation examples (:class:`harness.api.Example` holds one reference).
This module registers no plugin; it only holds the parts the plugins share.
"""
from __future__ import annotations

import unicodedata

import codecs
import csv
import io
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.errors import DataError
from harness.params import Params, Seed, not_a_regular_file

TableFormat = Literal["auto", "tsv", "csv", "jsonl"]
FORMAT_BY_SUFFIX = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


# ----------------------------------------------------------------------------- params shared by sources


class EncodingParams(Params):
    encoding: str = Field("utf-8", description="text encoding of the files (e.g. cp1252 for old corpora)")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}; use a Python codec name such as utf-8, cp1252, latin-1") from None
        return v


class SubsetParams(Params):
    limit: int | None = Field(None, ge=1, description="use only this many test examples")
    sample: bool = Field(False, description="with limit: a seeded random sample instead of the first examples")
    sample_seed: Seed = Field(0, description="seed of every data sample/split (fixed, so every cell sees the same data)")
    train_limit: int | None = Field(None, ge=1, description="use only this many training examples (a seeded sample)")

    @model_validator(mode="after")
    def _sample_needs_limit(self):
        if self.sample and self.limit is None:
            raise ValueError("sample: true needs limit: N (the number of test examples to sample)")
        return self


def check_format(fmt: str, path: str | None, key: str) -> None:
    """Config-time check that a table's format is known or can be told from its extension."""
    if fmt == "auto" and path is not None and Path(path).suffix.lower() not in FORMAT_BY_SUFFIX:
        raise ValueError(f"cannot tell the format of {key} {Path(path).name!r} from its extension; "
                         f"set format: to one of tsv, csv, jsonl (auto knows {', '.join(FORMAT_BY_SUFFIX)})")


def table_format(fmt: str, path: str) -> str:
    return FORMAT_BY_SUFFIX[Path(path).suffix.lower()] if fmt == "auto" else fmt


# ----------------------------------------------------------------------------- reading


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole file decoded strictly; a UTF-8 byte-order mark is dropped. Only regular files
    are read (a FIFO or /dev/zero would hang the run)."""
    problem = not_a_regular_file(path)
    if problem:
        raise DataError(problem)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:  # e.g. no read permission: the same for every cell, so a data error
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    encoding = _bom_encoding(raw, encoding)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not {encoding} text (byte 0x{raw[e.start]:02x} at offset {e.start}). "
            f"If the file uses another encoding, name it with the benchmark's `encoding:` parameter "
            f"(e.g. encoding: cp1252), or convert the file: iconv -f cp1252 -t utf-8 {Path(path).name} > "
            f"{Path(path).stem}.utf8{Path(path).suffix}") from None
    _refuse_wide_text(path, raw, text, encoding)
    if "\n" not in text and text.count("\r") > 1:  # one "line" would silently hold the whole file
        raise DataError(f"{path}: lines end with a bare \\r (classic Mac OS line endings), which this reader does not "
                        f"split on; convert them to \\n, e.g. tr '\\r' '\\n' < {Path(path).name} > "
                        f"{Path(path).stem}.unix{Path(path).suffix}")
    return text.removeprefix("\ufeff")


# byte-order marks of the encodings that are not ASCII-compatible (UTF-32 first: its LE mark starts
# with UTF-16's)
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def _bom_encoding(raw: bytes, encoding: str) -> str:
    """A file that starts with a UTF-16/UTF-32 byte-order mark is in that encoding, whatever the
    (default) utf-8 says: the mark is unambiguous, and read as utf-8 (or cp1252) the text would be
    every character followed by NUL bytes. An explicitly named other encoding is kept."""
    import codecs

    if codecs.lookup(encoding).name not in ("utf-8", "utf-16", "utf-32", "utf-8-sig"):
        return encoding
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name
    return encoding


def _refuse_wide_text(path, raw: bytes, text: str, encoding: str) -> None:
    """Refuse text that is mostly NUL characters: UTF-16 or UTF-32 without a byte-order mark read
    as a one-byte encoding. (A stray NUL in a segment is kept: reports show it as ␀.)"""
    if not text or text.count("\0") * 4 < len(text):
        return
    head = raw[:4096]
    if head.count(0) > 0.7 * len(head):  # ASCII in UTF-32: three NUL bytes of four
        guess = "utf-32-le" if head[0::4].count(0) < len(head[0::4]) / 2 else "utf-32-be"
    else:  # ASCII in UTF-16: every second byte
        guess = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
    raise DataError(f"{path}: read as {encoding}, {text.count(chr(0)):,} of its {len(text):,} characters are NUL bytes: "
                    f"it looks like {guess.upper()} text without a byte-order mark; name it with the benchmark's "
                    f"`encoding: {guess}` parameter, or convert the file: iconv -f {guess} -t utf-8 "
                    f"{Path(path).name} > {Path(path).stem}.utf8{Path(path).suffix}")


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """One string per line. Splits on "\\n" only: str.splitlines() would also split on U+2028,
    U+0085 and form feeds inside a segment and silently misalign parallel files."""
    lines = read_text(path, encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


@dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]  # (1-based line in the file, record)

    def require(self, wanted: dict[str, str | None]) -> None:
        """``wanted`` maps a parameter name to the column it names; one error lists all missing."""
        missing = [f"{col!r} ({key})" for key, col in wanted.items() if col is not None and col not in self.columns]
        if missing:
            hint = ""
            if len(self.columns) == 1 and any(sep in self.columns[0] for sep in ",\t;|"):
                hint = " (a single column whose name holds a separator: is `format:` right for this file?)"
            raise DataError(f"{self.path}: no column {', '.join(missing)}; columns present: "
                            f"{', '.join(self.columns) if self.columns else '(none)'}{hint}")


QUOTING_HELP = ("none: every character between separators is text, quotes included (default for TSV: the GLUE "
                "convention, SST-2 sentences contain bare quotes); csv: RFC 4180 quoting as Python's csv module "
                "writes it is removed (default for CSV)")


class QuotingParams(Params):
    quoting: Literal["none", "csv"] | None = Field(None, description=QUOTING_HELP + "; JSON Lines ignore it")


def csv_quoted(field: str) -> bool:
    """The shape Python's csv module gives a field holding a quote: wrapped in quotes, with every
    inner quote doubled (the text ``say "hi" now`` is written ``"say ""hi"" now"``)."""
    if len(field) < 4 or field[0] != '"' or field[-1] != '"':
        return False
    inner = field[1:-1]
    return '""' in inner and '"' not in inner.replace('""', "")


def read_table(path: str, fmt: str = "auto", encoding: str = "utf-8", quoting: str | None = None) -> Table:
    """A TSV/CSV file with a header row, or a JSON Lines file of objects.

    ``quoting`` (see :data:`QUOTING_HELP`): ``none`` splits each line on the separator and keeps
    every character; ``csv`` removes RFC 4180 quoting. In ``none`` mode a field with the shape
    the csv module writes (``"a ""b"" c"``) is a DataError naming its line and the fix, never a
    sentence passed on with stray quotes. Lines end at ``\n`` or ``\r\n`` only: U+2028, U+0085,
    vertical tabs and form feeds inside a field stay part of it. Nothing is stripped from a field.
    """
    fmt = table_format(fmt, path)
    text = read_text(path, encoding)
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    quoting = quoting or ("none" if fmt == "tsv" else "csv")
    sep = "\t" if fmt == "tsv" else ","
    if quoting == "none":
        lines = text.split("\n")
        records = [(i, ln.removesuffix("\r").split(sep)) for i, ln in enumerate(lines, 1)]
        records = [(i, r) for i, r in records if r != [""]]
    else:
        # StringIO(newline="") ends lines at \r, \n, \r\n only (not U+2028 inside a field)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
        records, last = [], 0
        try:
            for r in reader:
                if r:
                    records.append((last + 1, r))  # the line the record starts on
                last = reader.line_num
        except csv.Error as e:
            raise DataError(f"{path}:{last + 1}: malformed {fmt.upper()} with quoting: csv ({e}); if quotes in this "
                            "file are part of the text, set quoting: none") from None
    if not records:
        raise DataError(f"{path}: empty file; expected a header row naming the columns")
    header_line, header = records[0]
    header = [h.strip() for h in header]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"{path}:{header_line}: header repeats column {', '.join(map(repr, dup))}")
    rows = []
    for line, r in records[1:]:
        if quoting == "none":
            for col, value in zip(header, r):
                if csv_quoted(value):
                    raise DataError(
                        f"{path}:{line}: column {col!r} holds {_clip(value)}, a field quoted the way Python's csv "
                        "module writes it (wrapped in \" with inner quotes doubled); with quoting: none the model "
                        "would see those quote characters. Set quoting: csv to read the quoting, or write the file "
                        "without it (csv.writer(..., quoting=csv.QUOTE_NONE, escapechar=...))")
        if len(r) != len(header):
            hint = ""
            if quoting == "none" and any(x.startswith('"') or x.endswith('"') for x in r):
                hint = ("; a field starts or ends with a quote: if the file was written with csv quoting (a quoted "
                        "field may hold tabs or line breaks), set quoting: csv")
            elif fmt == "tsv":
                hint = "; is the file really tab-separated?"
            raise DataError(f"{path}:{line}: {len(r)} fields, but the header has {len(header)} "
                            f"({', '.join(header)}){hint}")
        rows.append((line, dict(zip(header, r))))
    return Table(path, header, rows)


def _clip(s: str, n: int = 50) -> str:
    return repr(s) if len(s) <= n else repr(s[:n - 3]) + "..."


def _read_jsonl(path: str, text: str) -> Table:
    """One object per line. Python's json would also take NaN/Infinity, keep the last of two equal
    keys and recurse without limit; each of those is a DataError naming the line instead."""
    rows, columns = [], {}

    def no_constants(name: str):
        raise ValueError(f"{name} is not JSON")

    def unique_keys(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"key {', '.join(map(repr, dup))} given twice in one object")
        return dict(pairs)

    for i, ln in enumerate(text.split("\n"), 1):
        if not ln.strip():
            continue
        try:
            obj = json.loads(ln, parse_constant=no_constants, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg} at column {e.colno})") from None
        except ValueError as e:
            raise DataError(f"{path}:{i}: {e}") from None
        except RecursionError:
            raise DataError(f"{path}:{i}: JSON nested too deeply to read") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
        rows.append((i, obj))
        columns.update(dict.fromkeys(obj))
    if not rows:
        raise DataError(f"{path}: empty file; expected one JSON object per line")
    return Table(path, list(columns), rows)


def cell_text(table: Table, line: int, record: dict, column: str) -> str:
    """A text field; JSONL records may lack a key or hold a non-string."""
    if column not in record:
        raise DataError(f"{table.path}:{line}: the record has no {column!r} key")
    v = record[column]
    if not isinstance(v, str):
        raise DataError(f"{table.path}:{line}: {column!r} must be a string, got {json.dumps(v)}")
    return v


def cell_id(table: Table, line: int, record: dict, column: str) -> str:
    if column not in record:
        raise DataError(f"{table.path}:{line}: the record has no {column!r} key")
    v = record[column]
    if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v).strip() == "":
        raise DataError(f"{table.path}:{line}: id ({column!r}) must be a non-empty string or integer, got {json.dumps(v)}")
    return str(v)


# ----------------------------------------------------------------------------- subsets


def choose(n: int, limit: int | None, sample: bool, seed: int) -> list[int]:
    """Indices of the examples to keep, in their original order: the first ``limit``, or a
    seeded random sample of ``limit`` (the same for every cell and run)."""
    if limit is None or limit >= n:
        return list(range(n))
    if not sample:
        return list(range(limit))
    return sorted(random.Random(seed).sample(range(n), limit))


def stratified_split(labels: Sequence[Any], dev_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, list[int]]:
    """Seeded train/dev/test indices, drawn per label so each split keeps the class balance.

    Each class of size n gives round(n * fraction) examples to test, then to dev; the rest is
    train. Indices are returned in original order.
    """
    rng = random.Random(seed)
    by_label: dict[Any, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    out: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    for lab in sorted(by_label, key=str):
        idx = by_label[lab][:]
        rng.shuffle(idx)
        n_test, n_dev = round(len(idx) * test_fraction), round(len(idx) * dev_fraction)
        out["test"] += idx[:n_test]
        out["dev"] += idx[n_test:n_test + n_dev]
        out["train"] += idx[n_test + n_dev:]
    return {k: sorted(v) for k, v in out.items()}


class SplitFractions(Params):
    dev_fraction: float = Field(0.1, ge=0, lt=1, description="share of each class held out as dev (0: no dev split)")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of each class held out as test")

    @model_validator(mode="after")
    def _fractions(self):
        if self.dev_fraction + self.test_fraction >= 1:
            raise ValueError(f"dev_fraction + test_fraction must be < 1 (got {self.dev_fraction} + "
                             f"{self.test_fraction}), or nothing is left to train on")
        return self


# ----------------------------------------------------------------------------- labels


@dataclass
class RawExample:
    """A classification example before its label is named. ``where`` locates it for messages
    ("file.tsv:12" or "split 'validation' row 3")."""

    where: str
    id: str
    text: str
    label: Any
    pair: str | None = None


def label_key(raw: Any) -> str:
    """Raw labels become strings: 1 -> "1", "pos" -> "pos" (bool is refused: ambiguous), in
    Unicode's composed form (NFC), so spellings that differ only in composition are one label."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise TypeError(raw)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    # NFC: 'café' typed precomposed in one file and decomposed (e + U+0301) in another is one label
    return unicodedata.normalize("NFC", str(raw).strip())


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit()


def label_sort_key(name: str) -> tuple:
    """Numeric names sort numerically ("2" before "10"), then the others alphabetically."""
    return (0, int(name), "") if _is_int(name) else (1, 0, name)


class LabelParams(Params):
    labels: list[str] | None = Field(
        None, description="label names in class-id order (default: sorted labels of the training data)")
    label_names: dict[str, str] | None = Field(
        None, description="raw label -> name, e.g. {0: negative, 1: positive}; class ids follow the raw labels' order")

    @field_validator("label_names", mode="before")
    @classmethod
    def _keys_as_strings(cls, v):
        # YAML reads `0: negative` with an int key; raw labels are compared as strings
        if isinstance(v, dict):
            return {(label_key(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k): val
                    for k, val in v.items()}
        return v

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, v):
        if v is not None:
            v = [unicodedata.normalize("NFC", x) for x in v]  # as the data's labels are (label_key)
            dup = sorted({x for x in v if v.count(x) > 1})
            if dup:
                raise ValueError(f"labels repeat {', '.join(map(repr, dup))}; each name is one class")
            if len(v) < 2:
                raise ValueError("labels must name at least two classes")
        return v

    @field_validator("label_names")
    @classmethod
    def _distinct_names(cls, v):
        if v is not None:
            v = {unicodedata.normalize("NFC", k): unicodedata.normalize("NFC", x) for k, x in v.items()}
            names = list(v.values())
            dup = sorted({x for x in names if names.count(x) > 1})
            if dup:
                raise ValueError(f"label_names maps several raw labels to {', '.join(map(repr, dup))}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.label_names is not None and self.labels is not None:
            extra = [x for x in self.label_names.values() if x not in self.labels]
            if extra:
                raise ValueError(f"label_names uses {', '.join(map(repr, extra))}, which labels does not list "
                                 f"(labels: {', '.join(self.labels)})")
        return self


def name_labels(splits: dict[str, list[RawExample] | None], *, labels: list[str] | None = None,
                label_names: dict[str, str] | None = None, class_names: list[str] | None = None,
                train_source: str = "the training data") -> tuple[dict[str, list | None], list[str]]:
    """Turn raw labels into names and fix the class-id order.

    Order of precedence: ``labels`` (explicit) > ``label_names`` (order of its raw keys,
    numerically when they are integers) > ``class_names`` (a datasets ClassLabel) > the sorted
    labels seen in the train split. A dev/test label outside that set is a DataError naming
    where it occurs and the known labels, rather than a class id the model never saw.
    """
    from harness.api import Example

    mapping: dict[str, str] | None = None
    mapping_what = ""
    if label_names is not None:
        mapping, mapping_what = label_names, "label_names"
    elif class_names is not None:
        mapping, mapping_what = {str(i): n for i, n in enumerate(class_names)}, "the dataset's ClassLabel ids"

    def name_of(ex: RawExample) -> str:
        try:
            key = label_key(ex.label)
        except TypeError:
            raise DataError(f"{ex.where}: label must be a string or an integer, got {json.dumps(ex.label)}") from None
        if not key:
            raise DataError(f"{ex.where}: empty label")
        if mapping is None:
            return key
        if key not in mapping:
            if class_names is not None and label_names is None and key == "-1":
                raise DataError(f"{ex.where}: label -1 means 'no label' (hidden test labels, as in GLUE); "
                                "evaluate on a labelled split instead (e.g. the validation split)")
            raise DataError(f"{ex.where}: label {key!r} is not in {mapping_what} "
                            f"(known: {', '.join(map(repr, mapping))})")
        return mapping[key]

    named = {split: None if rows is None else [(r, name_of(r)) for r in rows] for split, rows in splits.items()}

    if labels is not None:
        order, complaint = list(labels), "is not one of the names given in `labels`"
    elif label_names is not None:
        keys = list(label_names)
        if all(_is_int(k) for k in keys):
            keys.sort(key=int)
        order, complaint = [label_names[k] for k in keys], "is not one of the names in label_names"
    elif class_names is not None:
        order, complaint = list(class_names), "is not one of the dataset's ClassLabel names"
    elif named.get("train"):
        order = sorted({n for _, n in named["train"]}, key=label_sort_key)
        complaint = f"does not occur in the training data ({train_source})"
        if len(order) < 2:
            raise DataError(f"{train_source}: every training example has label {order[0]!r}; "
                            "a classifier needs at least two classes")
    else:
        raise DataError("without training data the label names cannot be inferred; give `labels:` "
                        "(names in class-id order) or `label_names:`")

    known = set(order)
    out: dict[str, list | None] = {}
    for split, rows in named.items():
        if rows is None:
            out[split] = None
            continue
        for r, name in rows:
            if name not in known:
                raise DataError(f"{r.where}: label {name!r} {complaint}; known labels: {', '.join(order)}")
        out[split] = [Example(id=r.id, source=r.text, source_pair=r.pair, label=name) for r, name in rows]
    return out, order


def present(items: Iterable[str]) -> str:
    return ", ".join(items) or "(none)"
