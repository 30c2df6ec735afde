"""Typed registries answering "which plugin is called X?".

pluggy discovers plugins; these registries hold what they registered, one per kind, refuse
duplicate names, and answer unknown names with a did-you-mean and the valid choices. A
registry is also the ``register`` object a registration hook receives: ``register(MyDecoder)``
(or ``register.register(MyDecoder)``) adds a class, and ``Registry[Decoder]`` is its type in
:mod:`harness.hookspecs`, so a type checker sees which base class each hook's classes must have.
"""
from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from typing import Generic, TypeVar

from .api import BASES, Plugin
from .errors import HarnessError, UnknownPluginError

P = TypeVar("P", bound=Plugin)


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


def check_params_defaults(kind: str, cls: type[Plugin]) -> None:
    """Refuse a plugin whose ``Params`` defaults break their own constraints (``Field(0, ge=1)``):
    pydantic does not validate defaults, so every config that omits the key would pass a value
    the plugin itself declared impossible."""
    from pydantic import BaseModel, ValidationError

    params = cls.Params
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise HarnessError(f"{kind} plugin '{cls.name}' ({cls.__module__}): Params is {params!r}, "
                           "not a harness.params.Params model")
    defaults = {name: f.get_default(call_default_factory=True) for name, f in params.model_fields.items()
                if not f.is_required()}
    try:
        params.model_validate(defaults, context={"check_files": False})
    except ValidationError as e:
        for err in e.errors():
            if err["type"] == "missing" or not err["loc"] or err["loc"][0] not in defaults:
                continue
            field = err["loc"][0]
            raise HarnessError(f"{kind} plugin '{cls.name}' ({cls.__module__}): the default of Params.{field}, "
                               f"{defaults[field]!r}, breaks its own constraint: {err['msg']}") from None


class Registry(Generic[P]):
    """The plugins of one kind (``decoder``, ``metric``...), by name; the ``register`` of its hook."""

    def __init__(self, kind: str):
        self.kind = kind
        self.base = BASES[kind]
        self._items: dict[str, PluginInfo] = {}

    def register(self, cls: type[P]) -> type[P]:
        """Add ``cls`` (a subclass of this kind's base class, with a ``name``); returns it, so it
        also works as a class decorator. Refuses another class under a name already taken."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise HarnessError(f"{cls!r} registered as a {self.kind} is not a subclass of {self.base.__name__}")
        if not cls.name:
            raise HarnessError(f"{cls.__module__}.{cls.__qualname__} has no 'name'")
        check_params_defaults(self.kind, cls)
        info = PluginInfo(self.kind, cls.name, cls, distribution_of(cls.__module__), cls.__module__)
        old = self._items.get(cls.name)
        if old is not None and old.cls is not cls:
            raise HarnessError(
                f"two {self.kind} plugins are named '{cls.name}': {old.module} ({old.package}) "
                f"and {info.module} ({info.package}); uninstall or block one (HARNESS_BLOCK_PLUGINS)")
        self._items[cls.name] = info
        return cls

    __call__ = register

    def discard(self, name: str) -> None:
        """Forget a plugin (used to undo a plugin whose registration failed half-way)."""
        self._items.pop(name, None)

    def get(self, name: str) -> type[P]:
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
