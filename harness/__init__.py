"""nlp-eval-harness: compare decoding and fine-tuning strategies with evidence.

Public API: :func:`load_results` (a run's metrics as a DataFrame), :func:`load_experiment`,
:func:`run_experiment`, :func:`leaderboard`, :func:`compare` (the reports' decision rules on
per-example scores you already have). Plugin authors use :mod:`harness.api`, :mod:`harness.params` and
:mod:`harness.hookspecs`. Importing this package imports neither torch nor transformers.
"""
from __future__ import annotations

from ._version import __version__


def load_results(outdir):
    """Metrics of a run directory as a pandas DataFrame (one row per cell and metric)."""
    from .results import load_results as _load

    return _load(outdir)


def load_experiment(path, overrides=()):
    from .experiment.load import load_experiment as _load

    return _load(path, list(overrides))


def run_experiment(resolved, outdir, **kw):
    from .run.runner import run_experiment as _run

    return _run(resolved, outdir, **kw)


def leaderboard(run_dirs, **kw):
    """Merge run directories into one leaderboard DataFrame (a row per benchmark, metric,
    configuration and run; identical cells counted once; ``table``/``group``/``note`` say which
    scores are comparable: same signature and test set). See :mod:`harness.report.leaderboards`."""
    from .report.leaderboards import leaderboard as _lb

    return _lb(run_dirs, **kw)


def compare(system, baseline=None, **kw):
    """Whether ``system`` differs from ``baseline``, from per-example scores of one run, several
    seeds (seeds × examples) or several datasets (``{name: (system, baseline)}``): the verdict,
    p, 95% interval and deciding test, by the same rules as the reports. See :mod:`harness.report.compare`."""
    from .report.compare import compare as _compare

    return _compare(system, baseline, **kw)


__all__ = ["__version__", "load_results", "load_experiment", "run_experiment", "leaderboard", "compare"]
