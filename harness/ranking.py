"""The one ranking rule of the harness: best first, ties share a rank (standard competition ranking).

Reports, exports and leaderboards all rank through :func:`competition_ranks`, so a configuration
has the same rank wherever a reader meets it. "Standard competition ranking" ("1224" ranking):
equal scores share the best rank of their block and the next distinct score skips as many ranks
as there were ties, e.g. scores 0.9, 0.8, 0.8, 0.7 rank 1, 2, 2, 4.

Non-goals: deciding whether two different scores are *significantly* different (that is the
statistics module's job; a rank only orders the observed numbers), dense or fractional ranking.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

DIRECTIONS = ("higher", "lower", "target")


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
