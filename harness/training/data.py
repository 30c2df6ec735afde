"""Training data: seeded streams and subsets, tokenised splits, length-grouped batches, padding."""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Example


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
