"""The models a strategy trains: a classifier with its task head, and a masked-LM head sharing
its encoder (aux_mlm, TAPT) -- built as BERT's, warmed up alone, and probed for its MLM loss
(the head itself, which the training loop also drives, is :mod:`.mlm_head`)."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import HarnessError
from .data import Encoded, collate, derive_seed, sorted_batches
from .loop import LoopResult, run_loop
from .masking import Masking, MaskVocab, mask_tokens
from .mlm_head import MLMHead
from .params import FineTuneParams, Objective

if TYPE_CHECKING:  # pragma: no cover
    from ..models.spec import ModelSpec


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

    from ..models.hf import load_config, load_hf_model

    config = load_config(spec)
    existing = head_labels(config) if spec.init == "pretrained" else None
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    head_seed = derive_seed(seed, "head-init")
    torch.manual_seed(head_seed)
    if existing is not None and sorted(existing) == sorted(labels):  # its own head, which must load whole
        return load_hf_model(float32_spec(spec), "AutoModelForSequenceClassification", seed=head_seed, device=device)
    extra: dict[str, Any] = {"num_labels": len(labels), "id2label": id2label, "label2id": label2id}
    if spec.init == "pretrained":
        extra["ignore_mismatched_sizes"] = True
    # a new head (missing from the checkpoint, or another head's left over): the encoder must still load whole
    model = load_hf_model(float32_spec(spec), "AutoModelForSequenceClassification", seed=head_seed,
                          device=device, new_head=True, **extra)
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


def load_mlm_model(spec: ModelSpec, *, seed: int, device: str, encoder_source=None):
    """A ``...ForMaskedLM``; with ``encoder_source`` (a classifier), its encoder is that model's,
    shared, and only the MLM head is its own (the pretrained one if the checkpoint has it)."""
    import torch

    from ..models.hf import load_hf_model

    torch.manual_seed(derive_seed(seed, "mlm-head-init"))
    try:
        mlm = load_hf_model(float32_spec(spec), "AutoModelForMaskedLM", seed=derive_seed(seed, "mlm-head-init"),
                            device=device, new_head=True)
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


def has_pretrained_mlm_head(spec: ModelSpec, mlm_model=None) -> bool:
    """Whether the checkpoint holds a masked-LM head.

    Given the loaded ``...ForMaskedLM`` (``mlm_model``), decided by its weights: the head is
    pretrained when none of its weights started random (:func:`harness.models.hf.load_hf_model`
    lists those). The config's architectures alone mislead: ELECTRA's discriminator
    (``ElectraForPreTraining``) is a pre-training checkpoint whose head detects replaced tokens, not
    a masked-LM head, so its MLM head is new. Without ``mlm_model``, the architectures decide."""
    from ..models.hf import load_config

    if spec.init != "pretrained":
        return False
    if mlm_model is not None:
        return not getattr(mlm_model, "harness_new_weights", [])
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
        info["warmup"] = res.as_record(len(train))
        info["loss_after_warmup"] = probe(mlm_head)
    info["loss_at_start"] = info.get("loss_after_warmup", info["loss_before_warmup"])
    return info
