"""Build a Marian-style translation model definition from a parallel corpus: subword tokenizer + config.

Trains one joint BPE vocabulary on the source and target training text (the ``tokenizers``
library; SentencePiece-style word boundaries so decoding restores spacing exactly) and writes a
model directory in the layout of ``configs/models/numbers-marian``: ``tokenizer.json`` (+ its
config, a ``PreTrainedTokenizerFast``), a ``MarianConfig`` whose source and target share the
vocabulary and embeddings, and a ``generation_config.json``. No weights: a config loads the
directory with ``init: random`` (seeded) and a fine-tuning strategy trains it from scratch, e.g.
``configs/multi30k-scratch.yaml`` on Multi30k:

    python scripts/build_translation_model.py \\
        --source ../shared/data/multi30k/train.en --target ../shared/data/multi30k/train.de \\
        --out configs/models/multi30k-marian

The tokenizer is deterministic for a given corpus and vocabulary size (BPE merges ties are
broken by the library's fixed order). Non-goals: SentencePiece's unigram model files
(source.spm/target.spm of real Marian checkpoints), separate source and target vocabularies,
training the weights (the harness's ``unmasked`` strategy does that).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: Marian's pad (= decoder start), eos, unk


@dataclass
class Architecture:
    """A small transformer that trains on a CPU; the defaults suit Multi30k (29k pairs)."""

    d_model: int = 256              # embedding and hidden width
    layers: int = 3                 # encoder layers = decoder layers
    heads: int = 4                  # attention heads
    ffn_dim: int = 1024             # feed-forward width
    dropout: float = 0.1            # residual/embedding dropout (attention dropout alike)
    max_positions: int = 128        # longest sequence, in subword tokens
    max_length: int = 96            # generation_config.max_length: decoding stops here


def read_corpus(paths: Sequence[Path]) -> Iterator[str]:
    """Lines of each file, decoded strictly as UTF-8 (a bad byte names its file and line)."""
    for path in paths:
        with open(path, "rb") as f:
            for i, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}:{i}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file, "
                                     "e.g. iconv -f cp1252 -t utf-8") from None
                yield line.rstrip("\r\n")


def train_tokenizer(paths: Sequence[Path], vocab_size: int, min_frequency: int = 2):
    """A joint BPE tokenizer over every file in ``paths``, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    # Metaspace marks word starts with "▁" (so spaces survive the round trip); punctuation is then
    # split off so "dog." and "dog" share a subword. Splitting after Metaspace loses nothing: the
    # space, if any, is carried by the "▁" of the following token.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                                 pre_tokenizers.Punctuation(behavior="isolated")])
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS),
                                  show_progress=False)
    tok.train_from_iterator(read_corpus(paths), trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", SPECIALS.index("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def write_model_dir(out: Path, tokenizer, arch: Architecture, provenance: dict) -> None:
    from transformers import GenerationConfig, MarianConfig

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    cfg = MarianConfig(
        vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=arch.d_model,
        encoder_layers=arch.layers, decoder_layers=arch.layers, encoder_attention_heads=arch.heads,
        decoder_attention_heads=arch.heads, encoder_ffn_dim=arch.ffn_dim, decoder_ffn_dim=arch.ffn_dim,
        max_position_embeddings=arch.max_positions, dropout=arch.dropout, attention_dropout=arch.dropout,
        activation_dropout=0.0, scale_embedding=True, pad_token_id=pad, eos_token_id=eos,
        decoder_start_token_id=pad, forced_eos_token_id=eos, share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True)
    cfg.save_pretrained(out)
    GenerationConfig(pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad,
                     max_length=arch.max_length).save_pretrained(out)
    (out / "build_info.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


def build(sources: Sequence[Path], targets: Sequence[Path], out: Path, *, vocab_size: int = 8000,
          min_frequency: int = 2, arch: Architecture | None = None) -> Path:
    """Train the tokenizer on ``sources`` + ``targets`` and write the model directory ``out``."""
    arch = arch or Architecture()
    files = [Path(p) for p in (*sources, *targets)]
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    tokenizer = train_tokenizer(files, vocab_size, min_frequency)
    provenance = {"script": "scripts/build_translation_model.py", "tokenizer": "BPE (tokenizers), joint source+target",
                  "trained_on": [p.name for p in files], "vocab_size": len(tokenizer),
                  "requested_vocab_size": vocab_size, "min_frequency": min_frequency, "architecture": asdict(arch)}
    write_model_dir(out, tokenizer, arch, provenance)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, action="append", required=True, help="source training text (repeatable)")
    ap.add_argument("--target", type=Path, action="append", required=True, help="target training text (repeatable)")
    ap.add_argument("--out", type=Path, required=True, help="model directory to write")
    ap.add_argument("--vocab-size", type=int, default=8000, help="joint BPE vocabulary size (default 8000)")
    ap.add_argument("--min-frequency", type=int, default=2, help="a merge must occur this often (default 2)")
    defaults = Architecture()
    for name, value in asdict(defaults).items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"default {value}")
    args = ap.parse_args(argv)
    arch = Architecture(**{k: getattr(args, k) for k in asdict(defaults)})
    try:
        build(args.source, args.target, args.out, vocab_size=args.vocab_size, min_frequency=args.min_frequency,
              arch=arch)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
