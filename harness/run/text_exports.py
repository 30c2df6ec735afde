"""``OUTDIR/outputs/``: every cell's outputs as plain text that sacrebleu reads directly.

For each benchmark (label ``B``) of a run, in the benchmark's order, one segment per line:

- ``B.hyp.<model>__<strategy>__<decoder>__<seed>.txt``: each finished cell's outputs (1-best);
- ``B.ref.txt`` (one reference) or ``B.ref.1.txt``, ``B.ref.2.txt``... (several): the references,
  written once per benchmark;
- ``B.src.txt``: the sources, when the benchmark has any;
- ``README.md`` (the mapping of cells to files and the commands that score them) and
  ``index.json`` (the same mapping as data).

So ``sacrebleu outputs/B.ref.txt -i outputs/B.hyp.X.txt`` gives the run's BLEU for cell X, and the
directory is a shared task's layout (``<testset>.hyp.<SYSTEM>.<lang>``) that ``harness score
--systems-dir`` reads back. A line break inside an output or reference would split its segment
in two: it is written as a space (BLEU, chrF and TER treat both as whitespace, so their scores
are unchanged; chrF with ``whitespace: true`` is the exception) and ``index.json`` counts such
segments per file. Files of cells no longer in the run are removed, as in ``predictions/``.

Non-goals: n-best lists and per-example scores (``predictions/*.jsonl`` has them), SGML/XML
formats, a file per seed of cells that share one evaluation (each cell gets its file).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import OutputWriteError, atomic_write_bytes, read_jsonl, refuse_links, safe_child, slug
from .ownership import RunFiles

if TYPE_CHECKING:  # pragma: no cover
    from .jobs import CellJob, CellOutcome

DIRNAME = "outputs"
BREAKS = ("\r\n", "\n", "\r")


def _one_line(text: Any) -> tuple[str, bool]:
    s = "" if text is None else str(text)
    out = s
    for b in BREAKS:
        out = out.replace(b, " ")
    return out, out != s


def _lines(texts: list[Any]) -> tuple[str, int]:
    """The file's text and how many segments held a line break (written as a space)."""
    lines, joined = [], 0
    for t in texts:
        line, changed = _one_line(t)
        lines.append(line)
        joined += changed
    return "".join(line + "\n" for line in lines), joined


def _references(rows: list[dict]) -> list[list[str]]:
    """One list per reference position (sacrebleu's layout): every row's references, in order."""
    refs = [list(r.get("references") or [r.get("reference")]) for r in rows]
    width = max((len(x) for x in refs), default=1)
    return [[x[k] if k < len(x) else "" for x in refs] for k in range(width)]


