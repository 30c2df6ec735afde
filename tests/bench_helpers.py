"""Helpers shared by the benchmark tests: build a benchmark from params as a config would, load
it, and collect the located error lines `harness validate` would print for a benchmark entry."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.api import CellContext
from harness.experiment.load import load_experiment
from harness.errors import ConfigError, ConfigErrors
from harness.plugins import default_plugins


def make(plugin: str, base_dir: Path, /, **params):
    """The benchmark ``plugin`` with params validated like a config beside ``base_dir``."""
    cls = default_plugins().get("benchmark", plugin)
    return cls(cls.Params.model_validate(params, context={"base_dir": base_dir, "check_files": True}))


def load(plugin: str, base_dir: Path, /, **params):
    ctx = CellContext(seed=0, workdir=base_dir, cache_dir=base_dir / ".cache")
    return make(plugin, base_dir, **params).load(ctx)


def config_errors(tmp_path: Path, benchmark_yaml: str, *, task: str = "translation") -> list[str]:
    """Error lines for an experiment whose only benchmark is ``benchmark_yaml`` (indented by the caller
    as the items of `benchmarks:`). The model is a Hub id, which validate does not look up."""
    model = "Helsinki-NLP/opus-mt-en-de" if task == "translation" else "bert-base-uncased"
    text = f"name: t\nmodels:\n  - path: {model}\nbenchmarks:\n{textwrap.indent(textwrap.dedent(benchmark_yaml), '  ')}"
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_experiment(path)
    return str(info.value).splitlines()
