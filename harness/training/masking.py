"""BERT-style corruption of input tokens (Devlin et al. 2019, section 3.1): its parameters, the
vocabulary a masked or replaced token is drawn from, and the draw itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from ..errors import HarnessError
from ..params import Params


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


@dataclass(frozen=True)
class Masking:
    """What the loop needs to corrupt inputs (taken from :class:`MaskingParams`)."""

    prob: float
    mask_ratio: float
    random_ratio: float

    @classmethod
    def from_params(cls, p: MaskingParams) -> Masking:
        return cls(p.mask_prob, p.mask_ratio, p.random_ratio)



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
