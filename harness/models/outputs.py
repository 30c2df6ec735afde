"""System outputs as a model: a file of hypotheses that cells read instead of decoding.

A model of ``kind: outputs`` (``models: [{path: sys1.de, kind: outputs}]``) is one system's
translations of a benchmark's test set. Its cells go through the runner like decoded ones (the
same rows in ``predictions/``, the same metrics, per-example scores, cache, paired tests and
reports); only the step that would load a model and run a decoder reads this file instead. The
cell key holds the file's content (not its path), so editing a file re-scores that system only
and moving the files keeps every cell cached.

Formats, chosen by the file's extension:

- ``.jsonl`` / ``.ndjson``: one JSON object per segment with ``"output"`` (the hypothesis, a
  string) and optionally ``"id"`` (string or integer), ``"score"`` (a number) and ``"nbest"``
  (a list of ``{"text": ..., "score": ...}``, best first, for the n-best list metrics). A run's
  ``predictions/*.jsonl`` is such a file.
- anything else: plain text, one segment per line, as sacrebleu's command line reads it (split
  on ``\\n`` only, trailing whitespace dropped; an empty line is an empty hypothesis), UTF-8.

Alignment: the i-th segment is the i-th test example of the benchmark, in its order. When every
JSONL row has an id and the ids are exactly the benchmark's (a run's predictions of the same
benchmark), rows are matched by id instead. The counts must agree: a file with another number of
segments is refused before anything runs (:func:`harness.run.runner.check_inputs`).

Names: :func:`system_name` gives a system the name a shared task's file layout holds
(``newstest2019.hyp.SYSTEM.de`` -> ``SYSTEM``), else the file name without its extension.

Non-goals: classification outputs (predicted labels), several test sets in one file, SGML or
compressed files, and reading references (a benchmark's job, e.g. the ``references`` plugin).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
# newstest2019.hyp.Facebook_FAIR.6750.de: everything between ".hyp." and the language suffix
SHARED_TASK_HYP = re.compile(r"^(?P<testset>.+?)\.hyp\.(?P<system>.+)\.(?P<lang>[^.]+)$")


def system_name(path: str | Path) -> str:
    """The system a file holds: ``SYSTEM`` of a shared task's ``<testset>.hyp.SYSTEM.<lang>``,
    else the file name without its last extension (``sys1.txt`` -> ``sys1``)."""
    name = Path(path).name
    m = SHARED_TASK_HYP.match(name)
    if m:
        return m.group("system")
    return Path(name).stem or name


@dataclass
class SystemOutputs:
    """One system's outputs as read from its file, in file order."""

    path: str
    texts: list[str]
    ids: list[str] | None = None  # JSONL rows that all carry an id
    scores: list[float | None] | None = None
    nbest: list[list[dict[str, Any]] | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def _text(path: Path) -> str:
    from ..params import not_a_regular_file

    problem = not_a_regular_file(path)
    if problem:
        raise DataError(f"system outputs: {problem}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); convert "
                        f"the file, e.g. iconv -f cp1252 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}") from None
    return text.removeprefix("\ufeff")


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


def read_outputs(path: str | Path) -> SystemOutputs:
    """Read a system outputs file (see the module docstring); DataError naming the file and line."""
    path = Path(path)
    text = _text(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return _read_jsonl(path, text)
    lines = [ln.rstrip() for ln in _lines(text)]  # as sacrebleu's command line reads -i files
    if not lines:
        raise DataError(f"{path}: empty file: system outputs have one line per segment of the test set")
    if not any(ln.strip() for ln in lines):  # a pipeline that wrote nothing, not a system's translations
        raise DataError(f"{path}: all {len(lines)} lines are empty: system outputs have one translation per line")
    return SystemOutputs(str(path), lines)


def _read_jsonl(path: Path, text: str) -> SystemOutputs:
    texts: list[str] = []
    ids: list[str | None] = []
    scores: list[float | None] = []
    nbest: list[list[dict[str, Any]] | None] = []
    for i, line in enumerate(_lines(text), 1):
        if not line.strip():
            raise DataError(f"{path}:{i}: empty line; a JSONL file of system outputs has one object per segment "
                            '(an empty hypothesis is {"output": ""})')
        try:
            obj = json.loads(line, parse_constant=_no_constants)
        except ValueError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e})") from None
        except RecursionError:
            raise DataError(f"{path}:{i}: JSON nested too deeply to read") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
        out = obj.get("output")
        if not isinstance(out, str):
            got = "no \"output\" key" if "output" not in obj else f"\"output\" is {json.dumps(out)[:40]}"
            raise DataError(f"{path}:{i}: {got}; each line needs \"output\": the hypothesis as a string (keys "
                            f"present: {', '.join(map(repr, obj)) or 'none'})")
        texts.append(out)
        ex_id = obj.get("id")
        ids.append(None if ex_id is None or isinstance(ex_id, bool) or not isinstance(ex_id, (str, int))
                   else str(ex_id))
        score = obj.get("score")
        scores.append(float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None)
        nbest.append(_nbest(obj.get("nbest"), path, i))
        if nbest[-1] is not None and nbest[-1][0]["text"] != out:
            raise DataError(f"{path}:{i}: \"output\" is not the first (best) entry of \"nbest\"; the lists are best "
                            "first, as a run's predictions/*.jsonl write them")
    if not texts:
        raise DataError(f"{path}: empty file: system outputs have one JSON object per segment of the test set")
    return SystemOutputs(str(path), texts, ids=[x for x in ids if x is not None] if all(x is not None for x in ids)
                         else None, scores=scores if any(s is not None for s in scores) else None,
                         nbest=nbest if any(n is not None for n in nbest) else None)


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _nbest(value: Any, path: Path, line: int) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(h, dict) and isinstance(h.get("text"), str)
                                                           for h in value):
        raise DataError(f"{path}:{line}: \"nbest\" must be a non-empty list of {{\"text\": ..., \"score\": ...}} "
                        "objects, best first")
    return [{"text": h["text"], "score": float(h["score"]) if isinstance(h.get("score"), (int, float))
             and not isinstance(h.get("score"), bool) else None} for h in value]


