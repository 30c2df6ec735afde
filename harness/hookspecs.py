"""The hook specifications of the harness, and nothing else.

Every hook is a registration callback: the harness calls it with a ``register`` object and the
plugin calls ``register(SomeClass)`` once for each thing it provides. Built-in plugins in
``plugins/`` implement these hooks exactly as a third-party package does, and all of them
arrive through the ``harness`` entry-point group.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_decoders(register):
    """Register :class:`harness.api.Decoder` subclasses (text generation strategies)."""


@hookspec
def register_strategies(register):
    """Register :class:`harness.api.Strategy` subclasses (fine-tuning before evaluation)."""


@hookspec
def register_benchmarks(register):
    """Register :class:`harness.api.Benchmark` subclasses (data sources for a task)."""


@hookspec
def register_metrics(register):
    """Register :class:`harness.api.Metric` subclasses (scores of a cell's predictions)."""


@hookspec
def register_reporters(register):
    """Register :class:`harness.api.Reporter` subclasses (files written from a run's results)."""


@hookspec
def register_executors(register):
    """Register :class:`harness.api.Executor` subclasses (where and how cells run)."""
