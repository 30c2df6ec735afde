"""Compare two systems from per-example scores you already have: :func:`harness.compare` and
``harness compare``.

The same decision rules as the reports (:mod:`harness.stats.decide`), on numbers from anywhere: one
evaluation per arm, several seeds, or several datasets. ::

    import harness
    res = harness.compare(system_scores, baseline_scores)         # per-example scores, one run each
    res = harness.compare([s0, s1, s2], [b0, b1, b2])             # three seeds, paired by position
    res = harness.compare({"sst2": ([s0, s1, s2], [b0, b1, b2]),  # several datasets
                           "mpqa": ([...], [...])})
    res.verdict, res.p, res.ci, res.test_name, res.sentence()

Per-example scores are numbers whose mean is the metric (accuracy as 0/1 or 0/100 per example,
sentence-level chrF, a plugin's per-example scores). Corpus metrics that are not a mean (BLEU,
chrF and TER at corpus level, macro-F1) are compared from per-example *sufficient statistics*
(examples × k) with ``score=``, a function from summed statistics (rows) to corpus scores; the
command line does this for ``--metric bleu/chrf/ter`` from a run's ``predictions/*.jsonl``.

Which test decides: one evaluation per arm: McNemar's exact test when every score is 0 or one
value (correct or not), else paired approximate randomisation (exact over all swaps when at most
16 examples differ); several seeds: the seeds × examples t-test; several datasets: each dataset
as above, and the t-test over the datasets' effects for the pooled verdict.

File formats (``harness compare``): a run's ``predictions/*.jsonl`` (rows with ``id``,
``output``, ``reference``/``references`` and a ``scores`` object: ``--metric`` names the key, or
``bleu``/``chrf``/``ter`` for corpus statistics from the outputs), or a plain text file with one
number per line. Non-goals: aligning files by example id across different orders (the files of
one dataset must list the same examples in the same order: checked for jsonl ids), tests of
systems evaluated on different examples.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


def _mean_score(S: np.ndarray) -> np.ndarray:
    S = np.atleast_2d(np.asarray(S, dtype=np.float64))
    return S[:, 0] / np.where(S[:, 1] > 0, S[:, 1], 1)


@dataclass
class DatasetComparison:
    """One dataset: the decision over its seeds (or its one evaluation) and each seed's own test."""

    label: str
    seeds: int
    n: int
    delta: float  # system − baseline, mean over seeds, in the metric's units
    decision: Any  # harness.stats.decide.Decision
    per_seed: list[dict[str, Any]] = field(default_factory=list)  # one evaluation each: test, p, delta, differing
    crossed: Any = None  # harness.stats.crossed.Crossed with several seeds


@dataclass
class Comparison:
    """What :func:`compare` returns: the verdict (pooled over datasets when there are several),
    its p, interval and deciding test, and every dataset's own result."""

    decision: Any
    datasets: list[DatasetComparison]
    pooled: Any = None  # harness.stats.meta_analysis.DatasetPool with several datasets
    system: str = "system"
    baseline: str = "baseline"
    metric: str = "score"
    direction: str = "higher"

    @property
    def verdict(self) -> str:
        """better (significant) | worse (significant) | no significant difference | the data cannot
        decide | identical outputs."""
        return self.decision.label

    @property
    def p(self) -> float | None:
        return self.decision.p

    @property
    def ci(self) -> tuple[float, float] | None:
        """95% interval of the difference system − baseline (None for one evaluation per arm)."""
        d = self.decision
        if d.ci_low is None:
            return None
        sign = -1.0 if self.direction == "lower" else 1.0
        return tuple(sorted((sign * d.ci_low, sign * d.ci_high)))  # type: ignore[return-value]

    @property
    def delta(self) -> float:
        """system − baseline (mean over seeds; over datasets, their mean)."""
        if self.pooled is not None and self.pooled.estimate is not None:
            return float(self.pooled.estimate)
        return float(np.mean([d.delta for d in self.datasets]))

    @property
    def test_name(self) -> str:
        return self.decision.test_name

    def sentence(self, digits: int | None = None) -> str:
        """The verdict as one sentence, in the words of the reports (``digits``: decimals of the
        differences; default 2, or 4 for scores on a 0-1 scale)."""
        from ..stats.significance import format_p

        d = self.decision
        if digits is None:
            scale = max([abs(self.delta)] + [abs(x) for x in (self.ci or ())] + [abs(d.mde or 0.0)])
            digits = 4 if scale < 1 else 2
        where = (f" over {len(self.datasets)} datasets" if len(self.datasets) > 1 else "")
        if d.kind == "identical":
            return f"{self.system} produces identical scores to {self.baseline}: no test, not a difference."
        parts = [f"{d.test_name} {format_p(d.p, d.floor)} decides"] if d.p is not None else []
        if self.ci is not None:
            lo, hi = self.ci
            parts.append(f"95% CI of the difference [{lo:.{digits}f}, {hi:.{digits}f}] ({d.ci_method})")
        inner = f" ({'; '.join(parts)})" if parts else ""
        text = (f"{self.system} − {self.baseline} = {self.delta:+.{digits}f} {self.metric}{where}{inner}: "
                f"{d.phrase(digits)}.")
        return text + "".join(f" {n[0].upper()}{n[1:]}." for n in d.notes)

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "baseline": self.baseline, "metric": self.metric, "direction": self.direction,
                "delta": self.delta, "ci": list(self.ci) if self.ci else None, **self.decision.as_dict(),
                "sentence": self.sentence(),
                "datasets": [{"label": x.label, "seeds": x.seeds, "n": x.n, "delta": x.delta,
                              **x.decision.as_dict(), "per_seed": x.per_seed} for x in self.datasets],
                "pooled": None if self.pooled is None else {
                    "k": self.pooled.k, "estimate": self.pooled.estimate, "ci_low": self.pooled.ci_low,
                    "ci_high": self.pooled.ci_high, "p": self.pooled.p, "method": self.pooled.method}}


