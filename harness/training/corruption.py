"""Input corruptions beside BERT's masking: Cutoff's token and span erasure, and the seeded
corruption of test inputs at prediction.

- :class:`Cutoff` and :func:`cutoff_positions`: which tokens a *cutoff* view erases (Shen et
  al. 2020, "A Simple but Tough-to-Beat Data Augmentation Approach for Natural Language
  Understanding and Generation", section 3.1): per example ``round(rate x n)`` of its ``n``
  non-special tokens (at least one when ``rate > 0``), either scattered (token cutoff) or one
  run of consecutive non-special tokens (span cutoff). :func:`erase` then removes them the
  paper's way (their word embeddings and their attention set to zero) or replaces them with
  the mask token (a masked view, the input the study note argues about).
- :func:`corrupt_test_inputs`: BERT-style corruption (:func:`~harness.training.mask_tokens`) of
  a tokenised test split, each example with its own generator seeded by the cell's seed and
  its id, so neither batching nor test-set order changes its draw; returns the record written
  as ``test_corruption.json`` in the cell's directory.

Deliberate differences from the paper's code: special tokens ([CLS], [SEP], padding) are never
cut (the classifier reads [CLS]), and the positions of token cutoff are drawn without
replacement, so exactly ``round(rate x n)`` distinct tokens go. Non-goals: Cutoff's feature
(dimension) cutoff, and corruption of translation test sources.

torch is imported inside functions only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from .data import derive_seed
from .masking import mask_tokens

if TYPE_CHECKING:  # pragma: no cover
    from .data import Encoded
    from .masking import Masking, MaskVocab

TEST_CORRUPTION_FILE = "test_corruption.json"
TEST_STREAM = "test-corruption"


@dataclass(frozen=True)
class Cutoff:
    """What a cutoff view erases (taken from a strategy's parameters)."""

    rate: float                                # share of each example's non-special tokens
    span: bool = False                         # one run of consecutive tokens instead of scattered ones
    erase: Literal["zero", "mask"] = "zero"    # zero: embedding and attention 0 (the paper); mask: the mask token


def cutoff_count(n: int, rate: float) -> int:
    """Tokens a cutoff of ``rate`` erases from ``n`` non-special ones: ``round(rate x n)``, half up,
    at least one when ``rate > 0`` (a short phrase would otherwise never be cut), at most ``n``."""
    if n <= 0 or rate <= 0:
        return 0
    return min(n, max(1, math.floor(rate * n + 0.5)))


def cutoff_positions(special, cutoff: Cutoff, generator):
    """Boolean ``(batch, width)`` tensor of the positions a cutoff view erases.

    ``special`` is True at special tokens and padding (never erased). Row by row: token cutoff
    draws :func:`cutoff_count` distinct non-special positions uniformly (``torch.randperm``);
    span cutoff draws a start uniformly among the non-special positions and erases that many
    consecutive ones. Draws come from ``generator`` (CPU)."""
    import torch

    out = torch.zeros(special.shape, dtype=torch.bool)
    for r in range(special.shape[0]):
        pos = (~special[r]).nonzero().flatten()
        k = cutoff_count(len(pos), cutoff.rate)
        if k == 0:
            continue
        if cutoff.span:
            start = int(torch.randint(len(pos) - k + 1, (1,), generator=generator))
            chosen = pos[start:start + k]
        else:
            chosen = pos[torch.randperm(len(pos), generator=generator)[:k]]
        out[r, chosen] = True
    return out


def erase(model, inputs: dict[str, Any], cut, cutoff: Cutoff, mask_id: int | None) -> dict[str, Any]:
    """The model inputs of a cutoff view of ``inputs`` (tensors on the model's device).

    ``zero``: the word embeddings of the cut tokens are zeroed and the cut positions get
    attention mask 0, as Shen et al. erase them (position and segment embeddings are still
    added inside the model, so ``inputs_embeds`` replaces only the word embeddings). ``mask``:
    the cut tokens become ``mask_id`` and keep their attention."""
    cut = cut.to(inputs["input_ids"].device)
    if cutoff.erase == "mask":
        return {**inputs, "input_ids": inputs["input_ids"].masked_fill(cut, mask_id)}
    keep = ~cut
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    out = {k: v for k, v in inputs.items() if k != "input_ids"}
    out["inputs_embeds"] = embeds * keep.unsqueeze(-1).to(embeds.dtype)
    out["attention_mask"] = inputs["attention_mask"] * keep.to(inputs["attention_mask"].dtype)
    return out


def corrupt_test_inputs(enc: Encoded, example_ids: Sequence[str], masking: Masking, vocab: MaskVocab,
                        seed: int) -> tuple[Encoded, dict[str, Any]]:
    """BERT-style corruption of every test input, as a strategy asked for
    (:meth:`harness.api.Strategy.test_time_corruption`).

    Example ``id`` is corrupted with a generator seeded by ``derive_seed(seed, "test-corruption",
    id)``: the same draw whatever the batch it lands in. Returns the corrupted copy of ``enc``
    and the record: the masking, the seed, the counts (tokens eligible, selected, turned into the
    mask token, replaced by another token, left unchanged) and, per example, the selected
    positions and the ids they now hold."""
    import torch

    ids_out: list[list[int]] = []
    per_example = []
    eligible = selected_n = masked_n = replaced_n = 0
    for ex_id, ids, special in zip(example_ids, enc.input_ids, enc.special):
        x = torch.tensor([ids], dtype=torch.long)
        sp = torch.tensor([special], dtype=torch.bool)
        gen = torch.Generator().manual_seed(derive_seed(seed, TEST_STREAM, str(ex_id)))
        out, selected = mask_tokens(x, sp, masking, vocab, gen)
        out, selected = out[0], selected[0]
        positions = selected.nonzero().flatten().tolist()
        eligible += int((~sp[0]).sum())
        selected_n += len(positions)
        masked_n += int((out[selected] == vocab.mask_id).sum())
        replaced_n += int(((out != x[0]) & selected & (out != vocab.mask_id)).sum())
        ids_out.append(out.tolist())
        per_example.append({"id": str(ex_id), "positions": positions, "ids": [int(out[p]) for p in positions]})
    record = {"masking": {"mask_prob": masking.prob, "mask_ratio": masking.mask_ratio,
                          "random_ratio": masking.random_ratio,
                          "keep_ratio": round(1.0 - masking.mask_ratio - masking.random_ratio, 12)},
              "seed": seed, "stream": f"derive_seed(seed, {TEST_STREAM!r}, example id)",
              "mask_id": vocab.mask_id, "examples": len(per_example), "tokens_eligible": eligible,
              "tokens_selected": selected_n, "tokens_masked": masked_n, "tokens_replaced": replaced_n,
              "tokens_unchanged": selected_n - masked_n - replaced_n, "per_example": per_example}
    return replace(enc, input_ids=ids_out), record
