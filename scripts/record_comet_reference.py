"""Record unbabel-comet 2.2.7's own scores as the reference ``harness.comet`` is tested against.

Writes ``tests/fixtures/comet/``:

- ``encoder-xlmr/`` and ``encoder-xlmr-xl/``: what a COMET checkpoint's ``pretrained_model`` names,
  without weights: a tiny XLM-R / XLM-R-XL ``config.json`` (hidden size 32, 2 layers, 4 heads) and
  a 600-piece SentencePiece-style unigram tokenizer (``tokenizer.json``, the ``tokenizers``
  library, trained here on English and German sentences of the toy lexicon below) saved by
  ``XLMRobertaTokenizerFast``: XLM-R's special tokens and ids (<s> 0, <pad> 1, </s> 2, <unk> 3);
- one directory per model class, each built with COMET's own classes from that encoder, its
  weights drawn at random (seeded; wider than the default initialisation, so that segments get
  clearly different scores, the layer-mixing weights are sparse under sparsemax and XCOMET tags
  error spans), and saved as COMET saves them: ``hparams.yaml`` (pytorch-lightning's
  ``save_hparams_to_yaml``) and ``checkpoints/model.ckpt`` (``Trainer.save_checkpoint``):

  | directory | COMET class | like | settings exercised |
  |---|---|---|---|
  | ``regression`` | ``RegressionMetric`` | wmt22-comet-da | sparsemax mix, no layer norm, average pooling |
  | ``referenceless`` | ``ReferencelessRegression`` | wmt21-comet-qe-da | softmax mix with layer norm |
  | ``kiwi`` | ``UnifiedMetric`` [mt, src] | wmt22-cometkiwi-da | sparsemax mix with layer norm, CLS |
  | ``unified`` | ``UnifiedMetric`` [mt, src, ref] | UniTE-style | softmax mix, three joint inputs averaged |
  | ``xcomet`` | ``XCOMETMetric`` | XCOMET-XL | XLM-R-XL encoder, word-level tags, error spans, MQM |

- ``reference.json``: the triples, the token ids the tokenizer gives each text, and for every
  model and mode (with references, and without where the class allows it) what
  ``model.predict(samples, batch_size=8, gpus=0)`` returned: segment scores, system score and
  metadata (the three sub-scores, XCOMET's MQM scores and error spans).

The checkpoints' ``pretrained_model`` is ``../encoder-xlmr`` (a path relative to the checkpoint
directory, which is where COMET is run from here). ``tests/test_comet_reference.py`` loads the
same directories with the harness's own implementation and compares.

Run it in a side virtualenv with COMET (its pins conflict with the project's: numpy < 2,
transformers < 5, pytorch-lightning), from the repository root:

    python3.11 -m venv /work/comet-ref-venv
    /work/comet-ref-venv/bin/pip install torch==2.13.0 unbabel-comet==2.2.7 "setuptools>=77,<81"
    /work/comet-ref-venv/bin/python scripts/record_comet_reference.py            # re-record, same models
    /work/comet-ref-venv/bin/python scripts/record_comet_reference.py --rebuild  # new models first

(torch 2.13 needs setuptools >= 77; torchmetrics 0.10 needs its ``pkg_resources``, gone in 81.)
Without ``--rebuild`` the committed models are loaded and only ``reference.json`` is rewritten.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from contextlib import contextmanager
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "comet"
VOCAB = 600
HIDDEN, LAYERS, HEADS, FFN = 32, 2, 4, 64
MAX_POSITIONS = 82  # max_position_embeddings: COMET truncates a segment at 78 tokens, a joint input at 80

# English word -> German translations (the toy lexicon the triples are made of)
LEXICON: dict[str, list[str]] = {
    "the": ["die", "der", "das"], "a": ["ein", "eine"], "man": ["Mann"], "woman": ["Frau"],
    "child": ["Kind"], "dog": ["Hund"], "cat": ["Katze"], "house": ["Haus"], "street": ["Straße"],
    "red": ["rote", "roten"], "big": ["große", "großen"], "small": ["kleine", "kleinen"],
    "is": ["ist"], "are": ["sind"], "runs": ["rennt", "läuft"], "sits": ["sitzt"], "plays": ["spielt"],
    "on": ["auf"], "in": ["in", "im"], "with": ["mit"], "and": ["und"], "near": ["nahe", "neben"],
    "ball": ["Ball"], "water": ["Wasser"], "green": ["grünen", "grüne"], "two": ["zwei"],
    "people": ["Leute", "Menschen"], "white": ["weiße", "weißen"], "shirt": ["Hemd"], "park": ["Park"],
}


def sentence(rnd: random.Random, lo: int, hi: int) -> tuple[str, str]:
    src = [rnd.choice(list(LEXICON)) for _ in range(rnd.randint(lo, hi))]
    tgt = [rnd.choice(LEXICON[w]) for w in src]
    end = rnd.choice([".", ".", "!", "?", ""])
    return (" ".join(src).capitalize() + end), (" ".join(tgt)[:1].upper() + " ".join(tgt)[1:] + end)


def perturb(rnd: random.Random, text: str) -> str:
    words = text.split()
    words = [w for w in words if rnd.random() > 0.2] or words[:1]
    for j in range(len(words)):
        if rnd.random() < 0.2:
            words[j] = rnd.choice(rnd.choice(list(LEXICON.values())))
    if len(words) > 3 and rnd.random() < 0.5:
        j = rnd.randrange(len(words) - 1)
        words[j], words[j + 1] = words[j + 1], words[j]
    return " ".join(words)


def triples() -> list[dict[str, str]]:
    """48 (src, mt, ref): perturbed references, exact ones, copies of the source, an empty output,
    unknown characters, segments long enough to be truncated, and repeated sources/references."""
    rnd = random.Random(1)
    out = []
    for i in range(36):
        src, ref = sentence(rnd, 2, 14)
        mt = ref if i % 9 == 0 else perturb(rnd, ref)
        out.append({"src": src, "mt": mt, "ref": ref})
    # the same source and reference with several outputs (what ten decoders on one test set give)
    src, ref = out[1]["src"], out[1]["ref"]
    out += [{"src": src, "mt": perturb(random.Random(k), ref), "ref": ref} for k in range(3)]
    long_src, long_ref = sentence(random.Random(7), 40, 40)
    out += [
        {"src": out[2]["src"], "mt": "", "ref": out[2]["ref"]},                        # empty output
        {"src": out[3]["src"], "mt": out[3]["src"], "ref": out[3]["ref"]},             # copy of the source
        {"src": "Ein Hund 🐕 läuft — schnell!", "mt": "Ein Hund 🐕 läuft — schnell!",
         "ref": "A dog runs fast!"},
        {"src": "  two   people  ", "mt": "zwei  Leute", "ref": "Zwei Menschen."},       # odd spacing
        {"src": long_src, "mt": perturb(random.Random(8), long_ref), "ref": long_ref},   # joint input truncated
        {"src": long_src + " " + long_src, "mt": long_ref + " " + long_ref, "ref": long_ref},  # each truncated
        {"src": "Is the cat on the ball?", "mt": "Ist die Katze auf dem Ball?", "ref": "Ist die Katze auf dem Ball?"},
        {"src": "A man.", "mt": "Ein Mann, ein Mann; ein Mann.", "ref": "Ein Mann."},
        {"src": "Two dogs (white) play in the water.", "mt": "Zwei Hunde (weiß) spielen im Wasser.",
         "ref": "Zwei weiße Hunde spielen im Wasser."},
    ]
    return out


def corpus() -> list[str]:
    rnd = random.Random(0)
    lines = []
    for _ in range(3000):
        s, t = sentence(rnd, 1, 12)
        lines += [s, t]
    return lines + ["Ein Hund läuft schnell!", "A dog runs fast!", "Zwei Hunde spielen im Wasser.", "Ist dem Mann"]


def build_tokenizer(out: Path) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=VOCAB - 1, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", shrinking_factor=0.75, max_piece_length=8)
    tok.train_from_iterator(corpus(), trainer=trainer)
    # the trainer's piece scores vary in their last digits from run to run: rounded, a rebuild gives
    # the same tokenizer
    data = json.loads(tok.to_str())
    data["model"]["vocab"] = [[piece, round(score, 4)] for piece, score in data["model"]["vocab"]]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    assert [tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=MAX_POSITIONS - 2)
    for d in ("encoder-xlmr", "encoder-xlmr-xl"):
        fast.save_pretrained(out / d)


def build_encoders(out: Path) -> None:
    from transformers import XLMRobertaConfig, XLMRobertaTokenizerFast, XLMRobertaXLConfig

    vocab = len(XLMRobertaTokenizerFast.from_pretrained(out / "encoder-xlmr"))
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=FFN, max_position_embeddings=MAX_POSITIONS, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    XLMRobertaConfig(**common).save_pretrained(out / "encoder-xlmr")
    XLMRobertaXLConfig(**common).save_pretrained(out / "encoder-xlmr-xl")


@contextmanager
def cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


MODELS = {
    # name: (class, constructor arguments beyond the encoder, modes recorded)
    "regression": ("RegressionMetric", dict(layer_transformation="sparsemax", layer_norm=False, pool="avg",
                                            hidden_sizes=[64, 32]), ["ref"]),
    "referenceless": ("ReferencelessRegression", dict(layer_transformation="softmax", layer_norm=True, pool="avg",
                                                      hidden_sizes=[48]), ["qe"]),
    "kiwi": ("UnifiedMetric", dict(layer_transformation="sparsemax", layer_norm=True, input_segments=["mt", "src"],
                                   hidden_sizes=[64, 32]), ["qe", "ref"]),
    "unified": ("UnifiedMetric", dict(layer_transformation="softmax", layer_norm=False,
                                      input_segments=["mt", "src", "ref"], hidden_sizes=[64, 32]), ["ref", "qe"]),
    "xcomet": ("XCOMETMetric", dict(encoder_model="XLM-RoBERTa-XL", layer_transformation="sparsemax",
                                    layer_norm=False, word_layer=2, hidden_sizes=[64, 32]), ["ref", "qe"]),
}


def randomize(model, seed: int) -> None:
    """Seeded weights, wider than the default initialisation so that segments score differently."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.startswith("encoder."):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif "scalar_parameters" in name:
                p.copy_(torch.randn(p.shape, generator=gen))  # sparsemax then zeroes some layers
            elif name.endswith("gamma"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.startswith("hidden2tag"):
                # mostly "O", with enough minor/major/critical tags to make spans of every severity
                p.copy_(0.25 * torch.randn(p.shape, generator=gen) + (torch.tensor([0.6, 0.0, 1.3, 0.0])
                                                                     if p.dim() == 1 else 0.0))
            elif name.startswith("estimator"):
                fan_in = p.shape[-1] if p.dim() == 2 else 1
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
        last = model.estimator.ff[-1]
        last.weight.mul_(0.3)
        last.bias.fill_(0.8)  # scores around 0.8, some above 1 (XCOMET clamps them)


def build_model(out: Path, name: str, seed: int) -> None:
    import pytorch_lightning as ptl
    from pytorch_lightning.core.saving import save_hparams_to_yaml

    import comet.models as cm

    cls_name, kwargs, _ = MODELS[name]
    encoder_dir = "../encoder-xlmr-xl" if kwargs.get("encoder_model") == "XLM-RoBERTa-XL" else "../encoder-xlmr"
    d = out / name
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    with cwd(d):
        model = getattr(cm, cls_name)(pretrained_model=encoder_dir, load_pretrained_weights=False,
                                      local_files_only=True, **{"encoder_model": "XLM-RoBERTa", **kwargs})
        randomize(model, seed)
        trainer = ptl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                              accelerator="cpu", devices=1, enable_model_summary=False)
        trainer.strategy.connect(model)
        trainer.save_checkpoint("checkpoints/model.ckpt")
        save_hparams_to_yaml("hparams.yaml", model.hparams)


