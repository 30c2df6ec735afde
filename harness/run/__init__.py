"""Running an experiment: its cells through an executor, into a run directory.

- :mod:`.runner`: cell keys, the input checks before the lock, the plan (cached / run / retry),
  :class:`~.runner.Worker` (runs one cell) and :func:`~.runner.run_experiment`;
- :mod:`.jobs`: :class:`~.jobs.CellJob`, :class:`~.jobs.CellOutcome`, :class:`~.jobs.RunSummary`
  (the data executors pass around);
- :mod:`.classify`: the prediction step of a classification cell;
- :mod:`.example_scores`: the per-row ``scores`` of ``predictions/*.jsonl``;
- :mod:`.returns`: plugin return values checked where they enter the core;
- :mod:`.outputs`: what the run directory receives after the cells; :mod:`.provenance`: the
  manifest's data files and Hub revisions;
- :mod:`.progress`: the progress display and per-cell logs; :mod:`.threads`: torch threads per cell.

``harness.run_experiment`` is the public entry.
"""