def _stack(x, has_stats: bool, what: str) -> np.ndarray:
    """seeds × examples (× k) as float64, from (n), (S, n), (n, k) or (S, n, k) input."""
    a = np.asarray(x, dtype=np.float64)
    want = 3 if has_stats else 2
    if a.ndim == want - 1:
        a = a[None]
    if a.ndim != want:
        shape = "(examples × statistics) or (seeds × examples × statistics)" if has_stats else \
            "(examples) or (seeds × examples)"
        raise DataError(f"{what}: expected {shape}, got an array of shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what}: scores must be finite numbers")
    return a


def compare(system, baseline=None, *, score: Callable[[np.ndarray], np.ndarray] | None = None,
            direction: str = "higher", alpha: float = 0.05, power: float = 0.8, min_effect: float | None = None,
            ar_trials: int = 10_000, seed: int | None = 12345, system_name: str = "system",
            baseline_name: str = "baseline", metric: str = "score") -> Comparison:
    """Decide whether ``system`` differs from ``baseline`` on the same examples.

    ``system``/``baseline``: per-example scores of one evaluation (n numbers), of several seeds
    (seeds × n, paired by position), or ``system`` a mapping ``{dataset: (system, baseline)}`` for
    several datasets. With ``score``, the arrays hold per-example sufficient statistics (n × k per
    seed) and ``score`` maps summed statistics to corpus scores. ``direction``: ``higher`` or
    ``lower`` is better. ``min_effect``: the difference that matters (in the metric's units); a
    test that cannot see it says "the data cannot decide" rather than "no significant
    difference". ``ar_trials``/``seed``: approximate randomisation's random swaps when more than 16
    examples differ (sacrebleu's draws).
    """
    from ..stats.decide import decide_datasets, identical
    from ..stats.meta_analysis import pool_datasets

    if direction not in ("higher", "lower"):
        raise DataError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if isinstance(system, Mapping):
        if baseline is not None:
            raise DataError("compare: with a mapping of datasets, give (system, baseline) per dataset, not baseline=")
        items = list(system.items())
        for label, pair in items:
            if not (isinstance(pair, Sequence) and len(pair) == 2):
                raise DataError(f"dataset {label!r}: expected a (system, baseline) pair")
    else:
        if baseline is None:
            raise DataError("compare: baseline scores are missing")
        items = [("dataset 1", (system, baseline))]
    results = [_one_dataset(str(label), sys_, base, score=score, direction=direction, alpha=alpha, power=power,
                            min_effect=min_effect, ar_trials=ar_trials, seed=seed) for label, (sys_, base) in items]
    kw = dict(system=system_name, baseline=baseline_name, metric=metric, direction=direction)
    if len(results) == 1:
        return Comparison(results[0].decision, results, **kw)
    pool = pool_datasets([r.delta for r in results], labels=[r.label for r in results])
    if all(r.decision.kind == "identical" for r in results):
        dec = identical(alpha=alpha)
    else:
        dec = decide_datasets(pool, alpha=alpha, power=power, min_effect=min_effect,
                              higher_is_better=direction == "higher")
    return Comparison(dec, results, pool, **kw)


