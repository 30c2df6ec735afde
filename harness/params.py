"""How plugins declare their parameters.

A plugin's ``Params`` is a pydantic model: each field has a type, a default and constraints
(``Field(ge=1)``, ``Literal[...]``), plus a ``description``. The config is validated against
it once, at the edge, so plugin code can trust ``self.params``. pydantic is used rather than a
hand-written checker because it already turns type/range errors into precise, located messages.

Paths that must exist use :data:`InputPath`: relative paths resolve against the config file's
directory (passed as validation context), and a missing file is a config error, found by
``harness validate`` before any model loads.

Numbers are stricter than pydantic's defaults, for every plugin at once (:class:`StrictModel`):
NaN and infinities are refused for float fields (``.nan`` would reach a cell as a score, ``.inf``
as a silent no-op), a boolean is refused where a number is expected (YAML ``true`` would
otherwise run as 1), integers must fit in 64 bits (torch and numpy overflow beyond), and a field
named ``seed`` or ``*_seed`` must lie in 0..2**32-1, the range numpy's generators accept.
Non-goal: checking values against a model (lengths, memory); :mod:`harness.experiment.checks` does that.
"""
from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator

SEED_MAX = 2**32 - 1  # numpy.random.seed / default_rng refuse larger seeds; torch accepts them
INT_MAX = 2**63 - 1  # torch and numpy integers are 64-bit


def _kinds(ann: Any) -> set[type]:
    """The scalar types among int, float, bool that an annotation accepts (list items included)."""
    if ann in (int, float, bool):
        return {ann}
    return set().union(*(_kinds(a) for a in typing.get_args(ann))) if typing.get_args(ann) else set()


def _item_metadata(ann: Any) -> list:
    """Constraints written inside the annotation, e.g. the bounds of ``list[Annotated[int, Field(ge=0)]]``."""
    out: list = []
    if typing.get_origin(ann) is Annotated:
        for m in typing.get_args(ann)[1:]:
            out += m.metadata if isinstance(m, FieldInfo) else [m]
        ann = typing.get_args(ann)[0]
    for a in typing.get_args(ann):
        out += _item_metadata(a)
    return out


def allowed_range(field: FieldInfo | None) -> str | None:
    """What a numeric field accepts, for messages: 'an integer >= 1', 'an integer in 0..4294967295',
    'a finite number > 0 and < 1 (or null)'; None for other fields."""
    if field is None:
        return None
    kinds = _kinds(field.annotation)
    if not kinds & {int, float}:
        return None
    what = "a finite number" if float in kinds else "an integer"
    bounds = {attr: getattr(m, attr) for m in [*field.metadata, *_item_metadata(field.annotation)]
              for attr in ("ge", "gt", "le", "lt") if getattr(m, attr, None) is not None}
    lo = f">= {bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else ""
    hi = f"<= {bounds['le']}" if "le" in bounds else f"< {bounds['lt']}" if "lt" in bounds else ""
    if "ge" in bounds and "le" in bounds and float not in kinds:
        rng = f" in {bounds['ge']}..{bounds['le']}"
    else:
        rng = " " + " and ".join(x for x in (lo, hi) if x) if (lo or hi) else ""
    if type(None) in typing.get_args(field.annotation) or field.annotation is type(None):
        rng += " (or null)"
    return what + rng


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed") or name == "seeds"


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, and numbers are strict (see module doc).

    Subclasses inherit the checks for all their fields; a plugin author writes plain ``int`` and
    ``float`` fields and gets them.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, v: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return v
        kinds = _kinds(field.annotation)
        if bool in kinds or not kinds & {int, float}:
            return v
        items = v if isinstance(v, (list, tuple)) else [v]
        for i, x in enumerate(items):
            if isinstance(x, bool):
                where = f" (item {i})" if items is v else ""
                raise ValueError(f"expected a number, got the boolean {str(x).lower()}{where}; "
                                 f"allowed: {allowed_range(field)}")
        return v

    @field_validator("*", mode="after")
    @classmethod
    def _int_fits(cls, v: Any, info: ValidationInfo) -> Any:
        items = v if isinstance(v, (list, tuple)) else [v]
        for x in items:
            if not isinstance(x, int) or isinstance(x, bool):
                continue
            if _is_seed(info.field_name or "") and not 0 <= x <= SEED_MAX:
                raise ValueError(f"seed {x} is out of range; allowed: an integer in 0..{SEED_MAX} "
                                 "(what numpy's random generators accept)")
            if abs(x) > INT_MAX:
                raise ValueError(f"{x} does not fit in a 64-bit integer (largest {INT_MAX}); "
                                 f"allowed: {allowed_range(cls.model_fields.get(info.field_name or ''))}")
        return v


Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
"""A random seed: an integer numpy accepts (0..2**32-1). Declare seed fields with it."""


