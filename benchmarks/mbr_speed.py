"""MBR-chrF speed: the harness against the fastest chrF library (fastchrf), mbrs, and the naive loop.

For every sentence, N "samples" are made from its Multi30k test-2016 German reference (word
drops, swaps and substitutions from the sentence's neighbours, like the samples of a decent
model: similar lengths, overlapping n-grams, some duplicates), or from synthetic sentences when
../shared/data is absent. The pseudo-references are the same N samples (M = N, the usual
sampling-based MBR). Arms, each over every sentence:

- harness: ``harness.decoding.mbr.expected_utilities`` with ``ChrfUtility`` -- the whole
  MBR-chrF step: the N x M sentence chrF matrix and the expected utility of every candidate;
- fastchrf: ``fastchrf.pairwise_chrf`` (Rust, https://pypi.org/project/fastchrf/), one sentence's
  N x M matrix per call (as an MBR decoder calls it), and also all sentences in one call (its
  batch dimension); only the matrix, not the expected utilities;
- mbrs: ``mbrs``' MBR decoder with its chrF metric (``MetricChrF``, ``fastchrf: true``; the whole
  MBR step), run with ``--mbrs-python`` (mbrs pins comet, bleurt and bert-score, so it lives in a
  side venv; left out when absent);
- naive: the double loop of ``sacrebleu.sentence_chrf(c, [r])`` (N x M calls per sentence), timed
  on the first ``--naive-sentences`` sentences and scaled (it is linear in the sentences).

Times are CPU seconds of this process (``time.process_time``; fastchrf's thread pool is held to
one thread with RAYON_NUM_THREADS=1, and its threads' CPU time would count anyway), in
``--repeats`` interleaved rounds with the order rotating, so a busy neighbour slows every arm of
a round alike; each ratio is the median over rounds of per-round ratios. The load average is
printed. Outputs: the largest |difference| between each arm's matrix (or expected utilities)
and sacrebleu's sentence chrF, which must be 0 up to float rounding.

Target (issue #24): harness >= 1.0x fastchrf's pairwise chrF at N = M = 32 and 64.

    python benchmarks/mbr_speed.py                        # N = M = 32 and 64, 1,000 sentences
    python benchmarks/mbr_speed.py -n 32 --sentences 200 --mbrs-python /path/to/venv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before fastchrf is imported: its pool is made once

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


MBRS_CHILD = r"""
import json, sys, time
from mbrs.decoders import DecoderMBR
from mbrs.metrics import MetricChrF
data = json.load(sys.stdin)
metric = MetricChrF(MetricChrF.Config(fastchrf=True, num_workers=1))
decoder = DecoderMBR(DecoderMBR.Config(), metric)
decoder.decode(data[0], data[0], nbest=1)  # imports and set-up outside the timed span
c = time.process_time()
picked = [decoder.decode(s, s, nbest=1).idx[0] for s in data]
cpu = time.process_time() - c
utilities = [metric.expected_scores(s, s).tolist() for s in data]  # what decode ranks by, for the check
print(json.dumps({"cpu": cpu, "picked": picked, "utilities": utilities}))
"""


def run_mbrs(python: str, data: list[list[str]]) -> dict:
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([python, "-c", MBRS_CHILD], input=json.dumps(data), capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"mbrs run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--naive-sentences", type=int, default=50, help="sentences the naive loop is timed on")
    ap.add_argument("-n", "--candidates", default="32,64", help="N = M, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (order rotates)")
    ap.add_argument("--mbrs-python", default=None, help="a python with mbrs installed (a side venv)")
    args = ap.parse_args()

    import numpy as np
    import sacrebleu

    from harness.decoding.mbr import ChrfUtility, expected_utilities, naive_expected_utilities

    try:
        import fastchrf
    except ImportError:
        fastchrf = None
        print('fastchrf is not installed: its arms are left out (pip install "nlp-eval-harness[bench]")')
    if args.mbrs_python is None:
        print("mbrs: not run (give --mbrs-python, a venv with `pip install mbrs`)")
    utility = ChrfUtility()
    score = lambda c, r: sacrebleu.sentence_chrf(c, [r]).score  # noqa: E731
    refs = sentences(args.sentences)
    for n in [int(x) for x in args.candidates.split(",")]:
        data = [samples(r, refs[max(0, i - 5):i + 5], n, i) for i, r in enumerate(refs)]
        distinct = sum(len(set(s)) for s in data) / len(data)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\nN = M = {n}: {len(data)} sentences ({distinct:.1f} distinct samples per sentence on average), "
              f"load {load:.1f} on {os.cpu_count()} CPUs, CPU seconds")
        k = min(args.naive_sentences, len(data))

        def harness_arm():
            return [expected_utilities(s, s, utility) for s in data]

        def fastchrf_arm():
            return [np.asarray(fastchrf.pairwise_chrf([s], [s])[0]) for s in data]

        def fastchrf_batch_arm():
            return np.asarray(fastchrf.pairwise_chrf(data, data))

        def naive_arm():
            return [naive_expected_utilities(s, s, score) for s in data[:k]]

        arms = {"harness MBR-chrF (expected utilities)": harness_arm}
        if fastchrf is not None:
            arms["fastchrf pairwise_chrf, per sentence"] = fastchrf_arm
            arms["fastchrf pairwise_chrf, one batch"] = fastchrf_batch_arm
        if args.mbrs_python:
            arms["mbrs DecoderMBR + MetricChrF(fastchrf)"] = lambda: run_mbrs(args.mbrs_python, data)
        arms["naive sentence_chrf loop"] = naive_arm
        expected_utilities(data[0], data[0], utility)  # imports and one-time set-up outside the timed rounds
        if fastchrf is not None:
            fastchrf.pairwise_chrf([data[0]], [data[0]])
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        out: dict[str, object] = {}
        names = list(arms)
        for rep in range(args.repeats):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                c = time.process_time()
                result = arms[name]()
                spent = time.process_time() - c
                if isinstance(result, dict):  # mbrs: its own child's CPU time, imports excluded
                    spent = result["cpu"]
                cpu[name].append(spent * (len(data) / k if name == "naive sentence_chrf loop" else 1.0))
                out[name] = result
        ours = out["harness MBR-chrF (expected utilities)"]
        naive = out["naive sentence_chrf loop"]
        diff = max(abs(a - b) for x, y in zip(ours, naive) for a, b in zip(x, y))
        gaps = {"harness MBR-chrF (expected utilities)": f"expected chrF vs sacrebleu: max |diff| {diff:.1e}"}
        if fastchrf is not None:
            want = [np.array([[score(h, r) for r in s] for h in s]) for s in data[:min(k, 20)]]
            got = out["fastchrf pairwise_chrf, per sentence"]
            gaps["fastchrf pairwise_chrf, per sentence"] = \
                f"matrix vs sacrebleu: max |diff| {max(float(abs(g - w).max()) for g, w in zip(got, want)):.1e}"
            ours_m = [utility.matrix(s, s) for s in data[:len(want)]]
            gaps["harness MBR-chrF (expected utilities)"] += \
                f"; matrix vs sacrebleu: max |diff| {max(float(abs(g - w).max()) for g, w in zip(ours_m, want)):.1e}"
        if args.mbrs_python:
            picked = out["mbrs DecoderMBR + MetricChrF(fastchrf)"]["picked"]
            ours_pick = [int(np.argmax(u)) for u in ours]
            same = sum(a == b or data[i][a] == data[i][b] for i, (a, b) in enumerate(zip(picked, ours_pick)))
            mbrs_u = out["mbrs DecoderMBR + MetricChrF(fastchrf)"]["utilities"]
            mdiff = max(abs(a - b) for x, y in zip(mbrs_u, naive) for a, b in zip(x, y))
            gaps["mbrs DecoderMBR + MetricChrF(fastchrf)"] = \
                f"expected chrF vs sacrebleu: max |diff| {mdiff:.1e}; same choice as the harness: {same} of {len(data)}"
        if k < len(data):
            gaps["naive sentence_chrf loop"] = f"timed on {k} sentences, scaled"
        ref = cpu["harness MBR-chrF (expected utilities)"]
        print(f"  {'arm':<42} {'CPU s':>8} {'pairs/s':>11} {'harness speed-up':>17}")
        for name in names:
            t = statistics.median(cpu[name])
            ratio = statistics.median(a / b for a, b in zip(cpu[name], ref))
            print(f"  {name:<42} {t:8.2f} {len(data) * n * n / t:11.0f} {ratio:16.2f}x   {gaps.get(name, '')}")
    print("\nspeed-up: the arm's CPU time / the harness's (median over rounds); > 1: the harness is faster. "
          "Target: >= 1.0x fastchrf at N = M = 32 and 64.")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1):
        print("warning: the machine is loaded; CPU-time ratios hold, wall times would not")


if __name__ == "__main__":
    main()
