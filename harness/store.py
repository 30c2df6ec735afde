"""The run directory on disk: atomic writes, cell cache keys, and the directory lock.

Layout of a run directory::

    OUTDIR/manifest.json          resolved config, versions, commit, seeds, timings, cell statuses
    OUTDIR/metrics.csv            long format, one row per cell x metric
    OUTDIR/predictions/<cell>.jsonl
    OUTDIR/report.html
    OUTDIR/cells/<key>/cell.json  status (running | done | failed), labels, params, timings,
                                  predictions digest; error + traceback when failed
    OUTDIR/cells/<key>/predictions.jsonl
    OUTDIR/.lock                  pid of the `harness run` holding the directory

A cell's key hashes everything that determines its predictions (model, data fingerprint,
strategy, decoder, seed where it matters, plugin versions), so an unchanged cell is reused.
Metrics are recomputed from cached predictions (cheap), so adding a metric re-decodes nothing.

Crash safety rests on three rules: every file is replaced atomically (temp file, fsync,
rename), a cell's predictions are written before the ``cell.json`` that says it is done, and
``done`` is only believed when the predictions file is there with the digest ``cell.json``
recorded. A ``kill -9`` at any instant therefore leaves whole files only, and the next run
reuses exactly the cells that finished. Non-goals: locking across machines (``flock`` on NFS is
unreliable) and protecting against a disk that lies about fsync.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .errors import HarnessError


# Temp files get a suffix of their own so that leftovers of a killed run can be removed without
# touching anything a plugin put in a cell's scratch directory.
TMP_SUFFIX = ".harness-tmp"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_temp_files(outdir: Path) -> list[Path]:
    """Delete the temp files that a run killed mid-write left behind (only ours: ``*.harness-tmp``).
    Call it while holding the :class:`RunLock`, when no writer can be active."""
    removed = []
    if not outdir.is_dir():
        return removed
    for p in outdir.rglob(f"*{TMP_SUFFIX}"):
        if p.is_file() and p.name.startswith("."):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def read_cell_record(celldir: Path) -> dict[str, Any] | None:
    """The cell's ``cell.json``, or None when there is none (never run) or it cannot be read.

    A record saying ``done`` is downgraded to ``incomplete`` unless ``predictions.jsonl`` exists
    with the sha256 the record names: a cell is only reused when its results are really there.
    """
    try:
        record = json.loads((celldir / "cell.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("status") == "done":
        pred = celldir / "predictions.jsonl"
        want = record.get("predictions_sha256")
        try:
            ok = pred.is_file() and (want is None or sha256_file(pred) == want)
        except OSError:
            ok = False
        if not ok:
            record = {**record, "status": "incomplete"}
    return record


def canonical_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def fingerprint_params(params) -> str:
    """Parameters plus the content of every existing local path among their values."""
    data = params.model_dump(mode="json")
    files = {}
    for k, v in data.items():
        if isinstance(v, str) and len(v) < 4096 and ("/" in v or "\\" in v):
            p = Path(v)
            if p.exists():
                files[k] = file_digest(p)
    return canonical_hash({"params": data, "files": files})


def model_fingerprint(spec) -> str:
    d = spec.model_dump(mode="json")
    if spec.local:
        p = Path(spec.path)
        d["files"] = {f.name: f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(p.iterdir()) if f.is_file()}
    return canonical_hash(d)


def slug(text: str, maxlen: int = 120) -> str:
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    return s[:maxlen] or "cell"


def safe_child(root: Path, name: str) -> Path:
    """A path inside ``root``; refuses names that would escape it (``..``, absolute paths)."""
    root = root.resolve()
    p = (root / name).resolve()
    if root != p and root not in p.parents:
        raise HarnessError(f"refusing to write outside the output directory: {name}")
    return p


class RunLock:
    """An exclusive lock on a run directory, so two runs cannot interleave writes."""

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / ".lock"
        self._fd: int | None = None

    def __enter__(self):
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise HarnessError(f"{self.path.parent}: cannot use as the output directory: "
                               f"{e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            finally:
                os.close(fd)
            raise HarnessError(f"{self.path.parent}: another `harness run` (pid {holder}) is using this output "
                               "directory; wait for it to finish or choose another -o") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
