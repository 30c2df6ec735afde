"""``csv`` and ``parquet``: the report's numbers as a table for pandas, R or a spreadsheet.

One row per (benchmark, metric, configuration): score (mean over seeds), sd, 95% CI and how it
was computed, the baseline compared against, the difference and its seeds × examples interval,
every p-value (bootstrap, AR, McNemar, over seeds) and the Holm-adjusted deciding one, the deciding test, whether it is significant and the decision
(better / worse / no_difference / cannot_decide / identical, with the difference the test could
see), how many outputs differ, the seeds needed, the rank (``kind`` leaderboard). A run with a
study adds ``kind`` study (Δ per dataset, budget and rate with its intervals), pooled (the effect
across datasets, t over datasets, or ``note`` saying why not) and mlm_head rows; see
:data:`harness.report.analysis.model.RECORD_COLUMNS`. Non-goals: per-example data (predictions.jsonl
already holds it).
"""
from __future__ import annotations

import io
from pathlib import Path

from pydantic import Field

from harness.api import Reporter
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.report import AnalysisParams, analyze
from harness.store import atomic_write_bytes, atomic_write_text, safe_child


class CsvParams(AnalysisParams):
    filename: str = Field("summary.csv", description="file name inside the run directory")


class ParquetParams(AnalysisParams):
    filename: str = Field("summary.parquet", description="file name inside the run directory")


def _frame(reporter, results):
    p = reporter.params
    return analyze(results, AnalysisParams(**{k: getattr(p, k) for k in AnalysisParams.model_fields})).frame()


class CsvExport(Reporter):
    name = "csv"
    description = "summary.csv: scores, 95% CIs and p-values per benchmark, metric and configuration."
    Params = CsvParams

    def outputs(self):
        return [self.params.filename]

    def write(self, results, outdir):
        path = safe_child(Path(outdir), self.params.filename)
        atomic_write_text(path, _frame(self, results).to_csv(index=False))
        return [path]


class ParquetExport(Reporter):
    name = "parquet"
    description = "summary.parquet: the csv export as Parquet (needs pyarrow)."
    Params = ParquetParams

    def outputs(self):
        return [self.params.filename]

    def write(self, results, outdir):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise HarnessError("reporter 'parquet' needs pyarrow: pip install pyarrow") from None
        path = safe_child(Path(outdir), self.params.filename)
        buf = io.BytesIO()
        _frame(self, results).to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
        return [path]


@hookimpl
def register_reporters(register):
    register(CsvExport)
    register(ParquetExport)
