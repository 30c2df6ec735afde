"""Tiny random generation models whose outputs end at varied lengths, for decoder tests.

Random models are degenerate decoders: the tiny fixtures of conftest either never emit EOS
before the length limit (Marian) or emit it at once (GPT-2), so a parity test on them never
exercises sentences that finish at different steps. Here the EOS row of the output layer is
fitted (least squares on teacher-forced random prefixes) so that the EOS logit overtakes the
best other token about ``per_token x source length`` steps in: every sentence then ends at
its own length, like a translation model. The benchmark (benchmarks/decode_speed.py) uses
:func:`calibrate_eos` on a Marian-base-sized model for the same reason.
"""
from __future__ import annotations

import random
from pathlib import Path

from conftest import WORDS, build_word_tokenizer

SOURCES = [
    "the cat sat on the mat",
    "a dog",
    "the big red house is blue and green",
    "one two three four five six seven eight nine ten",
    "dog",
    "the small cat ran to the house of the big dog and the red cat",
    "good movie",
    "the dog is on the mat and the cat is in the house",
    "two small cats",
    "a great awful fine movie is a bad good movie",
    "red",
    "the house of the cat",
]
"""Sources of 1 to 15 words: batches mix very different lengths."""


def calibrate_eos(model, input_ids, attention_mask, eos: int, *, per_token: float = 1.0, slope: float = 0.5,
                  steps: int = 24, seed: int = 0) -> None:
    """Refit, in place, the EOS row of an encoder-decoder model's (untied) output layer and its
    final_logits_bias so that EOS wins around step ``per_token x source length``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    V = model.config.vocab_size
    with torch.no_grad():
        n = input_ids.shape[0]
        dec = torch.randint(4, V, (n, steps), generator=g)
        dec[:, 0] = model.config.decoder_start_token_id
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=dec, output_hidden_states=True)
        h = out.decoder_hidden_states[-1]
        others = out.logits.clone()
        others[..., eos] = float("-inf")
        best = others.max(-1).values
        src_len = attention_mask.sum(1, keepdim=True).float()
        t = torch.arange(steps).float()[None] + 1
        target = best + slope * (t - per_token * src_len)
        X = torch.cat([h, torch.ones_like(h[..., :1])], -1).reshape(-1, h.shape[-1] + 1)
        w = torch.linalg.lstsq(X, target.reshape(-1, 1)).solution.squeeze(1)
        model.lm_head.weight[eos] = w[:-1]
        model.final_logits_bias[0, eos] = w[-1]


def build_marian_varied(path: Path, seed: int = 1, extra_words: int = 0) -> Path:
    """Tiny Marian (vocab of conftest.WORDS plus ``extra_words`` made-up words, eos=1, pad=decoder
    start=0, forced_eos=1) with calibrated EOS. A large vocabulary exercises the code paths that
    only long logit rows take (the chunked top-k of beam search)."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    tok, vocab = build_word_tokenizer(path, list(WORDS) + [f"w{i}" for i in range(extra_words)])
    cfg = MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                       max_position_embeddings=128, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                       forced_eos_token_id=1, bos_token_id=3, share_encoder_decoder_embeddings=True, init_std=0.1,
                       tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    rnd = random.Random(seed)
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 12))) for _ in range(64)]
    enc = tok(texts, padding=True, return_tensors="pt")
    calibrate_eos(model, enc["input_ids"], enc["attention_mask"], eos=1)
    model.generation_config.max_length = 64
    model.save_pretrained(path)
    return path


def calibrate_eos_causal(model, prompts: list[list[int]], eos: int, *, per_token: float = 1.0, slope: float = 0.5,
                         steps: int = 24, seed: int = 0) -> None:
    """The same for a decoder-only model with an untied output layer and no bias: EOS wins about
    ``per_token x prompt length`` generated tokens after the prompt."""
    import torch

    g = torch.Generator().manual_seed(seed)
    V = model.config.vocab_size
    xs, ys = [], []
    with torch.no_grad():
        for p in prompts:
            cont = torch.randint(4, V, (1, steps), generator=g)
            ids = torch.cat([torch.tensor([p]), cont], dim=1)
            out = model(input_ids=ids, output_hidden_states=True)
            h = out.hidden_states[-1][0, len(p) - 1:len(p) - 1 + steps]
            others = out.logits[0, len(p) - 1:len(p) - 1 + steps].clone()
            others[:, eos] = float("-inf")
            t = torch.arange(steps).float() + 1
            xs.append(h)
            ys.append(others.max(-1).values + slope * (t - per_token * len(p)))
        w = torch.linalg.lstsq(torch.cat(xs), torch.cat(ys)[:, None]).solution.squeeze(1)
        model.lm_head.weight[eos] = w


def build_gpt2_varied(path: Path, seed: int = 0) -> Path:
    """Tiny GPT-2 (eos=1, pad=0, untied output layer) with calibrated EOS."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok, vocab = build_word_tokenizer(path)
    cfg = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=3,
                     eos_token_id=1, pad_token_id=0, initializer_range=0.1, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    rnd = random.Random(seed)
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 12))) + " =" for _ in range(48)]
    calibrate_eos_causal(model, [tok(t)["input_ids"] for t in texts], eos=1, per_token=2.0, slope=1.0)
    model.save_pretrained(path)
    return path


FAMILIES = ("bart", "mbart", "pegasus", "m2m100", "t5")


def build_family(kind: str, path: Path, seed: int = 1) -> Path:
    """A tiny random encoder-decoder of one of :data:`FAMILIES`, with the word tokenizer (pad 0,
    eos 1), its config as transformers 5 writes it: no legacy fairseq keys (``normalize_before``),
    M2M100 with ``<pad>`` = 0 (not the released checkpoints' 1), and T5 with
    ``scale_decoder_outputs`` off while ``tie_word_embeddings`` stays on -- the points where
    CTranslate2's converters and transformers disagree."""
    import torch
    import transformers as T

    tok, vocab = build_word_tokenizer(path)
    common = dict(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                  pad_token_id=0, eos_token_id=1, bos_token_id=3, init_std=0.1, tie_word_embeddings=False)
    torch.manual_seed(seed)
    if kind == "t5":
        model = T.T5ForConditionalGeneration(T.T5Config(
            vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0,
            eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False))
    else:
        cls, cfg = {"bart": (T.BartForConditionalGeneration, T.BartConfig),
                    "mbart": (T.MBartForConditionalGeneration, T.MBartConfig),
                    "pegasus": (T.PegasusForConditionalGeneration, T.PegasusConfig),
                    "m2m100": (T.M2M100ForConditionalGeneration, T.M2M100Config)}[kind]
        start = 0 if kind == "pegasus" else 1
        # no forced EOS at the length limit: CTranslate2 has none (tests/test_engine_ct2.py pins that apart)
        model = cls(cfg(decoder_start_token_id=start, forced_eos_token_id=None, **common))
    model.eval().generation_config.max_length = 64
    model.save_pretrained(path)
    return path
