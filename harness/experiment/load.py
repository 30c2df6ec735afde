"""Loading an experiment: read the YAML, apply ``--set`` edits, resolve it, then check it.

:func:`resolve_and_check` is the one sequence every entry point uses (``harness validate`` and
``run``, :func:`load_experiment`, the one-line experiments of :mod:`.oneliner`,
:func:`harness.testing.run_config`): :func:`harness.experiment.config.resolve` (the config on its
own, pure), then :func:`harness.experiment.checks.check_engines` (each model's engine against
the decoders it meets) and, when files are checked, :func:`~harness.experiment.checks.check_models`
(the models against their config.json and this machine) with
:func:`~harness.experiment.alignment.check_aligned_files` (files aligned line by line). Each stage raises
:class:`~harness.errors.ConfigErrors` listing all of its problems.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..errors import ConfigErrors, HarnessError
from ..plugins import PluginSet
from .alignment import check_aligned_files
from .checks import check_data_dir, check_engines, check_models
from .config import ResolvedExperiment, resolve
from .yamlio import load_yaml_file


def resolve_and_check(raw: Any, source: str, base_dir: Path, *, plugins: PluginSet | None = None,
                      check_files: bool = True) -> ResolvedExperiment:
    """:func:`~harness.experiment.config.resolve`, then the engine and model checks."""
    resolved = resolve(raw, source, base_dir, plugins=plugins, check_files=check_files)
    problems = check_engines(resolved)  # engine: ctranslate2 runs only some decoders; say so now
    if problems:
        raise ConfigErrors(problems)
    if check_files:  # models against their config.json and this machine, aligned data files: cheap reads, no torch
        problems = check_data_dir(resolved) + check_models(resolved) + check_aligned_files(resolved)
        if problems:
            raise ConfigErrors(problems)
    return resolved


def load_experiment(path: str | Path, overrides: list[str] = (), *, plugins: PluginSet | None = None,
                    check_files: bool = True) -> ResolvedExperiment:
    """Read, edit (``overrides``: ``--set`` strings or :class:`harness.experiment.overrides.Override`)
    and resolve a config; errors in an edited value name the edit, not a line of the file."""
    from .overrides import apply_all, attribute, parse_set

    path = Path(path)
    raw = load_yaml_file(path)
    if isinstance(raw, dict) and overrides:
        raw = copy.deepcopy(raw)
    edits = [parse_set(o) if isinstance(o, str) else o for o in overrides]
    trail = apply_all(raw, edits) if isinstance(raw, dict) else []
    try:
        return resolve_and_check(raw, str(path), path.parent.resolve(), plugins=plugins, check_files=check_files)
    except HarnessError as e:
        raise attribute(e, trail) from None


def load_experiment_dict(data: dict, *, base_dir: str | Path = ".", source: str = "<dict>",
                         plugins: PluginSet | None = None) -> ResolvedExperiment:
    """Programmatic use and tests: resolve and check a config given as a Python dict."""
    return resolve_and_check(copy.deepcopy(data), source, Path(base_dir).resolve(), plugins=plugins)
