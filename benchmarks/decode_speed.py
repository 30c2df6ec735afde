"""Decoding speed: the harness decoders vs transformers ``generate()`` and CTranslate2 on the same model and inputs.

Model: a Marian-base-sized translation model (6+6 layers, d_model 512, 8 heads, FFN 2048,
vocabulary 58,101) with random weights, built once with a fixed seed and saved to a
temporary directory; its generation_config bans the pad token (bad_words_ids), forces EOS at
the length limit and renormalises logits. Random models never stop on their own, so the EOS
row of the output layer is fitted (tests/decoding_models.calibrate_eos) to make EOS win
about one target token per source token: outputs end at varied lengths, as real translations
do. ``--size small`` builds the shape of the translator the harness trains on Multi30k
(configs/models/multi30k-marian: 3+3 layers, d_model 256, 4 heads, FFN 1024, vocabulary 8,000),
where a decoding step's matrix products are small and the cost of each of its ~200 eager ops
weighs most. Inputs: the first --sentences English sentences of Multi30k test_2016_flickr (from
../shared/data; the script exits with a message when absent), tokenised by a word-level
tokenizer built over that file.

Arms (same batches of --batch-size sentences, same max_new_tokens; generate() gets the
batches in input order, as a user would call it). The first run of an arm is its reference:
  greedy       generate(num_beams=1), harness greedy (default and ``kernels: onednn``),
               CTranslate2 greedy float32 and int8
  beam5        generate(num_beams=5), harness beam 5 (default and onednn), CTranslate2 beam 5 float32 and int8,
               torch dynamic int8 (``dtype: int8``) + harness beam 5, and with ``early_stopping: true``
               (CTranslate2's stopping rule: the same steps at natural lengths)
  diverse6x3   harness ``beam`` num_beams=6, harness ``diverse_beam`` B=6 G=3
CTranslate2 runs are the harness decoders on a model with ``engine: ctranslate2`` (converted once,
before any timing, into the temporary directory), so tokenisation and bookkeeping are the same.
``--forced-steps N`` makes every sentence of every run exactly N decoder steps long (EOS banned
before, the length limit at N: ``min_new_tokens = max_new_tokens = N``; CTranslate2's
min/max_decoding_length), so all runs do the same work; without it lengths are natural.

Every run is a fresh subprocess that loads the saved model through the harness's loader, so
its peak resident memory is its own. Rounds are interleaved: each round runs every run of the
arm once, in an order rotated from round to round, so a busy neighbour slows all runs of a round
alike; each ratio is the median over rounds of the per-round ratio, in CPU time (the process's
own user+system seconds: robust to a loaded machine) and in wall time. The load average is
printed with every run. Forward time is measured with forward hooks on the torch model and its
encoder; "overhead" is the rest of the decode time (search bookkeeping, cache reordering, Python)
in % of it (not available for CTranslate2).

Prints, per run: wall and CPU seconds, sentences/s and target tokens/s (tokens of the returned
1-best outputs, per CPU second), peak RSS and the decode's RSS growth, forward/overhead split;
then per run: speed ratio vs the arm's reference and vs CTranslate2 float32, and how many
outputs differ from the reference's (token for token). Precision is in the run's name: a run
in reduced precision (int8) is not expected to give identical outputs.
Targets (issue #14): harness greedy and beam 5 >= 1.0x CTranslate2 float32 with outputs identical
to generate(); diverse6x3 at most 1.2x the time of our beam 6.

``--device cuda`` runs the same arms on a GPU (float16 for transformers, CTranslate2 float16 and
int8_float16; torch dynamic int8 has no CUDA kernels and is left out; times are wall times after
a CUDA synchronize). ``--max-tokens`` caps a harness batch at sentences x beams x longest input
tokens (a token budget, for large GPUs).

On a shared machine whose load exceeds its cores, two torch threads stall at every parallel
op until the other thread is scheduled again (measured here: cloning 3 MB took 8 ms with 2
threads, 0.06 ms with 1), which inflates the time outside the forward pass more than the
forward itself. ``--threads 1`` then gives the contention-free picture.

The generation_config mirrors the OPUS-MT checkpoints (pad banned, forced EOS; renormalised
logits since huggingface/transformers#25459 moved Marian's pad masking after the log-softmax).

    python benchmarks/decode_speed.py --threads 1 --forced-steps 40   # the issue's setting
    python benchmarks/decode_speed.py --sentences 128 --repeats 3 --arms beam5
    python benchmarks/decode_speed.py --size small --sentences 256 --threads 1 --arms greedy,beam5
    python benchmarks/decode_speed.py --device cuda --batch-size 64
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"
EOS = 0
SIZES = {  # --size: d_model, layers (encoder = decoder), heads, FFN, vocabulary (the pad token is the last id)
    "base": (512, 6, 8, 2048, 58101),  # Marian-base / OPUS-MT
    "small": (256, 3, 4, 1024, 8000),  # configs/models/multi30k-marian: what the harness trains on Multi30k
    "tiny": (64, 1, 2, 128, 58101),  # --smoke: every code path in seconds (CI)
}

GEN = {"impl": "generate", "kernels": "default"}  # transformers' own kernels: the reference outputs
OURS = {"impl": "harness"}  # the default model settings: kernels auto (docs/engines.md)
CT2 = {"impl": "harness", "engine": "ctranslate2"}
ARMS = {
    # arm: runs, the first is the reference
    "greedy": [{**GEN, "num_beams": 1}, {**OURS, "decoder": "greedy"}, {**OURS, "decoder": "greedy", "kernels": "default"},
               {**CT2, "decoder": "greedy", "precision": "float32"}, {**CT2, "decoder": "greedy", "precision": "int8"},
               {**OURS, "decoder": "greedy", "precision": "int8"}],
    "beam5": [{**GEN, "num_beams": 5}, {**OURS, "decoder": "beam", "num_beams": 5},
              {**OURS, "decoder": "beam", "num_beams": 5, "kernels": "default"},
              {**CT2, "decoder": "beam", "num_beams": 5, "precision": "float32"},
              {**CT2, "decoder": "beam", "num_beams": 5, "precision": "int8"},
              {**OURS, "decoder": "beam", "num_beams": 5, "precision": "int8"},
              # CTranslate2's stopping rule (a sentence ends once num_beams hypotheses have finished),
              # so that at natural lengths both int8 arms decode the same number of steps
              {**OURS, "decoder": "beam", "num_beams": 5, "precision": "int8", "early_stopping": True}],
    "diverse6x3": [{**OURS, "decoder": "beam", "num_beams": 6},
                   {**OURS, "decoder": "diverse_beam", "num_beams": 6, "num_groups": 3, "diversity_strength": 0.5}],
}
CUDA_PRECISION = {"float32": "float16", "int8": "int8_float16"}  # what a run's precision becomes with --device cuda
RUN_KEYS = ("impl", "decoder", "engine", "precision", "kernels")  # the rest are decoder parameters


# ----------------------------------------------------------------------------- building the model (parent)


def build_model(outdir: Path, sentences: list[str], seed: int, size: str = "base") -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT / "tests"))
    from decoding_models import calibrate_eos

    d, layers, heads, ffn, vocab_size = SIZES[size]
    PAD = vocab_size - 1
    split = pre_tokenizers.Whitespace().pre_tokenize_str
    words = list(dict.fromkeys(w for s in sentences for w, _ in split(s)))
    vocab = {"</s>": EOS, "<unk>": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    for i in range(len(vocab), PAD):  # the random model can output any id; give each a spelling
        vocab[f"w{i}"] = i
    vocab["<pad>"] = PAD
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(outdir)

    cfg = MarianConfig(vocab_size=vocab_size, d_model=d, encoder_layers=layers, decoder_layers=layers,
                       encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                       decoder_ffn_dim=ffn,
                       max_position_embeddings=512, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                       forced_eos_token_id=EOS, bos_token_id=EOS, scale_embedding=True, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    enc = fast(sentences[:64], padding=True, return_tensors="pt")
    calibrate_eos(model, enc["input_ids"], enc["attention_mask"], eos=EOS, per_token=1.0, slope=0.5, steps=40)
    gc = model.generation_config
    gc.bad_words_ids, gc.forced_eos_token_id, gc.renormalize_logits, gc.max_length = [[PAD]], EOS, True, 512
    model.save_pretrained(outdir)


# ----------------------------------------------------------------------------- one run (child)


class PeakRSS:
    """This process's resident memory at the start and its peak while decoding, read from the kernel:
    /proc/self/clear_refs resets the peak (VmHWM) to the current RSS at the start (Linux 4.0+), and
    VmHWM is read at the end. No thread samples memory during the decode: a sampling thread competes
    for the GIL with the Python loop of the harness's searches (measured: +4% to +15% of their CPU
    time, while CTranslate2's decode, which releases the GIL, was not slowed). Where the peak cannot
    be reset, the growth is the process's lifetime peak minus the start (0 if loading peaked higher)."""

    def __init__(self):
        self.start = self.peak = self._status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # VmHWM stays the lifetime peak

    @staticmethod
    def _status(field: str) -> int:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.peak = max(self.start, self._status("VmHWM"))


