"""The run directory on disk: atomic writes, cell cache keys, and the directory lock.

Layout of a run directory::

    OUTDIR/manifest.json          resolved config, versions, commit, seeds, timings, cell statuses
    OUTDIR/metrics.csv            long format, one row per cell x metric
    OUTDIR/predictions/<cell>.jsonl  the cell's rows, each with its per-example ``scores``
    OUTDIR/results.json           config, versions, aggregates with CIs, comparisons with p-values
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

Files get the permissions of an ordinary ``open()`` (``0o666`` minus the umask), so a report can
be shared or served; a failed write raises :class:`OutputWriteError` naming the path and errno.

Local models and data files are identified by their content (:func:`content_digest`), not their
absolute path, so moving a checkout or a model directory keeps every cached cell valid. What
runs share beyond one run directory lives in :func:`default_cache_dir` (``$HARNESS_CACHE``).
"""
from __future__ import annotations

import contextlib
import errno
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

# errno values that mean "this machine cannot store results right now" rather than "this cell is
# wrong": the run stops instead of failing every later cell the same way.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


class OutputWriteError(HarnessError, OSError):
    """A result file could not be written (disk full, quota, read-only, permissions).

    Also an :class:`OSError` (same ``errno``), so code that tolerates unwritable directories
    keeps doing so. The run that meets it stops, writes what it still can and exits with
    :attr:`exit_code` 3; finished cells stay cached and a re-run resumes once there is space.
    """

    exit_code = 3

    def __init__(self, path: str | Path, error: OSError):
        self.path = str(path)
        OSError.__init__(self, error.errno, error.strerror or str(error))

    def __str__(self) -> str:
        return f"cannot write {self.path}: [Errno {self.errno}] {self.strerror}"


def storage_fault(e: BaseException) -> OutputWriteError | None:
    """The storage failure behind ``e`` (itself, or what caused it), else None.

    A plugin that saves a checkpoint on a full disk may raise anything (safetensors raises
    ``SafetensorError: ... No space left on device``, torch a ``RuntimeError``), so the chain of
    causes is searched and, as a last resort, the message for a storage errno."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OutputWriteError):
            return cur
        if isinstance(cur, OSError) and cur.errno in STORAGE_ERRNOS:
            return OutputWriteError(cur.filename or "(a file)", cur)
        for code in STORAGE_ERRNOS:
            if os.strerror(code) in str(cur):
                return OutputWriteError("(a file)", OSError(code, os.strerror(code)))
        cur = cur.__cause__ or cur.__context__
    return None


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, for a moment, for
    every thread)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, rename: readers see old or new, never half.

    The file gets ``0o666 & ~umask`` like any ``open()``d file (``mkstemp`` alone makes it 0600).
    Any OSError becomes an :class:`OutputWriteError` naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputWriteError):
            raise OutputWriteError(path, e) from e
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
    removed: list[Path] = []
    if not outdir.is_dir():
        return removed
    for root, _dirs, names in os.walk(outdir):  # os.walk does not descend into symlinked directories
        for name in names:
            p = Path(root) / name
            if name.startswith(".") and name.endswith(TMP_SUFFIX) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):  # a read-only leftover is harmless: it is never read
                    p.unlink()
                    removed.append(p)
    return removed


def read_cell_record(celldir: Path) -> dict[str, Any] | None:
    """The cell's ``cell.json``, or None when there is none (never run) or it cannot be read.

    A record saying ``done`` is downgraded to ``incomplete`` unless ``predictions.jsonl`` exists
    with the sha256 the record names (records without one: every line parses and the row count
    matches): a cell is only reused when its results are really there.
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
            ok = pred.is_file() and not pred.is_symlink() and (
                sha256_file(pred) == want if want is not None else _whole_jsonl(pred, record.get("n")))
        except OSError:
            ok = False
        if not ok:
            record = {**record, "status": "incomplete"}
    return record


def _whole_jsonl(path: Path, n: Any) -> bool:
    """For records written before digests: every line parses, and as many rows as the record says."""
    rows = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    return False
                rows += 1
    return not isinstance(n, int) or isinstance(n, bool) or n == rows


