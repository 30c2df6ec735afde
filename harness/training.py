"""Fine-tuning: the training loop behind the fine-tuning strategies, and its checkpoint cache.

What it does
- Fine-tunes a sequence classifier (encoder + task head) or a seq2seq translation model on a
  benchmark's train split, with one of a few *objectives*: plain cross-entropy, cross-entropy on
  BERT-style masked inputs (Devlin et al. 2019: 80% [MASK], 10% random token, 10% unchanged),
  classification + lambda x masked-LM on the shared encoder, or masked-LM alone (the first stage
  of task-adaptive pre-training, Gururangan et al. 2020).
- A lean loop of its own: inputs tokenised once, length-grouped batches with dynamic padding
  (the idea of transformers' ``LengthGroupedSampler``), AdamW with the usual no-decay rule for
  biases and norms, linear warm-up/decay, gradient accumulation and clipping, optional early
  stopping on the dev split with the best weights restored, mixed precision on GPUs.
  ``benchmarks/finetune_speed.py`` compares its throughput with transformers' ``Trainer``.
- Every random choice comes from the cell's seed, through independent streams: the training
  subset, the data order, the head initialisation, dropout and the masks. Two strategies run
  with the same seed therefore start from the same head and see the same batches in the same
  order; only what their objective does differs.
- Checkpoints are cached in ``ctx.cache_dir/finetuned/`` under a hash of everything that
  determines them (model files, data content, strategy and its parameters, seed), trained into a
  temporary directory and renamed into place, so a checkpoint is either complete or absent.

Non-goals: distributed or multi-GPU training, parameter-efficient methods (LoRA, adapters),
decoder-only (causal LM) fine-tuning, and hyper-parameter search (sweep parameters in YAML).

torch and transformers are imported inside functions only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .errors import DataError, HarnessError
from .params import Params
from .store import atomic_write_json, canonical_hash, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from .api import BenchmarkData, CellContext, Example
    from .models import ModelSpec

# Bump when a change to this module changes what a cached checkpoint would contain.
TRAINING_VERSION = "3"
META_FILE = "finetune.json"


# ----------------------------------------------------------------------------- parameters


class FineTuneParams(Params):
    """Parameters shared by every fine-tuning strategy."""

    learning_rate: float = Field(5e-5, ge=0, description="peak learning rate of AdamW")
    batch_size: int = Field(32, ge=1, description="examples per forward pass")
    gradient_accumulation_steps: int = Field(1, ge=1, description="forward passes per optimizer step")
    epochs: int = Field(3, ge=1, description="passes over the training data (unless max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of the steps with linear warm-up")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps; instead of warmup_ratio")
    lr_scheduler: Literal["linear", "constant"] = Field(
        "linear", description="linear: decay to 0 after warm-up; constant: keep the peak rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and norm weights)")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm to this (null: no clipping)")
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="label-smoothed cross-entropy (Szegedy et al. 2016; 0.1 in Vaswani et al. "
                                     "2017): this share of each target's probability spread over the vocabulary")
    max_length: int = Field(128, ge=2, description="input tokens kept, in training and evaluation")
    max_target_length: int = Field(128, ge=2, description="translation: target tokens kept in training")
    group_by_length: bool = Field(True, description="batch examples of similar length (less padding)")
    train_limit: int | None = Field(None, ge=1, description="train on a seeded random subset of this size")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many dev evaluations without improvement (null: off)")
    early_stopping_metric: Literal["loss", "accuracy"] = Field(
        "loss", description="dev metric for early stopping (accuracy: classification only)")
    eval_steps: int | None = Field(None, ge=1, description="evaluate on the dev split every N steps and record "
                                                          "the curve in finetune.json (with early stopping, "
                                                          "default: after every epoch)")
    dev_limit: int | None = Field(None, ge=1, description="dev evaluations use a seeded dev subset of this size")
    train_seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="train with this seed instead of the cell's, so the cells of every "
                                              "seed share one checkpoint (a decoding study over one trained model)")

    @model_validator(mode="after")
    def _one_warmup(self):
        if self.warmup_steps is not None and "warmup_ratio" in self.model_fields_set:
            raise ValueError("give warmup_ratio or warmup_steps, not both")
        return self


class MaskingParams(Params):
    """BERT-style corruption of input tokens (Devlin et al. 2019, section 3.1)."""

    mask_prob: float = Field(0.15, ge=0, le=1, description="probability that an input token is selected")
    mask_ratio: float = Field(0.8, ge=0, le=1, description="of the selected tokens: share replaced by the mask token")
    random_ratio: float = Field(0.1, ge=0, le=1, description="share replaced by a random (non-special) token")
    keep_ratio: float = Field(0.1, ge=0, le=1, description="share left unchanged")

    @model_validator(mode="after")
    def _ratios(self):
        total = self.mask_ratio + self.random_ratio + self.keep_ratio
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"mask_ratio + random_ratio + keep_ratio must sum to 1, got "
                             f"{self.mask_ratio} + {self.random_ratio} + {self.keep_ratio} = {total:g}")
        return self


class MLMHeadParams(Params):
    """A masked-LM head for an encoder whose checkpoint has none (aux_mlm, tapt)."""

    mlm_head_warmup_steps: int = Field(
        0, ge=0, description="a new MLM head: optimizer steps training the head alone (encoder frozen) before "
                             "the strategy's own objective; 0: no warm-up. A pretrained head is never warmed up")
    mlm_head_warmup_learning_rate: float = Field(1e-3, gt=0, description="peak learning rate of the head warm-up")


@dataclass(frozen=True)
class Masking:
    """What the loop needs to corrupt inputs (taken from :class:`MaskingParams`)."""

    prob: float
    mask_ratio: float
    random_ratio: float

    @classmethod
    def from_params(cls, p: MaskingParams) -> Masking:
        return cls(p.mask_prob, p.mask_ratio, p.random_ratio)


@dataclass(frozen=True)
class Objective:
    """What a fine-tuning run optimises.

    kind: ``supervised`` (classification or translation cross-entropy), ``aux_mlm``
    (classification + mlm_weight x masked-LM) or ``mlm`` (masked-LM only, TAPT's first stage).
    input_masking: corrupt the inputs the supervised loss sees (the ``input_mask`` strategy).
    mlm_masking: how the masked-LM inputs are corrupted.
    """

    kind: Literal["supervised", "aux_mlm", "mlm"] = "supervised"
    input_masking: Masking | None = None
    mlm_masking: Masking | None = None
    mlm_weight: float = 0.0


# ----------------------------------------------------------------------------- seeds


def derive_seed(seed: int, *tags: Any) -> int:
    """An independent 63-bit seed per purpose, so one random stream never shifts another."""
    digest = hashlib.sha256(json.dumps([seed, *tags]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def subset(examples: list, limit: int | None, seed: int, tag: str) -> list:
    """A seeded random subset of ``limit`` examples, in their original order."""
    if limit is None or limit >= len(examples):
        return list(examples)
    idx = sorted(random.Random(derive_seed(seed, tag)).sample(range(len(examples)), limit))
    return [examples[i] for i in idx]


# ----------------------------------------------------------------------------- data


@dataclass
class Encoded:
    """A tokenised split: unpadded id lists plus what batching and masking need."""

    input_ids: list[list[int]]
    special: list[list[int]]  # 1 where the token is special (never masked)
    token_type_ids: list[list[int]] | None
    targets: list[Any]  # class ids (classification) or target id lists (translation)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


def classification_label_ids(examples: Sequence[Example], label2id: dict[str, int], where: str) -> list[int]:
    out = []
    for ex in examples:
        if ex.label not in label2id:
            raise DataError(f"{where}: example {ex.id} has label {ex.label!r}; allowed labels: "
                            f"{', '.join(map(str, label2id))}")
        out.append(label2id[ex.label])
    return out


def encode_inputs(tokenizer, examples: Sequence[Example], max_length: int, where: str) -> Encoded:
    """Tokenise sources (and source pairs) once, truncated to ``max_length``, unpadded."""
    pairs = [ex.source_pair for ex in examples]
    has_pair = [p is not None for p in pairs]
    if any(has_pair) and not all(has_pair):
        first = next(ex.id for ex, h in zip(examples, has_pair) if not h)
        raise DataError(f"{where}: some examples have a second text (source_pair) and some do not "
                        f"(e.g. {first}); a split must be all single texts or all pairs")
    texts = [ex.source for ex in examples]
    kw = dict(truncation=True, max_length=max_length, return_special_tokens_mask=True)
    enc = tokenizer(texts, pairs, **kw) if any(has_pair) else tokenizer(texts, **kw)
    tti = enc.get("token_type_ids")
    return Encoded(input_ids=[list(x) for x in enc["input_ids"]],
                   special=[list(x) for x in enc["special_tokens_mask"]],
                   token_type_ids=[list(x) for x in tti] if tti is not None else None,
                   targets=[None] * len(texts))


def encode_translation(tokenizer, examples: Sequence[Example], max_length: int, max_target_length: int,
                       where: str) -> Encoded:
    missing = [ex.id for ex in examples if ex.reference is None]
    if missing:
        raise DataError(f"{where}: {len(missing)} training examples have no reference translation "
                        f"(e.g. {missing[0]})")
    enc = encode_inputs(tokenizer, examples, max_length, where)
    # seq2seq models take no segment ids (transformers 4.x fast tokenizers return them anyway)
    enc.token_type_ids = None
    tgt = tokenizer(text_target=[ex.reference for ex in examples], truncation=True, max_length=max_target_length)
    enc.targets = [list(x) for x in tgt["input_ids"]]
    return enc


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, *,
                           group: bool = True, mega: int | None = None) -> list[list[int]]:
    """Shuffled batches of indices; with ``group``, each batch holds examples of similar length.

    As transformers' ``LengthGroupedSampler``: shuffle, cut into mega-batches of ``mega`` batches,
    sort each by length, cut into batches. ``mega`` defaults to transformers' rule, 50 or as many
    as leave 4 mega-batches, whichever is smaller: sorting the whole of a small set would put the
    same examples together in every epoch. The batch order is then shuffled too, so long batches
    are not always first within a mega-batch.
    """
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if not group:
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    if mega is None:
        mega = max(1, min(len(idx) // (batch_size * 4), 50))
    batches = []
    span = batch_size * mega
    for start in range(0, len(idx), span):
        chunk = sorted(idx[start:start + span], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: longest first, so padding is minimal and memory peaks early."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(enc: Encoded, idx: Sequence[int], pad_id: int, *, task: str | None = None) -> dict[str, Any]:
    """Pad one batch to its own longest sequence (dynamic padding); tensors stay on the CPU."""
    import torch

    def pad(seqs, value):
        width = max(len(s) for s in seqs)
        out = torch.full((len(seqs), width), value, dtype=torch.long)
        for r, s in enumerate(seqs):
            out[r, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        return out

    ids = [enc.input_ids[i] for i in idx]
    batch = {"input_ids": pad(ids, pad_id),
             "special": pad([enc.special[i] for i in idx], 1).bool()}  # padding counts as special
    batch["attention_mask"] = pad([[1] * len(s) for s in ids], 0)
    if enc.token_type_ids is not None:
        batch["token_type_ids"] = pad([enc.token_type_ids[i] for i in idx], 0)
    if task == "classification":
        batch["labels"] = torch.tensor([enc.targets[i] for i in idx], dtype=torch.long)
    elif task == "translation":
        batch["labels"] = pad([enc.targets[i] for i in idx], -100)  # -100: ignored by the loss
    return batch


# ----------------------------------------------------------------------------- masking


@dataclass
class MaskVocab:
    """Token ids masking needs: the mask token and the ids a random replacement may take."""

    mask_id: int
    candidates: Any  # 1-D LongTensor of non-special ids

    @classmethod
    def from_tokenizer(cls, tokenizer, model_vocab_size: int | None = None, *, where: str = "") -> MaskVocab:
        import torch

        mask_id = tokenizer.mask_token_id
        if mask_id is None:
            # Seq2seq tokenizers (Marian, T5, ...) have no [MASK]; <unk> is the usual stand-in for a
            # blanked source word (word dropout), and a model has trained embeddings for it.
            mask_id = tokenizer.unk_token_id
        if mask_id is None:
            raise HarnessError(f"{where}: the tokenizer has neither a mask token nor an unknown token to mask with")
        size = len(tokenizer)
        if model_vocab_size is not None:
            size = min(size, model_vocab_size)
        special = set(tokenizer.all_special_ids)
        candidates = torch.tensor([i for i in range(size) if i not in special], dtype=torch.long)
        return cls(mask_id, candidates)


def mask_tokens(input_ids, special, masking: Masking, vocab: MaskVocab, generator):
    """BERT-style corruption (Devlin et al. 2019): select each non-special token with
    ``masking.prob``; replace a selected token by the mask token (``mask_ratio``), a random
    non-special token (``random_ratio``) or keep it (the rest).

    Returns ``(corrupted_ids, selected)``: a new tensor and the boolean selection (the positions a
    masked-LM loss predicts). Draws come from ``generator`` (CPU), so they do not depend on the
    device or on other random streams.
    """
    import torch

    probs = torch.full(input_ids.shape, masking.prob)
    probs.masked_fill_(special, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()
    u = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (u < masking.mask_ratio)
    to_random = selected & (u >= masking.mask_ratio) & (u < masking.mask_ratio + masking.random_ratio)
    pick = torch.randint(len(vocab.candidates), input_ids.shape, generator=generator)
    out = input_ids.clone()
    out[to_mask] = vocab.mask_id
    out[to_random] = vocab.candidates[pick[to_random]]
    return out, selected


# ----------------------------------------------------------------------------- models


def head_labels(config) -> list[str] | None:
    """Label names of a checkpoint's sequence-classification head, or None without one."""
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        return None
    id2label = config.id2label
    return [str(id2label[i]) for i in range(len(id2label))]


def float32_spec(spec: ModelSpec) -> ModelSpec:
    # Master weights stay in float32 while training; lower precision is applied by autocast.
    return spec.model_copy(update={"dtype": "float32"})


def load_classifier(spec: ModelSpec, labels: list[str], *, seed: int, device: str, log=None):
    """A sequence classifier whose head predicts ``labels``.

    A checkpoint whose head already predicts exactly these label names keeps its head (and its
    id order); any other checkpoint gets a new head with ``id2label`` from ``labels``, initialised
    from ``seed`` (so every strategy run with one seed starts from the same head).
    """
    import torch

    from .models import load_config, load_hf_model

    config = load_config(spec)
    existing = head_labels(config) if spec.init == "pretrained" else None
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    head_seed = derive_seed(seed, "head-init")
    torch.manual_seed(head_seed)
    if existing is not None and sorted(existing) == sorted(labels):
        return load_hf_model(float32_spec(spec), "AutoModelForSequenceClassification", seed=head_seed, device=device)
    extra: dict[str, Any] = {"num_labels": len(labels), "id2label": id2label, "label2id": label2id}
    if spec.init == "pretrained":
        extra["ignore_mismatched_sizes"] = True
    model = load_hf_model(float32_spec(spec), "AutoModelForSequenceClassification", seed=head_seed,
                          device=device, **extra)
    if existing is not None:
        # The checkpoint's head was trained for other labels; if its shape happened to fit, it was
        # loaded anyway: start it afresh, as for a checkpoint without a head.
        if log is not None:
            log.warning("model %s: its head predicts %s, not the benchmark's labels %s; training a new head",
                        spec.path, existing, labels)
        torch.manual_seed(head_seed)
        reinit_head(model)
    return model


def reinit_head(model) -> None:
    """Re-initialise every module outside the shared encoder (the task head), as transformers would."""
    prefix = model.base_model_prefix
    for name, module in model.named_children():
        if name != prefix:
            # transformers (v5) marks loaded tensors as initialised and its init functions then
            # skip them; clear the mark so the head really starts afresh.
            for t in [*module.parameters(), *module.buffers()]:
                if getattr(t, "_is_hf_initialized", False):
                    t._is_hf_initialized = False
            module.apply(model._init_weights)


class MLMHead:
    """A masked-LM head sharing the encoder of a classifier (aux_mlm) or of itself (TAPT).

    ``model`` is a transformers ``...ForMaskedLM`` whose base model is the shared encoder. When it
    has one head module taking hidden states (BERT's ``cls``, RoBERTa's ``lm_head``), the loss
    runs the head only on the selected positions, which saves the vocabulary projection on the
    other ~85% of tokens; otherwise it falls back to the model's full forward.
    """

    def __init__(self, mlm_model):
        self.model = mlm_model
        prefix = mlm_model.base_model_prefix
        heads = [m for n, m in mlm_model.named_children() if n != prefix and any(True for _ in m.parameters())]
        self.head = heads[0] if len(heads) == 1 else None

    def loss(self, encoder, batch_inputs: dict, selected):
        import torch.nn.functional as F

        labels = batch_inputs["input_ids_clean"]
        inputs = {k: v for k, v in batch_inputs.items() if k != "input_ids_clean"}
        if not selected.any():
            return None
        if self.head is not None:
            hidden = encoder(**inputs).last_hidden_state
            logits = self.head(hidden[selected])
            return F.cross_entropy(logits.float(), labels[selected])
        target = labels.masked_fill(~selected, -100)
        return self.model(**inputs, labels=target).loss


def load_mlm_model(spec: ModelSpec, *, seed: int, device: str, encoder_source=None):
    """A ``...ForMaskedLM``; with ``encoder_source`` (a classifier), its encoder is that model's,
    shared, and only the MLM head is its own (the pretrained one if the checkpoint has it)."""
    import torch

    from .models import load_hf_model

    torch.manual_seed(derive_seed(seed, "mlm-head-init"))
    try:
        mlm = load_hf_model(float32_spec(spec), "AutoModelForMaskedLM", seed=derive_seed(seed, "mlm-head-init"),
                            device=device)
    except HarnessError as e:
        raise HarnessError(f"model '{spec.path}' has no masked-LM form, which this strategy needs: {e}") from None
    if encoder_source is not None:
        prefix = mlm.base_model_prefix
        if prefix != encoder_source.base_model_prefix or not hasattr(mlm, prefix):
            raise HarnessError(f"model '{spec.path}': its masked-LM and classifier forms do not share an encoder "
                               f"({prefix!r} vs {encoder_source.base_model_prefix!r})")
        setattr(mlm, prefix, encoder_source.base_model)
        # Output embeddings are tied to the input embeddings: point them at the shared ones.
        out_emb, in_emb = mlm.get_output_embeddings(), encoder_source.get_input_embeddings()
        if out_emb is not None and getattr(mlm.config, "tie_word_embeddings", True) and \
                out_emb.weight.shape == in_emb.weight.shape:
            out_emb.weight = in_emb.weight
    return mlm


# Architectures whose checkpoints carry a masked-LM head (BERT's BertForPreTraining has one too).
MLM_HEAD_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")
# The MLM loss finetune.json reports is measured with BERT's own corruption, whatever the
# strategy's mask_prob, so that numbers from a masking-rate sweep compare.
PROBE_MASKING = Masking(prob=0.15, mask_ratio=0.8, random_ratio=0.1)
PROBE_EXAMPLES = 256


def has_pretrained_mlm_head(spec: ModelSpec) -> bool:
    """Whether the checkpoint was saved with a masked-LM head (by its config's architectures)."""
    from .models import load_config

    if spec.init != "pretrained":
        return False
    archs = getattr(load_config(spec), "architectures", None) or []
    return any(a.endswith(MLM_HEAD_ARCHITECTURES) for a in archs)


def start_new_mlm_head(mlm_model, train: Encoded) -> dict[str, Any]:
    """Complete a newly built masked-LM head the way BERT builds its own (``BertOnlyMLMHead``).

    transformers already gives the head BERT's shape: a new transform (dense, activation,
    LayerNorm; BERT's initialisation, seeded by the caller) and an output layer whose weight is
    the input word-embedding matrix. Here the tie is checked (and made, if the model's config
    had switched it off), and the new output bias starts at the log unigram frequency of the
    training tokens (add-one smoothed) rather than at BERT's zero: it is the value the bias
    moves to first anyway, and it starts the head at the unigram cross-entropy instead of
    above ln V.
    """
    import torch

    out, inp = mlm_model.get_output_embeddings(), mlm_model.get_input_embeddings()
    if out is None or inp is None:
        raise HarnessError(f"{type(mlm_model).__name__} has no output embedding layer to tie to its word embeddings")
    if out.weight is not inp.weight and out.weight.shape == inp.weight.shape:
        out.weight = inp.weight
    tied = out.weight is inp.weight
    bias_init = None
    if getattr(out, "bias", None) is not None:
        size = out.weight.shape[0]
        ids = [t for row, sp in zip(train.input_ids, train.special) for t, s in zip(row, sp) if not s and t < size]
        counts = torch.ones(size, dtype=torch.float64)
        if ids:
            counts += torch.bincount(torch.tensor(ids, dtype=torch.long), minlength=size).double()
        with torch.no_grad():
            out.bias.copy_((counts / counts.sum()).log().to(out.bias.dtype))
        bias_init = "log unigram frequency of the training tokens (add-one smoothed)"
    return {"new_head": True, "tied_to_input_embeddings": tied, "bias_init": bias_init}


def mlm_probe_loss(mlm_head: MLMHead, train: Encoded, vocab: MaskVocab, *, seed: int, device: str, pad_id: int,
                   batch_size: int, limit: int = PROBE_EXAMPLES) -> float | None:
    """Masked-LM loss (nats per masked token) on a fixed seeded sample of the training texts with
    fixed BERT-style masks, in eval mode: the number finetune.json reports at each stage. It
    draws from its own random streams, so measuring never changes what training does."""
    import torch

    idx = sorted(random.Random(derive_seed(seed, "mlm-probe")).sample(range(len(train)), min(limit, len(train))))
    gen = torch.Generator().manual_seed(derive_seed(seed, "mlm-probe-masks"))
    model = mlm_head.model
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for b in sorted_batches([train.lengths[i] for i in idx], batch_size):
                batch = collate(train, [idx[j] for j in b], pad_id)
                special = batch.pop("special")
                corrupted, selected = mask_tokens(batch["input_ids"], special, PROBE_MASKING, vocab, gen)
                inputs = {k: v.to(device) for k, v in
                          {**batch, "input_ids": corrupted, "input_ids_clean": batch["input_ids"]}.items()}
                loss = mlm_head.loss(model.base_model, inputs, selected.to(device))
                if loss is not None:
                    n = int(selected.sum())
                    total, count = total + float(loss) * n, count + n
    finally:
        model.train(was_training)
    return round(total / count, 5) if count else None


def warm_up_mlm_head(mlm_head: MLMHead, train: Encoded, *, params: FineTuneParams, steps: int, learning_rate: float,
                     masking: Masking, vocab: MaskVocab, seed: int, device: str, dtype_name: str, pad_id: int,
                     progress=lambda d, t: None, log=None) -> LoopResult:
    """Train the MLM head alone for ``steps`` optimizer steps: the encoder (and with it the tied
    word embeddings) is frozen, so only the new transform and bias move. Encoder weights come
    out bit-identical."""
    frozen = [p for p in mlm_head.model.base_model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    # warmup_steps is sized for the main run; the warm-up's own schedule warms up over warmup_ratio of it
    params = params.model_copy(update={"warmup_steps": None})
    try:
        return run_loop(mlm_head.model, train, task="mlm", params=params,
                        objective=Objective("mlm", mlm_masking=masking), seed=derive_seed(seed, "mlm-head-warmup"),
                        device=device, dtype_name=dtype_name, pad_id=pad_id, mask_vocab=vocab, mlm_head=mlm_head,
                        lr=learning_rate, max_steps=steps, progress=progress, log=log)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def prepare_mlm_head(mlm_head: MLMHead, train: Encoded, vocab: MaskVocab, *, pretrained: bool,
                     probe: Callable[[MLMHead], float | None], params: FineTuneParams, warmup_steps: int,
                     warmup_learning_rate: float, masking: Masking, seed: int, device: str, dtype_name: str,
                     pad_id: int, progress=lambda d, t: None, log=None) -> dict[str, Any]:
    """Keep a pretrained head; build a new one as BERT's and warm it up alone for ``warmup_steps``.

    Returns the record finetune.json keeps under ``mlm_head``: whether the head is new, tied,
    how its bias started, and its MLM loss before and after the warm-up.
    """
    if pretrained:
        return {"new_head": False, "warmup_steps": 0, "loss_at_start": probe(mlm_head)}
    info = start_new_mlm_head(mlm_head.model, train)
    info["loss_before_warmup"] = probe(mlm_head)
    info["warmup_steps"] = warmup_steps
    if warmup_steps:
        res = warm_up_mlm_head(mlm_head, train, params=params, steps=warmup_steps, learning_rate=warmup_learning_rate,
                               masking=masking, vocab=vocab, seed=seed, device=device, dtype_name=dtype_name,
                               pad_id=pad_id, progress=progress, log=log)
        info["warmup"] = _record(res, len(train))
        info["loss_after_warmup"] = probe(mlm_head)
    info["loss_at_start"] = info.get("loss_after_warmup", info["loss_before_warmup"])
    return info


# ----------------------------------------------------------------------------- the loop


@dataclass
class LoopResult:
    steps: int
    epochs_run: float
    examples_seen: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    stopped_early: bool = False

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.seconds if self.seconds else 0.0


def cpu_bfloat16(device: str, dtype_name: str) -> bool:
    """Mixed precision on the CPU: only when asked for by name (``dtype: bfloat16``; ``auto``
    trains in float32 there). CPUs with AVX-512 BF16 or AMX run it ~1.7x faster (MiniLM)."""
    return device == "cpu" and dtype_name == "bfloat16"


def uses_autocast(device: str, dtype_name: str) -> bool:
    """Whether training runs under mixed precision: on accelerators (but MPS) unless float32 is
    asked for, on the CPU only with an explicit ``dtype: bfloat16``."""
    if cpu_bfloat16(device, dtype_name):
        return True
    return not (device == "cpu" or device.startswith("mps") or dtype_name == "float32")


def autocast_for(device: str, dtype_name: str):
    """Mixed precision (master weights stay float32) where :func:`uses_autocast` says so; on the
    CPU autocast to bfloat16 (no loss scaling needed)."""
    import torch

    if not uses_autocast(device, dtype_name):
        return contextlib.nullcontext, None
    if cpu_bfloat16(device, dtype_name):
        return (lambda: torch.autocast(device_type="cpu", dtype=torch.bfloat16)), None
    if dtype_name == "auto":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        amp = getattr(torch, dtype_name)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    return (lambda: torch.autocast(device_type="cuda", dtype=amp)), scaler


def make_optimizer(params: FineTuneParams, named_parameters, lr: float):
    import torch

    decay, no_decay = [], []
    seen = set()
    for name, p in named_parameters:
        if not p.requires_grad or id(p) in seen:  # tied weights appear twice
            continue
        seen.add(id(p))
        # Biases and normalisation weights are 1-D; decaying them hurts (as in BERT and Trainer).
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": params.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel is what Trainer uses by default and is fastest on CPU and CUDA alike
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - devices without a fused kernel
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def lr_lambda(total: int, warmup: int, kind: str) -> Callable[[int], float]:
    """Learning-rate factor per optimizer step, as transformers' linear/constant schedules with
    warm-up: rising linearly from 0 over ``warmup`` steps, then decaying linearly to 0 at
    ``total`` (linear) or staying at 1 (constant)."""
    def f(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if kind == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def run_loop(model, train: Encoded, *, task: str, params: FineTuneParams, objective: Objective, seed: int,
             device: str, dtype_name: str, pad_id: int, mask_vocab: MaskVocab | None = None,
             mlm_head: MLMHead | None = None, dev: Encoded | None = None, lr: float | None = None,
             epochs: int | None = None, max_steps: int | None = None,
             progress: Callable[[int, int | None], None] = lambda d, t: None, log=None) -> LoopResult:
    """Train ``model`` in place. ``task``: classification | translation | mlm."""
    import torch
    import torch.nn.functional as F

    lr = params.learning_rate if lr is None else lr
    epochs = params.epochs if epochs is None else epochs
    max_steps = params.max_steps if max_steps is None else max_steps
    bs, accum = params.batch_size, params.gradient_accumulation_steps
    batches_per_epoch = math.ceil(len(train) / bs)
    steps_per_epoch = math.ceil(batches_per_epoch / accum)
    total = max_steps if max_steps is not None else epochs * steps_per_epoch
    warmup = params.warmup_steps if params.warmup_steps is not None else math.ceil(params.warmup_ratio * total)

    trainable = list(model.named_parameters())
    if mlm_head is not None:
        trainable += list(mlm_head.model.named_parameters())
    optimizer = make_optimizer(params, trainable, lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup, params.lr_scheduler))
    autocast, scaler = autocast_for(device, dtype_name)
    order_rng = random.Random(derive_seed(seed, "data-order"))
    mask_gen = torch.Generator().manual_seed(derive_seed(seed, "masks"))
    torch.manual_seed(derive_seed(seed, "dropout"))
    all_params = [p for group in optimizer.param_groups for p in group["params"]]  # each tensor once
    encoder = model.base_model

    # Dev evaluations: for early stopping, or (eval_steps alone) only to record the learning curve.
    evaluating = dev is not None and task != "mlm" and (
        params.early_stopping_patience is not None or params.eval_steps is not None)
    early = evaluating and params.early_stopping_patience is not None
    smoothing = params.label_smoothing if task != "mlm" else 0.0
    eval_every = params.eval_steps or steps_per_epoch
    higher_better = params.early_stopping_metric == "accuracy"
    best_value, best_state, bad_evals = None, None, 0

    def to_dev(b):
        return {k: v.to(device, non_blocking=True) for k, v in b.items()}

    def loss_of(batch) -> tuple[Any, dict[str, float]]:
        labels = batch.pop("labels", None)
        special = batch.pop("special")
        if objective.kind == "mlm":
            corrupted, selected = mask_tokens(batch["input_ids"], special, objective.mlm_masking, mask_vocab, mask_gen)
            inputs = to_dev({**batch, "input_ids": corrupted, "input_ids_clean": batch["input_ids"]})
            with autocast():
                loss = mlm_head.loss(encoder, inputs, selected.to(device))
            if loss is None:
                return None, {}
            return loss, {"mlm_loss": loss.item()}
        model_in = dict(batch)
        if objective.input_masking is not None:
            model_in["input_ids"], _ = mask_tokens(batch["input_ids"], special, objective.input_masking,
                                                   mask_vocab, mask_gen)
        with autocast():
            if task == "translation":
                labels = labels.to(device)
                out = model(**to_dev(model_in), labels=labels)
                loss = out.loss if not smoothing else F.cross_entropy(
                    out.logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=smoothing)
            else:
                logits = model(**to_dev(model_in)).logits
                loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=smoothing)
        parts = {"task_loss": loss.item()}
        if objective.kind == "aux_mlm" and objective.mlm_weight > 0:
            # Skipped at weight 0 (no gradient to gain), which keeps lambda=0 identical to unmasked.
            corrupted, selected = mask_tokens(batch["input_ids"], special, objective.mlm_masking, mask_vocab, mask_gen)
            inputs = to_dev({**batch, "input_ids": corrupted, "input_ids_clean": batch["input_ids"]})
            with autocast():
                mlm = mlm_head.loss(encoder, inputs, selected.to(device))
            if mlm is not None:
                parts["mlm_loss"] = mlm.item()
                loss = loss + objective.mlm_weight * mlm
        return loss, parts

    model.train()
    if mlm_head is not None:
        mlm_head.model.train()
    history: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    step, seen, epoch, stopped = 0, 0, 0, False
    window: dict[str, list[float]] = {}
    log_every = max(1, min(50, steps_per_epoch // 4 or 1))
    t0 = time.perf_counter()
    progress(0, total)
    while step < total and not stopped:
        batches = length_grouped_batches(train.lengths, bs, order_rng, group=params.group_by_length)
        for i, idx in enumerate(batches):
            batch = collate(train, idx, pad_id, task=None if task == "mlm" else task)
            loss, parts = loss_of(batch)
            seen += len(idx)
            if loss is not None:
                for k, v in parts.items():
                    window.setdefault(k, []).append(v)
                loss = loss / accum
                (scaler.scale(loss) if scaler else loss).backward()
            if (i + 1) % accum != 0 and i + 1 != len(batches):
                continue
            if scaler:
                scaler.unscale_(optimizer)
            if params.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(all_params, params.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress(step, total)
            if step % log_every == 0 or step == total:
                entry = {"step": step, "epoch": round(epoch + (i + 1) / len(batches), 3),
                         "lr": scheduler.get_last_lr()[0]}
                entry.update({k: round(sum(v) / len(v), 5) for k, v in window.items() if v})
                history.append(entry)
                window = {}
            if evaluating and (step % eval_every == 0 or step == total):
                result = evaluate_loss(model, dev, task, bs, pad_id, device, autocast)
                result["step"] = step
                evals.append(result)
                if log is not None:
                    log.info("step %d/%d: dev %s", step, total, result)
                model.train()
                if early:
                    value = result[params.early_stopping_metric]
                    better = best_value is None or (value > best_value if higher_better else value < best_value)
                    if better:
                        best_value, bad_evals = value, 0
                        best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    else:
                        bad_evals += 1
                    if bad_evals >= params.early_stopping_patience:
                        stopped = True
            if step >= total or stopped:
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    best = None
    if best_state is not None:
        model.load_state_dict(best_state)
        best = next(e for e in evals if e[params.early_stopping_metric] == best_value)
    model.eval()
    return LoopResult(steps=step, epochs_run=round(seen / max(1, len(train)), 3), examples_seen=seen,
                      seconds=seconds, history=history, evals=evals, best=best, stopped_early=stopped)


def evaluate_loss(model, dev: Encoded, task: str, batch_size: int, pad_id: int, device: str,
                  autocast=contextlib.nullcontext) -> dict[str, float]:
    """Dev loss (and accuracy for classification) on clean inputs."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total_loss, total_n, correct = 0.0, 0, 0
    with torch.inference_mode():
        for idx in sorted_batches(dev.lengths, batch_size):
            batch = collate(dev, idx, pad_id, task=task)
            labels = batch.pop("labels").to(device)
            batch.pop("special")
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                if task == "translation":
                    logits = model(**batch, labels=labels).logits.float()
                    mask = labels != -100
                    total_loss += F.cross_entropy(logits[mask], labels[mask], reduction="sum").item()
                    total_n += int(mask.sum())
                else:
                    logits = model(**batch).logits.float()
                    total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
                    correct += int((logits.argmax(-1) == labels).sum())
                    total_n += len(idx)
    out = {"loss": total_loss / max(1, total_n)}
    if task != "translation":
        out["accuracy"] = correct / max(1, total_n)
    return out


# ----------------------------------------------------------------------------- cache


def data_fingerprint(data: BenchmarkData, *, with_dev: bool) -> str:
    """Content hash of what training reads: train (and dev) examples and the label set."""
    h = hashlib.sha256()
    h.update(json.dumps([data.task, data.labels]).encode())
    for split in (data.train or [], data.dev or [] if with_dev else []):
        h.update(b"\x00split")
        for ex in split:
            h.update(json.dumps([ex.source, ex.source_pair, ex.reference, ex.label], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _key_lock(path: Path):
    """Serialise training of one checkpoint across processes sharing the cache."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def checkpoint_model(spec: ModelSpec, device: str) -> ModelSpec:
    """The model as it enters a checkpoint's key: what training reads, not how the checkpoint is
    decoded afterwards. Decoding-only fields (engine, compute_type, kernels) are reset; ``dtype:
    int8`` (quantized only after a float32 training) keys as ``auto`` on the CPU; and the device
    that int8 or oneDNN pinned to the CPU keys as the one written (``auto``) when that is the CPU
    here. So one trained model is decoded in float32, int8, oneDNN or CTranslate2 without training
    it again, and checkpoints keyed before these fields existed keep their keys."""
    from .models import resolve_device

    update: dict[str, Any] = {"engine": "transformers", "compute_type": "auto", "kernels": "default"}
    if device == "cpu":
        if spec.dtype == "int8":
            update["dtype"] = "auto"
        requested = spec._requested_device or spec.device
        if spec.device == "cpu" and requested == "auto" and resolve_device("auto") == "cpu":
            update["device"] = "auto"
    return spec.model_copy(update=update)


def checkpoint_params(params: FineTuneParams) -> dict[str, Any]:
    """The parameters as they enter a checkpoint's key. ``train_seed`` is left out: the seed it
    sets is keyed itself, so a checkpoint trained by a cell of seed 0 and one asked for with
    ``train_seed: 0`` are the same; with later fields at their defaults, checkpoints cached before
    those fields existed keep their keys."""
    d = params.model_dump(mode="json")
    d.pop("train_seed", None)
    # fields added after checkpoints were first cached are left out at their defaults (old keys hold)
    for name, default in (("label_smoothing", 0.0),):
        if d.get(name) == default:
            d.pop(name)
    return d


def cached_checkpoint(spec: ModelSpec, data: BenchmarkData, ctx: CellContext, *, strategy: str, version: str,
                      params: FineTuneParams, build: Callable[[Path], dict[str, Any]], uses_dev: bool,
                      device: str) -> ModelSpec:
    """Return the spec of the checkpoint for these inputs, training it with ``build(tmpdir)`` on a miss.

    ``build`` saves the model and tokenizer into the directory it is given and returns the
    training record, written as ``finetune.json`` in the checkpoint and copied into the cell's
    workdir. The directory is renamed into place only when complete.
    """
    # CPU bfloat16 training arrived later than the key: only its checkpoints carry the mark
    amp = {"amp": "cpu-bfloat16"} if cpu_bfloat16(device, spec.dtype) else {}
    key = canonical_hash({"training": TRAINING_VERSION, "model": model_fingerprint(checkpoint_model(spec, device)),
                          "data": data_fingerprint(data, with_dev=uses_dev), "strategy": strategy,
                          "version": version, "params": checkpoint_params(params), "seed": ctx.seed, **amp})
    root = Path(ctx.cache_dir) / "finetuned"
    final = root / f"{strategy}-{key}"
    hit = (final / META_FILE).is_file()
    if not hit:
        with _key_lock(root / f".{strategy}-{key}.lock"):
            hit = (final / META_FILE).is_file()  # another process may have finished it meanwhile
            if not hit:
                tmp = root / f".tmp-{strategy}-{key}-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                try:
                    record = build(tmp)
                    record = {"strategy": strategy, "strategy_version": version, "key": key, "seed": ctx.seed,
                              "base_model": spec.path, "params": params.model_dump(mode="json"), **record}
                    atomic_write_json(tmp / META_FILE, record)
                    shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover
                    os.replace(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
    ctx.log.info("%s checkpoint %s: %s", strategy, "reused" if hit else "trained", final)
    record = json.loads((final / META_FILE).read_text(encoding="utf-8"))
    with contextlib.suppress(OSError):
        atomic_write_json(Path(ctx.workdir) / META_FILE, {**record, "checkpoint": str(final), "cache_hit": hit})
    # The tokenizer was saved with the checkpoint; evaluation truncates inputs as training did.
    return spec.model_copy(update={"path": str(final), "local": True, "init": "pretrained", "revision": None,
                                   "tokenizer": None, "label": spec.display,
                                   "max_source_length": params.max_length})


# ----------------------------------------------------------------------------- stages


def _train_split(data: BenchmarkData, strategy: str) -> list[Example]:
    if not data.train:
        raise DataError(f"strategy '{strategy}' fine-tunes on the benchmark's train split, but the benchmark has "
                        "no training examples; give it a train split (e.g. train files in its params) or use "
                        "strategy 'none'")
    return data.train


def _dev_split(data: BenchmarkData, params: FineTuneParams, seed: int, strategy: str, task: str) -> list | None:
    """The dev examples that early stopping or a dev curve (``eval_steps`` alone) evaluates on."""
    early = params.early_stopping_patience is not None
    if not early and params.eval_steps is None:
        return None
    if early and params.early_stopping_metric == "accuracy" and task != "classification":
        raise HarnessError(f"strategy '{strategy}': early_stopping_metric 'accuracy' applies to classification; "
                           f"use 'loss' for {task}")
    if not data.dev:
        if early:
            raise DataError(f"strategy '{strategy}': early_stopping_patience needs a dev split, but the benchmark "
                            "has none; give it a dev split or set early_stopping_patience: null")
        raise DataError(f"strategy '{strategy}': eval_steps evaluates on a dev split, but the benchmark has "
                        "none; give it a dev split or set eval_steps: null")
    return subset(data.dev, params.dev_limit, seed, "dev-subset")


def _record(result: LoopResult, n_train: int) -> dict[str, Any]:
    return {"train_examples": n_train, "steps": result.steps, "epochs": result.epochs_run,
            "seconds": round(result.seconds, 3), "examples_per_second": round(result.examples_per_second, 3),
            "stopped_early": result.stopped_early, "best_dev": result.best, "history": result.history,
            "dev_evals": result.evals}


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' per-load reports of newly initialised heads and its progress bars: the
    new heads are intended (classification or MLM) and the reports would flood a study's log."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass(frozen=True)
class MLMStage:
    """TAPT's first stage: masked-LM training on the task's own training texts."""

    learning_rate: float
    epochs: int
    max_steps: int | None
    masking: Masking


def fine_tune(spec: ModelSpec, data: BenchmarkData, ctx: CellContext, *, strategy: str, version: str,
              params: FineTuneParams, objective: Objective, mlm_stage: MLMStage | None = None,
              mlm_head_params: MLMHeadParams | None = None) -> ModelSpec:
    """Fine-tune ``spec`` on ``data.train`` (cached); return the spec of the fine-tuned checkpoint.

    With ``mlm_stage``, masked-LM training on the training texts runs first (TAPT) and the
    resulting encoder is then fine-tuned with ``objective``. Whenever an MLM head is used
    (aux_mlm, TAPT) and the checkpoint has none, a new one is built as BERT's
    (:func:`start_new_mlm_head`) and, with ``mlm_head_params.mlm_head_warmup_steps``, trained
    alone first; ``finetune.json``'s ``mlm_head`` records its MLM loss at each stage.
    """
    from .models import load_tokenizer, resolve_device

    if params.train_seed is not None:
        ctx = dataclasses.replace(ctx, seed=params.train_seed)
    task = data.task
    train_examples = subset(_train_split(data, strategy), params.train_limit, ctx.seed, "train-subset")
    dev_examples = _dev_split(data, params, ctx.seed, strategy, task)
    if task == "classification" and (not data.labels or len(data.labels) < 2):
        raise DataError(f"strategy '{strategy}': classification needs at least two labels, the benchmark has "
                        f"{data.labels or 'none'}")
    device = resolve_device(ctx.device if ctx.device != "auto" else spec.device)
    where = f"strategy '{strategy}'"

    head_params = mlm_head_params or MLMHeadParams()
    head_masking = objective.mlm_masking or (mlm_stage.masking if mlm_stage is not None else PROBE_MASKING)

    def build(outdir: Path) -> dict[str, Any]:
        tokenizer = load_tokenizer(spec)
        pad_id = _pad_id(tokenizer)
        record: dict[str, Any] = {"device": device,
                                  "mixed_precision": spec.dtype if uses_autocast(device, spec.dtype) else "no"}
        with quiet_transformers():
            model, enc, dev_enc = _task_model(spec, task, data, train_examples, dev_examples, tokenizer, params,
                                              ctx, device, where)
            # The MLM head shares the classifier's encoder: TAPT adapts exactly the encoder that is then
            # fine-tuned (its pooler and new head untouched), aux_mlm trains both losses on it at once.
            mlm_head = MLMHead(load_mlm_model(spec, seed=ctx.seed, device=device, encoder_source=model)) \
                if objective.kind == "aux_mlm" or mlm_stage is not None else None
        vocab = None
        if mlm_head is not None or objective.input_masking is not None:
            vocab = MaskVocab.from_tokenizer(tokenizer, model.config.vocab_size, where=where)

        def probe(head: MLMHead) -> float | None:
            return mlm_probe_loss(head, enc, vocab, seed=ctx.seed, device=device, pad_id=pad_id,
                                  batch_size=params.batch_size)

        if mlm_head is not None:
            record["mlm_head"] = prepare_mlm_head(
                mlm_head, enc, vocab, pretrained=has_pretrained_mlm_head(spec), probe=probe, params=params,
                warmup_steps=head_params.mlm_head_warmup_steps,
                warmup_learning_rate=head_params.mlm_head_warmup_learning_rate, masking=head_masking,
                seed=ctx.seed, device=device, dtype_name=spec.dtype, pad_id=pad_id, progress=ctx.progress,
                log=ctx.log)
        if mlm_stage is not None:
            res = run_loop(mlm_head.model, enc, task="mlm", params=params,
                           objective=Objective("mlm", mlm_masking=mlm_stage.masking), seed=derive_seed(ctx.seed, "tapt"),
                           device=device, dtype_name=spec.dtype, pad_id=pad_id, mask_vocab=vocab, mlm_head=mlm_head,
                           lr=mlm_stage.learning_rate, epochs=mlm_stage.epochs, max_steps=mlm_stage.max_steps,
                           progress=ctx.progress, log=ctx.log)
            record["mlm_stage"] = _record(res, len(enc))
            record["mlm_head"]["loss_after_mlm_stage"] = probe(mlm_head)
            mlm_head = None  # stage 2 is plain fine-tuning
        res = run_loop(model, enc, task=task, params=params, objective=objective, seed=ctx.seed, device=device,
                       dtype_name=spec.dtype, pad_id=pad_id, mask_vocab=vocab, mlm_head=mlm_head, dev=dev_enc,
                       progress=ctx.progress, log=ctx.log)
        if mlm_head is not None:
            record["mlm_head"]["loss_after_training"] = probe(mlm_head)
        with quiet_transformers():
            model.save_pretrained(outdir)
            tokenizer.save_pretrained(outdir)
        record.update(_record(res, len(enc)))
        return record

    return cached_checkpoint(spec, data, ctx, strategy=strategy, version=version, params=params, build=build,
                             uses_dev=dev_examples is not None, device=device)


def _task_model(base, task, data, train_examples, dev_examples, tokenizer, params, ctx, device, where):
    """The model to fine-tune and its encoded train/dev splits."""
    dev_enc = None
    if task == "classification":
        model = load_classifier(base, list(data.labels), seed=ctx.seed, device=device, log=ctx.log)
        # Targets follow the model's own id order (a reused head may order labels differently).
        label2id = {str(v): int(k) for k, v in model.config.id2label.items()}
        enc = encode_inputs(tokenizer, train_examples, params.max_length, where)
        enc.targets = classification_label_ids(train_examples, label2id, f"{where}, train split")
        if dev_examples is not None:
            dev_enc = encode_inputs(tokenizer, dev_examples, params.max_length, where)
            dev_enc.targets = classification_label_ids(dev_examples, label2id, f"{where}, dev split")
        return model, enc, dev_enc
    if task == "translation":
        from .models import load_config, load_hf_model

        if not getattr(load_config(base), "is_encoder_decoder", False):
            raise HarnessError(f"{where}: translation fine-tuning needs an encoder-decoder (seq2seq) model; "
                               f"'{base.path}' is not one")
        model = load_hf_model(float32_spec(base), "AutoModelForSeq2SeqLM", seed=ctx.seed, device=device)
        enc = encode_translation(tokenizer, train_examples, params.max_length, params.max_target_length, where)
        if dev_examples is not None:
            dev_enc = encode_translation(tokenizer, dev_examples, params.max_length, params.max_target_length, where)
        return model, enc, dev_enc
    raise HarnessError(f"{where} does not support task '{task}'")


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
