"""``leaderboard``: a run's leaderboard, optionally merged with earlier runs, in several formats.

Writes ``leaderboard.<ext>`` into the run directory for each of ``formats``, built by
:func:`harness.report.leaderboards.leaderboard` from this run plus the ``include`` run directories
(relative to the config file), so a series of experiments keeps one up-to-date leaderboard.
Scores with another metric signature or test set than the rest go into separate tables with a
note saying why (see :mod:`harness.report.leaderboards`). The same merge is available as
``harness leaderboard RUN_DIR...``. Non-goals: significance tests (see the html reporter).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.api import Reporter
from harness.hookspecs import hookimpl
from harness.params import InputDir, Params
from harness.store import safe_child

EXTENSIONS = {"html": ".html", "csv": ".csv", "parquet": ".parquet", "markdown": ".md", "latex": ".tex"}


class LeaderboardParams(Params):
    formats: list[Literal["html", "csv", "parquet", "markdown", "latex"]] = Field(
        default_factory=lambda: ["html", "csv"], min_length=1, description="files to write")
    include: list[InputDir] = Field(default_factory=list, description="other run directories to merge in")
    basename: str = Field("leaderboard", description="file name without extension")


class LeaderboardReport(Reporter):
    name = "leaderboard"
    description = ("leaderboard.{html,csv,parquet,md,tex}: this run (plus 'include' runs) ranked per benchmark and "
                   "metric; other signatures or test sets in separate tables.")
    Params = LeaderboardParams

    def outputs(self):
        return [self.params.basename + EXTENSIONS[f] for f in dict.fromkeys(self.params.formats)]

    def write(self, results, outdir):
        from harness.report.leaderboards import export, leaderboard

        p = self.params
        df = leaderboard([Path(results.outdir), *map(Path, p.include)])
        return [export(df, safe_child(Path(outdir), p.basename + EXTENSIONS[f]), f) for f in dict.fromkeys(p.formats)]


@hookimpl
def register_reporters(register):
    register(LeaderboardReport)