def count_problem(outputs: SystemOutputs, n_examples: int, benchmark: str, references: list[str] | None = None,
                  full: int | None = None) -> str | None:
    """Why ``outputs`` cannot be the outputs of a test set of ``n_examples`` (None if it can):
    names the file, both counts and the reference files the benchmark read. ``full``: the number
    of segments in the benchmark's files when it selected a subset of them (``limit``): a file of
    the full test set is then right too."""
    if len(outputs) == n_examples or (full is not None and len(outputs) == full):
        return None
    n = full if full is not None else n_examples
    refs = f" ({', '.join(references)}: {n} lines)" if references else ""
    unit = "objects" if Path(outputs.path).suffix.lower() in JSONL_SUFFIXES else "lines"
    what = f"{n} segments ({n_examples} of them selected)" if full not in (None, n_examples) else f"{n} test examples"
    return (f"{outputs.path} has {len(outputs)} {unit}, but benchmark '{benchmark}' has {what}{refs}; system "
            "outputs must be aligned with the references, one segment per line")


def line_id(line: int) -> str:
    """The id a file-based benchmark gives the example of line ``line`` (1-based): ``test-{line}``."""
    return f"test-{line}"


def aligned(outputs: SystemOutputs, example_ids: list[str]) -> list[int]:
    """For each test example (by id, in the benchmark's order), the index of its output in the file.

    The same number of segments: by position, or by id when the file's ids are exactly the
    examples' (a run's predictions of the same benchmark in another order). More segments (the
    benchmark selected a subset, e.g. ``limit``): by id, line ``k`` of a plain text file (or a JSONL
    row without ids) standing for the example ``test-{k}`` that file-based benchmarks number."""
    ids = outputs.ids
    if len(outputs) == len(example_ids):
        if ids is not None and len(set(ids)) == len(ids) and set(ids) == set(example_ids):
            where = {x: i for i, x in enumerate(ids)}
            return [where[x] for x in example_ids]
        return list(range(len(example_ids)))
    where = {x: i for i, x in enumerate(ids if ids is not None else [line_id(k + 1) for k in range(len(outputs))])}
    missing = [x for x in example_ids if x not in where]
    if missing:
        raise DataError(f"{outputs.path}: cannot tell which of its {len(outputs)} segments belong to the "
                        f"{len(example_ids)} selected examples (no segment for example '{missing[0]}'); give a file "
                        "with one segment per selected example, or JSONL rows with their example ids")
    return [where[x] for x in example_ids]
