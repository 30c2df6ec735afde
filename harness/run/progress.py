"""Progress of a run: cells done/total with an ETA, and the running cell's own progress.

Three displays behind one small interface (:class:`Progress`):

- a live terminal display (rich) when stdout is a terminal and ``CI`` is not set: one bar for
  the cells, one for the running cell (examples decoded, training steps), and a line per
  finished cell above them;
- plain log lines otherwise (pipes, CI logs): one line per finished cell, and a line about the
  running cell at most every ``interval`` seconds, so long cells show they are alive without
  flooding the log;
- nothing at all (``--quiet``): the CLI still prints its closing summary and errors.

The runner sends events (``start``, ``cell_started``, ``cell_progress``, ``cell_finished``,
``close``); plugins reach ``cell_progress`` through ``ctx.progress(done, total)``. The ETA
counts only cells that actually run (reused ones finish instantly and would make it lie). Until
a "later" cell has finished it divides the time since the first cell started by how many have
finished. A later cell is one whose labels, apart from the decoder, match a cell finished
before it: it reuses that cell's one-off work (the strategy's training, the model load), so
once such cells have timings the ETA is the median of their durations per cell left, divided by
the concurrency seen so far (sum of cell durations / wall time) for parallel executors; a first
cell's 10-minute training then no longer inflates the estimate for 20 ten-second decoders.
Non-goals: predicting the one-off costs of groups not started yet (the runner reports counts,
not the cells left), and progress of cells running on other machines (a Ray executor reports
cells as they finish, not their inner progress).

Outside a terminal, what third-party libraries print while a cell runs (tqdm bars such as
"Loading weights", transformers/datasets log lines, FutureWarnings) goes to that cell's
``cells/<key>/log.txt`` instead of the console (:meth:`Progress.cell_output`): a CI log shows one
line per cell, and the details stay next to the cell they belong to. The harness's own
warnings still reach the console.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO



class _CellLog(io.TextIOBase):
    """A text stream appending to a cell's log file, created on the first write only (a cell
    that prints nothing leaves no empty file). After the cell (:meth:`finish`) it forwards to
    the console: objects created during the cell (a logging handler set up lazily, a tqdm bar)
    may keep it as their stream."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None
        self._after: TextIO | None = None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # tqdm and friends then print plain lines, not cursor movements
        return False

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self._after is not None:
            return self._after.write(text)
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8", errors="replace")
            n = self._file.write(text)
            self._file.flush()
        except OSError as e:  # a full disk: name the file (the run stops, see harness.run.runner)
            from ..store import OutputWriteError

            raise OutputWriteError(self.path, e) from e
        return n

    def flush(self) -> None:
        if self._after is not None:
            self._after.flush()

    def finish(self, console: TextIO) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._after = console


def _our_dirs() -> tuple[str, ...]:
    import importlib.util

    dirs = [Path(__file__).resolve().parent.parent]  # the harness package (this file is in harness/run/)
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("harness_plugins")
        dirs += [Path(d).resolve() for d in (spec.submodule_search_locations or [])] if spec else []
    return tuple(str(d) + os.sep for d in dirs)


# Deprecation notices are for whoever maintains the calling code, not for the person running cells
_LOG_ONLY = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _for_console(category: type[Warning], filename: str) -> bool:
    """A warning the harness or a built-in plugin raised itself (e.g. trust_remote_code is on)."""
    return not issubclass(category, _LOG_ONLY) and os.path.realpath(filename).startswith(_our_dirs())


