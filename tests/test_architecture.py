"""The shape of the code: packages import only downwards, and built-in plugins use the public API.

``scripts/check_imports.py`` (run by CI before the tests) parses every import, including the ones
inside functions, under ``TYPE_CHECKING`` and in importlib strings. These tests run it on the
repository and on temporary copies of it with a planted cycle or upward import, and check that
the built-in plugins import what a third-party plugin could import.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def checker():
    if "check_imports" not in sys.modules:  # dataclasses need their module registered
        spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["check_imports"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["check_imports"]


def run_script(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(repo)], capture_output=True, text=True)


def edges():
    ci = checker()
    modules = ci.module_files(ROOT)
    return [e for m, p in modules.items() for e in ci.imports_of(m, p, modules, ROOT)]


@pytest.fixture
def tree_copy(tmp_path):
    """harness/ and plugins/ copied, as the script reads them (pyproject's package-dir layout)."""
    for top in ("harness", "plugins"):
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def plant(path: Path, code: str) -> int:
    """Append ``code`` to ``path``; the line number of its last line."""
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n\n" + code.strip("\n") + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.splitlines())


def test_the_repository_has_no_cycle_and_no_upward_import():
    res = run_script(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    [line] = res.stdout.splitlines()
    assert line.startswith("imports ok: ") and "no cycle, nothing imported from above" in line


def test_a_planted_cycle_fails_naming_each_import_of_the_circle(tree_copy):
    # search.py is imported by sampling.py at its top; a lazy import back closes a circle of two
    line = plant(tree_copy / "harness" / "decoding" / "search.py", "def _planted():\n    from .sampling import draw")
    res = run_script(tree_copy)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    head = ("cycle of 2 modules (harness.decoding.sampling, harness.decoding.search); one circle: "
            "harness.decoding.sampling -> harness.decoding.search -> harness.decoding.sampling")
    assert head in lines
    at = lines.index(head)
    assert lines[at + 2] == f"  harness/decoding/search.py:{line}: harness.decoding.search imports harness.decoding.sampling"
    assert lines[at + 1].startswith("  harness/decoding/sampling.py:") and \
        lines[at + 1].endswith(": harness.decoding.sampling imports harness.decoding.search")
    assert "upward" not in res.stdout and "above" not in res.stdout  # one package: a cycle, not a layer problem
    assert res.stderr.strip() == "error: 1 cycle(s) (2 modules), 0 upward import(s) among " \
                                 f"{len(checker().module_files(tree_copy))} modules"


@pytest.mark.parametrize("code", [
    "from harness.experiment.yamlio import line_of",
    "def _planted():\n    from ..experiment import yamlio",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.experiment.yamlio import LineDict",
    "def _planted():\n    import importlib\n    return importlib.import_module('harness.experiment.yamlio')",
    "_LAZY = {'line_of': 'harness.experiment.yamlio:line_of'}",
], ids=["top-level", "function", "type-checking", "importlib", "lazy-table"])
def test_a_planted_upward_import_fails_in_every_form(tree_copy, code):
    # meta_analysis (stats) is low; yamlio (experiment) is higher and does not reach back: no cycle
    line = plant(tree_copy / "harness" / "stats" / "meta_analysis.py", code)
    res = run_script(tree_copy)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        f"harness/stats/meta_analysis.py:{line}: harness.stats.meta_analysis imports harness.experiment.yamlio: "
        "harness.experiment is above harness.stats in LAYERS"]


def test_a_module_in_no_layer_is_an_error_naming_it(tree_copy):
    (tree_copy / "harness" / "newidea").mkdir()
    (tree_copy / "harness" / "newidea" / "__init__.py").write_text('"""A package nobody placed."""\n')
    res = run_script(tree_copy)
    assert res.returncode == 1
    assert res.stdout.splitlines() == ["harness/newidea/__init__.py: module harness.newidea is in no layer: add its "
                                       "package to LAYERS in scripts/check_imports.py"]


def test_docstrings_and_find_spec_do_not_count_as_imports(tree_copy):
    plant(tree_copy / "harness" / "errors.py",
          'def _doc():\n    """See harness.run.runner."""\n    import importlib.util\n'
          '    return importlib.util.find_spec("harness.run.runner")')
    assert run_script(tree_copy).returncode == 0


def _private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def test_no_builtin_plugin_imports_a_private_module_of_another_package():
    bad = []
    for e in edges():
        if not e.source.startswith("harness_plugins."):
            continue
        own = ".".join(e.source.split(".")[:2])  # harness_plugins.<kind>
        if _private(e.target) and not e.target.startswith(own + "."):
            bad.append(f"{e.file}:{e.line}: {e.target}")
    assert bad == []


# what a third-party decoder imports: the base classes, the decoder API, the hook marker and params
DECODER_API = {"harness.api", "harness.decoding", "harness.hookspecs", "harness.params", "harness.errors",
               "harness.plugins"}


def test_builtin_decoders_are_built_on_the_public_decoding_api():
    by_module: dict[str, set[str]] = {}
    for e in edges():
        if e.source.startswith("harness_plugins.decoders."):
            by_module.setdefault(e.source, set()).add(e.target)
    decoders = {m for m in checker().module_files(ROOT) if m.startswith("harness_plugins.decoders.")}
    assert decoders == {f"harness_plugins.decoders.{n}" for n in ("beam", "diverse_beam", "greedy", "mbr", "qe_rerank",
                                                                  "sample")}
    for module in sorted(decoders):
        targets = by_module.get(module, set())
        assert "harness.decoding" in targets, f"{module} does not import harness.decoding"
        core = {t for t in targets if t.startswith("harness.")}
        assert core <= DECODER_API, f"{module} imports {sorted(core - DECODER_API)}"
        assert not any(_private(t) for t in targets), f"{module} imports a private module"


def test_the_layer_table_of_the_architecture_doc_is_the_scripts_layer_order():
    """docs/ARCHITECTURE.md's table and LAYERS are kept by hand: they agree, level by level."""
    import re

    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = {}
    for level, units in re.findall(r"^\| (\d+) \| ([^|]+) \|", doc, re.M):
        table[int(level)] = sorted(re.findall(r"`([\w.]+)`", units))
    assert table == {i + 1: sorted(units) for i, units in enumerate(checker().LAYERS)}
