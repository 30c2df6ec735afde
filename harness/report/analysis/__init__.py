"""What the reports say, computed once from a run directory: tables, tests, verdicts, drill-down.

:func:`analyze` turns a :class:`~harness.results.RunResults` into a :class:`ReportData` that the
``html``, ``markdown``, ``csv`` and ``parquet`` reporters render; nothing here writes HTML.

How comparisons are paired. A *configuration* is (benchmark, model, strategy, decoder); its
cells are its seeds. Each configuration is compared with the configuration that differs from it
in one factor only, the baseline's value of that factor (``manifest["baseline"]``; by default
``greedy`` / ``unmasked``, else the first in the config): a decoder other than the baseline
decoder is compared with the baseline decoder under the same model and strategy; otherwise a
strategy other than the baseline strategy is compared with the baseline strategy under the same
decoder. Cells are paired by seed, so both arms always saw the same examples.

Which test decides, and the five verdicts it may lead to: see :mod:`.verdicts` and
:mod:`harness.stats.decide` (identical outputs get no test; over seeds the seeds × examples t-test;
over examples McNemar for accuracy, approximate randomisation for other metrics with per-example
statistics) and docs/statistics.md. Every report also carries Holm-adjusted p-values over all
its comparisons, with the family named (``multiple_comparisons: holm`` makes them decide).

Per-cell sufficient statistics are cached in ``OUTDIR/.report-cache`` (content-addressed by
metric parameters, references and outputs), so re-rendering a report recomputes no TER.

Non-goals: comparing configurations that differ in several factors at once, and cross-run
comparisons (see :mod:`harness.report.leaderboards`).

Modules, in the order the analysis runs:

- :mod:`.model`     settings (:class:`AnalysisParams`) and the data handed to reporters
- :mod:`.runs`      reading a run directory: cells, metric plugins, predictions, statistics cache
- :mod:`.pairing`   configuration labels, baselines, paired cells
- :mod:`.examples`  tests and intervals over examples
- :mod:`.verdicts`  rows, tests over seeds, ranks, verdict sentences
- :mod:`.drilldown` and :mod:`.plots`: examples to read and the numbers behind each plot
- :mod:`.study`     strategy comparisons across datasets, budgets and masking rates, pooled
  (t over datasets); the MLM-head losses of finetune.json
- :mod:`.arguments` the note's arguments: each argument of the study note as two arms compared,
  pooled across datasets (reuses the rows, tests, verdicts and pooling above)
- :mod:`.training`  the Training section: one row and learning curve per fine-tuned checkpoint
  (finetune.json's history and dev evaluations)
- :mod:`.pipeline`  :func:`analyze`, which runs them all
"""
from __future__ import annotations

from .model import (CACHE_DIR, LOWER_IS_BETTER, METRIC_TITLES, NO_DECODER, AnalysisParams, BenchmarkReport,
                    CellInfo, Config, DrillDown, MetricInfo, ReportData, Row, by_rank, fmt, metric_decimals)
from .pipeline import analyze

__all__ = ["CACHE_DIR", "LOWER_IS_BETTER", "METRIC_TITLES", "NO_DECODER", "AnalysisParams", "BenchmarkReport",
           "CellInfo", "Config", "DrillDown", "MetricInfo", "ReportData", "Row", "analyze", "by_rank", "fmt",
           "metric_decimals"]
