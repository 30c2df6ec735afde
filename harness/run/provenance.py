"""What exactly a run read: the manifest's ``data_files`` and ``hub_revisions``.

- ``data_files``: ``{path: sha256}`` of every local file named by a benchmark's parameters (a
  file, the files a glob pattern matches, or the files inside a directory), the paths the
  benchmark readers open, and every system outputs file (``kind: outputs`` models). Paths under the config's directory are written relative to it, so two
  checkouts give the same record.
- ``hub_revisions``: for every Hub model and Hub dataset (``hf_*`` benchmarks), the commit that
  the requested revision (default ``main``) resolves to in the local Hugging Face cache
  (``refs/<revision>`` written by huggingface_hub), or the revision itself when it is already a
  commit hash; ``null`` when it cannot be known offline (not cached yet) or the path is local.

Non-goals: files a plugin reads that its parameters do not name (e.g. a sacrebleu test set in
sacrebleu's own cache) and asking the Hub over the network: the record must never cost a
request or fail a run.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from ..store import content_digest

MAX_DIR_FILES = 1000  # a directory with more files is recorded by its listing digest only
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _shown(path: Path, base_dir: Path) -> str:
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        return str(path)


def _paths(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _paths(v)
    elif isinstance(value, list):
        for v in value:
            yield from _paths(v)
    elif isinstance(value, str) and len(value) < 4096 and os.path.isabs(value):
        if glob.has_magic(value):  # hf benchmarks' data_files may be patterns: the files they matched
            yield from (Path(p) for p in sorted(glob.glob(value, recursive=True)))
        else:
            yield Path(value)


def data_files(resolved) -> dict[str, str]:
    """sha256 of every local data file the run's benchmarks name, sorted by path."""
    out: dict[str, str] = {}
    base = Path(resolved.base_dir).resolve()
    for comp in resolved.components.get("benchmarks", []):
        for p in _paths(comp.params_dict()):
            try:
                if p.is_file():
                    out[_shown(p, base)] = content_digest(p)
                elif p.is_dir():
                    files = [f for f in sorted(p.rglob("*"))
                             if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)]
                    for f in files[:MAX_DIR_FILES]:
                        out[_shown(f, base)] = content_digest(f)
            except OSError:
                continue
    experiment = getattr(resolved, "experiment", None)
    for m in getattr(experiment, "models", None) or []:  # system outputs files (kind: outputs): data the run read
        if getattr(m, "outputs", False) and os.path.isfile(m.path):
            out[_shown(Path(m.path), base)] = content_digest(m.path)
    return dict(sorted(out.items()))


def cached_commit(repo_id: str, revision: str | None, repo_type: str = "model") -> str | None:
    """The commit ``revision`` of a Hub repo resolves to in the local cache, without any request."""
    if revision and _COMMIT.match(revision):
        return revision
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - a transformers dependency
        return None
    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    ref = Path(HF_HUB_CACHE) / folder / "refs" / (revision or "main")
    try:
        commit = ref.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def hub_revisions(resolved) -> dict[str, Any]:
    """``{"models": {id: commit|null}, "datasets": {id: commit|null}}`` for everything read from the Hub."""
    models: dict[str, Any] = {}
    for m in resolved.experiment.models:
        if getattr(m, "local", False) or "://" in m.path or os.path.isabs(m.path):
            continue
        models[m.path if not m.revision else f"{m.path}@{m.revision}"] = cached_commit(m.path, m.revision)
    datasets: dict[str, Any] = {}
    for comp in resolved.components.get("benchmarks", []):
        params = comp.params_dict()
        path = params.get("path") if comp.name.startswith("hf") else None
        # builders for local files (json, csv...) and local directories have no Hub revision
        if not isinstance(path, str) or "/" not in path or os.path.isabs(path) or Path(path).exists():
            continue
        rev = params.get("revision")
        datasets[path if not rev else f"{path}@{rev}"] = cached_commit(path, rev, "dataset")
    return {"models": models, "datasets": datasets}