def _one_dataset(label: str, system, baseline, *, score, direction: str, alpha: float, power: float,
                 min_effect: float | None, ar_trials: int, seed: int | None) -> DatasetComparison:
    from ..stats.crossed import crossed_test, paired_contributions
    from ..stats.decide import decide_one_run, decide_seeds, identical, mcnemar_mde, randomisation_mde
    from ..stats.significance import approximate_randomization_many, ar_mask, corpus_score, differing_rows, mcnemar_exact

    has_stats = score is not None
    A = _stack(system, has_stats, f"{label}: system")
    B = _stack(baseline, has_stats, f"{label}: baseline")
    if A.shape != B.shape:
        raise DataError(f"{label}: the system has {_shape_text(A, has_stats)} and the baseline "
                        f"{_shape_text(B, has_stats)}; both arms need the same seeds and examples")
    if A.shape[1] < 2:
        raise DataError(f"{label}: at least 2 examples are needed, got {A.shape[1]}")
    values = None if has_stats else (A, B)
    if not has_stats:
        A = np.stack([A, np.ones_like(A)], axis=-1)
        B = np.stack([B, np.ones_like(B)], axis=-1)
        score = _mean_score
    S, n = A.shape[0], A.shape[1]
    sign = -1.0 if direction == "lower" else 1.0
    deltas = [corpus_score(score, a) - corpus_score(score, b) for a, b in zip(A, B)]
    delta = float(np.mean(deltas))
    if all(not np.any(a != b) for a, b in zip(A, B)):
        return DatasetComparison(label, S, n, delta, identical(alpha=alpha))
    contrib = [paired_contributions(score, a, b) for a, b in zip(A, B)]
    mask = None
    per_seed = []
    binary = values is not None and _binary(values)
    for j in range(S):
        k = differing_rows(A[j], B[j])
        if binary:
            hi = max(float(values[0].max()), float(values[1].max()))
            mc = mcnemar_exact(values[1][j] == hi, values[0][j] == hi)
            rec = {"test": "mcnemar", "p": mc.p, "b": mc.b, "c": mc.c, "differing": mc.b + mc.c,
                   "mde": mcnemar_mde(mc.b + mc.c, n, alpha, power, scale=hi)}
        else:
            if mask is None:
                mask = ar_mask(n, ar_trials, seed)
            p = approximate_randomization_many([(score, A[j], B[j])], mask)[0] if k else 1.0
            rec = {"test": "ar", "p": p, "differing": k, "mde": randomisation_mde(contrib[j], alpha, power)}
        rec["delta"] = float(deltas[j])
        per_seed.append(rec)
    if S == 1:
        r = per_seed[0]
        what = ("are right for one system and wrong for the other" if r["test"] == "mcnemar"
                else "differ in their scores")
        dec = decide_one_run(test=r["test"], p=r["p"], delta=sign * delta, differing=r["differing"], n=n, what=what,
                             alpha=alpha, mde=r["mde"], power=power, min_effect=min_effect)
        return DatasetComparison(label, 1, n, delta, dec, per_seed)
    c = crossed_test(sign * np.vstack(contrib), alpha=alpha)
    dec = decide_seeds(c, delta=sign * delta, alpha=alpha, power=power, min_effect=min_effect)
    return DatasetComparison(label, S, n, delta, dec, per_seed, c)


def _binary(values) -> bool:
    """Every per-example score is 0 or one common positive value (correct or not): McNemar applies."""
    both = np.concatenate([values[0].ravel(), values[1].ravel()])
    vals = np.unique(both)
    return len(vals) <= 2 and vals.min() == 0 and vals.max() > 0


def _shape_text(a: np.ndarray, has_stats: bool) -> str:
    return f"{a.shape[0]} seed(s) × {a.shape[1]} examples"


# ============================================================================ files


SACREBLEU_METRICS = {"bleu": "BLEU", "chrf": "CHRF", "ter": "TER"}


@dataclass
class ScoreFile:
    """One file's per-example values: numbers (``values``) or sufficient statistics (``stats``)."""

    path: Path
    values: np.ndarray | None = None
    stats: np.ndarray | None = None
    ids: list[str] | None = None


