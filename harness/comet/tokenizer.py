"""The encoder's tokenizer as COMET applies it, on the ``tokenizers`` library directly.

COMET tokenizes each segment with ``XLMRobertaTokenizerFast(text, truncation=True,
max_length=max_positions - 2)`` (``max_positions`` = ``max_position_embeddings - 2``): the
tokenizer.json's normalizer, pre-tokenizer, model and post-processor (``<s> text </s>``), cut on
the right. That is the backend ``tokenizers.Tokenizer`` with truncation set, which is what is used
here, so transformers' tokenizer classes (whose construction changed in transformers 5) are not
involved. An encoder directory with only ``sentencepiece.bpe.model`` is converted once by
transformers' own converter. Joint inputs are built as COMET's ``concat_sequences`` does (XLM-R's
``<s> a </s></s> b </s>``, truncated as a whole); :func:`joint` documents the exact rule.

Span texts are decoded as transformers' ``decode`` does (special tokens kept), with its
``clean_up_tokenization_spaces`` when the encoder's tokenizer_config.json asks for it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checkpoint import CometCheckpointError, EncoderFiles


@dataclass(frozen=True)
class Piece:
    """One tokenized segment: ids with <s> and </s>, and each id's character offsets."""

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]


def _clean_up(text: str) -> str:
    """transformers' ``clean_up_tokenization``: spaces before punctuation and English contractions go."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


class CometTokenizer:
    def __init__(self, files: EncoderFiles, max_positions: int):
        from tokenizers import Tokenizer

        if files.tokenizer_json is not None:
            tok = Tokenizer.from_file(str(files.tokenizer_json))
        else:  # only sentencepiece.bpe.model: transformers converts it (as XLMRobertaTokenizerFast would)
            from transformers import AutoTokenizer

            tok = Tokenizer.from_str(AutoTokenizer.from_pretrained(str(files.directory)).backend_tokenizer.to_str())
        tok.no_padding()
        # COMET: max_length = max_positions - 2, counting <s> and </s>
        tok.enable_truncation(max_length=max_positions - 2, strategy="longest_first", direction="right")
        self._tok = tok
        self.max_positions = max_positions
        ids = {k: tok.token_to_id(v) for k, v in files.special_tokens.items()}
        missing = [files.special_tokens[k] for k, v in ids.items() if v is None]
        if missing:
            raise CometCheckpointError(f"{files.directory}: the tokenizer has no {', '.join(missing)} token")
        self.cls_id, self.sep_id, self.pad_id = ids["cls"], ids["sep"], ids["pad"]
        self.clean_up = files.clean_up_tokenization_spaces

    def __call__(self, texts: Sequence[str]) -> list[Piece]:
        return [Piece(tuple(e.ids), tuple(e.offsets))
                for e in self._tok.encode_batch([str(t) for t in texts], add_special_tokens=True)]

    def decode(self, ids: Sequence[int]) -> str:
        text = self._tok.decode(list(ids), skip_special_tokens=False)
        return _clean_up(text) if self.clean_up else text

    def joint(self, segments: Sequence[Piece]) -> tuple[int, ...]:
        """COMET's joint input of several segments (mt first): ``<s> mt </s></s> src </s></s> ref
        </s>`` from each segment without its own <s>/</s>. When the segments' pieces add up to
        more than ``max_positions - (1 + 2 * n_segments)``, the whole is cut to its first
        ``max_positions`` ids (COMET's rule, which can cut the final </s>)."""
        # COMET drops pad ids first (a literal "<pad>" in a text is one) and then <s> and </s>
        inner = [[i for i in s.ids if i != self.pad_id][1:-1] for s in segments]
        body = list(inner[0])
        for s in inner[1:]:
            body += [self.sep_id, self.sep_id, *s]
        seq = (self.cls_id, *body, self.sep_id)
        if sum(len(s) for s in inner) > self.max_positions - (1 + 2 * len(segments)):
            seq = seq[:self.max_positions]
        return seq
