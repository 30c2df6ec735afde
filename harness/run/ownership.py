"""Which files of an output directory a run may write or delete: only those it can prove it wrote.

A run directory carries a ledger (:data:`harness.store.LEDGER`, ``.harness-files.json``): for every
file the harness put there, the sha256 of what it wrote. A file the run is about to replace or
delete must be absent, or hold bytes the ledger (or, for directories written before ledgers,
the manifest's ``outputs``) vouches for; anything else is the user's, and the run refuses to
start, naming it, rather than overwrite or delete it::

    error: runs/x/metrics.csv: was not written by a harness run (or changed since); refusing to
    overwrite it: move it away, or choose another -o

The ledger is written ahead: the digests of the files a step is about to write are recorded
before it writes them, so a run killed between the two still recognises its own files (the old
and the new digest are both kept). Reporters whose file names are not known in advance are
recorded after they wrote.

A directory is claimed (given a ledger) only when it is new, empty, an older run directory
(its manifest says which harness wrote it), or holds nothing but what a run killed before its
first manifest leaves behind (the lock, cell records, temp files). Any other directory, say the
data directory or a project holding ``config.yaml``, is refused before anything is created in
it, the lock included. Links inside the directory are never followed when writing or deleting
(:func:`harness.store.refuse_links`).

Non-goals: protecting against a user who edits the ledger, or files other programs write into a
run directory at names the harness never uses (they are left alone).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..store import LEDGER, TMP_SUFFIX, atomic_write_json, linked_part, refuse_links, sha256_file

KEEP_DIGESTS = 3  # the file as on disk, and what a killed write may or may not have replaced it with
CELL_KEY = re.compile(r"^[0-9a-f]{16}$")
LOCK = ".lock"
# what a run killed before its first manifest can leave: nothing of the user's
BOOKKEEPING = {LOCK, "cells", ".report-cache", "log.txt", LEDGER}
# what tools put in any directory; a run never writes or deletes them
HARMLESS = {".gitkeep", ".gitignore", ".DS_Store"}


def _foreign(path: Path, why: str) -> HarnessError:
    return HarnessError(f"{path}: {why}; refusing to overwrite or delete it: move it away, or choose another -o "
                        "(a new or empty directory)")


def _harness_manifest(outdir: Path) -> dict | None:
    try:
        m = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and "harness_version" in m and isinstance(m.get("cells"), list) else None


def _lock_is_ours(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and (path.read_bytes()[:65].strip() or b"0").isdigit()
    except OSError:
        return False


def cell_dir_is_ours(celldir: Path) -> bool:
    """A cell directory the harness made: its ``cell.json`` is a record of that key, or it holds
    only temp files (killed while writing its first record)."""
    if celldir.is_symlink() or not celldir.is_dir():
        return False
    try:
        record = json.loads((celldir / "cell.json").read_text(encoding="utf-8"))
        if isinstance(record, dict) and record.get("key") in (celldir.name, None) and "status" in record:
            return True
    except (OSError, ValueError):
        pass
    return all(p.name.endswith(TMP_SUFFIX) for p in celldir.iterdir())


def _stray(outdir: Path, also: tuple[Path, ...] = ()) -> Path | None:
    """The first entry of an unclaimed, non-empty ``outdir`` that no killed run would have left
    (``also``: directories of the run's own inside it, such as a cache given there)."""
    mine = {os.path.abspath(a) for a in also}
    for entry in sorted(outdir.iterdir()):
        name = entry.name
        if (name.startswith(".") and name.endswith(TMP_SUFFIX)) or name in HARMLESS or os.path.abspath(entry) in mine:
            continue
        if name not in BOOKKEEPING:
            return entry
        if name == LOCK and not _lock_is_ours(entry):
            return entry
        if name in ("cells", ".report-cache") and (entry.is_symlink() or not entry.is_dir()):
            return entry
        if name == "cells":
            for cell in sorted(entry.iterdir()):
                if not CELL_KEY.match(cell.name) or not cell_dir_is_ours(cell):
                    return cell
        if name == "log.txt" and (entry.is_symlink() or not _starts_with(entry, b"# printed while checking")):
            return entry
    return None


def _starts_with(path: Path, prefix: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(prefix)) == prefix
    except OSError:
        return False


def directory_problem(outdir: Path, also: tuple[Path, ...] = ()) -> str | None:
    """Why ``outdir`` cannot be a run directory, read-only (before the lock creates anything), or None.
    ``also``: directories of the run's own that may be inside it (the cache, when given there)."""
    outdir = Path(outdir)
    outdir = Path(outdir)
    if not os.path.lexists(outdir):
        return None
    if not outdir.is_dir():
        kind = "symbolic link to nothing" if outdir.is_symlink() and not outdir.exists() else "file"
        return f"{outdir}: is a {kind}, not a directory; the output directory (-o) must be a directory (new, " \
               "empty, or one a harness run wrote)"
    if (outdir / LEDGER).is_file() and not (outdir / LEDGER).is_symlink():
        return None
    if _harness_manifest(outdir) is not None:
        return None  # written before ledgers: adopted
    stray = _stray(outdir, also)
    if stray is None:
        return None
    return (f"{outdir}: is not a harness run directory: it holds files the harness did not write (e.g. {stray}); "
            "refusing to write into it: choose a new or empty directory with -o")


class RunFiles:
    """The ledger of one run directory: what the harness wrote there, and checks before it writes."""

    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        self.path = self.outdir / LEDGER
        self.files: dict[str, list[str]] = {}
        self.pending: list[str] = []
        self.dirty = True  # the ledger on disk is missing or behind this one
        self.claimed = False  # the directory's ledger or manifest says the harness wrote it
        data: Any = None
        if self.path.is_file() and not self.path.is_symlink():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None  # a damaged ledger proves nothing: every existing file is then unproven
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            self.files = {str(k): [str(d) for d in v] for k, v in data["files"].items() if isinstance(v, list)}
            self.pending = [str(p) for p in data.get("pending", []) if isinstance(p, str)]
            self.dirty = bool(self.pending)
            self.claimed = True
        manifest = _harness_manifest(self.outdir)
        self.claimed = self.claimed or manifest is not None
        if manifest is not None:  # the manifest vouches for what it lists (older run directories have only that)
            outputs = manifest.get("outputs")
            for rel, digest in (outputs.items() if isinstance(outputs, dict) else ()):
                self._add(str(rel), str(digest))
            if not data:
                self._adopt_legacy(manifest)
        if not data and _starts_with(self.outdir / "log.txt", b"# printed while checking") \
                and not (self.outdir / "log.txt").is_symlink():
            self._add("log.txt", sha256_file(self.outdir / "log.txt"))  # a killed run's bookkeeping
        for rel in self.pending:  # a step killed after writing, before recording: the file at that name is ours
            p = self.outdir / rel
            if p.is_file() and not p.is_symlink():
                self._add(rel, sha256_file(p))
        self.pending = []

    def _adopt_legacy(self, manifest: dict) -> None:
        """A run directory from before ledgers: its manifest and the files at the names the
        harness writes are taken as the harness's."""
        names = ["manifest.json", "metrics.csv", "results.json", "report.html", "report.md", "log.txt",
                 "config.yaml", "summary.csv", "summary.parquet"]
        names += [c["predictions"] for c in manifest.get("cells", []) if isinstance(c, dict)
                  and isinstance(c.get("predictions"), str)]
        for rel in names:
            p = self.outdir / rel
            if p.is_file() and not p.is_symlink() and self.outdir in Path(os.path.normpath(p)).parents:
                self._add(rel, sha256_file(p))

    def _add(self, rel: str, digest: str) -> None:
        digests = [d for d in self.files.get(rel, []) if d != digest] + [digest]
        self.files[rel] = digests[-KEEP_DIGESTS:]

    def rel(self, path: Path) -> str:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.outdir)).as_posix()

    def proven(self, path: Path) -> bool:
        """Whether the file at ``path`` holds bytes the harness wrote there."""
        try:
            return path.is_file() and not path.is_symlink() and sha256_file(path) in self.files.get(self.rel(path), [])
        except OSError:
            return False

    def check_target(self, path: Path) -> None:
        """Refuse a path the run would write or delete that holds something the harness did not write."""
        path = Path(path)
        refuse_links(self.outdir, path)
        if not os.path.lexists(path):
            return
        if path.is_dir():
            raise _foreign(path, "is a directory where the run writes a file")
        if not self.proven(path):
            raise _foreign(path, "was not written by a harness run (or changed since)")

    def check_targets(self, paths) -> None:
        for p in paths:
            self.check_target(p)

    def save_if_new(self) -> None:
        """Write the ledger if the directory has none yet (or an adopted or pending one changed it)."""
        if self.dirty:
            self.save()

    def save(self) -> None:
        refuse_links(self.outdir, self.path)
        atomic_write_json(self.path, {"about": "files the harness wrote into this run directory (sha256); a run "
                                               "only replaces or deletes files listed here",
                                      "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                      "files": dict(sorted(self.files.items())),
                                      **({"pending": self.pending} if self.pending else {})})
        self.dirty = False

    def will_write(self, contents: dict[Path, bytes]) -> None:
        """Record the digests of files about to be written (before writing them)."""
        import hashlib

        for path, data in contents.items():
            self._add(self.rel(path), hashlib.sha256(data).hexdigest())
        self.save()

    def will_write_unknown(self, paths) -> None:
        """Names a step is about to write without knowing their bytes yet (reporters): a file found
        there after a kill is taken as the harness's."""
        self.pending = sorted({*self.pending, *(self.rel(p) for p in paths)})
        self.save()

    def wrote(self, paths) -> None:
        """Record what a step wrote (after it wrote it)."""
        for p in paths:
            p = Path(p)
            try:
                rel = self.rel(p)
            except ValueError:
                continue  # outside the run directory (a leaderboard the user pointed elsewhere)
            if p.is_file() and not p.is_symlink():
                self._add(rel, sha256_file(p))
        self.pending = []
        self.save()

    def deletable(self, path: Path) -> bool:
        return self.proven(path) and linked_part(self.outdir, path) is None


