"""What plugins return, checked where it enters the core.

A plugin method that returns the wrong shape (a decoder returning ``list[str]`` instead of
``list[list[Hypothesis]]``, a strategy returning None) would otherwise fail far from its cause,
e.g. ``AttributeError: 'str' object has no attribute 'text'`` inside the runner. These checks
turn it into one :class:`PluginReturnError` naming the plugin, its package, what it returned
and what was expected; the cell (or only the metric, or only the reporter) fails with it.

Scope: types and shapes, cheaply (one pass over the returned lists). Non-goal: judging the
values (an empty output string is a legitimate translation).
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

from ..api import BenchmarkData, Example, Hypothesis, MetricValue


class PluginReturnError(TypeError):
    """A plugin returned something its kind's contract does not allow. A plugin bug, not bad
    input, so not a :class:`~harness.errors.HarnessError`: the cell (metric, reporter) that met
    it fails, the run goes on."""


def describe_value(value: Any, depth: int = 0) -> str:
    """A short type description for messages: ``list[str]``, ``list[list[Hypothesis]]``, ``NoneType``."""
    if isinstance(value, (list, tuple)):
        if not value:
            return f"empty {type(value).__name__}"
        inner = describe_value(value[0], depth + 1) if depth < 2 else "..."
        return f"{type(value).__name__}[{inner}]"
    return type(value).__name__


def who(component) -> str:
    """``decoder 'name' (package)`` for a config component or a plugin class."""
    from ..registry import distribution_of

    cls = getattr(component, "cls", component)
    package = distribution_of(cls.__module__)
    return f"{cls.kind} '{cls.name}' {package if package.startswith('(') else f'({package})'}"


def _fail(component, got: Any, expected: str, detail: str = "") -> PluginReturnError:
    detail = f" ({detail})" if detail else ""
    return PluginReturnError(f"{who(component)} returned {describe_value(got)}{detail}; expected {expected}")


def check_benchmark_data(component, data: Any) -> BenchmarkData:
    expected = f"BenchmarkData(task={component.cls.task!r}, test=[Example, ...])"
    if not isinstance(data, BenchmarkData):
        raise _fail(component, data, expected)
    if data.task != component.cls.task:
        raise _fail(component, data, expected, f"task {data.task!r}")
    for split in ("test", "train", "dev"):
        examples = getattr(data, split)
        if examples is None and split != "test":
            continue
        if not isinstance(examples, (list, tuple)) or not all(isinstance(ex, Example) for ex in examples):
            raise _fail(component, examples, expected, f"its {split} split")
        if split != "test":
            continue
        field = "label" if data.task == "classification" else "reference"
        bad = next((ex for ex in examples if not isinstance(ex.source, str) or not isinstance(getattr(ex, field), str)), None)
        if bad is not None:
            raise PluginReturnError(f"{who(component)} returned {split} example {bad.id!r} with source "
                                    f"{describe_value(bad.source)} and {field} {describe_value(getattr(bad, field))}; "
                                    f"expected str for both")
    return data


def check_model_spec(component, spec: Any):
    from ..models.spec import ModelSpec

    if not isinstance(spec, ModelSpec):
        raise _fail(component, spec, "a ModelSpec (the input spec when nothing changes)")
    return spec


def check_hypotheses(component, hyps: Any, n_sources: int) -> list[list[Hypothesis]]:
    expected = "list[list[Hypothesis]]: one non-empty n-best list per source, best first"
    if not isinstance(hyps, (list, tuple)):
        raise _fail(component, hyps, expected)
    if len(hyps) != n_sources:
        raise _fail(component, hyps, expected, f"{len(hyps)} lists for {n_sources} sources")
    for i, nbest in enumerate(hyps):
        if not isinstance(nbest, (list, tuple)) or not nbest or not all(isinstance(h, Hypothesis) for h in nbest):
            raise _fail(component, hyps, expected, f"item {i} is {describe_value(nbest)}")
        for h in nbest:
            if not isinstance(h.text, str):
                raise _fail(component, hyps, expected, f"item {i} has a Hypothesis whose text is {describe_value(h.text)}")
            if h.score is not None and (not isinstance(h.score, numbers.Real) or isinstance(h.score, bool)):
                raise _fail(component, hyps, expected,
                            f"item {i} has a Hypothesis whose score is {describe_value(h.score)}, not a float")
    return list(hyps)


def check_metric_value(component, mv: Any) -> tuple[float, str]:
    """The metric's value as a float and its signature; NaN is allowed here (the caller flags it)."""
    if not isinstance(mv, MetricValue):
        raise _fail(component, mv, "MetricValue(value=<float>, signature=...)")
    if isinstance(mv.value, bool) or not isinstance(mv.value, numbers.Real):
        raise _fail(component, mv, "MetricValue with a real-number value", f"value is {describe_value(mv.value)}")
    if mv.signature is not None and not isinstance(mv.signature, str):
        raise _fail(component, mv, "MetricValue with a str signature", f"signature is {describe_value(mv.signature)}")
    return float(mv.value), mv.signature or ""


def not_finite(value: float) -> str | None:
    """'NaN' / 'inf' / '-inf' for a value a report cannot rank, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return None


def check_written_files(component, files: Any) -> list[Path]:
    """The paths a reporter says it wrote: None (nothing) or any iterable of str/Path."""
    if files is None:
        return []
    if isinstance(files, (str, bytes, Path)) or not hasattr(files, "__iter__"):
        raise _fail(component, files, "a list of the paths it wrote")
    files = list(files)
    if not all(isinstance(f, (str, Path)) for f in files):
        raise _fail(component, files, "a list of the paths it wrote")
    return [Path(f) for f in files]
