"""Translation sources from local files: parallel_text and translation_table.

Each test checks what a user sees: the exact examples loaded, or the one error message naming
the file, the line and the fix.
"""
from __future__ import annotations

import json

import pytest

from bench_helpers import config_errors, load, make
from conftest import shared_data
from harness.errors import DataError

SRC = ["the cat sat on the mat", "the dog ran to the house", "a big red cat", "the small dog is green"]
REF = ["die katze sass auf der matte", "der hund lief zum haus", "eine grosse rote katze", "der kleine hund ist gruen"]


def write_lines(path, lines, encoding="utf-8", newline="\n"):
    path.write_bytes("".join(ln + newline for ln in lines).encode(encoding))
    return path


@pytest.fixture
def many(tmp_path):
    """40 aligned lines, for subsets."""
    write_lines(tmp_path / "m.en", [f"source {i}" for i in range(1, 41)])
    write_lines(tmp_path / "m.de", [f"ziel {i}" for i in range(1, 41)])
    return tmp_path


# ----------------------------------------------------------------------------- parallel_text


def test_parallel_text_loads_aligned_lines_with_line_ids(tmp_path, translation_files):
    data = load("parallel_text", tmp_path, source="test.en", reference="test.de")
    assert data.task == "translation"
    assert [(e.id, e.source, e.reference) for e in data.test] == [
        (f"test-{i}", s, r) for i, (s, r) in enumerate(zip(SRC, REF), 1)]
    assert data.train is None
    assert data.meta["test_lines"] == 4


def test_limit_takes_the_first_lines_and_sample_a_seeded_subset(many):
    first = load("parallel_text", many, source="m.en", reference="m.de", limit=3)
    assert [e.id for e in first.test] == ["test-1", "test-2", "test-3"]

    a = load("parallel_text", many, source="m.en", reference="m.de", limit=5, sample=True)
    b = load("parallel_text", many, source="m.en", reference="m.de", limit=5, sample=True)
    c = load("parallel_text", many, source="m.en", reference="m.de", limit=5, sample=True, sample_seed=1)
    ids = [e.id for e in a.test]
    assert ids == [e.id for e in b.test]                       # the same for every cell and rerun
    assert ids != [e.id for e in c.test]                       # the seed matters
    assert ids != ["test-1", "test-2", "test-3", "test-4", "test-5"]
    nums = [int(i.split("-")[1]) for i in ids]
    assert nums == sorted(nums) and len(set(nums)) == 5         # file order, no repeats
    assert all(e.source == f"source {n}" and e.reference == f"ziel {n}" for e, n in zip(a.test, nums))


def test_limit_larger_than_the_file_keeps_everything(tmp_path, translation_files):
    assert len(load("parallel_text", tmp_path, source="test.en", reference="test.de", limit=100).test) == 4


def test_non_utf8_file_names_file_line_byte_and_fix(tmp_path):
    write_lines(tmp_path / "s.en", ["plain", "a café scene", "x"], encoding="cp1252")
    write_lines(tmp_path / "s.de", ["a", "b", "c"])
    with pytest.raises(DataError) as info:
        load("parallel_text", tmp_path, source="s.en", reference="s.de")
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 's.en'}:2: not utf-8 text (byte 0xe9 at offset 11)")
    assert "encoding: cp1252" in msg and "iconv -f cp1252 -t utf-8 s.en" in msg
    # naming the encoding reads it as intended
    data = load("parallel_text", tmp_path, source="s.en", reference="s.de", encoding="cp1252")
    assert data.test[1].source == "a café scene"


def test_real_cp1252_rt_polarity_file_gives_the_clear_error(tmp_path):
    pos = shared_data("rt_polarity", "rt-polarity.pos")
    with pytest.raises(DataError) as info:
        load("parallel_text", tmp_path, source=str(pos), reference=str(pos))
    assert str(info.value).startswith(f"{pos}:44: not utf-8 text (byte 0xf3 at offset 4645).")


