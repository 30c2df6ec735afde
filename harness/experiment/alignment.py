"""Files aligned line by line, checked at ``harness validate``: a benchmark parameter marked with
:func:`harness.params.aligned` belongs to a group (``test``, ``train``, ``dev``...), and every file
of a group must have as many lines as the others.

Before this check a source file of 20 lines beside a reference of 30 passed validate and
stopped only ``harness run``; now validate says which files, with their counts, for every
benchmark plugin that declares its aligned files (``parallel_text``; ``sacrebleu_testset``'s
training pair; any third-party plugin that marks its fields), without loading a model.

Lines are counted as the readers split them (:func:`harness_plugins.benchmarks._common.read_lines`):
at ``\\n`` only, a last line without one counted, ``\\r\\n`` one line. Counting is a byte scan,
so a multi-gigabyte training corpus costs about a second; a file's count is remembered by size
and modification time for the rest of the process. Non-goals: checking that the lines *pair up*
(an off-by-one inside equal counts), and encodings in which ``\\n`` is not the byte 0x0a (UTF-16, UTF-32: such files are not
counted; their reader refuses or decodes them).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..params import aligned_group
from .yamlio import line_of

if TYPE_CHECKING:  # pragma: no cover
    from .config import ResolvedExperiment

_COUNTS: dict[tuple[str, int, int], int] = {}
_CHUNK = 1 << 22


def count_lines(path: str | Path) -> int | None:
    """Lines of a file as the benchmark readers split them, or None when it cannot be read
    (the readers then say why, in their own words)."""
    try:
        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in _COUNTS:
            return _COUNTS[key]
        newlines, last = 0, b""
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                if not newlines and not last and _wide(chunk[:4096]):
                    return None  # UTF-16/32: lines are not 0x0a-separated bytes; the reader says what it is
                newlines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    n = newlines + (1 if last not in (b"", b"\n") else 0)
    _COUNTS[key] = n
    return n


def _wide(head: bytes) -> bool:
    """Whether a file starts like UTF-16/UTF-32 text: a byte-order mark of either, or a quarter of
    its first bytes NUL (ASCII in those encodings without a mark)."""
    return head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) or head.count(0) * 4 >= len(head) > 0


def _groups(params) -> dict[str, list[tuple[str, str]]]:
    """group -> [(parameter, file)] for the aligned parameters that are set."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, field in type(params).model_fields.items():
        group = aligned_group(field)
        value = getattr(params, name)
        if group is None or value is None:
            continue
        files = value if isinstance(value, (list, tuple)) else [value]
        for k, f in enumerate(files):
            if isinstance(f, str):
                out.setdefault(group, []).append((f"{name}[{k}]" if isinstance(value, (list, tuple)) else name, f))
    return out


def check_aligned_files(resolved: ResolvedExperiment) -> list[ConfigError]:
    """One error per group of aligned files whose line counts differ: it names every file of the
    group with its count, at the parameter whose count differs from the first file's."""
    from .config import keypath

    errors: list[ConfigError] = []
    for i, ref in enumerate(resolved.experiment.benchmarks):
        label = ref.label or ref.name
        comps = [c for c in resolved.components["benchmarks"] if c.base_label == label and c.name == ref.name]
        seen: set[tuple] = set()
        for comp in comps:
            for group, members in _groups(comp.params).items():
                counted = [(key, f, count_lines(f)) for key, f in dict.fromkeys(members)]
                counted = [(key, f, n) for key, f, n in counted if n is not None]
                if len({n for _, _, n in counted}) <= 1:
                    continue
                ident = tuple(counted)
                if ident in seen:
                    continue
                seen.add(ident)
                first = counted[0]
                odd = next(c for c in counted if c[2] != first[2])
                listing = ", ".join(f"{_shown(f, resolved.base_dir)} ({key}) has {n} lines" for key, f, n in counted)
                loc: tuple[Any, ...] = ("benchmarks", i, "params", odd[0].split("[")[0])
                errors.append(ConfigError(
                    resolved.source, keypath(loc),
                    f"benchmark '{comp.label}': the {group} files are not aligned: {listing}; each line of one is "
                    "the segment of the same line of the others, so they must have as many lines",
                    line_of(resolved.raw_lines or resolved.raw, loc)))
    return errors


def _shown(path: str, base: Path) -> str:
    try:
        return Path(path).relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return path