def directory_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` by relative name: what a cache entry records when
    it is made, so that a reuse can tell a damaged entry (:func:`damaged_file`) from a whole one."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): content_digest(p) for p in _files_outside_runs(directory)}


def damaged_file(directory: Path, digests: dict[str, str]) -> str | None:
    """The first file of a cache entry that is missing or no longer holds what was recorded, or None."""
    for rel, want in sorted(digests.items()):
        p = Path(directory) / rel
        try:
            if not p.is_file() or p.is_symlink() or content_digest(p) != want:
                return rel
        except OSError:
            return rel
    return None


def default_cache_dir() -> Path:
    """The cache shared by runs (fine-tuned checkpoints, converted engine models, content
    digests): ``$HARNESS_CACHE``, else ``~/.cache/nlp-eval-harness``."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "nlp-eval-harness"))


def canonical_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# The record of the files a run wrote into its output directory (harness.run.ownership). Its
# presence marks a directory as a run directory, which digests of the directories around it skip.
LEDGER = ".harness-files.json"


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a harness run directory (its ledger, or the lock and manifest of one
    written before ledgers existed)."""
    return (path / LEDGER).is_file() or ((path / ".lock").is_file() and (path / "manifest.json").is_file())


def _files_outside_runs(path: Path):
    """The regular files under ``path``, sorted, leaving out run directories inside it (an output
    directory under a model or data directory must not change their digests, or every re-run
    would miss the cache) and never descending into symlinked directories."""
    out = []
    for root, dirs, names in os.walk(path):
        here = Path(root)
        dirs[:] = [d for d in dirs if not is_run_dir(here / d)]
        out += [here / n for n in names if (here / n).is_file()]
    return sorted(out)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in _files_outside_runs(path):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# Digests of files already hashed in this process, by (path, size, mtime, inode): a model's
# weights are hashed once per process however many cells use them.
_DIGESTS: dict[tuple, str] = {}
# Skipped when hashing a model directory: they cannot change its outputs.
_IGNORED = ("README", "LICENSE", ".")


def content_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative names + their digests).

    Path-independent, so a moved or copied checkout gives the same digest. Hidden files,
    ``__pycache__``, READMEs, LICENSEs and run directories (an output directory inside a model
    directory) are skipped in directories."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in _files_outside_runs(path):
            rel = p.relative_to(path)
            if not p.is_file() or "__pycache__" in rel.parts or any(part.startswith(_IGNORED) for part in rel.parts):
                continue
            h.update(f"{rel.as_posix()}\0{content_digest(p)}\n".encode())
        return h.hexdigest()
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _DIGESTS.get(memo)
    if digest is None:
        digest = _DIGESTS[memo] = _persisted_digest(path, memo) if st.st_size >= _PERSIST_BYTES else sha256_file(path)
    return digest


_PERSIST_BYTES = 64 << 20  # hashing runs at ~1 GB/s: below this, remembering costs more than it saves


def _persisted_digest(path: Path, memo: tuple) -> str:
    """sha256 of a big file (weights), remembered across runs in ``$HARNESS_CACHE/digests`` under
    its (path, size, mtime, inode): a 14 GB checkpoint is hashed once, not on every run."""
    root = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "nlp-eval-harness")) / "digests"
    entry = root / canonical_hash(list(memo), 32)
    with contextlib.suppress(OSError, ValueError):
        cached = entry.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{64}", cached):
            return cached
    digest = sha256_file(path)
    with contextlib.suppress(OSError):  # a cache: an unwritable one only costs time
        atomic_write_text(entry, digest + "\n")
    return digest


def _local_paths_to_digests(value: Any) -> Any:
    """Replace every absolute path of an existing file among ``value`` by its content digest,
    so that identities do not change when a checkout moves. Directories that are not model
    directories keep a cheap listing digest (:func:`file_digest`)."""
    if isinstance(value, dict):
        return {k: _local_paths_to_digests(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_local_paths_to_digests(v) for v in value]
    if isinstance(value, str) and len(value) < 4096 and os.path.isabs(value):
        with contextlib.suppress(OSError):
            p = Path(value)
            if p.is_file():
                return {"file": content_digest(p)[:16]}
            if p.is_dir():
                return {"dir": file_digest(p)}
    return value


def portable_params(params: dict[str, Any]) -> dict[str, Any]:
    """Plugin parameters as they enter a cache key: local paths replaced by what they hold."""
    return _local_paths_to_digests(params)


def fingerprint_params(params) -> str:
    """Parameters plus the content of every existing local path among their values (the
    paths themselves are left out, so a moved checkout keeps its cache)."""
    return canonical_hash({"params": portable_params(params.model_dump(mode="json"))})


def model_fingerprint(spec) -> str:
    """Identity of a model for cache keys: Hub id + revision, or, for a local directory, the
    content of its files (config, weights, tokenizer) instead of its absolute path."""
    d = spec.model_dump(mode="json")
    d.pop("label", None)  # a display name; it does not change outputs
    d.pop("max_batch_tokens", None)  # how predictions are batched, like threads: not what the model computes
    # fields added later are left out at their defaults, so cells cached before them keep their keys.
    # kernels: auto (the default since it exists) keys as the model did before kernels existed: its
    # oneDNN is probe-checked to compute the same model, and cells record which kernels ran. An
    # explicit "default" is a promise of transformers' own kernels, so it keys apart.
    for name, default in (("engine", "transformers"), ("compute_type", "auto"), ("kernels", "auto"),
                          ("allow_missing_weights", False)):
        if d.get(name) == default:
            d.pop(name)
    extras = getattr(spec, "key_extras", None)  # e.g. the int8 scheme (ModelSpec.key_extras)
    if callable(extras):
        d.update(extras())
    if spec.local:
        d.pop("path")
        d["content"] = content_digest(spec.path)
    if spec.tokenizer and os.path.isdir(spec.tokenizer):
        d["tokenizer"] = content_digest(spec.tokenizer)
    return canonical_hash(d)


def slug(text: str, maxlen: int = 120) -> str:
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    return s[:maxlen] or "cell"


def linked_part(root: Path, path: Path) -> Path | None:
    """The first component of ``path`` below ``root`` that is a symbolic link, or None.

    What a run writes or deletes inside its output directory never goes through a link: a planted
    ``predictions -> /elsewhere`` would make the run write (or delete stale files) there."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return Path(path)
    cur = Path(root)  # as given, so messages name paths the way the user wrote them
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            return cur
    return None


def refuse_links(root: Path, path: Path) -> Path:
    """``path``, after checking that no component of it below ``root`` is a symbolic link."""
    link = linked_part(root, path)
    if link is not None:
        target = os.readlink(link) if link.is_symlink() else "outside it"
        raise HarnessError(f"{link}: is a symbolic link (to {target}) inside the output directory {root}; a run "
                           "never writes or deletes through links: remove the link, or choose another -o")
    return path


def safe_child(root: Path, name: str) -> Path:
    """A path inside ``root``; refuses names that would escape it (``..``, absolute paths, NUL)
    and paths through a symbolic link inside ``root``."""
    if "\0" in str(name):
        raise HarnessError(f"refusing a file name with a NUL byte: {name!r}")
    root = Path(os.path.abspath(root))
    p = Path(os.path.normpath(root / name))
    if root != p and root not in p.parents:
        raise HarnessError(f"refusing to write outside the output directory: {name}")
    return refuse_links(root, p)


class RunLock:
    """An exclusive lock on a run directory, so two runs cannot interleave writes."""

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / ".lock"
        self._fd: int | None = None

    def __enter__(self):
        import fcntl

        import stat

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a `.lock` planted as a link must not make the pid overwrite another file
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # the umask decides
        except OSError as e:
            if e.errno == errno.EISDIR:
                raise HarnessError(f"{self.path}: is a directory, not a harness lock file; move it away, or choose "
                                   "another -o") from None
            if e.errno == errno.ELOOP:
                raise HarnessError(f"{self.path}: is a symbolic link (to {os.readlink(self.path)}); a run never "
                                   "writes through links: remove it") from None
            raise HarnessError(f"{self.path.parent}: cannot use as the output directory: "
                               f"[Errno {e.errno}] {e.strerror or e}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise HarnessError(f"{self.path}: is not a regular file; a harness lock file is one: remove it")
        head = os.pread(fd, 65, 0) if st.st_size else b""
        if head.strip() and not head.strip().isdigit():  # ours holds a pid; truncating anything else loses it
            os.close(fd)
            raise HarnessError(f"{self.path}: holds data that is not a harness lock (a pid); refusing to overwrite "
                               "it: move it away, or choose another -o")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            finally:
                os.close(fd)
            raise HarnessError(f"{self.path.parent}: another `harness run` (pid {holder}) is using this output "
                               "directory; wait for it to finish or choose another -o") from None
        with contextlib.suppress(OSError):  # the pid only informs a refused second run; a full disk must not stop us here
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
