"""Progress display: cells done/total with an ETA, per-cell progress from ctx.progress, a live
display in terminals, plain lines in pipes and CI, nothing with --quiet."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import harness.run.progress as progress_mod
from harness.cli import main
from harness.experiment.load import load_experiment
from harness.run.progress import LineProgress, Progress, RichProgress, format_eta, make_progress
from harness.run.jobs import CellOutcome
from harness.run.runner import run_experiment


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


def job(decoder):
    labels = {"model": "tiny", "benchmark": "toy", "strategy": "none", "decoder": decoder, "seed": 0}
    return SimpleNamespace(cell=SimpleNamespace(labels=lambda: labels)), labels


def test_lines_show_counts_eta_and_throttled_cell_progress(clock):
    out = io.StringIO()
    p = LineProgress(out, interval=10)
    p.start(4, 3, cached=1, interrupted=1)
    _, lab = job("greedy")
    p.cell_finished(CellOutcome("k0", lab, "cached", 2.0, [{"metric": "bleu", "value": 12.345}]), ran=False)
    j, lab = job("beam[num_beams=4]")
    p.cell_started(j)
    clock.now += 5
    p.cell_progress(j, 10, 100)  # within the interval: not printed
    clock.now += 6
    p.cell_progress(j, 60, 100)
    clock.now += 9
    p.cell_finished(CellOutcome("k1", lab, "done", 20.0, [{"metric": "bleu", "value": 20.0}]))
    j, lab = job("bad")
    p.cell_started(j)
    clock.now += 10
    p.cell_finished(CellOutcome("k2", lab, "failed", 10.0, error="ValueError: boom"))
    assert out.getvalue().splitlines() == [
        "4 cells, 1 reused, 1 interrupted (restarting), 3 to run",
        "[1/4] cached      2.0s  tiny / toy / none / greedy / 0 (bleu=12.35)",
        "      tiny / toy / none / beam[num_beams=4] / 0: 60/100 (60%)",
        "[2/4] done       20.0s  tiny / toy / none / beam[num_beams=4] / 0 (bleu=20.00)  [eta 40s]",  # 20 s/cell x 2 left
        # the second cell differs only by decoder: it reused the first one's work, and its 10 s per cell
        # (not 30 s / 2 cells) times 1 left is the estimate
        "[3/4] failed     10.0s  tiny / toy / none / bad / 0: ValueError: boom  [eta 10s]",
    ]


def test_eta_ignores_the_first_cells_training_once_later_cells_have_timings(clock):
    """One strategy trained in the first cell (600 s), then 20 decoders of 10 s each on that model."""
    p = Progress()
    p.start(21, 21)

    def run(decoder, seconds, seed=0):
        lab = {"model": "tiny", "benchmark": "toy", "strategy": "mlm", "decoder": decoder, "seed": seed}
        p.cell_started(job(decoder)[0])
        clock.now += seconds
        p.cell_finished(CellOutcome(decoder, lab, "done", seconds))

    run("greedy", 600.0)
    assert p.eta() == pytest.approx(600.0 * 20)  # nothing else known yet: the only timing is the first cell's
    run("beam[num_beams=2]", 10.0)
    assert p.eta() == pytest.approx(10.0 * 19)  # not (610 / 2) x 19 = 5795 s
    run("beam[num_beams=4]", 12.0)
    run("beam[num_beams=8]", 30.0)  # one odd slow cell does not move the median much
    assert p.eta() == pytest.approx(12.0 * 17)
    # another seed trains anew: its first cell is not a later cell and does not count
    run("greedy", 500.0, seed=1)
    assert p.eta() == pytest.approx(12.0 * 16)


def test_eta_from_later_cells_divides_by_the_concurrency_of_parallel_executors(clock):
    p = Progress()
    p.start(8, 8)
    labels = [{"model": "tiny", "strategy": "none", "decoder": d} for d in ("greedy", "beam2", "beam4", "beam8")]
    # two workers, no start events: four cells of 10 s finish in 20 s of wall time
    for i, lab in enumerate(labels):
        if i % 2 == 0:
            clock.now += 10
        p.cell_finished(CellOutcome(lab["decoder"], lab, "done", 10.0))
    assert p.eta() == pytest.approx(10.0 / 2 * 4)


def test_eta_counts_only_cells_that_ran_and_handles_parallel_executors(clock):
    p = Progress()
    p.start(10, 4, cached=6)
    for i in range(6):
        p.cell_finished(CellOutcome(f"c{i}", {}, "cached", 99.0), ran=False)
    assert p.eta() is None  # nothing ran yet: unknown, not "0s"
    # a remote executor reports no starts: two cells of 10 s finishing together (2 workers)
    clock.now += 10
    p.cell_finished(CellOutcome("a", {}, "done", 10.0))
    p.cell_finished(CellOutcome("b", {}, "done", 10.0))
    assert p.eta() == pytest.approx(10.0)  # 10 s for 2 cells, 2 left
    assert [format_eta(s) for s in (None, 0, 59.6, 61, 3725)] == ["eta ?", "eta 0s", "eta 1m00s", "eta 1m01s", "eta 1h02m"]


def test_live_display_in_a_terminal_prints_labels_literally(clock):
    from rich.console import Console

    buf = io.StringIO()
    p = RichProgress(console=Console(file=buf, force_terminal=True, width=140, color_system=None))
    p.start(2, 2)
    j, lab = job("greedy[max_new_tokens=5]")  # rich markup would eat "[max_new_tokens=5]"
    p.cell_started(j)
    p.cell_progress(j, 3, 4)
    clock.now += 3
    p.cell_finished(CellOutcome("k", lab, "done", 3.0, [{"metric": "chrf", "value": 50.0}]))
    p.close()
    text = buf.getvalue()
    assert "[1/2] done        3.0s  tiny / toy / none / greedy[max_new_tokens=5] / 0 (chrf=50.00)" in text
    assert "cells" in text and "1/2" in text and "eta 3s" in text


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_display_is_chosen_from_the_environment(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert type(make_progress(quiet=True, stream=Tty())) is Progress
    assert type(make_progress(stream=io.StringIO())) is LineProgress
    assert type(make_progress(stream=Tty())) is RichProgress
    monkeypatch.setenv("CI", "true")
    assert type(make_progress(stream=Tty())) is LineProgress


GRID = """\
name: progress
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders: [{name: test_slow, label: slow}]
reporters: []
"""


def test_plugins_progress_reaches_the_display(tmp_path, tiny_marian, translation_files, fixture_plugin_set):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID)
    out = io.StringIO()
    run_experiment(load_experiment(tmp_path / "exp.yaml", plugins=fixture_plugin_set), tmp_path / "out",
                   cache_dir=tmp_path / "cache", progress=LineProgress(out, interval=0))
    lines = out.getvalue().splitlines()
    assert lines[0] == "1 cells, 1 to run"
    assert lines[1:5] == [f"      tiny / toy / none / slow / 0: {i}/4 ({25 * i}%)" for i in range(1, 5)]
    assert lines[5].startswith("[1/1] done ")


def test_quiet_prints_only_the_summary(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID.replace("{name: test_slow, label: slow}", "greedy"))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out"), "-q",
                                    "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0
    assert res.stdout == f"1 cells (0 reused, 0 failed) → {tmp_path / 'out'}\n"


# ----------------------------------------------------------------------------- third-party output goes to the cell's log

import logging  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402

import harness.experiment.config  # noqa: E402
from harness.api import Decoder  # noqa: E402
from harness.hookspecs import hookimpl  # noqa: E402
from harness.plugins import PluginSet  # noqa: E402


class ChattyCopy(Decoder):
    """Copies the source, chattering like a third-party library would."""

    name = "chatty_copy"
    description = "Copies the source while printing a progress bar, a FutureWarning and a log line (tests only)."

    def decode(self, model, sources, ctx):
        from tqdm import tqdm

        from harness.api import Hypothesis

        warnings.warn("`foo` is deprecated and will be removed in v9", FutureWarning)
        logging.getLogger("some_library").warning("Some weights were not initialized")
        for _ in tqdm(range(3), desc="Loading weights"):
            pass
        print("Some library printing to stdout")
        ctx.log.warning("the harness's own warning stays visible")
        return [[Hypothesis(text=s)] for s in sources]


@hookimpl
def register_decoders(register):
    register(ChattyCopy)


def test_in_pipes_third_party_bars_warnings_and_logs_go_to_the_cells_log(tmp_path, tiny_marian, translation_files,
                                                                        monkeypatch):
    module = types.ModuleType("chatty_plugin")
    module.register_decoders = register_decoders
    ps = PluginSet(extra=[module])
    monkeypatch.setattr(harness.experiment.config, "default_plugins", lambda: ps)
    monkeypatch.setattr(logging.root, "handlers", [])  # as in `harness run`: logging not configured (no pytest)
    library = logging.getLogger("some_library")  # a library that set up its own console handler
    handler = logging.StreamHandler(sys.stderr)
    library.addHandler(handler)
    try:
        (tmp_path / "model").symlink_to(tiny_marian)
        (tmp_path / "exp.yaml").write_text(GRID.replace("{name: test_slow, label: slow}", "chatty_copy"))
        res = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out"),
                                        "--cache-dir", str(tmp_path / "cache")])
    finally:
        library.removeHandler(handler)
    assert res.exit_code == 0, res.output
    assert res.stderr == "the harness's own warning stays visible\n"
    assert res.stdout.splitlines()[0] == "1 cells, 1 to run"
    assert res.stdout.splitlines()[1].startswith("[1/1] done ")
    [log] = (tmp_path / "out" / "cells").glob("*/log.txt")
    text = log.read_text()
    assert "FutureWarning: `foo` is deprecated and will be removed in v9" in text
    assert "Some weights were not initialized" in text
    assert "Loading weights: 100%" in text and "3/3" in text
    assert "Some library printing to stdout" in text and "Some library" not in res.stdout
    assert handler.stream is sys.stderr  # the library's handler is given back its stream


def test_a_terminal_keeps_warnings_on_screen():
    assert isinstance(RichProgress(stream=io.StringIO()).cell_output(Path("never-written.txt")),
                      contextlib.nullcontext)


def test_in_pipes_what_libraries_print_while_inputs_are_checked_goes_to_the_runs_log(tmp_path, tiny_marian,
                                                                                    translation_files, monkeypatch):
    from harness.api import Benchmark

    class Noisy(Benchmark):
        name = "noisy_text"
        description = "parallel_text that prints a datasets-like progress bar while loading (tests only)."

        def load(self, ctx):
            from tqdm import tqdm

            from harness.api import BenchmarkData, Example

            for _ in tqdm(range(2), desc="Generating test split"):
                pass
            return BenchmarkData("translation", [Example("1", "the cat", "die katze")])

    module = types.ModuleType("noisy_plugin")
    module.register_benchmarks = hookimpl(lambda register: register(Noisy))
    ps = PluginSet(extra=[module])
    monkeypatch.setattr(harness.experiment.config, "default_plugins", lambda: ps)
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID.replace("{name: parallel_text, label: toy, params: {source: test.en, "
                                                    "reference: test.de}}", "{name: noisy_text, label: toy}")
                                       .replace("{name: test_slow, label: slow}", "greedy"))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out"),
                                    "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "Generating test split" not in res.output
    assert "Generating test split: 100%" in (tmp_path / "out" / "log.txt").read_text()  # the check's load
    assert "Generating test split: 100%" in next((tmp_path / "out" / "cells").glob("*/log.txt")).read_text()