def claim(outdir: Path, also: tuple[Path, ...] = ()) -> RunFiles:
    """Take ``outdir`` as a run directory (call under its lock): refused when it is not one
    (:func:`directory_problem`); otherwise its ledger (:meth:`RunFiles.save` writes it)."""
    problem = directory_problem(outdir, also)
    if problem:
        raise HarnessError(problem)
    return RunFiles(outdir)


def check_run_paths(files: RunFiles, outdir: Path, cell_dirs, predictions: list[str], targets) -> None:
    """Everything a run will write or delete, checked before its first cell: the fixed result
    files and reports (``targets``), ``predictions/`` (the current names, and stale ones it would
    delete) and the cell directories it will clear and fill."""
    refuse_links(outdir, outdir / LOCK)
    refuse_links(outdir, outdir / LEDGER)
    for name in (LOCK, LEDGER):
        p = outdir / name
        if os.path.lexists(p) and not p.is_file():
            raise _foreign(p, "is not a regular file where the run keeps its " + ("lock" if name == LOCK else "ledger"))
    for name in ("cells", "predictions", ".report-cache", "outputs"):
        refuse_links(outdir, outdir / name)
        p = outdir / name
        if os.path.lexists(p) and not p.is_dir():
            raise _foreign(p, "is not a directory where the run keeps one")
    files.check_targets(targets)
    pred_dir = outdir / "predictions"
    files.check_targets(pred_dir / n for n in predictions)
    if pred_dir.is_dir():
        for stale in sorted(pred_dir.glob("*.jsonl")):  # the run would delete these: only its own
            if stale.name not in predictions:
                files.check_target(stale)
    out_dir = outdir / "outputs"  # the plain-text exports (.text_exports): rewritten or deleted every run
    if out_dir.is_dir():
        files.check_targets(sorted(p for p in out_dir.iterdir() if p.suffix == ".txt" or p.name in ("index.json", "README.md")))
    for celldir in cell_dirs:
        celldir = Path(celldir)
        refuse_links(outdir, celldir)
        if os.path.lexists(celldir) and not celldir.is_dir():
            raise _foreign(celldir, "is not a directory where the run keeps this cell")
        # in a directory the ledger (or its manifest) proves to be a run directory, a directory named by
        # one of this run's cell keys was made by the harness, whatever its damaged record now holds
        if os.path.lexists(celldir) and not files.claimed and not cell_dir_is_ours(celldir):
            raise _foreign(celldir, "is not a cell directory the harness made (no cell record of its own)")
