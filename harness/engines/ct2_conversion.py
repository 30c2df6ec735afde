"""Converting a transformers checkpoint for CTranslate2 -- faithfully, or not at all.

CTranslate2's converters read what a model computes from its ``config.json``, and some of what
they read is not what transformers computes:

- BART, mBART and Pegasus: whether layer norm comes before or after each block
  (``normalize_before``) and whether the embeddings are normalised (``normalize_embedding``) are
  keys that only the legacy fairseq-era configs on the Hub carry. transformers ignores them (its
  BART is post-norm, mBART and Pegasus pre-norm, Pegasus without an embedding norm); a config
  written by transformers itself lacks them and CTranslate2's converter fails on it.
- T5 family: transformers 5 scales the decoder output by ``d_model ** -0.5`` when
  ``scale_decoder_outputs`` says so; CTranslate2 4.x follows ``tie_word_embeddings``, which
  transformers 5 no longer ties to the scaling. Where the two differ, the greedy tokens can even
  agree while every log-probability is off.
- M2M100 / NLLB: the sinusoidal positions start at row ``padding_idx + 1``; CTranslate2 slices
  them from row 2, right only for ``<pad>`` = 1 (the released checkpoints).
- mBART: the converter leaves the decoder without a start token unless the tokenizer class is
  one it knows (the language code is then expected as a target prefix); transformers starts it
  from ``decoder_start_token_id``.
- Marian with ``<pad>`` anywhere but last, or last with a trained (non-zero) ``<pad>`` row
  (:func:`marian_keeping_pad`, :func:`pad_row_is_zero`).

The conversion uses CTranslate2's own loaders with exactly these points corrected, and then
**checks itself**: a few seeded probe sentence pairs are scored teacher-forced by the transformers
model and by the converted model (``Translator.score_batch``), log-probability by log-probability,
over the vocabulary the converted model has. A conversion whose log-probabilities differ by more
than :data:`MAX_LOGPROB_GAP` is refused with a one-line error naming the gap, so a model family
whose conversion is wrong in a way not listed above stops the cell instead of silently decoding
another model. The result is kept with the conversion (``harness-check.json``).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..models.hf import decoder_start_token_id

# Bump when a change here changes what a conversion contains (cached conversions are keyed by it).
CONVERSION_VERSION = "2"
# float32 CTranslate2 vs float32 torch: ~1e-5 on the test models, ~1e-4 on Marian-base. A wrong
# layer norm placement, output scale or position table shifts log-probabilities by 0.05 and more.
MAX_LOGPROB_GAP = 1e-2
CHECK_FILE = "harness-check.json"
PROBE_PAIRS = ((7, 5), (12, 9), (3, 14))  # (source, target) lengths in tokens


def cache_root() -> Path:
    from ..store import default_cache_dir

    return default_cache_dir() / "ctranslate2"


def converted_dir(spec, seed: int = 0) -> Path:
    """The converted model for ``spec`` (converting and checking it first when not cached)."""
    import ctranslate2

    from ..store import canonical_hash, model_fingerprint

    base = spec.model_copy(update={"compute_type": "auto", "device": "cpu", "label": None})
    key = canonical_hash([model_fingerprint(base), seed if spec.init == "random" else None, ctranslate2.__version__,
                          CONVERSION_VERSION])
    target = cache_root() / key
    if (target / "model.bin").is_file():
        if _conversion_whole(target):
            return target
        shutil.rmtree(target, ignore_errors=True)  # damaged (truncated model.bin...): converted again
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        from ..models.hf import load_config, load_hf_model

        config = load_config(spec)
        hf_spec = spec.model_copy(update={"engine": "transformers", "dtype": "float32", "kernels": "default"})
        tokenizer = load_tokenizer_for(spec)
        source = spec.path
        if spec.init == "random":  # the seeded random weights the transformers engine would build
            source = str(tmp / "hf")
            load_hf_model(hf_spec, "AutoModelForSeq2SeqLM", seed=seed, device="cpu").save_pretrained(source)
            tokenizer.save_pretrained(source)
            hf_spec = hf_spec.model_copy(update={"path": source, "local": True, "init": "pretrained", "revision": None})
        converter = ctranslate2.converters.TransformersConverter(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
        try:
            with faithful_loaders(config.to_dict(), keep_pad=not pad_row_is_zero(source, config.to_dict())):
                converter.convert(str(tmp / "ct2"), force=True)
        except (ValueError, NotImplementedError, KeyError, AttributeError) as e:
            raise ModelLoadError(f"model '{spec.path}' cannot be converted for engine ctranslate2: "
                                 f"{type(e).__name__}: {e}; use engine: transformers") from None
        complete_special_tokens(tmp / "ct2", config, tokenizer, spec)
        # loaded after the conversion (which loads its own copy), so the two are never in memory at once
        model = load_hf_model(hf_spec, "AutoModelForSeq2SeqLM", seed=seed, device="cpu")
        gap = conversion_gap(model, tokenizer, tmp / "ct2")
        del model
        if gap > MAX_LOGPROB_GAP:
            raise ModelLoadError(
                f"model '{spec.path}': CTranslate2 {ctranslate2.__version__}'s conversion of this "
                f"{config.model_type} model does not compute what transformers computes (teacher-forced "
                f"log-probabilities differ by up to {gap:.3g}, allowed {MAX_LOGPROB_GAP:g}); use engine: transformers")
        from ..store import directory_digests

        (tmp / "ct2" / CHECK_FILE).write_text(json.dumps({
            "max_logprob_gap": gap, "allowed": MAX_LOGPROB_GAP, "probe_pairs": len(PROBE_PAIRS),
            "files": directory_digests(tmp / "ct2")}) + "\n")  # what a reuse verifies
        # rename is atomic: a concurrent or interrupted conversion never leaves a half model behind
        try:
            os.replace(tmp / "ct2", target)
        except OSError:
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _conversion_whole(target: Path) -> bool:
    """A cached conversion is reused only when its check record parses and, where it recorded
    digests (conversions made since), every file still holds them."""
    from ..store import damaged_file

    try:
        record = json.loads((target / CHECK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    files = record.get("files")
    return not isinstance(files, dict) or damaged_file(target, files) is None


def complete_special_tokens(path: Path, config, tokenizer, spec) -> None:
    """CTranslate2's converters copy the tokenizer's ``bos_token``/``eos_token``/``unk_token`` into
    the converted config.json, and its runtime refuses a null one (``[json.exception.type_error.302]
    type must be string, but is null`` when the model loads, in every cell). A tokenizer without
    a BOS (mBART's can lack one) gets the token transformers would start from: the config's
    ``bos_token_id``, else the decoder start token, else EOS; a missing EOS or UNK is an error."""
    target = path / "config.json"
    data = json.loads(target.read_text(encoding="utf-8"))
    changed = False
    for name in ("bos_token", "eos_token", "unk_token"):
        if data.get(name) is not None:
            continue
        token = None
        if name == "bos_token":
            ids = [getattr(config, "bos_token_id", None), getattr(config, "decoder_start_token_id", None),
                   getattr(config, "eos_token_id", None)]
            token = next((tokenizer.convert_ids_to_tokens(i) for i in ids if isinstance(i, int)), None)
        elif name == "eos_token" and isinstance(getattr(config, "eos_token_id", None), int):
            token = tokenizer.convert_ids_to_tokens(config.eos_token_id)
        if token is None:
            raise ModelLoadError(f"model '{spec.path}': its tokenizer has no {name} and the config names none, which "
                                 "engine ctranslate2 needs; set it in tokenizer_config.json or use engine: transformers")
        data[name] = token
        changed = True
    if changed:
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer_for(spec):
    from ..models.hf import load_tokenizer

    return load_tokenizer(spec)


# ----------------------------------------------------------------------------- the check


def converted_vocabulary(path: Path) -> list[str]:
    """The converted model's target vocabulary, in its order."""
    for name in ("shared_vocabulary.json", "target_vocabulary.json"):
        if (path / name).is_file():
            return json.loads((path / name).read_text(encoding="utf-8"))
    for name in ("shared_vocabulary.txt", "target_vocabulary.txt"):
        if (path / name).is_file():
            return (path / name).read_text(encoding="utf-8").splitlines()
    raise ModelLoadError(f"{path}: the converted model has no vocabulary file")


def conversion_gap(model, tokenizer, path: Path) -> float:
    """Largest difference between the log-probabilities the transformers ``model`` and the
    CTranslate2 model at ``path`` give the tokens of seeded probe pairs, teacher-forced (float32,
    CPU). The converters keep the output rows in order and may drop trailing ones (the OPUS-MT
    conversion drops ``<pad>``, the last), so the transformers side is normalised over the rows the
    converted vocabulary has, and only what the models compute is compared. Probe tokens are
    those both sides spell alike."""
    import ctranslate2
    import torch

    vocab = converted_vocabulary(path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    rows = min(len(vocab), model.config.vocab_size)
    special = set(tokenizer.all_special_ids)
    spelled = tokenizer.convert_ids_to_tokens(list(range(rows)))
    words = [i for i in range(rows) if i not in special and spelled[i] == vocab[i]]
    eos = tokenizer.convert_tokens_to_ids(config.get("eos_token") or tokenizer.eos_token)
    if not words or not (isinstance(eos, int) and 0 <= eos < rows):
        return 0.0
    start = decoder_start_token_id(model)  # transformers' start; CTranslate2 uses its own (Marian: a zero vector)
    if start is None:
        start = tokenizer.convert_tokens_to_ids(config.get("decoder_start_token") or tokenizer.eos_token)
    rng = random.Random(0)
    translator = ctranslate2.Translator(str(path), device="cpu", compute_type="float32", intra_threads=1)
    gap = 0.0
    for src_len, tgt_len in PROBE_PAIRS:
        text = tokenizer.decode([rng.choice(words) for _ in range(src_len)])
        src = tokenizer(text)["input_ids"]
        tgt = [rng.choice(words) for _ in range(tgt_len)]
        ct2 = translator.score_batch([tokenizer.convert_ids_to_tokens(src)],
                                     [tokenizer.convert_ids_to_tokens(tgt)])[0].log_probs
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([[start] + tgt])).logits[0]
        logp = logits[:, :rows].float().log_softmax(-1)
        ours = [float(logp[t, tok]) for t, tok in enumerate(tgt + [eos])]
        if len(ours) != len(ct2):
            return float("inf")
        gap = max(gap, max(abs(a - b) for a, b in zip(ours, ct2)))
    return gap


# ----------------------------------------------------------------------------- the loaders


# (normalize_before, normalize_embedding) of the transformers implementations, whatever a config says
BART_FAMILY_NORMS = {"BartConfig": (False, True), "MBartConfig": (True, True), "PegasusConfig": (True, False)}

_convert_lock = threading.Lock()


def pad_row_is_zero(model_dir: str, config: dict) -> bool:
    """Whether a Marian checkpoint's ``<pad>`` embedding row is the zero vector, as in OPUS-MT's
    released models (Marian-NMT never trains it). CTranslate2's Marian loader starts the decoder
    from a zero vector in place of that row, which is right only then: a model trained with
    transformers (its tied output row learns) needs :func:`marian_keeping_pad` even with
    OPUS-MT's layout. Read from the safetensors file without loading the model; True when it
    cannot tell (pickled weights: CTranslate2's own loader, and the conversion check decides)."""
    pad = config.get("pad_token_id")
    if config.get("model_type") != "marian" or not isinstance(pad, int):
        return True
    try:
        from safetensors import safe_open
    except ImportError:  # pragma: no cover - a dependency of transformers
        return True
    names = ("model.shared.weight", "model.decoder.embed_tokens.weight", "model.encoder.embed_tokens.weight")
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="numpy") as st:
                for name in names:
                    if name in st.keys():
                        row = st.get_slice(name)[pad:pad + 1]
                        if bool((row != 0).any()):
                            return False
        except Exception:  # noqa: BLE001 - an unreadable file: the loader reports it
            return True
    return True