def test_line_count_mismatch(tmp_path):
    write_lines(tmp_path / "a.en", SRC)
    write_lines(tmp_path / "a.de", REF[:3])
    with pytest.raises(DataError) as info:
        load("parallel_text", tmp_path, source="a.en", reference="a.de")
    assert str(info.value) == (f"{tmp_path / 'a.en'} has 4 lines but {tmp_path / 'a.de'} has 3; "
                               "the files must be aligned line by line (one segment per line in each)")


def test_empty_segments_are_refused_or_skipped(tmp_path):
    write_lines(tmp_path / "e.en", ["one", "two", "  ", "four"])
    write_lines(tmp_path / "e.de", ["eins", "", "drei", "vier"])
    with pytest.raises(DataError) as info:
        load("parallel_text", tmp_path, source="e.en", reference="e.de")
    assert str(info.value).startswith(f"{tmp_path / 'e.de'}:2: empty reference segment; ")
    assert "skip_empty: true" in str(info.value)
    data = load("parallel_text", tmp_path, source="e.en", reference="e.de", skip_empty=True)
    assert [(e.id, e.source) for e in data.test] == [("test-1", "one"), ("test-4", "four")]

    write_lines(tmp_path / "f.en", ["one", ""])
    write_lines(tmp_path / "f.de", ["eins", "zwei"])
    with pytest.raises(DataError, match=r"f\.en:2: empty source segment"):
        load("parallel_text", tmp_path, source="f.en", reference="f.de")


def test_empty_file_and_all_skipped(tmp_path):
    (tmp_path / "z.en").write_text("")
    (tmp_path / "z.de").write_text("")
    with pytest.raises(DataError, match=r"z\.en: no examples \(the file has no data lines\)"):
        load("parallel_text", tmp_path, source="z.en", reference="z.de")
    write_lines(tmp_path / "y.en", ["", "x"])
    write_lines(tmp_path / "y.de", ["a", ""])
    with pytest.raises(DataError, match="skip_empty dropped all 2 selected pairs"):
        load("parallel_text", tmp_path, source="y.en", reference="y.de", skip_empty=True)


def test_bom_crlf_and_unicode_line_separators(tmp_path):
    # U+2028 inside a segment must not split it: str.splitlines() would, misaligning the files
    (tmp_path / "w.en").write_bytes("\ufeffthe cat\r\na\u2028b\r\n".encode("utf-8"))
    write_lines(tmp_path / "w.de", ["die katze", "a b"])
    data = load("parallel_text", tmp_path, source="w.en", reference="w.de")
    assert [e.source for e in data.test] == ["the cat", "a\u2028b"]


def test_train_files_and_seeded_train_limit(many, translation_files):
    data = load("parallel_text", many, source="test.en", reference="test.de", train_source="m.en",
                train_reference="m.de", train_limit=7)
    assert len(data.test) == 4
    assert len(data.train) == 7 and all(e.id.startswith("train-") for e in data.train)
    again = load("parallel_text", many, source="test.en", reference="test.de", train_source="m.en",
                 train_reference="m.de", train_limit=7)
    assert [e.id for e in again.train] == [e.id for e in data.train]
    assert [e.id for e in data.train] != [f"train-{i}" for i in range(1, 8)]  # a sample, not the head
    full = load("parallel_text", many, source="test.en", reference="test.de", train_source="m.en", train_reference="m.de")
    assert len(full.train) == 40
    assert full.dev is None


def test_dev_files_are_the_whole_dev_split_in_file_order(many, translation_files):
    data = load("parallel_text", many, source="test.en", reference="test.de", train_source="m.en",
                train_reference="m.de", train_limit=7, dev_source="test.en", dev_reference="test.de")
    assert [e.id for e in data.dev] == ["dev-1", "dev-2", "dev-3", "dev-4"]
    assert [(e.source, e.reference) for e in data.dev] == [(e.source, e.reference) for e in data.test]


