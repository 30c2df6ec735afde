"""The plugin manager: discovers plugins and fills one typed registry per kind.

Every plugin, built-in or third-party, is a module listed in the ``harness`` entry-point
group of its distribution (``[project.entry-points.harness]`` in pyproject.toml). Environment:

- ``HARNESS_BLOCK_PLUGINS=a,b``: do not load these entry points or distributions;
- ``HARNESS_LOAD_PLUGINS=a,b``: load only these third-party distributions (built-ins always load).

A plugin that misbehaves while loading (its module fails to import, it implements a hook that
does not exist, e.g. ``register_decoder`` for ``register_decoders``, which pluggy's
``check_pending()`` finds, its hook raises, it registers a class the registry refuses, e.g. a
``Params`` default that breaks its own constraint) is skipped with one warning naming its package
and how to block it, and listed in :attr:`PluginSet.broken` (``harness plugins`` shows it);
everything else keeps working. Each plugin's registration is all or nothing, so a
half-registered plugin never lingers.

There is no hidden global state to reset: :func:`default_plugins` caches one :class:`PluginSet`
built from the environment; tests and embedders construct their own with ``extra=``.
"""
from __future__ import annotations

import difflib
import functools
import importlib.metadata
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

import pluggy

from . import hookspecs
from .api import BASES
from .errors import UnknownPluginError
from .registry import PluginInfo, Registry, distribution_of

log = logging.getLogger("harness")

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


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that was skipped because it failed to load or register."""

    name: str  # entry-point (pluggy) name
    package: str  # distribution that provided it
    error: str  # one line: what went wrong

    @property
    def message(self) -> str:
        block = self.name if self.package.startswith("(") else self.package
        return (f"skipping plugin '{self.name}' from package {self.package}: {self.error}. "
                f"Block it with HARNESS_BLOCK_PLUGINS={block} (or uninstall it) to silence this warning")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class PluginSet:
    """A plugin manager plus the registries its plugins filled (and the plugins it skipped).

    ``warn``: log one warning per skipped plugin (``harness`` logger; printed on stderr when
    logging is not configured)."""

    def __init__(self, *, use_entry_points: bool = True, extra: Iterable[ModuleType | object] = (),
                 warn: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self._packages: dict[str, str] = {}
        if use_entry_points:
            self._load_entry_points()
        for plugin in extra:
            if not self.pm.is_registered(plugin):  # a package under test may also be installed (entry point)
                self.pm.register(plugin)
        self._refuse_unknown_hooks()
        self.registries = {kind: Registry(kind) for kind in BASES}
        self._register_all()
        if warn:
            for b in self.broken:
                log.warning("warning: %s", b.message)

    def _skip(self, name: str, package: str, error: str) -> None:
        if not any(b.name == name for b in self.broken):
            self.broken.append(BrokenPlugin(name, package, error))

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
                self._packages[ep.name] = dist or f"(module {ep.value})"
                try:
                    module = ep.load()
                except (Exception, SystemExit) as e:  # noqa: BLE001 - a broken plugin must not take down the rest
                    self._skip(ep.name, self._packages[ep.name], f"its module {ep.value} failed to import: {_one_line(e)}")
                    continue
                try:
                    self.pm.register(module, name=ep.name)
                except (pluggy.PluginValidationError, ValueError) as e:
                    self._skip(ep.name, self._packages[ep.name], f"pluggy refused it: {_one_line(e)}")

    def _package_of(self, plugin_name: str, plugin: object) -> str:
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        return self._packages.get(plugin_name) or distribution_of(module)

    def _refuse_unknown_hooks(self) -> None:
        """pluggy's ``check_pending()`` raises for a ``@hookimpl`` that matches no hook spec, which
        would otherwise be ignored without a word (``register_decoder`` registers nothing). The
        plugin it names is skipped as broken, as a whole, and the check runs again on the rest."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as err:
                plugin, e = err.plugin, _one_line(err)
            name = self.pm.get_name(plugin) or repr(plugin)
            hooks = list(HOOK_FOR_KIND.values())
            what = []
            for hook in sorted({c.name for c in self.pm.get_hookcallers(plugin) or [] if not c.has_spec()}):
                close = difflib.get_close_matches(hook, hooks, n=1)
                hint = f"did you mean {close[0]}?" if close else f"the hooks are {', '.join(hooks)}"
                what.append(f"its @hookimpl {hook} is not a harness hook ({hint})")
            self._skip(name, self._package_of(name, plugin), "; ".join(what) or f"pluggy refused it: {e}")
            self.pm.unregister(plugin)

    def _register_all(self) -> None:
        """Call every plugin's registration hooks, one plugin at a time (in registration order),
        so that a plugin that raises or registers something invalid is skipped as a whole."""
        for plugin_name, plugin in list(self.pm.list_name_plugin()):
            if plugin is None:  # blocked in pluggy
                continue
            before = {kind: set(reg.names()) for kind, reg in self.registries.items()}
            try:
                for kind, hook in HOOK_FOR_KIND.items():
                    for impl in getattr(self.pm.hook, hook).get_hookimpls():
                        if impl.plugin is plugin:
                            # implementations may take any subset of the hook's arguments
                            impl.function(*[{"register": self.registries[kind]}[a] for a in impl.argnames])
            except (Exception, SystemExit) as e:  # noqa: BLE001
                for kind, reg in self.registries.items():  # all or nothing
                    for name in set(reg.names()) - before[kind]:
                        reg.discard(name)
                self._skip(plugin_name, self._package_of(plugin_name, plugin), f"registering it failed: {_one_line(e)}")
                self.pm.unregister(plugin)

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def get(self, kind: str, name: str):
        try:
            return self.registries[kind].get(name)
        except UnknownPluginError as e:
            if self.broken:  # the name may belong to a plugin that could not load: say so
                skipped = ", ".join(f"'{b.name}' ({b.package})" for b in self.broken)
                e.args = (f"{e} (skipped as broken: {skipped}; see `harness plugins`)",)
            raise

    def __iter__(self) -> Iterator[PluginInfo]:
        for kind in BASES:
            yield from self.registries[kind]


@functools.cache
def default_plugins() -> PluginSet:
    return PluginSet()