def pad_is_last(config: dict) -> bool:
    """Whether a Marian config has OPUS-MT's layout: ``<pad>`` is the last vocabulary entry."""
    pad, vocab = config.get("pad_token_id"), config.get("vocab_size")
    return not (isinstance(pad, int) and isinstance(vocab, int) and pad != vocab - 1)


def corrected_loaders(config: dict, keep_pad: bool = False) -> dict[str, Any]:
    """CTranslate2 loaders (by config class name) with the points of the module docstring fixed
    (``keep_pad``: a Marian whose ``<pad>`` row is not zero, see :func:`pad_row_is_zero`)."""
    from ctranslate2.converters import transformers as ct2t
    from ctranslate2.specs import model_spec

    registry = ct2t._MODEL_LOADERS
    out: dict[str, Any] = {}
    for name, (before, embedding) in BART_FAMILY_NORMS.items():
        if name not in registry:
            continue

        class FixedNorms(type(registry[name])):
            def get_model_spec(self, model, _norms=(before, embedding)):
                model.config.normalize_before, model.config.normalize_embedding = _norms
                return super().get_model_spec(model)

            def set_config(self, config, model, tokenizer):
                super().set_config(config, model, tokenizer)
                # mBART's loader drops the start token unless the tokenizer class is a known one; the
                # decoder starts where transformers' generate() starts it
                start = decoder_start_token_id(model)
                if config.decoder_start_token is None and start is not None:
                    config.decoder_start_token = tokenizer.convert_ids_to_tokens(start)

        out[name] = FixedNorms()
    t5 = getattr(ct2t, "T5Loader", None)
    for name, loader in registry.items():
        if t5 is not None and isinstance(loader, t5):
            class FixedScale(type(loader)):
                def get_model_spec(self, model):
                    spec = super().get_model_spec(model)
                    scale = getattr(model.config, "scale_decoder_outputs", None)
                    if scale is not None:  # transformers 5: the scaling has its own switch
                        spec.decoder.scale_outputs = model.config.d_model ** -0.5 if scale else model_spec.OPTIONAL
                    return spec

            out[name] = FixedScale()
    if "M2M100Config" in registry:
        class FixedPositions(type(registry["M2M100Config"])):
            def set_position_encodings(self, spec, module):
                # transformers' first position is row padding_idx + 1 (= the offset 2 only for pad 1)
                spec.encodings = module.weights[module.padding_idx + 1:]

        out["M2M100Config"] = FixedPositions()
    if config.get("model_type") == "marian" and (keep_pad or not pad_is_last(config)):
        out["MarianConfig"] = marian_keeping_pad()
    return out


