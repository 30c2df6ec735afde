"""The plugin manager: discovers plugins and fills one typed registry per kind.

Every plugin, built-in or third-party, is a module listed in the ``harness`` entry-point
group of its distribution (``[project.entry-points.harness]`` in pyproject.toml). Environment:

- ``HARNESS_BLOCK_PLUGINS=a,b``: do not load these entry points or distributions;
- ``HARNESS_LOAD_PLUGINS=a,b``: load only these third-party distributions (built-ins always load).

There is no hidden global state to reset: :func:`default_plugins` caches one :class:`PluginSet`
built from the environment; tests and embedders construct their own with ``extra=``.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Iterable, Iterator
from types import ModuleType

import pluggy

from . import hookspecs
from .api import BASES
from .registry import PluginInfo, Registry

ENTRY_POINT_GROUP = "harness"
BUILTIN_DISTRIBUTION = "nlp-eval-harness"
HOOK_FOR_KIND = {
    "decoder": "register_decoders",
    "strategy": "register_strategies",
    "benchmark": "register_benchmarks",
    "metric": "register_metrics",
    "reporter": "register_reporters",
    "executor": "register_executors",
}
assert set(HOOK_FOR_KIND) == set(BASES)


def _split_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


class PluginSet:
    """A plugin manager plus the registries its plugins filled."""

    def __init__(self, *, use_entry_points: bool = True, extra: Iterable[ModuleType | object] = ()):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        if use_entry_points:
            self._load_entry_points()
        for plugin in extra:
            if not self.pm.is_registered(plugin):  # a package under test may also be installed (entry point)
                self.pm.register(plugin)
        self.registries = {kind: Registry(kind) for kind in BASES}
        for kind, hook in HOOK_FOR_KIND.items():
            getattr(self.pm.hook, hook)(register=self.registries[kind])

    def _load_entry_points(self) -> None:
        block = _split_env("HARNESS_BLOCK_PLUGINS") or set()
        only = _split_env("HARNESS_LOAD_PLUGINS")
        for ep in entry_points():
            dist = ep.dist.name if ep.dist else ""
            if ep.name in block or dist in block:
                continue
            if only is not None and dist != BUILTIN_DISTRIBUTION and dist not in only:
                continue
            if self.pm.get_plugin(ep.name) is None:
                self.pm.register(ep.load(), name=ep.name)

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def get(self, kind: str, name: str):
        return self.registries[kind].get(name)

    def __iter__(self) -> Iterator[PluginInfo]:
        for kind in BASES:
            yield from self.registries[kind]


@functools.cache
def default_plugins() -> PluginSet:
    return PluginSet()
