"""The report's Training section: one row and one learning curve per fine-tuned checkpoint.

One real run (tiny Marian fine-tuned with dev evaluations, decoded by greedy and beam) checks the
table against the cells' finetune.json; hand-written finetune.json files check what
:func:`harness.report.analysis.training.training_runs` makes of partial, corrupt and shared records.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from harness.report.analysis.model import CellInfo
from harness.report.analysis.training import PLOT_LIMIT, training_plot_data, training_runs
from harness.testing import REFERENCES, SOURCES, run_config, write_translation_files


class Rows(HTMLParser):
    """The cell texts of each row of the table with a given id."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table" and self.inside:
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def table(html: str, table_id: str) -> list[dict[str, str]]:
    parser = Rows(table_id)
    parser.feed(html)
    header, *body = parser.rows
    return [dict(zip(header, r)) for r in body]


def experiment(tmp_path, model, strategy: dict) -> dict:
    src, ref = write_translation_files(tmp_path / "data")
    train = tmp_path / "data" / "train"
    tsrc, tref = write_translation_files(train, SOURCES * 2, REFERENCES * 2)
    dsrc, dref = write_translation_files(tmp_path / "data" / "dev", SOURCES[:2], REFERENCES[:2])
    return {"name": "training-report", "models": [{"path": str(model)}],
            "benchmarks": [{"name": "parallel_text", "label": "toy",
                            "params": {"source": str(src), "reference": str(ref), "train_source": str(tsrc),
                                       "train_reference": str(tref), "dev_source": str(dsrc),
                                       "dev_reference": str(dref)}}],
            "strategies": [strategy],
            "decoders": ["greedy", {"name": "beam", "params": {"num_beams": 2, "max_new_tokens": 8}}],
            "metrics": ["bleu"], "reporters": ["html", "markdown"]}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_marian):
    tmp = tmp_path_factory.mktemp("training-report")
    # 8 training pairs, batches of 4: 2 steps per epoch, 3 epochs = 6 steps, dev loss every 2 steps
    strategy = {"name": "unmasked", "params": {"learning_rate": 3e-3, "epochs": 3, "batch_size": 4,
                                                "warmup_ratio": 0.0, "eval_steps": 2}}
    out = tmp / "out"
    results = run_config(experiment(tmp, tiny_marian, strategy), out)
    return out, results


