"""Decoding speed: the harness decoders vs transformers ``generate()`` on the same model and inputs.

Model: a Marian-base-sized translation model (6+6 layers, d_model 512, 8 heads, FFN 2048,
vocabulary 58,101) with random weights, built once with a fixed seed and saved to a
temporary directory; its generation_config bans the pad token (bad_words_ids), forces EOS at
the length limit and renormalises logits. Random models never stop on their own, so the EOS
row of the output layer is fitted (tests/decoding_models.calibrate_eos) to make EOS win
about one target token per source token: outputs end at varied lengths, as real translations
do. Inputs: the first --sentences English sentences of Multi30k test_2016_flickr (from
../shared/data; the script exits with a message when absent), tokenised by a word-level
tokenizer built over that file.

Arms (same batches of --batch-size sentences, same max_new_tokens; generate() gets the
batches in input order, as a user would call it):
  greedy       harness ``greedy``                vs generate(num_beams=1)
  beam5        harness ``beam`` num_beams=5      vs generate(num_beams=5)
  diverse6x3   harness ``diverse_beam`` B=6 G=3  vs harness ``beam`` num_beams=6
Every run is a fresh subprocess that loads the saved model through the harness's loader, so
its peak resident memory is its own; runs come in adjacent pairs with alternating order and
each ratio is the median of the per-pair ratios, so a busy neighbour slows both arms of a pair
alike. Forward time is measured with forward hooks on the model and its encoder; "overhead"
is the rest of the decode time (search bookkeeping, cache reordering, Python) in % of it.

Prints, per run: sentences/s, target tokens/s (tokens of the returned 1-best outputs), peak RSS
and the decode's RSS growth, forward/overhead split; then per arm: speed ratio (reference
time / harness time) and whether the outputs are token-for-token identical.
Targets on a 2-core CPU: greedy >= 1.0x generate, beam5 >= 1.3x generate, both identical;
diverse6x3 at most 1.2x the time of our beam 6; overhead < 10%.

On a shared machine whose load exceeds its cores, two torch threads stall at every parallel
op until the other thread is scheduled again (measured here: cloning 3 MB took 8 ms with 2
threads, 0.06 ms with 1), which inflates the time outside the forward pass more than the
forward itself. ``--threads 1`` then gives the contention-free picture; the script prints the
load average so the numbers can be read accordingly.

The generation_config mirrors the OPUS-MT checkpoints (pad banned, forced EOS; renormalised
logits since huggingface/transformers#25459 moved Marian's pad masking after the log-softmax).

    python benchmarks/decode_speed.py                    # 64 sentences, batch 16, 2 pairs per arm
    python benchmarks/decode_speed.py --sentences 128 --repeats 3 --arms beam5
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"
VOCAB, PAD, EOS = 58101, 58100, 0

ARMS = {
    # arm: (reference run, harness run)
    "greedy": ({"impl": "generate", "num_beams": 1}, {"impl": "harness", "decoder": "greedy"}),
    "beam5": ({"impl": "generate", "num_beams": 5}, {"impl": "harness", "decoder": "beam", "num_beams": 5}),
    "diverse6x3": ({"impl": "harness", "decoder": "beam", "num_beams": 6},
                   {"impl": "harness", "decoder": "diverse_beam", "num_beams": 6, "num_groups": 3,
                    "diversity_strength": 0.5}),
}


# ----------------------------------------------------------------------------- building the model (parent)


def build_model(outdir: Path, sentences: list[str], seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT / "tests"))
    from decoding_models import calibrate_eos

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

    cfg = MarianConfig(vocab_size=VOCAB, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                       decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
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
    """Samples this process's resident memory every 5 ms while decoding."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self.now()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.now())

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.now())


def forward_timer(model):
    """Seconds spent inside the model's (and its encoder's) forward passes."""
    spent = {"s": 0.0}
    starts = []

    def pre(*_):
        starts.append(time.perf_counter())

    def post(*_):
        spent["s"] += time.perf_counter() - starts.pop()

    for m in (model, model.get_encoder()):
        m.register_forward_pre_hook(pre)
        m.register_forward_hook(post)
    return spent