@contextlib.contextmanager
def third_party_output_to(path: Path) -> Iterator[TextIO]:
    """While the block runs, send ``sys.stderr`` and ``sys.stdout`` writes, third-party loggers'
    console handlers and warnings raised outside the harness to ``path``.

    Warnings raised by the harness itself (e.g. that ``trust_remote_code`` is on) and the
    ``harness`` logger's messages still go to the real stderr, and into the log too.
    """
    sink = _CellLog(path)
    console = sys.stderr
    swapped: list[tuple[logging.StreamHandler, Any]] = []
    loggers = [logging.getLogger()] + [lg for name, lg in list(logging.root.manager.loggerDict.items())
                                       if isinstance(lg, logging.Logger) and not name.startswith("harness")]
    for lg in loggers:
        for h in lg.handlers:
            # plain StreamHandlers are consoles (stderr as it was when the library set up its
            # logging); file handlers and the like are subclasses and are left alone
            if type(h) is logging.StreamHandler:
                swapped.append((h, h.setStream(sink)))
    ours = logging.getLogger("harness")
    keep_ours = None
    if not ours.hasHandlers():  # logging's last resort would print to sys.stderr, i.e. the log
        keep_ours = logging.StreamHandler(console)
        keep_ours.setLevel(logging.WARNING)
        ours.addHandler(keep_ours)

    def show(message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line)
        sink.write(text)
        if _for_console(category, filename):
            console.write(text)

    stdout = sys.stdout  # the line display printing cells keeps its own reference to it
    with warnings.catch_warnings():
        warnings.showwarning = show
        sys.stderr = sys.stdout = sink
        try:
            yield sink
        finally:
            sys.stderr, sys.stdout = console, stdout
            for h, old in swapped:
                h.setStream(old)
            if keep_ours is not None:
                ours.removeHandler(keep_ours)
            sink.finish(console)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "eta ?"
    s = int(round(seconds))
    if s >= 3600:
        return f"eta {s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"eta {s // 60}m{s % 60:02d}s"
    return f"eta {s}s"


def cell_title(labels: dict[str, Any]) -> str:
    from ..errors import printable

    return printable(" / ".join(str(v) for v in labels.values()))  # labels are config text: no raw controls


def outcome_line(outcome, finished: int, total: int) -> str:
    scores = ", ".join(f"{m['metric']}={m['value']:.2f}" for m in outcome.metrics)
    extra = f" ({scores})" if scores else ""
    if outcome.status in ("failed", "skipped"):
        extra = f": {outcome.error}"
    return f"[{finished}/{total}] {outcome.status:7s} {outcome.seconds:7.1f}s  {cell_title(outcome.labels)}{extra}"


class Progress:
    """Receives the run's events. This base class shows nothing (``--quiet``); it also keeps
    the counts and the ETA that the displays share."""

    def __init__(self) -> None:
        self.total = 0
        self.to_run = 0
        self.finished = 0
        self.ran = 0  # cells finished that were actually executed (not reused or skipped)
        self._first_start: float | None = None
        self._groups: set[tuple] = set()  # (labels without the decoder) of cells that ran
        self._busy = 0.0  # sum of the durations of cells that ran
        self._later: list[float] = []  # durations of cells that reused an earlier cell's one-off work

    def start(self, total: int, to_run: int, *, cached: int = 0, interrupted: int = 0) -> None:
        self.total, self.to_run = total, to_run

    def cell_started(self, job) -> None:
        if self._first_start is None:
            self._first_start = time.monotonic()

    def cell_progress(self, job, done: int, total: int | None = None) -> None:
        pass

    def cell_finished(self, outcome, ran: bool = True) -> None:
        """``ran``: False for cells settled without running (reused, kept failures, skipped)."""
        self.finished += 1
        if ran:
            if self._first_start is None:  # executors that do not report starts (remote ones)
                self._first_start = time.monotonic() - outcome.seconds
            self.ran += 1
            self._busy += outcome.seconds
            group = tuple(sorted((k, str(v)) for k, v in (outcome.labels or {}).items() if k != "decoder"))
            if group in self._groups:
                self._later.append(outcome.seconds)
            self._groups.add(group)

    def eta(self) -> float | None:
        """Seconds left for the cells still to run, from the throughput so far (None: unknown yet)."""
        left = max(self.to_run - self.ran, 0)
        if left == 0:
            return 0.0
        if not self.ran or self._first_start is None:
            return None
        elapsed = time.monotonic() - self._first_start
        if self._later:
            import statistics

            # the last 20 later cells: the median shrugs off an odd slow one, recent ones follow drift
            concurrency = max(1.0, self._busy / elapsed) if elapsed > 0 else 1.0
            return statistics.median(self._later[-20:]) / concurrency * left
        return elapsed / self.ran * left

    def close(self) -> None:
        pass

    def cell_output(self, path: Path) -> contextlib.AbstractContextManager:
        """Where a running cell's third-party console output goes: its log file ``path`` (here,
        and for plain lines); a live terminal display keeps it on screen."""
        return third_party_output_to(path)


class LineProgress(Progress):
    """Plain lines, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None, interval: float = 15.0) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        self.interval = interval
        self._last_line = 0.0

    def _print(self, text: str) -> None:
        from ..errors import printable

        print(printable(text), file=self.stream, flush=True)

    def start(self, total, to_run, *, cached=0, interrupted=0):
        super().start(total, to_run, cached=cached, interrupted=interrupted)
        parts = [f"{total} cells"]
        if cached:
            parts.append(f"{cached} reused")
        if interrupted:
            parts.append(f"{interrupted} interrupted (restarting)")
        parts.append(f"{to_run} to run")
        self._print(", ".join(parts))

    def cell_started(self, job):
        super().cell_started(job)
        self._last_line = time.monotonic()

    def cell_progress(self, job, done, total=None):
        now = time.monotonic()
        if now - self._last_line < self.interval:
            return
        self._last_line = now
        of = f"/{total} ({100 * done / total:.0f}%)" if total else ""
        self._print(f"      {cell_title(job.cell.labels())}: {done}{of}")

    def cell_finished(self, outcome, ran=True):
        super().cell_finished(outcome, ran)
        line = outcome_line(outcome, self.finished, self.total)
        if ran and self.finished < self.total:
            line += f"  [{format_eta(self.eta())}]"
        self._print(line)


class RichProgress(Progress):
    """A live display for terminals: cells bar with ETA, running-cell bar, finished cells above."""

    def __init__(self, stream: TextIO | None = None, console=None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBars

        self.console = console or Console(file=stream or sys.stdout)
        self.bars = RichBars(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[note]}", markup=False), TimeElapsedColumn(),
                             console=self.console, refresh_per_second=4, transient=False)
        self._cells = None
        self._cell = None

    def start(self, total, to_run, *, cached=0, interrupted=0):
        super().start(total, to_run, cached=cached, interrupted=interrupted)
        # Hugging Face's own tqdm bars ("Loading weights", downloads) would tear the live display
        # apart; the cell bar says the same. Only the terminal display turns them off.
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
        else:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        self.bars.start()
        note = f"{cached} reused" if cached else ""
        if interrupted:
            note += f"{', ' if note else ''}{interrupted} interrupted"
        self._cells = self.bars.add_task("cells", total=total, note=note)

    def cell_started(self, job):
        super().cell_started(job)
        title = cell_title(job.cell.labels())
        if self._cell is None:
            self._cell = self.bars.add_task(title, total=None, note="")
        else:
            self.bars.reset(self._cell, description=title, total=None, note="")

    def cell_progress(self, job, done, total=None):
        if self._cell is not None:
            self.bars.update(self._cell, completed=done, total=total)

    def cell_finished(self, outcome, ran=True):
        super().cell_finished(outcome, ran)
        from ..errors import printable

        self.bars.console.print(printable(outcome_line(outcome, self.finished, self.total)), markup=False,
                                highlight=False)
        if self._cells is not None:
            self.bars.update(self._cells, completed=self.finished, note=format_eta(self.eta()))

    def close(self):
        if self._cell is not None:
            self.bars.remove_task(self._cell)
            self._cell = None
        self.bars.stop()

    def cell_output(self, path):
        return contextlib.nullcontext()  # rich prints warnings above the bars; HF's bars are off (start)


def make_progress(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """The display for this environment: nothing when quiet, live in a terminal, else lines."""
    if quiet:
        return Progress()
    stream = stream or sys.stdout
    interactive = hasattr(stream, "isatty") and stream.isatty()
    if interactive and not os.environ.get("CI") and os.environ.get("TERM") != "dumb":
        return RichProgress(stream)
    return LineProgress(stream)
