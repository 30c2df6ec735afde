"""Several references per segment: loading them (``references:`` files, ``reference_columns``),
scoring against all of them exactly as the sacrebleu CLI does with several reference files
(values, signatures with nrefs, paired bootstrap p-values), and the run outputs keeping them.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.api import Example, reference_streams
from harness.experiment.load import load_experiment_dict
from harness.errors import DataError, HarnessError
from harness.plugins import default_plugins

SRC = ["the cat sits on the mat", "the dog ran to the big house", "a man with an orange hat", "two children play",
       "it has rained for three days", "she bought twelve apples", "the weather is nice today", "we meet at the station"]
REF_A = ["Die Katze sitzt auf der Matte.", "Der Hund lief schnell zum großen Haus!",
         "Ein Mann mit einem orangefarbenen Hut.", "Zwei Kinder spielen im Garten.",
         "Es regnet seit 3 Tagen.", "Sie kaufte 12 Äpfel.", "Das Wetter ist heute schön.", "Wir treffen uns am Bahnhof."]
REF_B = ["Eine Katze sitzt auf einer Matte.", "Der Hund rannte zum grossen Haus.",
         "Ein Mann trägt einen orangen Hut.", "Zwei Kinder spielen.",
         "Seit drei Tagen regnet es.", "Sie hat zwölf Äpfel gekauft.", "Heute ist das Wetter schön.",
         "Treffen am Bahnhof."]
REF_C = ["Die Katze sitzt auf einer Matte", "Der Hund lief zum Haus", "Mann mit orangem Hut", "Zwei Kinder",
         "Es regnet seit drei Tagen", "Zwölf Äpfel kaufte sie", "Schönes Wetter heute", "Wir treffen uns am Bahnhof"]
HYP = ["die Katze sitzt auf einer Matte .", "Der Hund rannte zum grossen Haus!", "Ein Mann mit orangem Hut.",
       "Zwei Kinder spielen im Garten.", "Seit 3 Tagen regnet es.", "sie kaufte zwölf Äpfel",
       "Heute ist das Wetter schön.", "Treffen um 8:30 am Bahnhof."]
BASE = ["Katze Matte .", "Der Hund Haus!", "Ein Mann Hut.", "Kinder spielen.", "Es regnet.", "Äpfel",
        "Wetter schön.", "Bahnhof."]


@pytest.fixture
def files(tmp_path):
    for name, lines in (("src.en", SRC), ("a.de", REF_A), ("b.de", REF_B), ("c.de", REF_C), ("hyp.de", HYP),
                        ("base.de", BASE)):
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def benchmark(name: str, base_dir: Path, **params):
    cls = default_plugins().get("benchmark", name)
    return cls(cls.Params.model_validate(params, context={"base_dir": base_dir}))


def test_parallel_text_reads_every_reference_file(files):
    data = benchmark("parallel_text", files, source="src.en", references=["a.de", "b.de", "c.de"]).load(None)
    ex = data.test[1]
    assert ex.reference == REF_A[1] and ex.references == (REF_A[1], REF_B[1], REF_C[1])
    assert ex.all_references() == (REF_A[1], REF_B[1], REF_C[1])
    one = benchmark("parallel_text", files, source="src.en", reference="a.de").load(None).test[1]
    assert one.references is None and one.all_references() == (REF_A[1],)


def test_a_misaligned_or_empty_second_reference_is_named(files):
    (files / "short.de").write_text("\n".join(REF_B[:5]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"src\.en has 8 lines but .*short\.de has 5"):
        benchmark("parallel_text", files, source="src.en", references=["a.de", "short.de"]).load(None)
    (files / "hole.de").write_text("\n".join(REF_B[:3] + [""] + REF_B[4:]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"hole\.de:4: empty reference segment"):
        benchmark("parallel_text", files, source="src.en", references=["a.de", "hole.de"]).load(None)


def test_translation_table_reads_several_reference_columns(files):
    rows = [{"src": s, "r1": a, "r2": b} for s, a, b in zip(SRC, REF_A, REF_B)]
    (files / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = benchmark("translation_table", files, path="t.jsonl", source_column="src",
                     reference_columns=["r1", "r2"]).load(None)
    assert [ex.references for ex in data.test] == list(zip(REF_A, REF_B))
    with pytest.raises(DataError, match=r"no column 'r3' \(reference_columns\[1\]\)"):
        benchmark("translation_table", files, path="t.jsonl", source_column="src", reference_columns=["r1", "r3"]).load(None)


CONFIG = {"name": "x", "models": [{"path": "Helsinki-NLP/opus-mt-en-de"}],
          "benchmarks": [{"name": "parallel_text", "params": {"source": "src.en"}}]}


def test_plural_references_is_one_benchmark_and_a_list_under_reference_stays_a_sweep(files):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["benchmarks"][0]["params"]["references"] = ["a.de", "b.de"]
    assert len(load_experiment_dict(cfg, base_dir=files).components["benchmarks"]) == 1
    cfg["benchmarks"][0]["params"] = {"source": "src.en", "reference": ["a.de", "b.de"]}
    assert len(load_experiment_dict(cfg, base_dir=files).components["benchmarks"]) == 2
    cfg["benchmarks"][0]["params"] = {"source": "src.en", "reference": "b.de", "references": ["a.de", "c.de"]}
    with pytest.raises(HarnessError, match="give reference .* or references .*, not both"):
        load_experiment_dict(cfg, base_dir=files)


def examples3() -> list[Example]:
    return [Example(id=str(i), source=s, reference=a, references=(a, b, c))
            for i, (s, a, b, c) in enumerate(zip(SRC, REF_A, REF_B, REF_C))]


def sacrebleu_cli(files: Path, *args: str, refs=("a.de", "b.de", "c.de"), system=("hyp.de",)) -> str:
    res = subprocess.run([sys.executable, "-m", "sacrebleu", *(str(files / r) for r in refs), "-i",
                          *(str(files / s) for s in system), *args],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "SACREBLEU_SEED": "12345"})
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("name,params,args", [
    ("bleu", {}, ["-m", "bleu"]),
    ("chrf", {}, ["-m", "chrf"]),
    ("chrf", {"word_order": 2}, ["-m", "chrf", "--chrf-word-order", "2"]),
    ("ter", {}, ["-m", "ter"]),
])
def test_scores_with_three_references_equal_sacrebleu_cli(files, name, params, args):
    cli = json.loads(sacrebleu_cli(files, *args, "-w", "6", "--format", "json"))
    cls = default_plugins().get("metric", name)
    mv = cls(cls.Params(**params)).compute(HYP, examples3())
    assert round(mv.value, 6) == pytest.approx(cli["score"], abs=1e-6)
    assert mv.signature == cli["signature"] and "nrefs:3" in mv.signature
    single = cls(cls.Params(**params)).compute(HYP, [Example(id="", source="", reference=a) for a in REF_A])
    assert single.value != mv.value  # the other references change the score


def test_oracle_metrics_use_every_reference(files):
    import sacrebleu

    cls = default_plugins().get("metric", "oracle_chrf")
    nbest = [[b, h] for b, h in zip(BASE, HYP)]
    mv = cls(cls.Params()).compute(BASE, examples3(), nbest)
    picks = [max(n, key=lambda x, ex=ex: sacrebleu.sentence_chrf(x, list(ex.references)).score)
             for n, ex in zip(nbest, examples3())]
    assert mv.value == pytest.approx(sacrebleu.corpus_chrf(picks, [REF_A, REF_B, REF_C]).score)


def test_paired_bootstrap_with_several_references_equals_sacrebleu_cli(files):
    from sacrebleu.metrics import BLEU, CHRF, TER

    from harness.stats import significance as stats

    text = sacrebleu_cli(files, "-m", "bleu", "chrf", "ter", "--no-color", "-f", "text", "--paired-bs",
                         "--paired-bs-n", "1000", system=("base.de", "hyp.de"))
    p_line = next(line for line in text.splitlines() if "(p = " in line)
    want = [float(x) for x in re.findall(r"p = ([\d.]+)", p_line)]
    # the prediction rows a run writes: the references as the report reads them back
    rows = [{"id": str(i), "reference": a, "references": [a, b, c]} for i, (a, b, c) in enumerate(zip(REF_A, REF_B, REF_C))]
    streams = reference_streams(rows)
    assert streams == [REF_A, REF_B, REF_C]
    got = []
    for scorer in (BLEU(), CHRF(), TER()):
        seg = stats.SegmentStats(scorer, streams)
        sb, ss = seg(BASE), seg(HYP)
        tests = stats.PairedTranslationTests(scorer, len(HYP))
        got.append(tests.paired_bootstrap("sys", ss, "base", sb))
    assert len(want) == 3 and [f"{p:.4f}" for p in got] == [f"{p:.4f}" for p in want]


def test_examples_with_different_numbers_of_references_leave_gaps():
    exs = [Example(id="1", source="s", reference="a"), Example(id="2", source="s", reference="b", references=("b", "c"))]
    assert reference_streams(exs) == [["a", "b"], [None, "c"]]
    cls = default_plugins().get("metric", "bleu")
    import sacrebleu

    assert cls(cls.Params()).compute(["a x", "c"], exs).value == pytest.approx(
        sacrebleu.corpus_bleu(["a x", "c"], [["a", "b"], [None, "c"]]).score)


# ----------------------------------------------------------------------------- a run


def test_a_run_scores_against_every_reference_and_writes_them(files, tiny_marian):
    (files / "model").symlink_to(Path(tiny_marian))
    (files / "exp.yaml").write_text("""\
