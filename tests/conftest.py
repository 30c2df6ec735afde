"""Shared fixtures: tiny random models built in-process and saved like real checkpoints.

Every model here is created from a tiny config with a fixed seed, saved with
``save_pretrained`` to a temporary directory, and then loaded back through the harness's
real loading code. Tokenizers are word-level ``tokenizers`` models over a small vocabulary,
so no file is downloaded and nothing touches the network.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = ("the a cat dog sat on mat ran to house red blue green big small is was and of in "
         "die der das katze hund sass auf matte lief zum haus rot blau gruen gross klein ist war und von im "
         "one two three four five six seven eight nine ten good bad movie great awful fine").split()


def build_word_tokenizer(path: Path, words=WORDS, *, bert_style: bool = False):
    """A word-level fast tokenizer with <pad>=0, </s>=1, <unk>=2, <s>=3 (+ [CLS]/[SEP]/[MASK] for BERT)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if bert_style:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    else:
        specials = ["<pad>", "</s>", "<unk>", "<s>"]
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


def build_tiny_marian(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import MarianConfig, MarianMTModel

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


def build_tiny_gpt2(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    _, vocab = build_word_tokenizer(path)
    cfg = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                     bos_token_id=3, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(seed)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def build_tiny_bert(path: Path, seed: int = 0, num_labels: int = 2) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    _, vocab = build_word_tokenizer(path, bert_style=True)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, num_labels=num_labels, pad_token_id=0)
    torch.manual_seed(seed)
    BertForSequenceClassification(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def translation_files(tmp_path) -> tuple[Path, Path]:
    src = tmp_path / "test.en"
    ref = tmp_path / "test.de"
    src.write_text("the cat sat on the mat\nthe dog ran to the house\na big red cat\nthe small dog is green\n",
                   encoding="utf-8")
    ref.write_text("die katze sass auf der matte\nder hund lief zum haus\neine grosse rote katze\n"
                   "der kleine hund ist gruen\n", encoding="utf-8")
    return src, ref


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test with a reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared benchmark data not found at {p} (only present beside the project checkout)")
    return p


FIXTURE_PLUGINS = Path(__file__).resolve().parent / "fixtures" / "plugins"


@pytest.fixture(scope="session")
def fixture_plugins():
    """tests/fixtures/plugins/harness_test_plugins.py (slow/failing test plugins), imported;
    pass it as ``PluginSet(extra=[fixture_plugins])``."""
    import importlib
    import sys

    if str(FIXTURE_PLUGINS) not in sys.path:
        sys.path.append(str(FIXTURE_PLUGINS))  # appended, and kept: Ray pickles its classes by module name
    return importlib.import_module("harness_test_plugins")


@pytest.fixture(scope="session")
def fixture_plugin_set(fixture_plugins):
    """A PluginSet with every installed plugin plus the test plugins (built once: discovery is slow)."""
    from harness.plugins import PluginSet

    return PluginSet(extra=[fixture_plugins])


@pytest.fixture(scope="session")
def fixture_plugins_env(tmp_path_factory) -> dict[str, str]:
    """Environment for a ``harness`` subprocess that discovers the test plugins through a real
    entry point: a dist-info folder on PYTHONPATH is found by importlib.metadata like an
    installed distribution (instant, unlike ``pip install``)."""
    site = tmp_path_factory.mktemp("plugin-site")
    info = site / "harness_test_plugins-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-test-plugins\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[harness]\nharness_test_plugins = harness_test_plugins\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(FIXTURE_PLUGINS), env.get("PYTHONPATH")) if p)
    return env
