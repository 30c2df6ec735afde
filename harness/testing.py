"""Helpers for testing plugins: tiny models built in-process and a one-call experiment run.

For a plugin package's own tests (and the harness's)::

    from harness.testing import build_tiny_marian, run_config, write_translation_files

    def test_my_decoder(tmp_path):
        model = build_tiny_marian(tmp_path / "model")
        src, ref = write_translation_files(tmp_path)
        results = run_config({"name": "t", "models": [{"path": str(model)}],
                              "benchmarks": [{"name": "parallel_text", "params": {"source": str(src),
                                                                                  "reference": str(ref)}}],
                              "decoders": ["my_decoder"]},
                             tmp_path / "out", plugins=[my_plugin_module])
        assert results.metrics.query("metric == 'bleu'")["value"].iloc[0] >= 0

The models are random (seeded) and tiny (2 layers, width 32), saved with ``save_pretrained`` like
real checkpoints and loaded back through the harness's real loading code. Their tokenizers are
word-level over :data:`WORDS` (``<pad>=0, </s>=1, <unk>=2, <s>=3``; BERT: ``[PAD] [UNK] [CLS] [SEP]
[MASK]``), so nothing is downloaded. Their outputs are deterministic but meaningless: assert what
your plugin does with them (tokens chosen, files written, scores computed from known outputs),
not translation quality.

Non-goals: pytest fixtures (wrap these in your own ``conftest.py``), pretrained weights, speed.
torch and transformers are imported inside the builders only.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

WORDS = ("the a cat dog sat on mat ran to house red blue green big small is was and of in "
         "die der das katze hund sass auf matte lief zum haus rot blau gruen gross klein ist war und von im "
         "one two three four five six seven eight nine ten good bad movie great awful fine").split()
"""The vocabulary of the tiny tokenizers (English and German toy words, sentiment words)."""

SOURCES = ["the cat sat on the mat", "the dog ran to the house", "a big red cat", "the small dog is green"]
REFERENCES = ["die katze sass auf der matte", "der hund lief zum haus", "eine grosse rote katze",
              "der kleine hund ist gruen"]


def build_word_tokenizer(path: str | Path, words: Iterable[str] = WORDS, *, bert_style: bool = False):
    """Save a word-level fast tokenizer to ``path``; returns ``(tokenizer, vocab)``.

    Special tokens: ``<pad>=0, </s>=1, <unk>=2, <s>=3`` (``</s>`` appended to every input), or with
    ``bert_style`` ``[PAD] [UNK] [CLS] [SEP] [MASK]`` and ``[CLS] text [SEP]`` inputs."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if bert_style else ["<pad>", "</s>", "<unk>", "<s>"]
    vocab = {t: i for i, t in enumerate(specials + list(dict.fromkeys(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials[1] if bert_style else "<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert_style:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                       unk_token="<unk>", bos_token="<s>")
    fast.save_pretrained(path)
    return fast, vocab


def build_tiny_marian(path: str | Path, seed: int = 0) -> Path:
    """A random 2+2-layer Marian translation model (d=32) with its tokenizer, saved to ``path``."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    path = Path(path)
    _, vocab = build_word_tokenizer(path)
    cfg = MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=128, pad_token_id=0, eos_token_id=1,
                       decoder_start_token_id=0, forced_eos_token_id=1, bos_token_id=3,
                       share_encoder_decoder_embeddings=True)
    torch.manual_seed(seed)
    model = MarianMTModel(cfg)
    model.generation_config.max_length = 64
    model.save_pretrained(path)
    return path


def build_tiny_gpt2(path: str | Path, seed: int = 0) -> Path:
    """A random 2-layer GPT-2 (decoder-only, d=32) with its tokenizer, saved to ``path``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    path = Path(path)
    _, vocab = build_word_tokenizer(path)
    cfg = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                     bos_token_id=3, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(seed)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def build_tiny_bert(path: str | Path, seed: int = 0, num_labels: int = 2) -> Path:
    """A random 2-layer BERT sequence classifier (d=32) with its tokenizer, saved to ``path``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(path)
    _, vocab = build_word_tokenizer(path, bert_style=True)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, num_labels=num_labels, pad_token_id=0)
    torch.manual_seed(seed)
    BertForSequenceClassification(cfg).save_pretrained(path)
    return path


def write_translation_files(directory: str | Path, sources: list[str] = SOURCES,
                            references: list[str] = REFERENCES) -> tuple[Path, Path]:
    """``test.en`` and ``test.de`` in ``directory`` (4 toy sentence pairs in :data:`WORDS` by default)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    src, ref = directory / "test.en", directory / "test.de"
    src.write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    ref.write_text("".join(r + "\n" for r in references), encoding="utf-8")
    return src, ref


def run_config(config: dict[str, Any] | str | Path, outdir: str | Path, *, overrides: Iterable[str] = (),
               plugins: Iterable[Any] = (), base_dir: str | Path | None = None, quiet: bool = True,
               cache_dir: str | Path | None = None):
    """Run an experiment (a config dict, or a YAML file's path) into ``outdir``, as ``harness run``
    does, and return the results read back (:class:`harness.results.RunResults`: ``.metrics`` is
    metrics.csv as a DataFrame, ``.manifest``, ``.predictions(cell_key)``).

    ``plugins``: modules (or objects) with hook implementations to register besides the installed
    ones, so a plugin under test needs no entry point. ``overrides``: ``--set`` strings. Relative
    paths in a dict resolve against ``base_dir`` (default: the current directory). ``cache_dir``
    defaults to ``outdir/.cache`` so tests never share fine-tuned checkpoints with the user's cache.
    Bad configs raise :class:`harness.errors.HarnessError`, as the CLI would report them.
    """
    import copy

    from .experiment.load import load_experiment, resolve_and_check
    from .errors import HarnessError
    from .experiment.overrides import apply_all, attribute, parse_set
    from .plugins import PluginSet
    from .results import load_run
    from .run.runner import run_experiment

    plugin_set = PluginSet(extra=list(plugins)) if plugins else None
    outdir = Path(outdir)
    if isinstance(config, dict):
        raw = copy.deepcopy(config)
        trail = apply_all(raw, [parse_set(o) for o in overrides])
        try:
            resolved = resolve_and_check(raw, "<dict>", Path(base_dir or ".").resolve(), plugins=plugin_set)
        except HarnessError as e:
            raise attribute(e, trail) from None
    else:
        resolved = load_experiment(config, list(overrides), plugins=plugin_set)
    run_experiment(resolved, outdir, cache_dir=cache_dir or outdir / ".cache", quiet=quiet)
    return load_run(outdir)


__all__ = ["WORDS", "SOURCES", "REFERENCES", "build_word_tokenizer", "build_tiny_marian", "build_tiny_gpt2",
           "build_tiny_bert", "write_translation_files", "run_config"]
