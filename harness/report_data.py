"""Old name of :mod:`harness.report.analysis` (the report analysis), kept for one release.

Import :mod:`harness.report` (``from harness.report import analyze, AnalysisParams``) instead;
this alias will be removed in the next release.
"""
from __future__ import annotations

from .report.analysis import *  # noqa: F401,F403
from .report.analysis import __all__  # noqa: F401
