"""The hook specifications of the harness, and nothing else.

Every hook is a registration callback: the harness calls it with a ``register`` object and the
plugin calls ``register(SomeClass)`` once for each thing it provides. ``register`` is the typed
registry of that kind (:class:`harness.registry.Registry`, e.g. ``Registry[Decoder]``): it
refuses a class that is not a subclass of the kind's base class, has no ``name``, takes a name
already registered, or has ``Params`` defaults that break their own constraints. An
implementation may take the hook's arguments or none of them.

Built-in plugins in ``plugins/`` implement these hooks exactly as a third-party package does, and
all of them arrive through the ``harness`` entry-point group. A ``@hookimpl`` whose name is not
one of these hooks (``register_decoder``) is refused: its plugin is skipped with a warning.
"""
from __future__ import annotations

import pluggy

from .api import Benchmark, Decoder, Executor, Metric, Reporter, Strategy
from .registry import Registry

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_decoders(register: Registry[Decoder]) -> None:
    """Register :class:`harness.api.Decoder` subclasses (text generation strategies).

    :param register: call ``register(cls)`` once per decoder class.
    """


@hookspec
def register_strategies(register: Registry[Strategy]) -> None:
    """Register :class:`harness.api.Strategy` subclasses (fine-tuning before evaluation).

    :param register: call ``register(cls)`` once per strategy class.
    """


@hookspec
def register_benchmarks(register: Registry[Benchmark]) -> None:
    """Register :class:`harness.api.Benchmark` subclasses (data sources for a task).

    :param register: call ``register(cls)`` once per benchmark class.
    """


@hookspec
def register_metrics(register: Registry[Metric]) -> None:
    """Register :class:`harness.api.Metric` subclasses (scores of a cell's predictions).

    :param register: call ``register(cls)`` once per metric class.
    """


@hookspec
def register_reporters(register: Registry[Reporter]) -> None:
    """Register :class:`harness.api.Reporter` subclasses (files written from a run's results).

    :param register: call ``register(cls)`` once per reporter class.
    """


@hookspec
def register_executors(register: Registry[Executor]) -> None:
    """Register :class:`harness.api.Executor` subclasses (where and how cells run).

    :param register: call ``register(cls)`` once per executor class.
    """