name: multiref
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: src.en, references: [a.de, b.de, c.de]}
decoders: [{name: greedy, params: {max_new_tokens: 8}}, {name: sample, params: {max_new_tokens: 8}}]
metrics: [bleu, chrf, self_bleu]
reporters: []
""", encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "exp.yaml", "-o", "out"], cwd=files,
                         capture_output=True, text=True, env=env, timeout=300)
    # self_bleu is n/a (NaN) for greedy's single hypotheses by contract: not a failed metric
    assert res.returncode == 0 and "NaN" not in res.stderr, res.stderr
    by_decoder = {}
    for pred in (files / "out" / "predictions").iterdir():
        rows = [json.loads(line) for line in pred.read_text(encoding="utf-8").splitlines()]
        by_decoder["sample" if "sample" in pred.name else "greedy"] = rows
    rows = by_decoder["greedy"]
    assert [r["references"] for r in rows] == [list(x) for x in zip(REF_A, REF_B, REF_C)]
    assert [r["reference"] for r in rows] == REF_A
    (files / "out.de").write_text("\n".join(r["output"] for r in rows) + "\n", encoding="utf-8")
    cli = json.loads(sacrebleu_cli(files, "-m", "bleu", "chrf", "-w", "6", "--format", "json", system=("out.de",)))
    import pandas as pd

    metrics = pd.read_csv(files / "out" / "metrics.csv")
    metrics = metrics[metrics.decoder == "greedy"]
    value = dict(zip(metrics.metric, metrics.value))
    assert value["chrf"] == pytest.approx(cli[1]["score"], abs=1e-6)
    assert value["bleu"] == pytest.approx(cli[0]["score"], abs=1e-6)

    # the report's paired bootstrap (sample vs greedy) against every reference = sacrebleu --paired-bs
    from harness.report import analyze
    from harness.results import load_run

    (files / "sample.de").write_text("\n".join(r["output"] for r in by_decoder["sample"]) + "\n", encoding="utf-8")
    text = sacrebleu_cli(files, "-m", "bleu", "chrf", "--no-color", "-f", "text", "--paired-bs", "--paired-bs-n", "1000",
                         system=("out.de", "sample.de"))
    want = [float(x) for x in re.findall(r"p = ([\d.]+)", next(line for line in text.splitlines() if "(p = " in line))]
    report = analyze(load_run(files / "out")).benchmarks[0]
    rows = {label: r for label in ("bleu", "chrf") for r in report.rows[label] if r.config.decoder == "sample"}
    got = {label: r.p_bootstrap for label, r in rows.items()}
    # the CLI's p-values, both: BLEU is 0.0 for both systems of this untrained model, where sacrebleu's
    # strict count prints its resampling floor; the column is labelled sacrebleu's and never decides, so a
    # zero gap is not called significant
    assert f"{got['chrf']:.4f}" == f"{want[1]:.4f}" and want[1] < 0.05
    assert value["bleu"] == 0.0 and f"{got['bleu']:.4f}" == f"{want[0]:.4f}" and want[0] < 0.05
    assert rows["bleu"].delta == 0 and not rows["bleu"].significant


SACREBLEU_SCRIPT = """
import json, urllib.request
def unreachable(url, *a, **k):
    raise OSError("no network in tests")
