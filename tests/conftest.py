"""Shared fixtures: tiny random models built in-process and saved like real checkpoints.

The builders live in :mod:`harness.testing` (public, so plugin packages use them too). Every
model is created from a tiny config with a fixed seed, saved with ``save_pretrained`` to a
temporary directory, and then loaded back through the harness's real loading code. Tokenizers
are word-level ``tokenizers`` models over a small vocabulary, so nothing is downloaded.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# re-exported: tests import the builders from conftest
from harness.testing import (
    WORDS,
    build_tiny_bert,
    build_tiny_gpt2,
    build_tiny_marian,
    build_word_tokenizer,
    write_translation_files,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Only the built-in plugins load, in this process and in every `harness` subprocess a test starts:
# the suite must pass whatever third-party plugins are installed beside it (one that registers the
# docs' own example names would otherwise collide with the tests' plugins). Tests that install a
# plugin package name it with `loading()`.
os.environ["HARNESS_LOAD_PLUGINS"] = ""
os.environ.pop("HARNESS_BLOCK_PLUGINS", None)


def loading(env: dict[str, str], *distributions: str) -> dict[str, str]:
    """``env`` with these third-party plugin distributions allowed to load (besides the built-ins)."""
    return {**env, "HARNESS_LOAD_PLUGINS": ",".join(distributions)}

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

__all__ = ["WORDS", "build_tiny_bert", "build_tiny_gpt2", "build_tiny_marian", "build_word_tokenizer"]


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def translation_files(tmp_path) -> tuple[Path, Path]:
    return write_translation_files(tmp_path)


def harness_cli(cwd, *args) -> subprocess.CompletedProcess:
    """`harness ARGS` in a real subprocess run from ``cwd``, one torch thread (tiny models: more only
    add contention)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True, env=env)


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test with a reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared benchmark data not found at {p} (only present beside the project checkout)")
    return p


FIXTURE_PLUGINS = Path(__file__).resolve().parent / "fixtures" / "plugins"


@pytest.fixture(scope="session")
def fixture_plugins():
    """tests/fixtures/plugins/harness_test_plugins.py (slow/failing test plugins), imported;
    pass it as ``PluginSet(extra=[fixture_plugins])``."""
    import importlib
    import sys

    if str(FIXTURE_PLUGINS) not in sys.path:
        sys.path.append(str(FIXTURE_PLUGINS))  # appended, and kept: Ray pickles its classes by module name
    return importlib.import_module("harness_test_plugins")


@pytest.fixture(scope="session")
def fixture_plugin_set(fixture_plugins):
    """A PluginSet with every installed plugin plus the test plugins (built once: discovery is slow)."""
    from harness.plugins import PluginSet

    return PluginSet(extra=[fixture_plugins])


@pytest.fixture(scope="session")
def fixture_plugins_env(tmp_path_factory) -> dict[str, str]:
    """Environment for a ``harness`` subprocess that discovers the test plugins through a real
    entry point: a dist-info folder on PYTHONPATH is found by importlib.metadata like an
    installed distribution (instant, unlike ``pip install``)."""
    site = tmp_path_factory.mktemp("plugin-site")
    info = site / "harness_test_plugins-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-test-plugins\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[harness]\nharness_test_plugins = harness_test_plugins\n")
    env = loading(dict(os.environ), "harness-test-plugins")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(FIXTURE_PLUGINS), env.get("PYTHONPATH")) if p)
    return env


def tree_state(root, *, own=()) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) with what it holds: a file's sha256, a
    link's target, ``<dir>``. Entries under the paths in ``own`` (a run's own output directory,
    its cache) are left out. Compare two states to check byte for byte that a command changed
    nothing it does not own."""
    import hashlib

    root = Path(root)
    own = [Path(p) for p in own]
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        for name in sorted(dirs + files):
            p = here / name
            if any(p == o or o in p.parents for o in own):
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "<dir>"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "<special>"
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return out