def child(args) -> None:
    import torch
    import transformers

    from harness.api import CellContext
    from harness.models import ModelSpec, load_generation_model
    from harness.plugins import default_plugins

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    run = json.loads(args.run)
    sentences = MULTI30K.read_text(encoding="utf-8").splitlines()[:args.sentences]
    gm = load_generation_model(ModelSpec(path=args.model, device="cpu"))
    spent = forward_timer(gm.model)
    ids = gm.encode(sentences)

    def decode(texts, ids):
        outputs: list[list[int]] = []
        if run["impl"] == "generate":
            with torch.inference_mode():
                for i in range(0, len(ids), args.batch_size):
                    batch = gm.tokenizer.pad({"input_ids": ids[i:i + args.batch_size]}, return_tensors="pt")
                    out = gm.model.generate(**batch, do_sample=False, num_beams=run["num_beams"],
                                            max_new_tokens=args.max_new_tokens)
                    for seq in out[:, 1:].tolist():
                        outputs.append(seq[:seq.index(EOS) + 1] if EOS in seq else seq)
            return outputs
        return [h[0].tokens for h in decoder.decode(gm, texts, ctx)]

    if run["impl"] == "harness":  # plugin discovery and set-up stay outside the timed span
        cls = default_plugins().get("decoder", run["decoder"])
        params = {k: v for k, v in run.items() if k not in ("impl", "decoder")}
        decoder = cls(cls.Params(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, **params))
        ctx = CellContext(seed=0, workdir=Path(tempfile.gettempdir()), cache_dir=Path(tempfile.gettempdir()))
    decode(sentences[:2], ids[:2])  # warm-up: one-time allocations and kernel set-up, for both arms
    spent["s"] = 0.0
    with PeakRSS() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        outputs = decode(sentences, ids)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu": cpu, "forward": spent["s"], "outputs": outputs,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "decode_rss": mem.peak - mem.start}))


# ----------------------------------------------------------------------------- parent


def label(run: dict) -> str:
    if run["impl"] == "generate":
        return f"generate(num_beams={run['num_beams']})"
    extra = ",".join(f"{k}={v}" for k, v in run.items() if k not in ("impl", "decoder"))
    return f"harness {run['decoder']}" + (f"({extra})" if extra else "")


def launch(args, model_dir: Path, run: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", str(model_dir), "--run", json.dumps(run),
           "--sentences", str(args.sentences), "--batch-size", str(args.batch_size),
           "--max-new-tokens", str(args.max_new_tokens), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"run {label(run)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def row(name: str, r: dict, n: int) -> str:
    toks = sum(len(o) for o in r["outputs"])
    over = 100 * (r["seconds"] - r["forward"]) / r["seconds"]
    return (f"{name:<44} {r['seconds']:7.2f}s {r['cpu']:7.2f}s {n / r['seconds']:8.2f} {toks / r['seconds']:9.1f} "
            f"{r['peak_rss'] / 2**20:8.0f} {r['decode_rss'] / 2**20:8.0f} {over:8.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="pairs per arm (order alternates)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    # a terminated run still removes its ~300 MB temporary model directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not MULTI30K.exists():
        sys.exit(f"Multi30k not found at {MULTI30K} (../shared/data beside the checkout); nothing to benchmark")
    sentences = MULTI30K.read_text(encoding="utf-8").splitlines()
    print(f"Marian-base-sized random model, {args.sentences} Multi30k sentences, batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}, {args.threads} torch threads, {args.repeats} pairs per arm")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    print(f"load average {load:.1f} on {cores} cores" + (
        " -- busy machine: parallel ops stall, compare with --threads 1" if load > cores and args.threads > 1 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        t = time.perf_counter()
        build_model(model_dir, sentences, args.seed)
        print(f"model built and EOS calibrated in {time.perf_counter() - t:.0f}s\n")
        print(f"{'run':<44} {'wall':>8} {'cpu':>8} {'sent/s':>8} {'tok/s':>9} {'peakMB':>8} {'+decMB':>8} {'overhead':>9}")
        summary = []
        for arm in args.arms.split(","):
            ref_run, our_run = ARMS[arm]
            ratios, cpu_ratios, same = [], [], True
            for rep in range(args.repeats):
                pair = [(ref_run, "ref"), (our_run, "ours")]
                results = {}
                for run, who in (pair if rep % 2 == 0 else pair[::-1]):
                    results[who] = launch(args, model_dir, run)
                    print(row(label(run), results[who], args.sentences), flush=True)
                ratios.append(results["ref"]["seconds"] / results["ours"]["seconds"])
                cpu_ratios.append(results["ref"]["cpu"] / results["ours"]["cpu"])
                same &= results["ref"]["outputs"] == results["ours"]["outputs"]
                lengths = sorted(len(o) for o in results["ours"]["outputs"])
            summary.append((arm, statistics.median(ratios), statistics.median(cpu_ratios), same, ratios, lengths))
        print("\narm          ratio (ref time / harness time)   cpu ratio   identical outputs   per-pair ratios")
        for arm, r, c, same, ratios, lengths in summary:
            ident = ("yes" if same else "NO") if arm != "diverse6x3" else "n/a (different search)"
            print(f"{arm:<12} {r:6.2f}x {'':<24} {c:6.2f}x   {ident:<19} {', '.join(f'{x:.2f}' for x in ratios)}")
        for arm, *_, lengths in summary:
            print(f"output lengths ({arm}, harness): min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
                  f"max {lengths[-1]}")
        print("\ntargets: greedy >= 1.0x, beam5 >= 1.3x (identical outputs); diverse6x3 >= 1/1.2 = 0.83x of beam 6; "
              "overhead < 10%")


if __name__ == "__main__":
    main()