def test_two_decoders_of_one_checkpoint_make_one_row_with_finetune_json_numbers(trained_run):
    out, results = trained_run
    keys = sorted(set(results.metrics["cell"]))
    assert len(keys) == 2, "greedy and beam are two cells"
    records = [json.loads((out / "cells" / k / "finetune.json").read_text()) for k in keys]
    assert records[0]["key"] == records[1]["key"], "both cells decode one checkpoint"
    rec = records[0]
    assert rec["steps"] == 6 and [e["step"] for e in rec["dev_evals"]] == [2, 4, 6]

    html = (out / "report.html").read_text(encoding="utf-8")
    rows = table(html, "training-table")
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["Cells"] == "2"
    assert row["Train examples"] == "8" and row["Steps"] == "6"
    assert row["Epochs"] == f"{rec['epochs']:.2f}"
    assert row["Last train loss"] == f"{rec['history'][-1]['task_loss']:.4f}"
    assert row["Last dev loss"] == f"{rec['dev_evals'][-1]['loss']:.4f}"
    assert row["Time (s)"] == f"{rec['seconds']:.1f}"
    assert "Last dev accuracy" not in row, "translation has no dev accuracy"
    assert "Early stopping" not in row, "no run had early stopping"
    assert '<a href="#training">Training</a>' in html

    section = html[html.index('<section id="training">'):]
    section = section[:section.index("</section>")]
    figure = re.search(r'<figure class="plot" data-plot="training-learning_curves">(.*?)</figure>', section, re.S)
    assert figure is not None and "<svg" in figure.group(1)
    assert "Learning curves" in figure.group(1) and "Only the first" not in figure.group(1)
    # one solid training curve (6 points) and one dashed dev curve with 3 markers, in the same colour
    assert "stroke-dasharray" in figure.group(1)

    md = (out / "report.md").read_text(encoding="utf-8")
    md_section = md[md.index("## Training"):]
    md_section = md_section[:md_section.index("\n## ")]
    lines = [ln for ln in md_section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    values = [c.strip() for c in lines[2].strip("|").split("|")]
    assert len(lines) == 3, "header, alignment, one checkpoint"
    md_row = dict(zip(header, values))
    assert md_row["Steps"] == "6" and md_row["Cells"] == "2"
    assert md_row["Last train loss"] == row["Last train loss"]
    assert md_row["Last dev loss"] == row["Last dev loss"]


def test_a_run_without_fine_tuning_has_no_training_section(tmp_path, tiny_marian):
    cfg = experiment(tmp_path, tiny_marian, "none")
    cfg["decoders"] = ["greedy"]
    out = tmp_path / "out"
    run_config(cfg, out)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="training"' not in html and 'href="#training"' not in html
    assert "## Training" not in (out / "report.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- hand-written records


def cell(key: str, strategy: str = "unmasked", seed: int = 0, decoder: str = "greedy", status: str = "done",
         model: str = "m", task: str = "translation") -> CellInfo:
    return CellInfo(key=key, model=model, benchmark="toy", strategy=strategy, decoder=decoder, seed=seed,
                    status=status, task=task)


def write(outdir, cell_key: str, record) -> None:
    d = outdir / "cells" / cell_key
    d.mkdir(parents=True, exist_ok=True)
    (d / "finetune.json").write_text(record if isinstance(record, str) else json.dumps(record), encoding="utf-8")


def record(key: str, seed: int = 0, **extra) -> dict:
    return {"strategy": "unmasked", "key": key, "seed": seed, "params": {"label_smoothing": 0.0},
            "train_examples": 100, "steps": 20, "epochs": 3.2, "seconds": 4.5, "examples_per_second": 71.1,
            "history": [{"step": 10, "epoch": 1.6, "lr": 1e-3, "task_loss": 2.5},
                        {"step": 20, "epoch": 3.2, "lr": 0.0, "task_loss": 1.25}],
            "dev_evals": [], "best_dev": None, "stopped_early": False, "cache_hit": False, **extra}


def test_training_runs_reads_records_once_per_checkpoint_and_skips_bad_files(tmp_path):
    write(tmp_path, "c1", record("k-a", seed=0))
    write(tmp_path, "c2", record("k-a", seed=0, cache_hit=True))  # beam cell of the same checkpoint
    write(tmp_path, "c3", record("k-b", seed=1, stopped_early=True, steps=12,
                                 dev_evals=[{"step": 6, "loss": 1.9}, {"step": 12, "loss": 2.1}],
                                 best_dev={"step": 6, "loss": 1.9}))
    write(tmp_path, "c4", "{not json")           # corrupt: skipped
    write(tmp_path, "c5", json.dumps([1, 2]))     # not a record: skipped
    write(tmp_path, "c6", record("k-c"))          # a failed cell's leftover: skipped
    cells = [cell("c1"), cell("c2", decoder="beam"), cell("c3", seed=1), cell("c4"), cell("c5"),
             cell("c6", status="failed"), cell("c7"), cell("", decoder="greedy")]  # c7: no file at all
    runs = training_runs(tmp_path, cells)
    assert [r.key for r in runs] == ["k-a", "k-b"]
    a, b = runs
    assert [r.label for r in runs] == ["seed 0", "seed 1"], "only the seed varies"
    assert a.cells == 2 and a.steps == 20 and a.train_examples == 100 and a.epochs == 3.2
    assert a.history == [(10, 2.5), (20, 1.25)] and a.final_train_loss == 1.25
    assert a.dev == [] and a.final_dev_loss is None and a.best_dev_loss is None, "no dev_evals: no dev numbers"
    assert not a.stopped_early and a.stop_step is None
    assert b.dev == [(6, 1.9, None), (12, 2.1, None)]
    assert b.final_dev_loss == 2.1 and b.best_dev_loss == 1.9 and b.best_dev_step == 6
    assert b.stopped_early and b.stop_step == 12


def test_records_without_optional_fields_and_shared_train_seed_checkpoints(tmp_path):
    # an old record: no dev_evals, best_dev or params; malformed history points are dropped
    write(tmp_path, "c1", {"key": "k-a", "steps": 5, "history": [{"step": 5, "task_loss": "nan"},
                                                                 {"step": 4, "mlm_loss": 3.0}, "junk"]})
    # train_seed: cells of seeds 1 and 2 decode the checkpoint trained with seed 0
    write(tmp_path, "c2", record("k-b", seed=0))
    write(tmp_path, "c3", record("k-b", seed=0))
    write(tmp_path, "c4", record("k-c", seed=0, dev_evals=[{"step": 20, "loss": 0.4, "accuracy": 0.875}],
                                 params={"label_smoothing": 0.1}))
    cells = [cell("c1", strategy="old"), cell("c2", strategy="shared", seed=1), cell("c3", strategy="shared", seed=2),
             cell("c4", strategy="smooth", task="classification")]
    runs = training_runs(tmp_path, cells)
    assert [r.label for r in runs] == ["old", "shared", "smooth"], "the seed (always 0) does not vary"
    old, shared, smooth = runs
    assert old.history == [(4, 3.0)] and old.train_examples is None and old.seed == 0
    assert shared.cells == 2 and shared.seed == 0
    assert smooth.final_dev_accuracy == 0.875 and smooth.label_smoothing == 0.1

    data = training_plot_data(runs)
    assert [p["task"] for p in data["panels"]] == ["translation", "classification"]
    assert data["panels"][0]["y_label"] == "loss (nats per target token)"
    assert data["panels"][1]["y_label"] == "loss (nats per example)"


def test_the_plot_draws_at_most_twelve_checkpoints_and_says_so(tmp_path):
    cells = []
    for i in range(PLOT_LIMIT + 2):
        write(tmp_path, f"c{i}", record(f"k{i:02d}", seed=i))
        cells.append(cell(f"c{i}", seed=i))
    write(tmp_path, "flat", record("k-flat", seed=99, history=[]))  # no curve at all: table only
    cells.insert(0, cell("flat", seed=99))
    runs = training_runs(tmp_path, cells)
    assert len(runs) == PLOT_LIMIT + 3
    data = training_plot_data(runs)
    lines = [line["name"] for p in data["panels"] for line in p["lines"]]
    assert lines == [f"seed {i}" for i in range(PLOT_LIMIT)]
    assert (data["shown"], data["omitted"]) == (PLOT_LIMIT, 2)

    from harness_plugins.reporters._plots import training_plot

    svg = training_plot(data)
    assert svg.startswith("<svg") and "<text" not in svg, "text drawn as paths"
    assert training_plot_data([]) is None


def test_early_stopping_accuracy_smoothing_and_the_plot_limit_are_rendered(tmp_path, trained_run):
    """The columns that only some runs need appear when one does: the reports of the real run,
    re-rendered with hand-written records (early stopping, dev accuracy, label smoothing, 14 curves)."""
    import dataclasses

    from harness.report import analyze
    from harness_plugins.reporters.html import render
    from harness_plugins.reporters.markdown import render_markdown

    cells = [cell("es", strategy="early", task="classification")]
    write(tmp_path, "es", record("k-es", stopped_early=True, steps=12, params={"label_smoothing": 0.1},
                                 dev_evals=[{"step": 6, "loss": 0.5, "accuracy": 0.75},
                                            {"step": 12, "loss": 0.6, "accuracy": 0.625}],
                                 best_dev={"step": 6, "loss": 0.5, "accuracy": 0.75}))
    for i in range(PLOT_LIMIT + 1):
        write(tmp_path, f"c{i}", record(f"k{i:02d}"))
        cells.append(cell(f"c{i}", strategy=f"s{i}"))
    _, results = trained_run
    data = dataclasses.replace(analyze(results), training=training_runs(tmp_path, cells))

    html = render(data)
    rows = table(html, "training-table")
    assert len(rows) == PLOT_LIMIT + 2
    assert rows[0]["Checkpoint"] == "early"
    assert rows[0]["Early stopping"] == "early stop at step 12; weights of step 6 kept"
    assert rows[0]["Last dev accuracy"] == "0.6250" and rows[0]["Last dev loss"] == "0.6000"
    assert rows[1]["Early stopping"] == "ran to the end" and rows[1]["Last dev accuracy"] == "–"
    assert "Label smoothing (&gt; 0 in early)" in html
    assert "Only the first 12 checkpoints with a curve are drawn; 2 more are in the table only." in html
    assert html.count('data-plot="training-learning_curves"') == 1

    md = render_markdown(data)
    assert "| early " in md and "early stop at step 12; weights of step 6 kept" in md
    assert "Label smoothing is part of the training loss but not of the dev loss of: early." in md
