"""`harness score`: system output files scored through the harness's cells, cache, tests and reports,
with the numbers of sacrebleu's own command line (both CLIs run as real subprocesses)."""
from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import harness_cli
from score_fixtures import write_shared_task


def sacrebleu_cli(*args: str) -> list[str]:
    """`sacrebleu ARGS` in a real subprocess; the numbers it prints, as printed (with -b: one per
    metric, as a bare number or, for several metrics, a JSON list)."""
    out = subprocess.run([sys.executable, "-m", "sacrebleu", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return re.findall(r"-?\d+(?:\.\d+)?", out.stdout)


def metric_values(outdir: Path) -> dict[tuple[str, str], float]:
    df = pd.read_csv(outdir / "metrics.csv")
    return {(r.model, r.metric): float(r.value) for r in df.itertuples()}


@pytest.fixture(scope="module")
def shared_task(tmp_path_factory):
    """20 systems and 3 references in the WMT layout, scored once by `harness score --systems-dir`."""
    root = tmp_path_factory.mktemp("wmt")
    task = write_shared_task(root / "newstest2019", n_systems=20)
    res = harness_cli(root, "score", "--systems-dir", "newstest2019", "-m", "bleu", "chrf", "-o", "out", "-q")
    assert res.returncode == 0, res.stderr
    return root, task, res


def test_twenty_systems_three_references_equal_sacrebleus_cli(shared_task):
    root, task, _ = shared_task
    values = metric_values(root / "out")
    refs = [str(p) for p in task["references"]]
    assert len(task["systems"]) == 20 and len(refs) == 3
    for name in task["systems"]:
        hyp = root / "newstest2019" / f"newstest2019.hyp.{name}.de"
        bleu, chrf = sacrebleu_cli(*refs, "-i", str(hyp), "-m", "bleu", "chrf", "-b", "-w", "4")
        assert f"{values[(name, 'bleu')]:.4f}" == bleu, name
        assert f"{values[(name, 'chrf')]:.4f}" == chrf, name
        # the issue's own command prints one decimal: the same numbers
        assert sacrebleu_cli(*refs, "-i", str(hyp), "-m", "bleu", "chrf", "-b") == [
            f"{values[(name, 'bleu')]:.1f}", f"{values[(name, 'chrf')]:.1f}"]
    sig = pd.read_csv(root / "out" / "metrics.csv")["signature"]
    assert sig.str.startswith("nrefs:3|").all()


def test_the_systems_are_ranked_with_the_reports_verdicts(shared_task):
    from harness.report import analyze
    from harness.results import load_run

    root, task, res = shared_task
    out = root / "out"
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    bleu = {a["label"]: a for a in doc["aggregates"] if a["metric"] == "bleu"}
    assert set(bleu) == set(task["systems"])
    order = sorted(bleu, key=lambda s: -bleu[s]["value"])
    assert [bleu[s]["rank"] for s in order] == list(range(1, 21))  # no ties in this fixture
    # baseline: the first system of the directory by name, as sacrebleu takes the first -i
    comparisons = [c for c in doc["comparisons"] if c["metric"] == "bleu"]
    assert doc["baseline"]["model"] == "sys00-a" and len(comparisons) == 19
    assert {c["baseline"] for c in comparisons} == {"sys00-a"} and {c["test"] for c in comparisons} == {"ar"}
    # the verdicts are the report's own sentences (harness.report.analyze), in results.json, report and stdout
    data = analyze(load_run(out))
    rows = {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}
    for c in comparisons:
        assert c["verdict"] == rows[c["label"]].verdict and c["verdict"]
        assert c["verdict"] in res.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h3>BLEU ↑"):page.index("<h3>chrF ↑")]
    positions = [section.index(f'<td class="cfg">{s}</td>') for s in order]
    assert positions == sorted(positions)  # the report's BLEU table lists the systems best first
    text = html.unescape(page)
    assert all(c["verdict"] in text for c in comparisons)
    # stdout: a ranked table, best first, at sacrebleu's precision (2 decimals)
    lines = [ln.split() for ln in res.stdout.splitlines() if re.match(r"^\s+\d+\s+sys\d\d", ln)]
    assert [ln[1] for ln in lines] == order and [ln[0] for ln in lines] == [str(i) for i in range(1, 21)]
    assert all(ln[2] == f"{bleu[ln[1]]['value']:.2f}" for ln in lines)
    assert "newstest2019: 20 systems ranked by BLEU, baseline sys00-a" in res.stdout


def test_the_run_directory_is_a_run_directory_and_config_yaml_reproduces_it(shared_task):
    root, _, _ = shared_task
    out = root / "out"
    for name in ("metrics.csv", "manifest.json", "results.json", "report.html", "config.yaml", "outputs/index.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "predictions").glob("*.jsonl"))) == 20
    row = json.loads((out / "predictions" / "sys03-d__newstest2019__none__-__0.jsonl").read_text().splitlines()[0])
    assert set(row["scores"]) == {"bleu", "chrf"} and len(row["references"]) == 3 and row["source"].endswith(".")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert sum(p.endswith(".hyp.sys03-d.de") for p in manifest["data_files"]) == 1  # the systems are data read
    before = (out / "metrics.csv").read_bytes()
    again = harness_cli(root, "run", "out/config.yaml", "-o", "out", "-q")
    assert again.returncode == 0, again.stderr
    assert "20 cells (20 reused, 0 failed)" in again.stdout and (out / "metrics.csv").read_bytes() == before


def test_cells_are_keyed_by_the_content_of_the_files(tmp_path):
    task = write_shared_task(tmp_path / "st", n_systems=3, n_segments=12)
    args = ["score", "--systems-dir", "st", "-m", "bleu", "-o", "out", "-q"]
    assert harness_cli(tmp_path, *args).returncode == 0
    again = harness_cli(tmp_path, *args)
    assert "3 cells (3 reused, 0 failed)" in again.stdout
    hyp = tmp_path / "st" / f"newstest2019.hyp.{task['systems'][1]}.de"
    hyp.write_text(hyp.read_text(encoding="utf-8").replace(".", " !", 1), encoding="utf-8")
    edited = harness_cli(tmp_path, *args)
    assert "3 cells (2 reused, 0 failed)" in edited.stdout, edited.stdout + edited.stderr


def test_files_and_names_as_sacrebleu_takes_them(tmp_path):
    task = write_shared_task(tmp_path / "st", n_systems=3, n_segments=15)
    st = tmp_path / "st"
    a, b, c = (st / f"newstest2019.hyp.{s}.de" for s in task["systems"])
    refs = [str(p) for p in task["references"]]
    # plain names from the files; the first -i is the baseline, as in `sacrebleu REF -i A B --paired-bs`
    (tmp_path / "x.txt").write_bytes(c.read_bytes())
    res = harness_cli(tmp_path, "score", *refs, "-i", str(b), str(a), "x.txt", "--paired-bs", "-m", "bleu",
                      "chrf:word_order=2", "ter", "-o", "o1", "-q")
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "o1" / "results.json").read_text(encoding="utf-8"))
    assert doc["baseline"]["model"] == "sys01-b" and {a["label"] for a in doc["aggregates"]} == {
        "sys00-a", "sys01-b", "x"}
    values = metric_values(tmp_path / "o1")
    got = sacrebleu_cli(*refs, "-i", str(c), "-m", "bleu", "chrf", "ter", "--chrf-word-order", "2", "-b", "-w", "4")
    assert [f"{values[('x', m)]:.4f}" for m in ("bleu", "chrf", "ter")] == got  # multi-reference chrF++ and TER too
    # NAME=PATH, --baseline, sacrebleu's -tok, and the source shown with each row
    res = harness_cli(tmp_path, "score", *refs, "--source", str(task["source"]), "-i", f"mine={a}", f"theirs={b}",
                      "--baseline", "theirs", "-m", "bleu", "-tok", "char", "-o", "o2", "-q")
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(tmp_path / "o2" / "metrics.csv")
    assert "|tok:char|" in df["signature"].iloc[0] and set(df["model"]) == {"mine", "theirs"}
    assert f"{df.set_index('model').loc['mine', 'value']:.4f}" == sacrebleu_cli(
        *refs, "-i", str(a), "-tok", "char", "-b", "-w", "4")[0]
    assert "baseline theirs" in res.stdout
    row = json.loads(next((tmp_path / "o2" / "predictions").glob("mine__*.jsonl")).read_text().splitlines()[0])
    assert row["source"] == task["source"].read_text(encoding="utf-8").splitlines()[0]


def test_jsonl_outputs_and_a_runs_predictions_are_systems_too(tmp_path):
    task = write_shared_task(tmp_path / "st", n_systems=2, n_segments=10)
    st = tmp_path / "st"
    refs = [str(p) for p in task["references"][:1]]
    lines = (st / f"newstest2019.hyp.{task['systems'][1]}.de").read_text(encoding="utf-8").splitlines()
    # a line break inside a hypothesis: kept in the JSONL system, written as a space in outputs/
    lines[3] = lines[3].replace(" ", "\n", 1)
    rows = [{"id": f"test-{i + 1}", "output": t} for i, t in enumerate(lines)]
    (tmp_path / "shuffled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)), encoding="utf-8")
    res = harness_cli(tmp_path, "score", *refs, "-i", str(st / f"newstest2019.hyp.{task['systems'][0]}.de"),
                      "shuffled.jsonl", "-m", "bleu", "-o", "o1", "-q")
    assert res.returncode == 0, res.stderr
    preds = tmp_path / "o1" / "predictions" / "shuffled__newstest2019__none__-__0.jsonl"
    got = [json.loads(x)["output"] for x in preds.read_text(encoding="utf-8").splitlines()]
    assert got == lines  # matched by id: the reversed file is back in the references' order
    exported = tmp_path / "o1" / "outputs" / "newstest2019.hyp.shuffled__none__-__0.txt"
    assert exported.read_text(encoding="utf-8").count("\n") == 10
    value = metric_values(tmp_path / "o1")[("shuffled", "bleu")]
    assert sacrebleu_cli(refs[0], "-i", str(exported), "-b", "-w", "4") == [f"{value:.4f}"]
    index = json.loads((tmp_path / "o1" / "outputs" / "index.json").read_text(encoding="utf-8"))
    assert {c["file"]: c["segments_with_line_breaks"] for c in index["cells"]}[exported.name] == 1
    # a run's predictions/*.jsonl scored again: the same BLEU
    res = harness_cli(tmp_path, "score", *refs, "-i", f"again={preds}", "-m", "bleu", "-o", "o2", "-q")
    assert res.returncode == 0, res.stderr
    assert metric_values(tmp_path / "o2")[("again", "bleu")] == pytest.approx(value)


def test_the_exported_outputs_round_trip_through_harness_score(shared_task, tmp_path):
    root, task, _ = shared_task
    res = harness_cli(root, "score", "--systems-dir", "out/outputs", "-m", "bleu", "chrf", "-o", str(tmp_path / "re"),
                      "-q")
    assert res.returncode == 0, res.stderr
    first, again = metric_values(root / "out"), metric_values(tmp_path / "re")
    for name in task["systems"]:
        for m in ("bleu", "chrf"):
            assert again[(f"{name}__none__-__0", m)] == pytest.approx(first[(name, m)], abs=1e-9)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def files(tmp_path):
    (tmp_path / "ref.de").write_text("ein hund\neine katze\nzwei kinder\n", encoding="utf-8")
    (tmp_path / "ref2.de").write_text("ein hund läuft\neine katze\nzwei kinder\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("ein hund\neine katze\nkinder\n", encoding="utf-8")
    (tmp_path / "short.txt").write_text("ein hund\neine katze\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("ein hund\neine k\xe4tze\nkinder\n".encode("latin-1"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("ein hund\neine katze\nzwei\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["ref.de", "-i", "a.txt", "short.txt"],
     r"^error: .*short\.txt has 2 lines, but benchmark 'ref' has 3 test examples \(.*ref\.de: 3 lines\); system "
     r"outputs must be aligned with the references, one segment per line$"),
    (["ref.de", "-i", "a.txt", "empty.txt"], r"^error: .*empty\.txt: empty file: system outputs have one line per "),
    (["ref.de", "-i", "a.txt", "missing.txt"], r"^error: -i missing\.txt: file not found: .*missing\.txt$"),
    (["ref.de", "nothere.de", "-i", "a.txt"], r"^error: reference nothere\.de: file not found: "),
    (["ref.de", "-i", "a.txt", "latin1.txt"],
     r"^error: .*latin1\.txt:2: not UTF-8 text \(byte 0xe4 at offset 15\); convert the file"),
    (["ref.de", "-i", "a.txt", "sub/a.txt"],
     r"^error: harness score: two systems are named 'a' \(a\.txt and sub/a\.txt\); name them apart, e\.g\. "
     r"-i a-1=a\.txt a-2=sub/a\.txt$"),
    (["ref.de", "short.txt", "-i", "a.txt"],
     r"^error: .*ref\.de has 3 lines but .*short\.txt has 2; the files must be aligned line by line"),
    (["ref.de", "-i", "a.txt", "--baseline", "b"], r"^error: --baseline b: no system named 'b'\. Allowed: a$"),
    (["ref.de", "-i", "a.txt", "-m", "bleu", "chrff"], r"^error: -m chrff: metrics\[1\]\.name: unknown metric 'chrff'; "
                                                        r"did you mean 'chrf'\?"),
    (["ref.de", "-i", "a.txt", "-m", "bleu:tokenize=klingon"], r"^error: -m bleu:tokenize=klingon: metrics\[0\]\.params\."
                                                               r"tokenize: Input should be '13a'"),
    (["ref.de", "-i", "a.txt", "--paired-bs-n", "x"], r"^error: harness score: argument --paired-bs-n: invalid int "),
    (["-i", "a.txt"], r"^error: harness score: no reference files; give them first"),
])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(files, args, message):
    res = harness_cli(files, "score", *args, "-o", "out")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), res.stderr
    assert "Traceback" not in res.stderr and not (files / "out").exists()