urllib.request.urlopen = unreachable
from pathlib import Path
from harness.api import CellContext
from harness.plugins import default_plugins
cls = default_plugins().get("benchmark", "sacrebleu_testset")
out = {}
for every in (False, True):
    data = cls(cls.Params(test_set="wmt20/tworefs", langpair="de-en", all_references=every)).load(
        CellContext(seed=0, workdir=Path("."), cache_dir=Path(".")))
    out[str(every)] = [[e.reference, e.references] for e in data.test]
print(json.dumps(out))
"""


def test_sacrebleu_testset_uses_every_reference_when_asked(tmp_path):
    # a cached wmt20/tworefs de-en (two references per segment), as sacrebleu leaves it after a download
    d = tmp_path / "wmt20" / "tworefs"
    d.mkdir(parents=True)
    fields = {"src": ["Der Hund.", "Die Katze."], "ref-0": ["The dog.", "The cat."], "ref-1": ["A dog.", "A cat."],
              "docid": ["d1", "d1"], "genre": ["news", "news"], "origlang": ["de", "de"]}
    for field, lines in fields.items():
        (d / f"wmt20_tworefs.de-en.{field}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", SACREBLEU_SCRIPT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SACREBLEU": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["False"] == [["The dog.", None], ["The cat.", None]]
    assert out["True"] == [["The dog.", ["The dog.", "A dog."]], ["The cat.", ["The cat.", "A cat."]]]
