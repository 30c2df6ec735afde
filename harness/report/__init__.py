"""Reports: what a run's results say, and the files that say it.

The public face for reporter authors: :func:`analyze` turns a run's results
(:class:`harness.results.RunResults`) into a :class:`ReportData` (tables, intervals, tests and
verdicts) that the ``html``, ``markdown`` and ``csv``/``parquet`` reporters render; its settings
are :class:`AnalysisParams`. The package's modules:

- :mod:`.analysis`: the analysis itself (see its docstring for how comparisons are paired);
- :mod:`.leaderboards`: many run directories merged into leaderboards (``harness leaderboard``);
- :mod:`.results_json`: ``OUTDIR/results.json``, the report's numbers in one diffable file;
- :mod:`.page`: what every HTML page shares (templates, assets, safe JSON, the CSP);
- :mod:`.compare`: :func:`harness.compare` and ``harness compare``, the reports' decision rules on
  per-example scores a user already has (arrays, a run's predictions files, one number per line).

Non-goals: rendering (the reporter plugins do it) and the statistics themselves
(:mod:`harness.stats`).
"""
from __future__ import annotations

from .analysis import *  # noqa: F401,F403 - the names of harness.report.analysis's __all__
from .analysis import __all__  # noqa: F401