def test_shared_task_directories_that_cannot_be_scored_say_why(tmp_path):
    write_shared_task(tmp_path / "st", n_systems=2, n_segments=5)
    write_shared_task(tmp_path / "st", n_systems=2, n_segments=5, testset="newstest2020")
    res = harness_cli(tmp_path, "score", "--systems-dir", "st", "-o", "out")
    assert res.returncode == 2 and res.stderr.strip() == (
        "error: --systems-dir st: holds outputs of 2 test sets or languages: newstest2019 .de (2 systems), "
        "newstest2020 .de (2 systems); score one at a time, e.g. -i st/newstest2019.hyp.*.de")
    (tmp_path / "none").mkdir()
    res = harness_cli(tmp_path, "score", "--systems-dir", "none", "-o", "out")
    assert res.returncode == 2 and "no system outputs named <testset>.hyp.<SYSTEM>.<lang>" in res.stderr
    assert not (tmp_path / "out").exists()


def test_help_shows_the_sacrebleu_spelling():
    res = harness_cli(".", "score", "--help")
    assert res.returncode == 0
    assert "harness score ref.de -i sys1.de sys2.de -m bleu chrf -o runs/mine" in res.stdout
    assert "--systems-dir DIR" in res.stdout and "-i SYS [SYS ...]" in res.stdout
    top = harness_cli(".", "--help")
    assert re.search(r"score\s+Score system output files against references", top.stdout)


