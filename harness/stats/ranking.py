"""What may be ranked together, and how: the test-set fingerprint and the one ranking rule.

Two scores are comparable only on the same test set: :func:`testset_fingerprint` hashes the
ordered references (or gold labels) with their count; the runner stores it with every metric
row (``testset`` in ``metrics.csv``) and in the cell's ``cell.json``, and leaderboards put
scores with different fingerprints into different tables.

Reports, exports and leaderboards all rank through :func:`competition_ranks`, so a configuration
has the same rank wherever a reader meets it. "Standard competition ranking" ("1224" ranking):
equal scores share the best rank of their block and the next distinct score skips as many ranks
as there were ties, e.g. scores 0.9, 0.8, 0.8, 0.7 rank 1, 2, 2, 4.

Non-goals: deciding whether two different scores are *significantly* different (that is the
statistics module's job; a rank only orders the observed numbers), dense or fractional ranking,
fingerprinting sources or example ids (the references and their order decide the scores).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

DIRECTIONS = ("higher", "lower", "target")


def testset_fingerprint(references: Sequence[Any]) -> str:
    """sha256 (hex) over the ordered references of a test set and their number n.

    A reference is what a prediction row stores under ``reference``: the reference translation
    (a list of strings where an example has several, all of them), or the gold label name for
    classification. Order matters: the same sentences in another order pair other outputs with
    other references.
    """
    refs = list(references)
    payload = json.dumps({"n": len(refs), "references": refs}, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def testset_of_rows(rows: Sequence[dict]) -> str:
    """:func:`testset_fingerprint` of a cell's prediction rows: every reference of a row that has
    several (``references``), else its ``reference`` (translation) or gold label (classification)."""
    return testset_fingerprint([r.get("references") or r.get("reference") for r in rows])


def competition_ranks(values: Sequence[float | None], direction: str = "higher", target: float | None = None,
                      decimals: int | None = None) -> list[int | None]:
    """Rank ``values`` best first; equal scores share a rank ("1, 2, 2, 4"); None/NaN stay unranked (None).

    ``direction``: ``"higher"`` (larger is better), ``"lower"`` (smaller is better, e.g. TER) or
    ``"target"`` (closer to ``target`` is better, e.g. a length ratio of 1). With ``decimals``,
    scores are compared after rounding to that many decimals, so two scores that print the same
    also rank the same.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if direction == "target" and (target is None or not _is_number(target)):
        raise ValueError("direction 'target' needs a finite numeric target")
    keys: list[float | None] = []
    for v in values:
        if not _is_number(v):
            keys.append(None)
            continue
        v = float(v)
        if decimals is not None:
            v = round(v, decimals)
        if direction == "higher":
            key = -v
        elif direction == "lower":
            key = v
        else:
            # Rounding the distance too: |0.95 - 1| and |1.05 - 1| differ in the last float bit.
            key = abs(v - float(target))
            if decimals is not None:
                key = round(key, decimals)
        keys.append(key)
    ranked = sorted(k for k in keys if k is not None)
    first: dict[float, int] = {}
    for position, key in enumerate(ranked, start=1):
        first.setdefault(key, position)
    return [None if k is None else first[k] for k in keys]


def _is_number(v) -> bool:
    if v is None or isinstance(v, bool):
        return False
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return not math.isnan(f)