def test_parallel_text_config_errors_are_located(tmp_path, translation_files):
    errs = config_errors(tmp_path, """\
        - name: parallel_text
          params:
            source: test.en
            reference: missing.de
            train_source: test.en
            encoding: klingon
            sample: true
        """)
    text = "\n".join(errs)
    assert f"exp.yaml:8: benchmarks[0].params.reference: file not found: {tmp_path / 'missing.de'}" in text
    assert "benchmarks[0].params.encoding: unknown encoding 'klingon'; use a Python codec name such as utf-8, cp1252" in text

    errs = config_errors(tmp_path, """\
        - name: parallel_text
          params: {source: test.en, reference: test.de, train_source: test.en, sample: true}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: sample: true needs limit: N "
                    "(the number of test examples to sample)"]
    errs = config_errors(tmp_path, """\
        - name: parallel_text
          params: {source: test.en, reference: test.de, train_source: test.en}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: train_source and train_reference must be "
                    "given together"]
    errs = config_errors(tmp_path, """\
        - name: parallel_text
          params: {source: test.en, reference: test.de, dev_reference: test.de}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params: dev_source and dev_reference must be "
                    "given together"]


def test_fingerprint_follows_file_content(tmp_path, translation_files):
    src, _ = translation_files
    fp = make("parallel_text", tmp_path, source="test.en", reference="test.de").fingerprint()
    assert fp == make("parallel_text", tmp_path, source="test.en", reference="test.de").fingerprint()
    assert fp != make("parallel_text", tmp_path, source="test.en", reference="test.de", limit=2).fingerprint()
    src.write_text(src.read_text() + "one more\n")
    assert fp != make("parallel_text", tmp_path, source="test.en", reference="test.de").fingerprint()


# ----------------------------------------------------------------------------- translation_table


@pytest.fixture
def tables(tmp_path):
    rows = [("s1", 'he said "hi", then left', "er sagte »hallo«"), ("s2", "a\tb", "c"), ("s3", "x", "y")]
    # TSV cannot hold a tab inside a field, so its second row differs
    (tmp_path / "t.tsv").write_text("id\ten\tde\n" + "".join(
        f"{i}\t{s}\t{r}\n" for i, s, r in [rows[0], ("s2", "a b", "c"), rows[2]]), encoding="utf-8")
    (tmp_path / "t.csv").write_text('id,en,de\ns1,"he said ""hi"", then left",er sagte »hallo«\ns2,"a\tb",c\ns3,x,y\n',
                                    encoding="utf-8")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"id": i, "en": s, "de": r}) + "\n" for i, s, r in rows),
                                      encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("name", ["t.tsv", "t.csv", "t.jsonl"])
def test_translation_table_formats(tables, name):
    data = load("translation_table", tables, path=name, source_column="en", reference_column="de")
    assert [e.id for e in data.test] == ["test-2", "test-3", "test-4"] if name != "t.jsonl" else \
        [e.id for e in data.test] == ["test-1", "test-2", "test-3"]
    assert data.test[0].source == 'he said "hi", then left'
    assert data.test[0].reference == "er sagte »hallo«"
    assert data.test[1].source == ("a b" if name == "t.tsv" else "a\tb")
    with_ids = load("translation_table", tables, path=name, source_column="en", reference_column="de", id_column="id")
    assert [e.id for e in with_ids.test] == ["s1", "s2", "s3"]


def test_tsv_keeps_bare_quotes(tmp_path):
    # GLUE-style TSV: quotes are text, not CSV quoting
    (tmp_path / "q.tsv").write_text('source\treference\n" a quoted start\tb "\n', encoding="utf-8")
    data = load("translation_table", tmp_path, path="q.tsv")
    assert (data.test[0].source, data.test[0].reference) == ('" a quoted start', 'b "')


def _csv_written_tsv(path, rows):
    """A TSV the way Python's csv module writes it: fields holding a quote are quoted, quotes doubled."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["source", "reference"])
        w.writerows(rows)
    return path


CSV_ROWS = [("plain words", "schlichte worte"), ('he said "hi" twice', 'er sagte "hallo"'), ("end", "ende")]


def test_csv_quoted_tsv_is_refused_in_none_mode_with_line_and_fix(tmp_path):
    """The real failure: 27 of 500 sentences reached the model with stray quotes, silently."""
    _csv_written_tsv(tmp_path / "q.tsv", CSV_ROWS)
    assert (tmp_path / "q.tsv").read_text().splitlines()[2] == '"he said ""hi"" twice"\t"er sagte ""hallo"""'
    for params in ({}, {"quoting": "none"}):
        with pytest.raises(DataError) as info:
            load("translation_table", tmp_path, path="q.tsv", **params)
        assert str(info.value) == (
            f"{tmp_path / 'q.tsv'}:3: column 'source' holds '\"he said \"\"hi\"\" twice\"', a field quoted the way "
            "Python's csv module writes it (wrapped in \" with inner quotes doubled); with quoting: none the model "
            "would see those quote characters. Set quoting: csv to read the quoting, or write the file without it "
            "(csv.writer(..., quoting=csv.QUOTE_NONE, escapechar=...))")


def test_quoting_csv_reads_the_csv_module_tsv_exactly(tmp_path):
    _csv_written_tsv(tmp_path / "q.tsv", CSV_ROWS + [("tab\tinside", "zwei\nzeilen")])
    data = load("translation_table", tmp_path, path="q.tsv", quoting="csv")
    assert [(e.id, e.source, e.reference) for e in data.test] == [
        ("test-2", "plain words", "schlichte worte"), ("test-3", 'he said "hi" twice', 'er sagte "hallo"'),
        ("test-4", "end", "ende"), ("test-5", "tab\tinside", "zwei\nzeilen")]  # ids: the line a record starts on


def test_csv_with_quoting_none_keeps_quotes_and_splits_on_commas(tmp_path):
    (tmp_path / "n.csv").write_text('source,reference\n"a b",c\n', encoding="utf-8")
    data = load("translation_table", tmp_path, path="n.csv", quoting="none")
    assert (data.test[0].source, data.test[0].reference) == ('"a b"', "c")
    assert load("translation_table", tmp_path, path="n.csv").test[0].source == "a b"  # csv is the CSV default


def test_quoted_field_holding_a_tab_gets_a_hint(tmp_path):
    _csv_written_tsv(tmp_path / "t.tsv", [("a\tb", "c")])
    hint = ("a field starts or ends with a quote: if the file was written with csv quoting (a quoted field may hold "
            "tabs or line breaks), set quoting: csv")
    with pytest.raises(DataError) as info:
        load("translation_table", tmp_path, path="t.tsv")
    assert str(info.value) == f"{tmp_path / 't.tsv'}:2: 3 fields, but the header has 2 (source, reference); {hint}"
    _csv_written_tsv(tmp_path / "n.tsv", [("one line", "two\nlines")])  # the next line holds 'lines"'
    with pytest.raises(DataError) as info:
        load("translation_table", tmp_path, path="n.tsv")
    assert str(info.value) == f"{tmp_path / 'n.tsv'}:3: 1 fields, but the header has 2 (source, reference); {hint}"


def test_malformed_quoting_is_refused_not_repaired(tmp_path):
    (tmp_path / "m.csv").write_text('source,reference\n"a"b,c\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"m.csv:2: malformed CSV with quoting: csv \(.*\); if quotes in this file are "
                                        r"part of the text, set quoting: none"):
        load("translation_table", tmp_path, path="m.csv")


def test_bare_cr_line_endings_are_refused_not_read_as_one_line(tmp_path):
    (tmp_path / "mac.txt").write_bytes(b"one\rtwo\rthree\r")
    write_lines(tmp_path / "r.txt", ["eins", "zwei", "drei"])
    with pytest.raises(DataError) as info:
        load("parallel_text", tmp_path, source="mac.txt", reference="r.txt")
    assert str(info.value) == (f"{tmp_path / 'mac.txt'}: lines end with a bare \\r (classic Mac OS line endings), "
                               "which this reader does not split on; convert them to \\n, e.g. tr '\\r' '\\n' < "
                               "mac.txt > mac.unix.txt")


@pytest.mark.parametrize("line, message", [
    ('{"source": "a", "reference": NaN}', "NaN is not JSON"),
    ('{"source": "a", "reference": "b", "source": "c"}', "key 'source' given twice in one object"),
    ('{"source": "a", "reference": ' + "[" * 100000 + "]" * 100000 + "}", "JSON nested too deeply to read"),
])
def test_jsonl_lines_python_would_bend_are_refused(tmp_path, line, message):
    (tmp_path / "t.jsonl").write_text('{"source": "x", "reference": "y"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load("translation_table", tmp_path, path="t.jsonl")
    assert str(info.value) == f"{tmp_path / 't.jsonl'}:2: {message}"


def test_harness_plugins_documents_quoting():
    from harness.params import describe
    from harness.plugins import default_plugins

    for name in ("translation_table", "text_classification"):
        quoting = next(d for d in describe(default_plugins().get("benchmark", name).Params) if d["name"] == "quoting")
        assert quoting["type"] == "'none' | 'csv' | null"
        assert quoting["description"].startswith("none: every character between separators is text, quotes included "
                                                 "(default for TSV")
        assert "csv: RFC 4180 quoting as Python's csv module writes it is removed (default for CSV)" in \
            quoting["description"]


SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
@pytest.mark.parametrize("fmt", ["parallel", "tsv", "csv", "jsonl"])
def test_unicode_line_separators_stay_inside_their_segment(tmp_path, sep, fmt):
    """str.splitlines() splits on all of these; the readers split on \\n (and \\r\\n) only, keep the
    character, and never shift alignment. Nothing else is stripped either (spaces included)."""
    # (a \r right before \n is a CRLF line ending, so the reference holds the character mid-segment)
    src, ref = [" one" + sep + "two ", "three"], ["eins" + (sep if sep != "\r" else ""), "zw" + sep + "ei"]
    if fmt == "parallel":
        write_lines(tmp_path / "s.txt", src)
        write_lines(tmp_path / "r.txt", ref)
        data = load("parallel_text", tmp_path, source="s.txt", reference="r.txt")
    elif fmt == "jsonl":
        (tmp_path / "t.jsonl").write_text("".join(json.dumps({"source": s, "reference": r}, ensure_ascii=False) + "\n"
                                                  for s, r in zip(src, ref)), encoding="utf-8")
        data = load("translation_table", tmp_path, path="t.jsonl")
    else:
        d = "\t" if fmt == "tsv" else ","
        (tmp_path / f"t.{fmt}").write_text(f"source{d}reference\n" + "".join(f"{s}{d}{r}\n" for s, r in zip(src, ref)),
                                           encoding="utf-8", newline="")
        if sep == "\r" and fmt == "csv":  # the csv module ends a record at a bare \r: it must be quoted there
            (tmp_path / "t.csv").write_text('source,reference\n" one\rtwo ",eins\nthree,"zw\rei"\n', newline="")
        data = load("translation_table", tmp_path, path=f"t.{fmt}")
    assert [(e.source, e.reference) for e in data.test] == list(zip(src, ref))


def test_unknown_column_lists_the_columns_present(tables):
    with pytest.raises(DataError) as info:
        load("translation_table", tables, path="t.tsv", source_column="src", reference_column="de", id_column="key")
    assert str(info.value) == (f"{tables / 't.tsv'}: no column 'src' (source_column), 'key' (id_column); "
                               "columns present: id, en, de")
    with pytest.raises(DataError, match=r"no column 'source' \(source_column\), 'reference' \(reference_column\); "
                                        r"columns present: id, en, de"):
        load("translation_table", tables, path="t.jsonl")


def test_wrong_format_is_hinted(tmp_path):
    (tmp_path / "really_csv.tsv").write_text("source,reference\na,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load("translation_table", tmp_path, path="really_csv.tsv")
    assert str(info.value).endswith("columns present: source,reference (a single column whose name holds a separator: "
                                    "is `format:` right for this file?)")
    data = load("translation_table", tmp_path, path="really_csv.tsv", format="csv")
    assert (data.test[0].source, data.test[0].reference) == ("a", "b")


def test_table_row_errors_name_the_line(tmp_path):
    (tmp_path / "bad.tsv").write_text("source\treference\na\tb\nc\td\te\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load("translation_table", tmp_path, path="bad.tsv")
    assert str(info.value) == (f"{tmp_path / 'bad.tsv'}:3: 3 fields, but the header has 2 (source, reference); "
                               "is the file really tab-separated?")
    (tmp_path / "bad.jsonl").write_text('{"source": "a", "reference": "b"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: expected a JSON object per line, got list"):
        load("translation_table", tmp_path, path="bad.jsonl")
    (tmp_path / "miss.jsonl").write_text('{"source": "a", "reference": "b"}\n{"source": "c"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"miss\.jsonl:2: the record has no 'reference' key"):
        load("translation_table", tmp_path, path="miss.jsonl")
    (tmp_path / "num.jsonl").write_text('{"source": 5, "reference": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"num\.jsonl:1: 'source' must be a string, got 5"):
        load("translation_table", tmp_path, path="num.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"source": "a", "reference": "b"}\n{"source": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl:2: not valid JSON"):
        load("translation_table", tmp_path, path="broken.jsonl")
    (tmp_path / "dup.csv").write_text("id,source,reference\n7,a,b\n7,c,d\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dup\.csv:3: id '7' \(id\) repeats line 2; ids must be unique"):
        load("translation_table", tmp_path, path="dup.csv", id_column="id")
    (tmp_path / "empty.csv").write_text("source,reference\na,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.csv:2: empty reference segment"):
        load("translation_table", tmp_path, path="empty.csv")


def test_table_format_is_checked_at_validate(tmp_path):
    (tmp_path / "data.txt").write_text("source\treference\na\tb\n", encoding="utf-8")
    errs = config_errors(tmp_path, """\
        - name: translation_table
          params: {path: data.txt}
        """)
    assert len(errs) == 1
    assert errs[0].endswith("benchmarks[0].params: cannot tell the format of path 'data.txt' from its extension; "
                            "set format: to one of tsv, csv, jsonl (auto knows .tsv, .tab, .csv, .jsonl, .ndjson)")
    errs = config_errors(tmp_path, """\
        - name: translation_table
          params: {path: data.txt, format: xml}
        """)
    assert any("benchmarks[0].params.format: Input should be 'auto', 'tsv', 'csv' or 'jsonl' (got 'xml')" in e
               for e in errs)
    data = load("translation_table", tmp_path, path="data.txt", format="tsv")
    assert (data.test[0].source, data.test[0].reference) == ("a", "b")


def test_table_train_path_limit_and_sample(tmp_path):
    (tmp_path / "big.jsonl").write_text("".join(json.dumps({"source": f"s{i}", "reference": f"r{i}"}) + "\n"
                                                for i in range(30)), encoding="utf-8")
    data = load("translation_table", tmp_path, path="big.jsonl", train_path="big.jsonl", limit=4, train_limit=6)
    assert [e.source for e in data.test] == ["s0", "s1", "s2", "s3"]
    assert len(data.train) == 6 and [e.source for e in data.train] != [f"s{i}" for i in range(6)]
    sampled = load("translation_table", tmp_path, path="big.jsonl", limit=4, sample=True, sample_seed=3)
    assert len(sampled.test) == 4 and [e.source for e in sampled.test] != ["s0", "s1", "s2", "s3"]
