"""Typed registries answering "which plugin is called X?".

pluggy discovers plugins; these registries hold what they registered, one per kind, refuse
duplicate names, and answer unknown names with a did-you-mean and the valid choices.
"""
from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass

from .api import BASES, Plugin
from .errors import HarnessError, UnknownPluginError


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    cls: type[Plugin]
    package: str  # distribution that provided it
    module: str


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed distribution: once


def distribution_of(module: str) -> str:
    """The installed distribution providing ``module`` (for messages), e.g. ``nlp-eval-harness``."""
    top = module.split(".")[0]
    dists = _packages_distributions().get(top)
    return dists[0] if dists else f"(module {top})"


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self.base = BASES[kind]
        self._items: dict[str, PluginInfo] = {}

    def register(self, cls: type[Plugin]) -> type[Plugin]:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise HarnessError(f"{cls!r} registered as a {self.kind} is not a subclass of {self.base.__name__}")
        if not cls.name:
            raise HarnessError(f"{cls.__module__}.{cls.__qualname__} has no 'name'")
        info = PluginInfo(self.kind, cls.name, cls, distribution_of(cls.__module__), cls.__module__)
        old = self._items.get(cls.name)
        if old is not None and old.cls is not cls:
            raise HarnessError(
                f"two {self.kind} plugins are named '{cls.name}': {old.module} ({old.package}) "
                f"and {info.module} ({info.package}); uninstall or block one (HARNESS_BLOCK_PLUGINS)")
        self._items[cls.name] = info
        return cls

    __call__ = register

    def get(self, name: str) -> type[Plugin]:
        try:
            return self._items[name].cls
        except KeyError:
            raise UnknownPluginError(self.kind, name, self._items) from None

    def info(self, name: str) -> PluginInfo:
        self.get(name)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self._items[n] for n in self.names())
