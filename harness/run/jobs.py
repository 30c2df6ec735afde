"""What the runner hands out and gets back: a cell's job, its outcome, and the run's summary.

A :class:`CellJob` is everything needed to run one cell anywhere (executors pickle it to other
processes or machines); a :class:`CellOutcome` is what comes back, and :class:`RunSummary` is what
``run_experiment`` returns. Plain data: executor plugins and :mod:`.outputs` read these without
importing the runner. Non-goals: behaviour (the runner and :class:`~.runner.Worker` run the jobs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment.config import Cell, Component


@dataclass
class CellJob:
    """Everything needed to run one cell anywhere (picklable, for remote executors)."""

    key: str
    cell: Cell
    metrics: list[Component]
    outdir: str
    cache_dir: str
    index: int = 0
    total: int = 0
    threads: int | None = None  # torch threads for this cell (None: leave the process's setting)
    training_threads: int = 1  # torch threads while the cell's strategy trains (harness.run.threads)

    @property
    def celldir(self) -> Path:
        return Path(self.outdir) / "cells" / self.key


@dataclass
class CellOutcome:
    key: str
    labels: dict[str, Any]
    status: str  # "done" | "cached" | "failed" | "skipped"
    seconds: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    index: int = 0
    traceback: str | None = None
    metric_errors: list[str] = field(default_factory=list)  # metrics that failed or gave NaN (cell kept)
    # per row of predictions.jsonl: its ``scores`` object (harness.run.example_scores), in predictions/
    row_scores: list[dict[str, Any]] | None = None
    score_signatures: dict[str, str] = field(default_factory=dict)  # metric label -> how its row scores were made


@dataclass
class RunSummary:
    outdir: Path
    outcomes: list[CellOutcome]
    files: list[Path]
    report_errors: list[str] = field(default_factory=list)
    # files that could not be written (disk full, read-only...): the run stopped at the first
    write_errors: list[str] = field(default_factory=list)
    threads: int | None = None

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)