# ----------------------------------------------------------------------------- YAML: the same thing as a config


def _word_match_module():
    """A third-party metric plugin with per-example scores, as its package would register it."""
    import numpy as np

    from harness.api import Metric, MetricValue
    from harness.hookspecs import hookimpl

    class WordMatchMetric(Metric):
        name = "word_match"
        title = "word match"
        decimals = 1

        def example_scores(self, outputs, examples, nbest=None):
            return [100.0 * sum(w in set(ex.reference.split()) for w in o.split()) / max(len(o.split()), 1)
                    for o, ex in zip(outputs, examples)]

        def compute(self, outputs, examples, nbest=None):
            return MetricValue(float(np.mean(self.example_scores(outputs, examples))))

    class module:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register(WordMatchMetric)

    return module


def test_system_outputs_in_yaml_with_a_plugin_metric_get_its_per_example_scores_and_paired_tests(tmp_path):
    from harness.report import analyze
    from harness.results import load_run
    from harness.testing import run_config

    task = write_shared_task(tmp_path / "st", n_systems=3, n_segments=30)
    st = tmp_path / "st"
    config = {"name": "outputs-yaml",
              "models": [{"path": str(st / f"newstest2019.hyp.{s}.de"), "kind": "outputs"} for s in task["systems"]],
              "benchmarks": [{"name": "references", "label": "nt19",
                              "params": {"references": [str(p) for p in task["references"]]}}],
              "metrics": ["bleu", "word_match"],
              "baseline": {"model": task["systems"][2]}}
    plugin = _word_match_module()
    res = run_config(config, tmp_path / "out", plugins=[plugin])
    assert set(res.metrics["model"]) == set(task["systems"])  # named from the shared task's file names
    assert set(res.metrics["decoder"]) == {"-"} and set(res.metrics["strategy"]) == {"none"}
    rows = res.predictions(res.metrics["cell"].iloc[0])
    first = json.loads((tmp_path / "out" / "predictions" / f"{task['systems'][0]}__nt19__none__-__0.jsonl")
                       .read_text(encoding="utf-8").splitlines()[0])
    assert set(first["scores"]) == {"bleu", "word_match"} and len(rows) == 30
    from harness.plugins import PluginSet

    data = analyze(load_run(tmp_path / "out"), plugins=PluginSet(extra=[plugin]))
    wm = {r.config.label: r for r in data.benchmarks[0].rows["word_match"]}
    assert {r.test for label, r in wm.items() if label != task["systems"][2]} == {"ar"}
    assert all(r.verdict for label, r in wm.items() if label != task["systems"][2])


