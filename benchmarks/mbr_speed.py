"""MBR utility speed: N candidates x M pseudo-references per sentence, chrF, over many sentences.

For every sentence, N "samples" are made from its Multi30k test-2016 German reference (word
drops, swaps and substitutions from the sentence's neighbours, like the samples of a decent
model: similar lengths, overlapping n-grams, some duplicates), or from synthetic sentences when
../shared/data is absent. The expected chrF of every candidate against the same N samples as
pseudo-references (M = N, the usual sampling-based MBR) is computed twice:

- naive: the double loop, one ``sacrebleu.sentence_chrf(c, [r])`` per pair (N x M calls);
- ours: ``harness.decoding.mbr.expected_utilities`` with ``ChrfUtility`` (n-grams once per distinct
  string, sparse match counts per order, vectorised F-score).

It prints both times, the ratio, the largest absolute difference between the two sets of
expected utilities (they must be equal) and the machine load. The naive loop is timed on the
first ``--naive-sentences`` sentences only and scaled (it is linear in the sentences) unless
``--naive-sentences`` is at least ``--sentences``.

Run: ``python benchmarks/mbr_speed.py`` (N = M = 32, 1,000 sentences; the naive loop on 100)
or ``--sentences 100 --naive-sentences 100`` for a quick look.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the same sentences as the report benchmark: Multi30k test 2016 (German) cycled, else synthetic
from report_speed import references as sentences  # noqa: E402  (benchmarks/ is this script's directory)


def samples(ref: str, pool: list[str], n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        w = ref.split()
        w = [x for x in w if rnd.random() > 0.15]
        for j in range(len(w)):
            if rnd.random() < 0.15:
                w[j] = rnd.choice(rnd.choice(pool).split())
        if len(w) > 3 and rnd.random() < 0.5:
            j = rnd.randrange(len(w) - 1)
            w[j], w[j + 1] = w[j + 1], w[j]
        out.append(" ".join(w) or ref)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--naive-sentences", type=int, default=100, help="sentences the naive loop is timed on")
    ap.add_argument("-n", "--candidates", type=int, default=32, help="N = M")
    args = ap.parse_args()

    import sacrebleu

    from harness.decoding.mbr import ChrfUtility, expected_utilities, naive_expected_utilities

    refs = sentences(args.sentences)
    data = [samples(r, refs[max(0, i - 5):i + 5], args.candidates, i) for i, r in enumerate(refs)]
    distinct = sum(len(set(s)) for s in data) / len(data)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(data)} sentences, N = M = {args.candidates} ({distinct:.1f} distinct candidates per sentence on "
          f"average), load {load:.1f} on {os.cpu_count()} CPUs")

    utility = ChrfUtility()
    expected_utilities(data[0], data[0], utility)  # imports (numpy, scipy.sparse) happen once per process
    t0 = time.perf_counter()
    ours = [expected_utilities(s, s, utility) for s in data]
    t_ours = time.perf_counter() - t0

    k = min(args.naive_sentences, len(data))
    score = lambda c, r: sacrebleu.sentence_chrf(c, [r]).score  # noqa: E731
    t0 = time.perf_counter()
    naive = [naive_expected_utilities(s, s, score) for s in data[:k]]
    t_naive = (time.perf_counter() - t0) * len(data) / k
    diff = max(abs(a - b) for x, y in zip(ours, naive) for a, b in zip(x, y))

    scaled = "" if k == len(data) else f" (timed on {k} sentences, scaled)"
    print(f"naive double loop of sentence_chrf:       {t_naive:8.2f} s{scaled}")
    print(f"harness.decoding.mbr (exact, vectorised): {t_ours:8.2f} s")
    print(f"ratio: {t_naive / t_ours:.1f}x faster; largest |difference| in expected chrF: {diff:.2e}")
    if load > (os.cpu_count() or 1):
        print("warning: the machine is loaded; ratios are noisier than usual")


if __name__ == "__main__":
    main()