def marian_keeping_pad():
    """A Marian loader for models whose ``<pad>`` is not the last token (every model this harness
    trains from scratch: pad is id 0).

    CTranslate2's Marian loader assumes OPUS-MT's layout: it drops the last vocabulary row as
    ``<pad>`` and starts the decoder from a zero embedding (what a never-trained pad row gives).
    With pad elsewhere that drops a real token, and a trained model's pad row is not zero (its
    tied output row learns), so the start would differ too. This loader is CTranslate2's own
    Marian loader minus those two steps: every row kept, and the decoder starts from the
    embedding of ``decoder_start_token_id``, as transformers does."""
    from ctranslate2.converters import transformers as ct2t

    class MarianKeepingPad(ct2t.MarianMTLoader):
        def get_model_spec(self, model):
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return ct2t.BartLoader.get_model_spec(self, model)  # no _remove_pad_weights

        def set_config(self, config, model, tokenizer):
            super().set_config(config, model, tokenizer)
            config.decoder_start_token = tokenizer.convert_ids_to_tokens(model.config.decoder_start_token_id)

        def set_decoder(self, spec, decoder):
            ct2t.BartLoader.set_decoder(self, spec, decoder)  # no start_from_zero_embedding

        def get_vocabulary(self, model, tokenizer):
            return ct2t.BartLoader.get_vocabulary(self, model, tokenizer)  # <pad> stays

    return MarianKeepingPad()


@contextlib.contextmanager
def faithful_loaders(config: dict, keep_pad: bool = False):
    """Convert with :func:`corrected_loaders` in CTranslate2's module-level loader registry,
    swapped in for the conversion only, under a lock."""
    from ctranslate2.converters import transformers as ct2t

    with _convert_lock:
        swapped = corrected_loaders(config, keep_pad)
        before = {name: ct2t._MODEL_LOADERS[name] for name in swapped}
        ct2t._MODEL_LOADERS.update(swapped)
        try:
            yield
        finally:
            ct2t._MODEL_LOADERS.update(before)
