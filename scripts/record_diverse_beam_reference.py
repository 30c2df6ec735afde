"""Record transformers 4.x group beam search outputs as the reference ``diverse_beam`` is tested against.

Writes ``tests/fixtures/diverse_beam/``:

- ``marian/`` and ``gpt2/``: two tiny models (an encoder-decoder and a decoder-only LM, about
  100k parameters each) with their word-level tokenizers, trained for a few seconds on a toy
  word-by-word "translation" task whose words have several translations ("the" -> die / der /
  das), so that n-best lists hold real alternatives and outputs end at many different lengths;
- ``reference.json``: for every model and search setting, the n-best lists (text, score,
  generated token ids) that ``generate(num_beams=B, num_beam_groups=G, diversity_penalty=lambda,
  num_return_sequences=B, do_sample=False)`` returns on padded batches of 8 sources.

The weights are saved, not rebuilt by the test: seeded initialisation is not the same across
torch/transformers versions, saved weights are. ``tests/test_diverse_beam_reference.py`` loads
the models through the harness's own loading code and compares.

Run it with transformers 4.x (group beam search left transformers' core in v5), in a side
virtualenv, from the repository root:

    python3 -m venv /tmp/venv-tf4
    /tmp/venv-tf4/bin/pip install torch==2.13.0 "transformers==4.55.4" sentencepiece safetensors
    /tmp/venv-tf4/bin/python scripts/record_diverse_beam_reference.py            # re-record, same models
    /tmp/venv-tf4/bin/python scripts/record_diverse_beam_reference.py --rebuild  # train new models first

Without ``--rebuild`` the committed models are loaded and only ``reference.json`` is rewritten.
Needs only torch, transformers and tokenizers (not the harness).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "diverse_beam"

# English word -> its translations with probabilities (a word may become two words)
LEXICON: dict[str, dict[str, float]] = {
    "the": {"die": 0.4, "der": 0.35, "das": 0.25},
    "a": {"ein": 0.6, "eine": 0.4},
    "cat": {"katze": 1.0}, "dog": {"hund": 1.0}, "house": {"haus": 1.0}, "mat": {"matte": 1.0},
    "sat": {"sass": 1.0}, "ran": {"lief": 0.7, "rannte": 0.3}, "on": {"auf": 1.0}, "to": {"zum": 0.5, "zur": 0.5},
    "red": {"rot": 0.6, "rote": 0.4}, "big": {"gross": 0.5, "grosse": 0.5}, "small": {"klein": 0.6, "kleine": 0.4},
    "is": {"ist": 1.0}, "was": {"war": 1.0}, "and": {"und": 1.0}, "of": {"von": 0.8, "vom": 0.2},
    "good": {"gut": 0.7, "gute": 0.3}, "movie": {"film": 1.0}, "green": {"gruen": 1.0}, "blue": {"blau": 1.0},
    "went": {"ging weg": 0.6, "ging": 0.4}, "quickly": {"sehr schnell": 0.5, "schnell": 0.5},
    "home": {"nach hause": 0.8, "heim": 0.2},
}
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0..3: pad, eos, unk, bos
SETTINGS = [
    # the four settings of issue #9 ...
    {"num_beams": 4, "num_groups": 2, "diversity_strength": 0.5},
    {"num_beams": 6, "num_groups": 3, "diversity_strength": 0.5},
    {"num_beams": 6, "num_groups": 3, "diversity_strength": 2.0},
    {"num_beams": 8, "num_groups": 4, "diversity_strength": 1.0},
    # ... and the other stopping rules, length penalties, and hypotheses cut by the length limit
    {"num_beams": 4, "num_groups": 2, "diversity_strength": 0.5, "early_stopping": True},
    {"num_beams": 6, "num_groups": 3, "diversity_strength": 1.0, "early_stopping": "never"},
    {"num_beams": 4, "num_groups": 2, "diversity_strength": 1.0, "length_penalty": 2.0},
    {"num_beams": 6, "num_groups": 2, "diversity_strength": 0.5, "length_penalty": -0.5},
    {"num_beams": 4, "num_groups": 4, "diversity_strength": 0.5, "max_new_tokens": 6},
]
DEFAULTS = {"length_penalty": 1.0, "early_stopping": False, "max_new_tokens": 20}
BATCH = 8
N_SOURCES = 32


def vocabulary() -> list[str]:
    words = list(LEXICON) + [w for ts in LEXICON.values() for t in ts for w in t.split()] + ["="]
    return SPECIALS + list(dict.fromkeys(words))


def sentences(rnd: random.Random, n: int) -> list[tuple[str, str]]:
    """(source, sampled translation) pairs of 1 to 10 words."""
    pairs = []
    for _ in range(n):
        src = [rnd.choice(list(LEXICON)) for _ in range(rnd.randint(1, 10))]
        tgt = [rnd.choices(list(LEXICON[w]), weights=list(LEXICON[w].values()))[0] for w in src]
        pairs.append((" ".join(src), " ".join(tgt)))
    return pairs


def tokenizer(append_eos: bool, padding_side: str):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if append_eos:  # Marian-style sources end with </s>; decoder-only prompts do not
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>", padding_side=padding_side)


def train(model, batches, steps: int, lr: float = 3e-3) -> None:
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    print(f"  final training loss {loss.item():.3f}")


def build_marian(out: Path, pairs, steps: int) -> None:
    import torch
    from transformers import MarianConfig, MarianMTModel

    tok = tokenizer(append_eos=True, padding_side="right")
    cfg = MarianConfig(vocab_size=len(vocabulary()), d_model=48, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96, decoder_ffn_dim=96,
                       max_position_embeddings=64, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                       forced_eos_token_id=1, bos_token_id=3, dropout=0.0, attention_dropout=0.0,
                       activation_dropout=0.0, share_encoder_decoder_embeddings=True, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = MarianMTModel(cfg)
    batches = []
    for i in range(0, len(pairs), 32):
        chunk = pairs[i:i + 32]
        enc = tok([s for s, _ in chunk], padding=True, return_tensors="pt", return_token_type_ids=False)
        labels = tok([t for _, t in chunk], padding=True, return_tensors="pt")["input_ids"]
        enc["labels"] = labels.masked_fill(labels == 0, -100)
        batches.append(enc)
    train(model, batches, steps)
    model.generation_config.max_length = 64
    model.save_pretrained(out / "marian")
    tok.save_pretrained(out / "marian")


def build_gpt2(out: Path, pairs, steps: int) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tokenizer(append_eos=False, padding_side="left")
    cfg = GPT2Config(vocab_size=len(vocabulary()), n_embd=48, n_layer=3, n_head=4, n_positions=64, bos_token_id=3,
                     eos_token_id=1, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg)
    batches = []
    for i in range(0, len(pairs), 32):
        rows = []
        for s, t in pairs[i:i + 32]:
            prompt = tok(f"{s} =")["input_ids"]
            target = tok(t)["input_ids"] + [1]
            rows.append((prompt + target, [-100] * len(prompt) + target))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([[0] * (width - len(a)) + a for a, _ in rows])
        labels = torch.tensor([[-100] * (width - len(b)) + b for _, b in rows])
        mask = torch.tensor([[0] * (width - len(a)) + [1] * len(a) for a, _ in rows])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        batches.append({"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels})
    train(model, batches, steps)
    model.save_pretrained(out / "gpt2")
    tok.save_pretrained(out / "gpt2")


def until_eos(seq: list[int], eos: int = 1) -> list[int]:
    return seq[:seq.index(eos) + 1] if eos in seq else seq


def record(out: Path, sources: list[str]) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    runs = []
    for kind, auto, template in [("marian", AutoModelForSeq2SeqLM, "{source}"),
                                 ("gpt2", AutoModelForCausalLM, "{source} =")]:
        model = auto.from_pretrained(out / kind).eval()
        tok = AutoTokenizer.from_pretrained(out / kind)
        for setting in SETTINGS:
            s = {**DEFAULTS, **setting}
            nbest = []
            for i in range(0, len(sources), BATCH):
                prompts = [tok(template.replace("{source}", x))["input_ids"] for x in sources[i:i + BATCH]]
                enc = tok.pad({"input_ids": prompts}, return_tensors="pt")
                with torch.inference_mode():
                    res = model.generate(**enc, do_sample=False, num_beams=s["num_beams"],
                                         num_beam_groups=s["num_groups"], diversity_penalty=s["diversity_strength"],
                                         num_return_sequences=s["num_beams"], length_penalty=s["length_penalty"],
                                         early_stopping=s["early_stopping"], max_new_tokens=s["max_new_tokens"],
                                         return_dict_in_generate=True, output_scores=True)
                start = 1 if model.config.is_encoder_decoder else enc["input_ids"].shape[1]
                seqs = [until_eos(q) for q in res.sequences[:, start:].tolist()]
                scores = res.sequences_scores.tolist()
                B = s["num_beams"]
                for j in range(len(prompts)):
                    nbest.append([[tok.decode(q, skip_special_tokens=True).strip(), sc, q]
                                  for q, sc in zip(seqs[j * B:(j + 1) * B], scores[j * B:(j + 1) * B])])
            runs.append({"model": kind, "prompt_template": template, "batch_size": BATCH, **s, "nbest": nbest})
    return {"transformers": transformers.__version__, "torch": torch.__version__, "sources": sources, "runs": runs}


def main() -> None:
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--rebuild", action="store_true", help="train and save new models before recording")
    ap.add_argument("--steps", type=int, default=400, help="training steps per model (with --rebuild)")
    args = ap.parse_args()
    if int(transformers.__version__.split(".")[0]) >= 5:
        raise SystemExit(f"transformers {transformers.__version__}: group beam search is not in transformers 5's "
                         f"core; run this with transformers 4.x (see the module docstring)")
    rnd = random.Random(0)
    train_pairs = sentences(rnd, 3200)
    sources = [s for s, _ in sentences(random.Random(1), N_SOURCES)]
    if args.rebuild or not (args.out / "marian").is_dir():
        import torch

        torch.set_num_threads(1)
        args.out.mkdir(parents=True, exist_ok=True)
        print("training marian")
        build_marian(args.out, train_pairs, args.steps)
        print("training gpt2")
        build_gpt2(args.out, train_pairs, args.steps)
    data = record(args.out, sources)
    with open(args.out / "reference.json", "w", encoding="utf-8") as f:
        f.write("{\n")
        head = {k: v for k, v in data.items() if k != "runs"}
        for k, v in head.items():
            f.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
        f.write('"runs": [\n' + ",\n".join(json.dumps(r) for r in data["runs"]) + "\n]}\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