def record(out: Path) -> dict:
    import comet
    import torch
    import transformers
    from transformers import XLMRobertaTokenizerFast

    data = triples()
    tok = XLMRobertaTokenizerFast.from_pretrained(out / "encoder-xlmr")
    texts = sorted({t for row in data for t in row.values()})
    ids = {t: tok(t, truncation=True, max_length=MAX_POSITIONS - 4)["input_ids"] for t in texts}
    runs = []
    for name, (_, _, modes) in MODELS.items():
        with cwd(out / name):
            model = comet.load_from_checkpoint("checkpoints/model.ckpt", local_files_only=True)
            for mode in modes:
                samples = [row if mode == "ref" else {"src": row["src"], "mt": row["mt"]} for row in data]
                pred = model.predict(samples, batch_size=8, gpus=0, progress_bar=False)
                meta = {k: v for k, v in (pred.get("metadata") or {}).items()}
                runs.append({"model": name, "mode": mode, "scores": pred["scores"],
                             "system_score": pred["system_score"], "metadata": meta})
                s = pred["scores"]
                print(f"{name:14s} {mode}: system {pred['system_score']:.4f}, segments {min(s):.3f}..{max(s):.3f}"
                      + (f", spans {sum(map(len, meta['error_spans']))}" if "error_spans" in meta else ""))
    return {"comet": comet.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "batch_size": 8, "triples": data, "token_ids": ids, "runs": runs}


def main() -> None:
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--rebuild", action="store_true", help="build and save new models before recording")
    args = ap.parse_args()
    if int(transformers.__version__.split(".")[0]) >= 5:
        raise SystemExit(f"transformers {transformers.__version__}: run this with COMET's own stack "
                         f"(transformers 4.x, see the module docstring)")
    import torch

    torch.set_num_threads(1)
    out = args.out.resolve()
    if args.rebuild or not (out / "regression").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        build_tokenizer(out)
        build_encoders(out)
        for seed, name in enumerate(MODELS):
            build_model(out, name, seed)
    data = record(out)
    with open(out / "reference.json", "w", encoding="utf-8") as f:
        head = {k: v for k, v in data.items() if k not in ("runs", "token_ids")}
        f.write("{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in head.items()))
        f.write('"token_ids": {\n' + ",\n".join(f"{json.dumps(t, ensure_ascii=False)}: {json.dumps(i)}"
                                               for t, i in data["token_ids"].items()) + "},\n")
        f.write('"runs": [\n' + ",\n".join(json.dumps(r, ensure_ascii=False) for r in data["runs"]) + "\n]}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
