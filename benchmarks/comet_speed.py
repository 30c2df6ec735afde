"""COMET scoring speed: harness.comet vs unbabel-comet 2.2.7's own ``predict``, same model and threads.

Both arms score the same (src, mt, ref) triples with the same checkpoint (by default the tiny
``regression`` fixture of tests/fixtures/comet, a wmt22-comet-da-shaped model; ``--model`` picks
another fixture class) at the same batch size and torch thread count, after loading the model
(loading is not timed). Two workloads:

- one system: each arm scores the triples once, from cold caches;
- ten systems on one test set: ten sets of outputs for the same sources and references, one call
  per system. harness.comet encodes the sources and references once (its embedding cache);
  COMET's ``predict`` encodes them again in every call.

It prints segments/s of both arms, their ratio (target >= 1.5x for one system), and the largest
absolute difference between the two arms' segment scores (they must agree to 1e-5). COMET runs
in a side virtualenv (its pins conflict with this project's: numpy < 2, transformers < 5), named
by ``--comet-python`` or ``$COMET_REFERENCE_PYTHON`` (see scripts/record_comet_reference.py for
how to make it); without one, the COMET arm is skipped with a message and only ours is timed.

    python benchmarks/comet_speed.py --comet-python /work/comet-ref-venv/bin/python
    python benchmarks/comet_speed.py --segments 2000 --threads 1 --model xcomet
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT / "tests" / "fixtures" / "comet"

WORDS = ("the a man woman child dog cat house street red big small is are runs sits plays on in with and near "
         "ball water green two people white shirt park die der das ein eine Mann Frau Kind Hund Katze Haus Straße "
         "rote große kleine ist sind rennt sitzt spielt auf im mit und neben Ball Wasser grüne zwei Leute").split()

# what runs in COMET's virtualenv: load once, then time predict (JSON in, JSON out)
COMET_ARM = r"""
import json, os, sys, time, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
job = json.load(open(sys.argv[1]))
import torch
torch.set_num_threads(job["threads"])
import comet
os.chdir(job["model"])
model = comet.load_from_checkpoint("checkpoints/model.ckpt", local_files_only=True)
def samples(mts):
    if job["ref"] is None:  # reference-free: no "ref" key
        return [{"src": s, "mt": m} for s, m in zip(job["src"], mts)]
    return [{"src": s, "mt": m, "ref": r} for s, m, r in zip(job["src"], mts, job["ref"])]
# warm-up: one full pass (torch's kernels meet every batch shape once)
model.predict(samples(job["systems"][0]), batch_size=job["batch_size"], gpus=0, progress_bar=False)
one, ten, scores = [], [], None
for _ in range(job["repeats"]):
    t = time.perf_counter()
    out = model.predict(samples(job["systems"][0]), batch_size=job["batch_size"], gpus=0, progress_bar=False)
    one.append(time.perf_counter() - t)
    scores = out["scores"]
    t = time.perf_counter()
    for mts in job["systems"]:
        model.predict(samples(mts), batch_size=job["batch_size"], gpus=0, progress_bar=False)
    ten.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"one": one, "ten": ten, "scores": scores, "version": comet.__version__}))
"""


def sentence(rnd: random.Random, lo: int, hi: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(lo, hi))).capitalize() + "."


def workload(n: int, systems: int, seed: int = 0):
    rnd = random.Random(seed)
    src = [sentence(rnd, 3, 30) for _ in range(n)]
    ref = [sentence(rnd, 3, 30) for _ in range(n)]
    outs = [[sentence(rnd, 3, 30) for _ in range(n)] for _ in range(systems)]
    return src, ref, outs


def our_arm(model: Path, src, ref, outs, batch_size: int, repeats: int, use_refs: bool):
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    info = inspect_checkpoint(model)
    one, ten, scores = [], [], None
    warm = Scorer(info, "cpu", "float32")  # warm-up: one full pass, as for COMET
    warm.batch_size = batch_size
    warm.score(src, outs[0], ref if use_refs else None)
    for _ in range(repeats):
        s = Scorer(info, "cpu", "float32")  # cold caches: nothing carried over between repeats
        s.batch_size = batch_size
        t = time.perf_counter()
        scores = s.score(src, outs[0], ref if use_refs else None).scores
        one.append(time.perf_counter() - t)
        s = Scorer(info, "cpu", "float32")
        s.batch_size = batch_size
        t = time.perf_counter()
        for mts in outs:
            s.score(src, mts, ref if use_refs else None)
        ten.append(time.perf_counter() - t)
    return one, ten, scores


def comet_arm(python: str, model: Path, src, ref, outs, batch_size: int, repeats: int, threads: int, use_refs: bool):
    job = {"model": str(model), "src": src, "ref": ref if use_refs else None, "systems": outs,
           "batch_size": batch_size, "repeats": repeats, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        res = subprocess.run([python, "-c", COMET_ARM, str(path)], capture_output=True, text=True, env=env,
                             timeout=3600)
    line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
    if res.returncode != 0 or line is None:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise SystemExit(f"error: the COMET arm failed (exit {res.returncode}):\n{tail}")
    return json.loads(line[len("RESULT "):])


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="regression",
                    choices=["regression", "referenceless", "kiwi", "unified", "xcomet"],
                    help="which fixture checkpoint (tests/fixtures/comet)")
    ap.add_argument("--segments", type=int, default=1000)
    ap.add_argument("--systems", type=int, default=10, help="systems of the ten-systems workload")
    ap.add_argument("--batch-size", type=int, default=16, help="both arms (COMET's default is 16)")
    ap.add_argument("--repeats", type=int, default=3, help="median of this many timed runs per arm")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both arms")
    ap.add_argument("--comet-python", default=os.environ.get("COMET_REFERENCE_PYTHON"),
                    help="python of a virtualenv with unbabel-comet 2.2.7 (default: $COMET_REFERENCE_PYTHON)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model = FIXTURE / args.model
    use_refs = args.model not in ("referenceless", "kiwi")
    src, ref, outs = workload(args.segments, args.systems)
    n, total = args.segments, args.segments * args.systems
    print(f"model: tests/fixtures/comet/{args.model} (tiny: hidden 32, 2 layers); {n} segments, "
          f"{args.systems} systems; batch size {args.batch_size}; {args.threads} torch thread(s); load {load()}")
    one, ten, ours = our_arm(model, src, ref, outs, args.batch_size, args.repeats, use_refs)
    o1, o10 = statistics.median(one), statistics.median(ten)
    print(f"harness.comet   one system: {n / o1:9.1f} segments/s   ten systems: {total / o10:9.1f} segments/s")
    if not args.comet_python or not Path(args.comet_python).exists():
        print("skip the COMET arm: no virtualenv with unbabel-comet 2.2.7 (give --comet-python or set "
              "COMET_REFERENCE_PYTHON; scripts/record_comet_reference.py says how to make one)")
        return
    theirs = comet_arm(args.comet_python, model, src, ref, outs, args.batch_size, args.repeats, args.threads,
                       use_refs)
    c1, c10 = statistics.median(theirs["one"]), statistics.median(theirs["ten"])
    print(f"COMET {theirs['version']} predict one system: {n / c1:9.1f} segments/s   ten systems: "
          f"{total / c10:9.1f} segments/s")
    diff = max(abs(a - b) for a, b in zip(ours, theirs["scores"]))
    print(f"ratio (harness.comet / COMET): one system {c1 / o1:.2f}x (target >= 1.5x), ten systems {c10 / o10:.2f}x; "
          f"largest segment score difference {diff:.1e}; load {load()}")


if __name__ == "__main__":
    main()
