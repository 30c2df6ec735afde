"""How plugins declare their parameters.

A plugin's ``Params`` is a pydantic model: each field has a type, a default and constraints
(``Field(ge=1)``, ``Literal[...]``), plus a ``description``. The config is validated against
it once, at the edge, so plugin code can trust ``self.params``. pydantic is used rather than a
hand-written checker because it already turns type/range errors into precise, located messages.

Paths that must exist use :data:`InputPath`: relative paths resolve against the config file's
directory (passed as validation context), and a missing file is a config error, found by
``harness validate`` before any model loads.
"""
from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic.functional_validators import AfterValidator


class Params(BaseModel):
    """Base class of every plugin's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_input_path(value: str, info: ValidationInfo) -> str:
    base = (info.context or {}).get("base_dir")
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    if (info.context or {}).get("check_files", True) and not p.exists():
        raise ValueError(f"file not found: {p}")
    return str(p)


InputPath = Annotated[str, AfterValidator(_resolve_input_path)]
"""A file or directory that must exist; relative to the config file's directory."""


def _is_list_annotation(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin is Annotated:
        return _is_list_annotation(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_annotation(a) for a in typing.get_args(ann))
    return ann in (list, tuple)


def is_sweep(params_cls: type[Params], key: str, value: Any) -> bool:
    """A list given for a scalar parameter is a sweep; for a list parameter, a list of lists is."""
    if not isinstance(value, list):
        return False
    field = params_cls.model_fields.get(key)
    if field is None or not _is_list_annotation(field.annotation):
        return True
    return bool(value) and all(isinstance(v, list) for v in value)


def type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(ann))
    if origin is Annotated:
        return type_name(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(ann))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(ann))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if ann is type(None):
        return "null"
    return getattr(ann, "__name__", str(ann))


def describe(params_cls: type[Params]) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, required, default (None when required), constraints,
    description (for `harness plugins`)."""
    out = []
    for name, field in params_cls.model_fields.items():
        constraints = []
        for m in field.metadata:
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                              ("min_length", "min_length="), ("max_length", "max_length=")):
                v = getattr(m, attr, None)
                if v is not None:
                    constraints.append(f"{sym}{v}")
        if field.annotation is not None and any(
                getattr(m, "func", None) is _resolve_input_path for m in getattr(field.annotation, "__metadata__", ())):
            constraints.append("existing path")
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        out.append({"name": name, "type": type_name(field.annotation), "required": required, "default": default,
                    "constraints": " ".join(constraints), "description": field.description or ""})
    return out


class NoParams(Params):
    """For plugins without parameters."""
