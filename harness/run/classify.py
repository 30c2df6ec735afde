"""Classification evaluation: clean inputs (unless the strategy asks for test-time corruption),
batched, sorted by length.

:func:`predict` loads a sequence classifier (usually the checkpoint a fine-tuning strategy
produced), runs it on the benchmark's test split exactly as tokenised text (no dropout, and no
masking unless the strategy's ``test_time_corruption()`` asks for it), longest inputs first so
each batch is padded only to its own longest member, and returns one prediction per test
example in the test split's order.

Label names come from the model's own ``id2label``, so a head whose ids are ordered
differently from the benchmark's label list still predicts the right names; the returned
probabilities are listed in the benchmark's label order (``data.labels``). A model whose head
does not predict the benchmark's labels is refused with an error naming both label sets.

With ``max_batch_tokens`` on the model a batch holds as many examples as fit in that many padded
tokens (longest first, as :func:`harness.decoding.search.plan_batches` plans decoding batches).

Non-goals: zero-shot or prompted classification with generative LMs, calibration, and
multi-label or regression heads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import HarnessError

BATCH_SIZE = 64  # test examples per forward pass; inputs are short, so this fits any device
MAX_ROWS = 4096  # with a token budget (max_batch_tokens), the most examples a batch may still hold


def check_head(spec, config, labels: list[str]) -> None:
    """Refuse a pretrained model whose head does not predict exactly the benchmark's labels."""
    from ..training import head_labels

    if spec.init == "random":
        return  # a random model gets a head built for the benchmark's labels
    archs = getattr(config, "architectures", None) or []
    model_labels = head_labels(config)
    if model_labels is None:
        raise HarnessError(
            f"model '{spec.path}' has no sequence-classification head (architectures: "
            f"{', '.join(archs) or 'unknown'}); fine-tune one with a strategy such as 'unmasked' instead of 'none'")
    if sorted(model_labels) != sorted(labels):
        raise HarnessError(
            f"model '{spec.path}' predicts the labels [{', '.join(model_labels)}] but the benchmark's labels are "
            f"[{', '.join(labels)}]; fine-tune it on this benchmark (e.g. strategy 'unmasked') or use a model "
            "trained with these label names")


def predict(spec, data, ctx, *, corruption=None,
            record: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return one dict per test example, in ``data.test`` order:
    ``{"label": predicted label name, "probs": [p(label) for label in data.labels]}``.

    ``corruption`` (a :class:`harness.training.Masking`, from the strategy's
    ``test_time_corruption()``): the test inputs are corrupted BERT-style first, each example
    seeded by ``ctx.seed`` and its id, and the draw is written to ``ctx.workdir /
    test_corruption.json`` (:func:`harness.training.corrupt_test_inputs`).
    ``record`` (a dict) receives ``kernels``: which Linear kernels predicted, and why."""
    import torch

    from ..errors import DataError
    from ..models.hf import choose_kernels, load_config, load_hf_model, load_tokenizer, resolve_device
    from ..training import collate, encode_inputs, sorted_batches

    labels = [str(x) for x in (data.labels or [])]
    if not labels:
        raise DataError("classification benchmark without a label list (BenchmarkData.labels is empty)")
    if not data.test:
        return []
    config = load_config(spec)
    check_head(spec, config, labels)
    device = resolve_device(ctx.device if ctx.device != "auto" else spec.device)
    extra: dict[str, Any] = {}
    if spec.init == "random":
        extra = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                 "label2id": {name: i for i, name in enumerate(labels)}}
    def load():
        return load_hf_model(spec, "AutoModelForSequenceClassification", seed=ctx.seed, device=device, **extra)

    # prediction is inference: kernels (auto / onednn) apply here as in decoding
    model, choice = choose_kernels(load(), spec, device, load)
    if record is not None:
        record["kernels"] = choice.record()
    model.eval()
    tokenizer = load_tokenizer(spec)
    limit = min(spec.max_source_length, getattr(config, "max_position_embeddings", None) or spec.max_source_length)
    enc = encode_inputs(tokenizer, data.test, limit, "test split")
    if corruption is not None:
        from ..store import atomic_write_json
        from ..training import TEST_CORRUPTION_FILE, MaskVocab, corrupt_test_inputs

        vocab = MaskVocab.from_tokenizer(tokenizer, model.config.vocab_size, where="test-time corruption")
        enc, draw = corrupt_test_inputs(enc, [ex.id for ex in data.test], corruption, vocab, ctx.seed)
        atomic_write_json(Path(ctx.workdir) / TEST_CORRUPTION_FILE, draw)
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    # column j of the model's output is label id2label[j]; report probabilities in data.labels order
    columns = [next(j for j, name in id2label.items() if name == lab) for lab in labels]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[dict[str, Any] | None] = [None] * len(enc)
    if spec.max_batch_tokens is None:
        batches = sorted_batches(enc.lengths, BATCH_SIZE)
    else:  # a token budget: many short inputs per batch, few long ones (the decoders' rule)
        from ..decoding.search import plan_batches

        batches = plan_batches(enc.lengths, MAX_ROWS, spec.max_batch_tokens)
    ctx.progress(0, len(batches))
    with torch.inference_mode():
        for b, idx in enumerate(batches):
            batch = collate(enc, idx, pad_id)
            batch.pop("special")
            batch = {k: v.to(device) for k, v in batch.items()}
            probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu()
            for row, i in zip(probs.tolist(), idx):
                best = max(range(len(row)), key=row.__getitem__)
                out[i] = {"label": id2label[best], "probs": [round(row[j], 6) for j in columns]}
            ctx.progress(b + 1, len(batches))
    return out  # type: ignore[return-value]