def test_validate_reads_no_model_and_imports_no_torch(tmp_path):
    task = write_shared_task(tmp_path / "st", n_systems=2, n_segments=5)
    (tmp_path / "exp.yaml").write_text(
        "name: v\nmodels:\n" + "".join(f"  - {{path: st/newstest2019.hyp.{s}.de, kind: outputs}}\n"
                                       for s in task["systems"])
        + "benchmarks:\n  - {name: references, params: {references: [st/newstest2019.ref.A.de]}}\n", encoding="utf-8")
    code = ("import sys; from harness.cli import main; sys.argv=['harness','validate','exp.yaml']\n"
            "try: main()\nexcept SystemExit: pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert "OK — 2 cells" in out.stdout and out.stdout.strip().endswith("False"), out.stdout + out.stderr
    (tmp_path / "bad.yaml").write_text((tmp_path / "exp.yaml").read_text().replace("hyp.sys00-a", "hyp.nope"))
    res = harness_cli(tmp_path, "validate", "bad.yaml")
    assert res.returncode == 2 and re.search(r"^error: bad\.yaml:3: models\[0\]: system outputs: file not found: "
                                             r".*newstest2019\.hyp\.nope\.de$", res.stderr.strip()), res.stderr


def test_a_limited_test_set_takes_the_matching_lines_of_a_full_outputs_file(tmp_path):
    from harness.testing import run_config

    task = write_shared_task(tmp_path / "st", n_systems=1, n_segments=12)
    hyp = tmp_path / "st" / f"newstest2019.hyp.{task['systems'][0]}.de"
    lines = hyp.read_text(encoding="utf-8").splitlines()
    config = {"name": "limited", "models": [{"path": str(hyp), "kind": "outputs"}], "limit": 5, "sample": True,
              "benchmarks": [{"name": "references", "params": {"references": [str(task["references"][0])]}}],
              "metrics": ["bleu"]}
    res = run_config(config, tmp_path / "out")
    rows = res.predictions(res.metrics["cell"].iloc[0])
    assert len(rows) == 5 and [r["output"] for r in rows] == [lines[int(r["id"].split("-")[1]) - 1] for r in rows]
    assert [r["id"] for r in rows] != [f"test-{i}" for i in range(1, 6)]  # a sample, not the first five


def test_a_model_that_would_translate_needs_sources(tmp_path, tiny_marian):
    task = write_shared_task(tmp_path / "st", n_systems=1, n_segments=4)
    (tmp_path / "exp.yaml").write_text(
        f"name: nosrc\nmodels: [{{path: {tiny_marian}, label: tiny}}]\n"
        f"benchmarks:\n  - {{name: references, label: nt, params: {{references: [{task['references'][0]}]}}}}\n",
        encoding="utf-8")
    res = harness_cli(tmp_path, "run", "exp.yaml", "-o", "out")
    assert res.returncode == 2 and res.stderr.strip() == (
        "error: exp.yaml: models: 'tiny': benchmark 'nt' has no source segments to translate (give it a source "
        "file), or score given outputs with kind: outputs")
    assert not (tmp_path / "out").exists()