def forward_timer(gm):
    """Seconds spent inside the model's forward passes: the model, its encoder, the base model
    and head that a ``kernels: onednn`` step calls directly (harness.models.kernels.split_head), and
    the steps of the harness's own Marian step (harness.models.seq2seq_step); nested calls count once."""
    from harness.models.kernels import split_head

    model = gm.model

    spent = {"s": 0.0}
    depth = [0]
    start = [0.0]

    def pre(*_):
        if depth[0] == 0:
            start[0] = time.perf_counter()
        depth[0] += 1

    def post(*_):
        depth[0] -= 1
        if depth[0] == 0:
            spent["s"] += time.perf_counter() - start[0]

    for m in (model, model.get_encoder(), *(split_head(model) or ())):
        m.register_forward_pre_hook(pre)
        m.register_forward_hook(post)
    if gm.step_model is not None:
        start_session = gm.step_model.start

        def start_timed(prompts):
            session = start_session(prompts)
            step = session.step

            def timed(tokens):
                pre()
                try:
                    return step(tokens)
                finally:
                    post()

            session.step = timed
            return session

        gm.step_model.start = start_timed
    return spent


def model_spec(args, run: dict):
    from harness.models.spec import ModelSpec

    precision = run.get("precision", "float32")
    if run.get("engine") == "ctranslate2":
        compute = CUDA_PRECISION.get(precision, precision) if args.device.startswith("cuda") else precision
        return ModelSpec(path=args.model, device=args.device, engine="ctranslate2", compute_type=compute)
    dtype = precision if not args.device.startswith("cuda") else "float16"
    return ModelSpec(path=args.model, device=args.device, dtype=dtype, kernels=run.get("kernels", "auto"))


