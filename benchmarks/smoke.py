"""Smoke-run every benchmark script on its smallest setting (what CI does after the tests).

A benchmark script that only runs on its author's machine is a claim nobody can check: this
runs each one, in its own process, with the smallest arguments that still exercise every code
path it times (one round, a handful of sentences, one thread), and fails when a script exits
non-zero or is missing from :data:`SMOKE` (a new script must declare its smallest setting
here). The numbers printed are meaningless at this size; only "it runs from a fresh install"
is checked (``pip install -e ".[bench]"``: accelerate for the Trainer arm, ray, ctranslate2).

Scripts that time real data skip when ``../shared/data`` (beside the checkout) is absent.

    python benchmarks/smoke.py              # every script
    python benchmarks/smoke.py report_speed.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"

# script: (arguments of its smallest setting, shared data it cannot run without or None)
SMOKE: dict[str, tuple[list[str], Path | None]] = {
    # its BLEU part reads ../shared/data/multi30k and skips cleanly without it; the rest always runs
    "calibration.py": (["--small"], None),
    "batching.py": (["--sentences", "6", "--forced-steps", "3", "--threads", "1"], SHARED / "multi30k" / "test_2016_flickr.en"),
    "decode_speed.py": (["--smoke", "--sentences", "4", "--batch-size", "2", "--max-new-tokens", "4", "--repeats", "1",
                         "--arms", "greedy", "--threads", "1"], SHARED / "multi30k" / "test_2016_flickr.en"),
    "finetune_speed.py": (["--examples", "32", "--batch-size", "16", "--max-length", "32", "--repeats", "1",
                           "--threads", "1"], SHARED / "sst2" / "train.tsv"),
    "comet_speed.py": (["--segments", "32", "--systems", "2", "--repeats", "1", "--threads", "1"], None),
    "mbr_speed.py": (["--sentences", "20", "--naive-sentences", "5", "-n", "4", "--repeats", "1"], None),
    "training_threads.py": (["--steps", "5", "--rounds", "1"], None),
    "ray_speedup.py": (["--repeats", "1", "--cells", "2", "--sentences", "8"], None),
    "report_speed.py": (["--n", "50", "--decoders", "2", "--strategies", "1", "--reference-systems", "2",
                         "--skip-worst-case"], None),
}
TIMEOUT = 600  # seconds per script; Ray's start-up alone takes 10-40 s on a busy 2-core machine


def main(argv: list[str]) -> int:
    scripts = sorted(p.name for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    undeclared = [s for s in scripts if s not in SMOKE]
    if undeclared:
        print(f"error: no smoke setting for {', '.join(undeclared)}: add it to SMOKE in {Path(__file__).name}",
              file=sys.stderr)
        return 1
    chosen = argv or scripts
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    failed = []
    for script in chosen:
        args, needs = SMOKE[script]
        if needs is not None and not needs.exists():
            print(f"skip {script}: {needs} not found (../shared/data beside the checkout)", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            res = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True,
                                 env=env, timeout=TIMEOUT)
            code, output = res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired as e:
            code, output = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
        seconds = time.perf_counter() - t0
        if code == 0:
            print(f"ok   {script} ({seconds:.0f} s)", flush=True)
        else:
            failed.append(script)
            tail = "\n".join(str(output).splitlines()[-20:])
            print(f"FAIL {script} (exit {code}, {seconds:.0f} s):\n{tail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