def read_score_file(path: str | Path, metric: str | None = None) -> ScoreFile:
    """Read one file of per-example scores: a run's ``predictions/*.jsonl`` (``metric`` = a key of
    each row's ``scores``, or bleu/chrf/ter for sacrebleu statistics from ``output`` and the
    references) or a text file with one number per line. Bad input raises :class:`DataError`
    naming the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, not a file of scores") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    if p.suffix == ".jsonl" or (lines and lines[0].lstrip().startswith("{")):
        return _read_jsonl(p, lines, metric)
    vals = []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            raise DataError(f"{p}:{i}: empty line; one number per line is expected")
        try:
            v = float(s)
        except ValueError:
            raise DataError(f"{p}:{i}: {s[:40]!r} is not a number") from None
        if not math.isfinite(v):
            raise DataError(f"{p}:{i}: {s!r} is not a finite number")
        vals.append(v)
    if not vals:
        raise DataError(f"{p}: no scores (the file is empty)")
    return ScoreFile(p, values=np.asarray(vals))


def _read_jsonl(p: Path, lines: list[str], metric: str | None) -> ScoreFile:
    rows, ids = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"{p}:{i}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{p}:{i}: not a JSON object")
        rows.append((i, row))
        ids.append(str(row.get("id", i)))
    if not rows:
        raise DataError(f"{p}: no rows")
    if metric is None:
        raise DataError(f"{p}: a predictions file holds several scores: choose one with --metric "
                        f"({', '.join(_score_keys(rows)) or 'bleu, chrf, ter'})")
    if metric.lower() in SACREBLEU_METRICS:
        import sacrebleu.metrics as sm

        from ..stats.significance import SegmentStats

        refs, hyps = [], []
        for i, row in rows:
            r = row.get("references") or ([row["reference"]] if row.get("reference") is not None else None)
            if not r:
                raise DataError(f"{p}:{i}: no 'reference' or 'references': {metric} needs them")
            refs.append([str(x) for x in r])
            hyps.append(str(row.get("output") or ""))
        width = max(len(r) for r in refs)
        streams = [[r[j] if j < len(r) else "" for r in refs] for j in range(width)]
        scorer = getattr(sm, SACREBLEU_METRICS[metric.lower()])()
        return ScoreFile(p, stats=SegmentStats(scorer, streams)(hyps), ids=ids)
    vals = []
    for i, row in rows:
        scores = row.get("scores")
        if not isinstance(scores, dict) or metric not in scores:
            raise DataError(f"{p}:{i}: no score '{metric}' in this row; scores here: "
                            f"{', '.join(_score_keys(rows)) or 'none'} (or bleu, chrf, ter from the outputs)")
        v = scores[metric]
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise DataError(f"{p}:{i}: score '{metric}' is {v!r}, not a finite number")
        vals.append(float(v))
    return ScoreFile(p, values=np.asarray(vals), ids=ids)


def _score_keys(rows) -> list[str]:
    for _, row in rows:
        if isinstance(row.get("scores"), dict):
            return sorted(row["scores"])
    return []


def compare_files(pairs: Sequence[tuple[str, Sequence[str], Sequence[str]]], *, metric: str | None = None,
                  direction: str | None = None, **kw) -> Comparison:
    """:func:`compare` on files: ``pairs`` = (dataset label, system files, baseline files), one
    file per seed, paired by position."""
    datasets = {}
    stats_mode = None
    for label, sys_files, base_files in pairs:
        if len(sys_files) != len(base_files):
            raise DataError(f"{label}: {len(sys_files)} system file(s) but {len(base_files)} baseline file(s); "
                            "give one file per seed for each, paired by position")
        arms = []
        for files in (sys_files, base_files):
            arms.append([read_score_file(f, metric) for f in files])
        flat = arms[0] + arms[1]
        mode = flat[0].stats is not None
        stats_mode = mode if stats_mode is None else stats_mode
        lengths = {len(f.stats if mode else f.values) for f in flat}
        if len(lengths) > 1:
            sizes = ", ".join(f"{f.path} ({len(f.stats if mode else f.values)})" for f in flat)
            raise DataError(f"{label}: files must score the same examples; lengths differ: {sizes}")
        ids = [f.ids for f in flat if f.ids is not None]
        for f in flat:
            if f.ids is not None and f.ids != ids[0]:
                first = next(i for i, (a, b) in enumerate(zip(f.ids, ids[0])) if a != b)
                raise DataError(f"{f.path}: example {first + 1} is id {f.ids[first]!r} where {flat[0].path} has "
                                f"{ids[0][first]!r}: files must list the same examples in the same order")
        get = (lambda f: f.stats) if mode else (lambda f: f.values)
        datasets[label] = (np.stack([get(f) for f in arms[0]]), np.stack([get(f) for f in arms[1]]))
    score = None
    if stats_mode:
        import sacrebleu.metrics as sm

        scorer = getattr(sm, SACREBLEU_METRICS[str(metric).lower()])()
        from ..stats.significance import scores_from_sums

        def score(S):
            return scores_from_sums(scorer, S)
    if direction is None:
        direction = "lower" if str(metric).lower() in ("ter", "wer", "cer", "loss") else "higher"
    kw.setdefault("metric", metric or "score")
    if len(datasets) == 1:
        (s, b), = datasets.values()
        return compare(s, b, score=score, direction=direction, **kw)
    return compare(datasets, score=score, direction=direction, **kw)