def child(args) -> None:
    import torch
    import transformers

    from harness.api import CellContext
    from harness.engines.load import load_generation_model
    from harness.plugins import default_plugins

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    run = json.loads(args.run)
    sentences = MULTI30K.read_text(encoding="utf-8").splitlines()[:args.sentences]
    gm = load_generation_model(model_spec(args, run))
    torch_model = run.get("engine") != "ctranslate2"
    spent = forward_timer(gm) if torch_model else {"s": float("nan")}
    ids = gm.encode(sentences)
    cuda = args.device.startswith("cuda")
    forced = args.forced_steps
    max_new = forced or args.max_new_tokens
    lengths = {"min_new_tokens": forced} if forced else {}

    def decode(texts, ids):
        outputs: list[list[int]] = []
        if run["impl"] == "generate":
            with torch.inference_mode():
                for i in range(0, len(ids), args.batch_size):
                    batch = gm.tokenizer.pad({"input_ids": ids[i:i + args.batch_size]}, return_tensors="pt").to(gm.device)
                    out = gm.model.generate(**batch, do_sample=False, num_beams=run["num_beams"],
                                            max_new_tokens=max_new, **lengths)
                    for seq in out[:, 1:].tolist():
                        outputs.append(seq[:seq.index(EOS) + 1] if EOS in seq else seq)
        else:
            outputs = [h[0].tokens for h in decoder.decode(gm, texts, ctx)]
        if cuda:
            torch.cuda.synchronize()
        return outputs

    if run["impl"] == "harness":  # plugin discovery and set-up stay outside the timed span
        cls = default_plugins().get("decoder", run["decoder"])
        params = {k: v for k, v in run.items() if k not in RUN_KEYS}
        decoder = cls(cls.Params(max_new_tokens=max_new, batch_size=args.batch_size, max_tokens=args.max_tokens or None,
                                 **lengths, **params))
        ctx = CellContext(seed=0, workdir=Path(tempfile.gettempdir()), cache_dir=Path(tempfile.gettempdir()))
    decode(sentences[:2], ids[:2])  # warm-up: one-time allocations and kernel set-up, for both arms
    spent["s"] = 0.0 if torch_model else float("nan")
    load = os.getloadavg()[0]
    with PeakRSS() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        outputs = decode(sentences, ids)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu": cpu, "forward": spent["s"], "outputs": outputs, "load": load,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "decode_rss": mem.peak - mem.start}))