class Params(StrictModel):
    """Base class of every plugin's parameter model: unknown keys are errors, numbers are strict."""

    model_config = ConfigDict(frozen=True)


def path_kind(p: str | Path) -> str:
    """What is at ``p`` ('regular file', 'directory', 'FIFO (named pipe)', ...; 'missing'), following symlinks."""
    import stat

    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def display_label(v: str | None) -> str | None:
    """A label as the config may give it: any text on one line, without control characters
    (newlines would forge lines in logs and the terminal, ANSI escapes recolour or retitle it) or
    Unicode's invisible bidi and format characters (they make two labels look alike)."""
    if v is None:
        return v
    import unicodedata

    bad = next((ch for ch in v if unicodedata.category(ch) in ("Cc", "Cf")), None)
    if bad is not None:
        raise ValueError(f"a label is shown in reports and on the terminal: it may not contain control or invisible "
                         f"characters (found U+{ord(bad):04X} at position {v.index(bad)}); allowed: text on one line")
    return v


def not_a_regular_file(p: str | Path) -> str | None:
    """Why ``p`` cannot be read as data, or None. Only regular files are read: a FIFO blocks, and a
    device such as /dev/zero never ends, so reading either would hang the run."""
    kind = path_kind(p)
    if kind == "regular file":
        return None
    if kind == "missing":
        return f"file not found: {p}"
    if kind.startswith("unreadable"):
        return f"{p} cannot be read: {kind.removeprefix('unreadable ').strip('()')}"
    return f"{p} is a {kind}; allowed: a regular file"


def _resolve(value: str, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    return p


def _resolve_input_path(value: str, info: ValidationInfo) -> str:
    p = _resolve(value, info)
    if (info.context or {}).get("check_files", True):
        problem = not_a_regular_file(p)
        if problem:
            raise ValueError(problem)
    return str(p)


def _resolve_input_dir(value: str, info: ValidationInfo) -> str:
    p = _resolve(value, info)
    if (info.context or {}).get("check_files", True):
        kind = path_kind(p)
        if kind == "missing":
            raise ValueError(f"directory not found: {p}")
        if kind != "directory":
            raise ValueError(f"{p} is a {kind}; allowed: a directory")
    return str(p)


InputPath = Annotated[str, AfterValidator(_resolve_input_path)]
"""A regular file that must exist (not a directory, FIFO or device); relative to the config file's directory."""

InputDir = Annotated[str, AfterValidator(_resolve_input_dir)]
"""A directory that must exist; relative to the config file's directory."""

ALIGNED = "aligned"


def aligned(group: str) -> dict[str, str]:
    """``Field(json_schema_extra=aligned("test"))`` marks an :data:`InputPath` parameter (or a list
    of them) as one of a group of files aligned line by line: ``harness validate`` counts their
    lines and refuses a group whose counts differ, naming each file and its count (before any
    model loads). A plugin reading parallel files declares it; the harness does the check."""
    return {ALIGNED: group}


def aligned_group(field: FieldInfo) -> str | None:
    """The group :func:`aligned` gave a parameter, or None."""
    extra = field.json_schema_extra
    return extra.get(ALIGNED) if isinstance(extra, dict) else None


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
        checks = {getattr(m, "func", None) for m in [*field.metadata, *_item_metadata(field.annotation)]}
        if _resolve_input_path in checks:
            constraints.append("existing file")
        if _resolve_input_dir in checks:
            constraints.append("existing directory")
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        out.append({"name": name, "type": type_name(field.annotation), "required": required, "default": default,
                    "constraints": " ".join(constraints), "description": field.description or ""})
    return out


class NoParams(Params):
    """For plugins without parameters."""