def write_text_exports(outdir: Path, jobs: list[CellJob], outcomes: dict[int, CellOutcome],
                       write_errors: list[str], ledger: RunFiles | None = None) -> list[Path]:
    """Write ``OUTDIR/outputs/`` for the finished cells of ``jobs`` (see the module docstring);
    returns the files written. A file that cannot be written is added to ``write_errors``.

    Every file is recorded in the run directory's ledger (``ledger``, :mod:`.ownership`) before it
    is written, and a stale file is deleted only when the ledger vouches for it."""
    target = outdir / DIRNAME
    ledger = ledger if ledger is not None else RunFiles(outdir)
    planned: dict[Path, bytes] = {}
    index: dict[str, Any] = {"benchmarks": {}, "cells": []}
    bench_names: dict[str, str] = {}
    used: set[str] = set()

    def write(name: str, text: str) -> str:
        path = target / safe_child(target, name).name  # relative like outdir: the manifest lists it so
        planned[path] = text.encode("utf-8")
        return path.name

    for job in jobs:
        o = outcomes.get(job.index)
        if o is None or o.status not in ("done", "cached"):
            continue
        try:
            rows = read_jsonl(job.celldir / "predictions.jsonl")
        except (OSError, ValueError):
            continue
        labels = job.cell.labels()
        bench = str(labels["benchmark"])
        if bench not in bench_names:  # references and sources once per benchmark, from its first cell
            base = slug(bench).lstrip("._") or "benchmark"
            while base in bench_names.values():
                base += "_"
            bench_names[bench] = base
            refs = _references(rows)
            ref_files = []
            for k, stream in enumerate(refs, 1):
                text, joined = _lines(stream)
                name = write(f"{base}.ref.txt" if len(refs) == 1 else f"{base}.ref.{k}.txt", text)
                if name:
                    ref_files.append({"file": name, "segments_with_line_breaks": joined})
            sources = [r.get("source") for r in rows]
            src = None
            if any(s for s in sources):
                text, joined = _lines(sources)
                name = write(f"{base}.src.txt", text)
                src = {"file": name, "segments_with_line_breaks": joined} if name else None
            index["benchmarks"][bench] = {"task": job.cell.task, "n": len(rows), "references": ref_files,
                                          "source": src}
        stem = slug("__".join(str(labels[k]) for k in ("model", "strategy", "decoder", "seed"))).lstrip("._") or "cell"
        name = f"{bench_names[bench]}.hyp.{stem}.txt"
        if name in used:
            name = f"{bench_names[bench]}.hyp.{stem}__{job.key}.txt"
        used.add(name)
        text, joined = _lines([r.get("output") for r in rows])
        if write(name, text):
            index["cells"].append({"key": job.key, **labels, "file": name, "n": len(rows),
                                   "segments_with_line_breaks": joined})
    if index["cells"]:
        planned[target / "index.json"] = (json.dumps(index, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        planned[target / "README.md"] = _readme(index).encode("utf-8")
    written: list[Path] = []
    if planned:
        try:
            ledger.will_write(planned)
        except OutputWriteError as e:  # a full disk: the files would not fit either
            write_errors.append(str(e))
            return written
    for path, data in planned.items():
        try:
            refuse_links(outdir, path)
            atomic_write_bytes(path, data)
        except OutputWriteError as e:
            write_errors.append(str(e))
            continue
        written.append(path)
    if target.is_dir() and not target.is_symlink():  # files of cells no longer in the run would pass for its results
        stale = [p for p in target.glob("*.txt") if p not in planned]
        if not index["cells"]:
            stale += [target / "index.json", target / "README.md"]
        for p in stale:
            if os.path.lexists(p) and ledger.deletable(p):  # only what the harness wrote
                try:
                    p.unlink()
                except OSError as e:
                    write_errors.append(str(OutputWriteError(p, e)))
    return written


def _readme(index: dict[str, Any]) -> str:
    out = ["# Outputs as plain text", "",
           "One segment per line, in each benchmark's order: `B.hyp.<model>__<strategy>__<decoder>__<seed>.txt` "
           "per cell, `B.ref*.txt` (the references) and `B.src.txt` (the sources) per benchmark. A line break "
           "inside a segment is written as a space (`index.json` counts them). Score a cell with sacrebleu, or "
           "all of a benchmark's cells with `harness score --systems-dir` (this is a shared task's layout):", ""]
    for bench, info in index["benchmarks"].items():
        refs = " ".join(r["file"] for r in info["references"])
        cells = [c for c in index["cells"] if str(c["benchmark"]) == bench]
        out += [f"## {bench} ({info['n']} segments)", "", "```",
                f"sacrebleu {refs} -i {cells[0]['file'] if cells else 'B.hyp.X.txt'} -m bleu chrf",
                f"harness score {refs} -i {' '.join(c['file'] for c in cells[:3])}{' ...' if len(cells) > 3 else ''}",
                "```", "", "| file | model | strategy | decoder | seed | cell |", "|---|---|---|---|---|---|"]
        out += [f"| {c['file']} | {c['model']} | {c['strategy']} | {c['decoder']} | {c['seed']} | {c['key']} |"
                for c in cells]
        out.append("")
    return "\n".join(out)


def index_json(outdir: Path) -> dict[str, Any] | None:
    """The run's ``outputs/index.json``, or None when there is none."""
    try:
        return json.loads((Path(outdir) / DIRNAME / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