# ----------------------------------------------------------------------------- parent


def label(run: dict) -> str:
    prec = run.get("precision", "float32")
    extra = ",".join(f"{k}={v}" for k, v in run.items() if k not in RUN_KEYS)
    if run["impl"] == "generate":
        name = f"generate(num_beams={run['num_beams']})"
    else:
        name = ("ct2 " if run.get("engine") == "ctranslate2" else "harness ") + run["decoder"] + (f"({extra})" if extra else "")
    return name + ("" if prec == "float32" else f" [{prec}]") + (f" [{run['kernels']}]" if run.get("kernels") else "")


def launch(args, model_dir: Path, run: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", str(model_dir), "--run", json.dumps(run),
           "--sentences", str(args.sentences), "--batch-size", str(args.batch_size),
           "--max-new-tokens", str(args.max_new_tokens), "--threads", str(args.threads),
           "--forced-steps", str(args.forced_steps), "--device", args.device]
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"run {label(run)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def row(name: str, r: dict, n: int) -> str:
    toks = sum(len(o) for o in r["outputs"])
    over = 100 * (r["seconds"] - r["forward"]) / r["seconds"]
    over_s = "     n/a " if over != over else f"{over:8.1f}%"
    return (f"{name:<40} {r['seconds']:7.2f}s {r['cpu']:7.2f}s {n / r['cpu']:7.2f} {toks / r['cpu']:8.1f} "
            f"{r['peak_rss'] / 2**20:7.0f} {r['decode_rss'] / 2**20:7.0f} {over_s} {r['load']:5.1f}")


