"""Report generation speed: 50 cells × 1,000 examples, target under 10 s.

Builds a run directory (40 translation cells: 10 decoders × 4 strategies on 1,000 Multi30k
references, or synthetic sentences when ../shared/data is absent; 10 classification cells:
2 strategies × 5 seeds on 1,000 examples) and times ``analyze`` + the HTML page with plots:

- cold: no statistics cache (sentence statistics of BLEU, chrF and TER computed);
- warm: re-rendering with the per-cell statistics cache (``harness report`` after a run);
- cold, all outputs distinct: the worst case for the per-sentence memo.

Reference measured in the same run: sacrebleu's own ``PairedTest`` (paired bootstrap and
approximate randomisation, same sample counts) for a few systems against the baseline, per
comparison, against the per-comparison time of the report. Plugin discovery happens before
timing (``harness run`` and ``harness report`` have already done it) and is printed apart.

Run: ``python benchmarks/report_speed.py [--cells-per-strategy 10] [--n 1000]``.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the run-directory writer shared with the tests

TARGET = 10.0


def references(n: int) -> list[str]:
    p = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.de"
    if p.exists():
        lines = p.read_text(encoding="utf-8").splitlines()
        return [lines[i % len(lines)] for i in range(n)]
    rnd = random.Random(0)
    words = "ein mann eine frau hund sitzt steht auf der im park strasse wasser ball spielt rot kinder haus".split()
    return [" ".join(rnd.choice(words) for _ in range(rnd.randint(6, 16))) for _ in range(n)]


def variant(ref: str, k: int, i: int) -> str:
    """The k-th of a few plausible outputs for sentence i (decoders mostly agree)."""
    w = ref.split()
    if k == 0:
        return ref
    r = random.Random(i * 31 + k)
    w = [x for x in w if r.random() > 0.12 * k]
    if k >= 2 and len(w) > 3:
        j = r.randrange(len(w) - 1)
        w[j], w[j + 1] = w[j + 1], w[j]
    return " ".join(w) or ref.split()[0]


def build(out: Path, n: int, decoders: int, strategies: int, distinct: bool) -> Path:
    from report_helpers import write_run

    refs = references(n)
    tb = {"task": "translation", "sources": [f"source {i}" for i in range(n)], "references": refs}
    rnd = random.Random(1)
    gold = [rnd.choice(["neg", "pos"]) for _ in range(n)]
    cb = {"task": "classification", "sources": [f"text {i}" for i in range(n)], "references": gold}
    dec_labels = ["greedy"] + [f"beam[num_beams={b}]" for b in (2, 3, 4, 5, 6, 8)][: max(0, decoders - 4)] + \
        [f"diverse_beam[num_beam_groups={g}]" for g in (2, 4, 8)][: max(0, decoders - 1 - 6)]
    dec_labels = (dec_labels + [f"sample[top_k={k}]" for k in range(10, 100, 10)])[:decoders]
    cells = []
    for s in range(strategies):
        strategy = "none" if s == 0 else f"tuned{s}"
        for d, dec in enumerate(dec_labels):
            quality = 1 + (d + 2 * s) % 4  # which variant this system tends to produce
            outs = []
            for i, ref in enumerate(refs):
                r = random.Random(hash((s, d, i)) if distinct else i * 7 + d + s)
                k = min(3, max(0, quality + r.choice((-1, 0, 0, 1)))) if not distinct else quality
                o = variant(ref, k, i)
                outs.append(o + (f" x{s}{d}" if distinct else ""))
            cells.append(dict(benchmark="multi30k", strategy=strategy, decoder=dec, outputs=outs,
                              predict_seconds=10.0 + 3 * d, extra={"distinct_2": 0.4 + 0.01 * d}))
    for seed in range(5):
        for st, p in (("unmasked", 0.15), ("input_mask", 0.13)):
            r = random.Random(seed * 100 + len(st))
            cells.append(dict(benchmark="sst2", strategy=st, seed=seed,
                              outputs=[g if r.random() > p else ("pos" if g == "neg" else "neg") for g in gold]))
    return write_run(out, benchmarks={"multi30k": tb, "sst2": cb}, cells=cells, scale=100.0,
                     extra_metric_plugins={"distinct_2": "distinct_2"})


def render(out: Path) -> tuple[float, float]:
    """(seconds for analyze + html page, seconds of the analysis alone)."""
    from harness_plugins.reporters.html import HtmlReport

    from harness.results import load_run

    t = time.perf_counter()
    results = load_run(out)
    HtmlReport().write(results, out)
    total = time.perf_counter() - t
    return total, results._harness_report_analysis[1].seconds


def sacrebleu_reference(out: Path, systems: int) -> tuple[float, int]:
    """Seconds per comparison for sacrebleu's PairedTest (bs 1000 + ar 10000), over `systems` systems."""
    from sacrebleu.metrics import BLEU, CHRF, TER
    from sacrebleu.significance import PairedTest

    from harness.results import load_run

    res = load_run(out)
    cells = [c for c in res.cells if c["benchmark"] == "multi30k"][: systems + 1]
    named = [(c["decoder"], [r["output"] for r in res.predictions(c["key"])]) for c in cells]
    refs = [r["reference"] for r in res.predictions(cells[0]["key"])]
    t = time.perf_counter()
    for kind, n in (("bs", 1000), ("ar", 10000)):
        PairedTest(named, {"BLEU": BLEU(), "chrF": CHRF(), "TER": TER()}, [refs], test_type=kind, n_samples=n)()
    return (time.perf_counter() - t) / systems, systems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="examples per cell")
    ap.add_argument("--decoders", type=int, default=10)
    ap.add_argument("--strategies", type=int, default=4)
    ap.add_argument("--reference-systems", type=int, default=2, help="systems for the sacrebleu PairedTest reference")
    ap.add_argument("--skip-worst-case", action="store_true")
    args = ap.parse_args()

    from harness.plugins import default_plugins

    t = time.perf_counter()
    default_plugins()
    print(f"plugin discovery (not counted; done once per process by run/report): {time.perf_counter() - t:.2f} s")
    tmp = Path(tempfile.mkdtemp(prefix="report-speed-"))
    try:
        out = build(tmp / "run", args.n, args.decoders, args.strategies, distinct=False)
        n_cells = args.decoders * args.strategies + 10
        print(f"run: {n_cells} cells x {args.n} examples ({args.decoders * args.strategies} translation, 10 classification)")
        cold, cold_a = render(out)
        warm, warm_a = render(out)
        print(f"cold  (no stats cache):      {cold:6.2f} s  (analysis {cold_a:.2f} s)  ratio to {TARGET:.0f} s: {cold / TARGET:.2f}")
        print(f"warm  (per-cell stats cache): {warm:6.2f} s  (analysis {warm_a:.2f} s)  ratio to {TARGET:.0f} s: {warm / TARGET:.2f}")
        if not args.skip_worst_case:
            worst_dir = build(tmp / "worst", args.n, args.decoders, args.strategies, distinct=True)
            worst, worst_a = render(worst_dir)
            print(f"cold, every output distinct: {worst:6.2f} s  (analysis {worst_a:.2f} s)  "
                  f"ratio to {TARGET:.0f} s: {worst / TARGET:.2f}")
        per_ref, k = sacrebleu_reference(out, args.reference_systems)
        comparisons = args.decoders * args.strategies - 1 + 1  # every translation config but the baseline, + 1 strategy pair
        ours = cold / max(1, comparisons)
        print(f"reference: sacrebleu PairedTest (bs 1000 + ar 10000, BLEU/chrF/TER) {per_ref:.2f} s per comparison "
              f"({k} systems); report, cold, all included: {ours:.2f} s per comparison -> {per_ref / ours:.1f}x faster")
        print(f"sacrebleu PairedTest for the same {comparisons} comparisons would take about {per_ref * comparisons:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