def runs_for(args, arm: str) -> list[dict]:
    runs = ARMS[arm]
    if args.device.startswith("cuda"):  # torch dynamic int8 and oneDNN linear have CPU kernels only
        runs = [r for r in runs if not (r.get("precision") == "int8" and r.get("engine") != "ctranslate2")
                and not r.get("kernels")]
    if not args.ct2:
        runs = [r for r in runs if r.get("engine") != "ctranslate2"]
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--forced-steps", type=int, default=0,
                    help="every sentence exactly this many decoder steps (0: natural lengths)")
    ap.add_argument("--max-tokens", type=int, default=0, help="harness batches: cap sentences x beams x input tokens")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds per arm (order rotates)")
    ap.add_argument("--threads", type=int, default=2, help="torch (and CTranslate2) threads per run")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", choices=list(SIZES), default="base",
                    help="base: Marian-base (d 512, 6+6 layers, 58k vocabulary); small: the harness's Multi30k "
                         "translator's shape (d 256, 3+3 layers, 8k vocabulary), where per-op overheads weigh most")
    ap.add_argument("--smoke", action="store_true",
                    help="--size tiny: checks the script runs, its timings mean nothing")
    ap.add_argument("--keep-model", type=Path, default=None,
                    help="build the model (and its CTranslate2 conversion) into this directory once and reuse it")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.size = "tiny"
    if args.child:
        return child(args)
    # a terminated run still removes its ~300 MB temporary model directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not MULTI30K.exists():
        sys.exit(f"Multi30k not found at {MULTI30K} (../shared/data beside the checkout); nothing to benchmark")
    if args.device.startswith("cuda"):
        import torch

        index = int(args.device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            sys.exit(f"--device {args.device}: torch sees {torch.cuda.device_count() if torch.cuda.is_available() else 'no'} "
                     f"CUDA device(s) here{'' if torch.backends.cuda.is_built() else ' (this torch build has no CUDA)'}; "
                     "run on a GPU machine, or use --device cpu")
    import importlib.util

    args.ct2 = importlib.util.find_spec("ctranslate2") is not None
    sentences = MULTI30K.read_text(encoding="utf-8").splitlines()
    steps = f"forced to {args.forced_steps} decoder steps" if args.forced_steps else f"max_new_tokens {args.max_new_tokens}"
    shape = dict(zip(("d_model", "layers", "heads", "ffn", "vocabulary"), SIZES[args.size]))
    print(f"{args.size} random Marian ({', '.join(f'{k} {v}' for k, v in shape.items())}), {args.sentences} Multi30k sentences, batch {args.batch_size}, {steps}, "
          f"{args.threads} threads, {args.repeats} interleaved rounds per arm, device {args.device}")
    if not args.ct2:
        print('CTranslate2 is not installed: its runs are left out (pip install "nlp-eval-harness[ct2]")')
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    print(f"load average {load:.1f} on {cores} cores" + (
        " -- busy machine: read the CPU-time ratios; parallel ops stall, compare with --threads 1"
        if load > cores else ""))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep_model or Path(tmp)
        model_dir = work / f"model-seed{args.seed}{'' if args.size == 'base' else '-' + args.size}"
        # CTranslate2 conversions land beside the model, and are made before any timing
        os.environ["HARNESS_CACHE"] = str(work / "cache")
        t = time.perf_counter()
        if not (model_dir / "model.safetensors").is_file():
            build_model(model_dir, sentences, args.seed, size=args.size)
            print(f"model built and EOS calibrated in {time.perf_counter() - t:.0f}s")
        if args.ct2:
            from harness.engines.ctranslate2 import converted_dir
            from harness.models.spec import ModelSpec

            t = time.perf_counter()
            converted_dir(ModelSpec(path=str(model_dir), device="cpu", engine="ctranslate2"))
            print(f"converted for CTranslate2 in {time.perf_counter() - t:.0f}s")
        print(f"\n{'run':<40} {'wall':>8} {'cpu':>8} {'sent/s':>7} {'tok/s':>8} {'peakMB':>7} {'+decMB':>7} "
              f"{'overhead':>9} {'load':>5}   (sent/s and tok/s per CPU second)")
        summary = []
        for arm in args.arms.split(","):
            runs = runs_for(args, arm)
            results: list[list[dict]] = [[] for _ in runs]
            for rep in range(args.repeats):
                order = list(range(len(runs)))
                order = order[rep % len(order):] + order[:rep % len(order)]
                for i in order:
                    results[i].append(launch(args, model_dir, runs[i]))
                    print(row(label(runs[i]), results[i][-1], args.sentences), flush=True)
            summary.append((arm, runs, results))
        ct2_ref = {}
        # at the length limit generate() forces EOS and CTranslate2 does not: an output that reaches the
        # limit is compared without its last token (docs/engines.md)
        limit = args.forced_steps or args.max_new_tokens
        trim = lambda o: o[:limit - 1] if len(o) >= limit else o  # noqa: E731
        print(f"\n{'run':<40} {'cpu ratio':>10} {'wall ratio':>10} {'vs ct2 f32 (cpu)':>17}   outputs differing from the "
              f"reference (of {args.sentences}; the last token of outputs at the length limit excluded)")
        for arm, runs, results in summary:
            ref = results[0]
            f32 = next((i for i, r in enumerate(runs) if r.get("engine") == "ctranslate2"
                        and r.get("precision") == "float32"), None)
            print(f"{arm}: reference {label(runs[0])}")
            for run, res in zip(runs, results):
                cpu = statistics.median(a["cpu"] / b["cpu"] for a, b in zip(ref, res))
                wall = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(ref, res))
                vs = (f"{statistics.median(a['cpu'] / b['cpu'] for a, b in zip(results[f32], res)):16.2f}x"
                      if f32 is not None else f"{'':>17}")
                differ = max(sum(trim(x) != trim(y) for x, y in zip(a["outputs"], b["outputs"])) for a, b in zip(ref, res))
                print(f"  {label(run):<38} {cpu:9.2f}x {wall:9.2f}x {vs}   {differ}")
            lengths = sorted(len(o) for o in ref[0]["outputs"])
            print(f"  output lengths ({label(runs[0])}): min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
                  f"max {lengths[-1]}")
            ct2_ref[arm] = f32
        print("\nratios: reference time / run time (median over rounds); > 1 is faster than the reference. "
              "Targets: harness greedy and beam5 >= 1.0x ct2 float32 with 0 outputs differing from generate(); "
              "diverse_beam >= 1/1.2 = 0.83x of beam 6")


if __name__ == "__main__":
    main()
