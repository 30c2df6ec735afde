"""``engine: ctranslate2``: greedy, beam and sample decoding by CTranslate2 (OpenNMT's C++ inference engine).

The Hugging Face checkpoint is converted once with ``ctranslate2.converters.TransformersConverter``
(float32 weights; the compute type is chosen when loading: ``compute_type`` float32, int8,
int8_float32, ... on CPU, float16/bfloat16/int8_float16 on CUDA) and cached under
``$HARNESS_CACHE/ctranslate2/<key>`` (default ``~/.cache/nlp-eval-harness``), keyed by the model's
content (:func:`harness.store.model_fingerprint`: a local directory by the digest of its files, a
Hub model by id and revision) and the CTranslate2 version, so an edited checkpoint is converted again
and an unchanged one never.

What maps to what (harness decoders -> ``Translator.translate_batch``):

- greedy: ``beam_size=1``; score = mean log-probability per token, EOS included (as harness greedy);
- beam: ``beam_size``, ``length_penalty``, ``num_hypotheses`` = num_return_sequences; score =
  sum log p / length ** length_penalty (as generate());
- sample: ``sampling_topk`` / ``sampling_topp`` / ``sampling_temperature``, ``num_hypotheses`` =
  num_samples, one sentence per call in input order from a translator seeded when the decode
  starts (CTranslate2 seeds a thread's generator once, when the thread starts): the same cell gives
  the same samples at any batch size, but a sentence's samples depend on the sentences before it
  (the transformers engine seeds each sentence by its id), and they are CTranslate2's draws, so
  other samples than the transformers engine's; scores are CTranslate2's (log-probabilities
  under the sampling distribution);
- generation rules: max/min_new_tokens -> max/min_decoding_length, EOS ids -> ``end_token``,
  ``bad_words_ids`` and ``suppress_tokens`` -> ``suppress_sequences``, ``no_repeat_ngram_size``,
  ``repetition_penalty``, a forced BOS -> ``target_prefix``. Settings CTranslate2 has no equivalent
  for (``begin_suppress_tokens``, ``exponential_decay_length_penalty``, ``min_length`` beyond
  min_new_tokens) are refused when the model is loaded.

Where outputs differ from the ``transformers`` engine (tests/test_engine_ct2.py pins the rest:
greedy and beam give the same tokens on tiny Marian models):

- at the length limit generate() forces EOS (``forced_eos_token_id``) into the last position; CTranslate2
  just stops, so a hypothesis cut by ``max_new_tokens`` ends with another token and beam search may
  rank such hypotheses differently;
- for OPUS-MT-shaped Marian models (``<pad>`` last) CTranslate2's converter drops the ``<pad>`` row
  (the decoder starts from a zero embedding instead), so log-probabilities are normalised over one
  token fewer: unless the model renormalises logits after banning <pad> (``renormalize_logits``, as
  OPUS-MT configs do) scores differ in the 3rd decimal and hypotheses that close can rank
  differently. Marian models with ``<pad>`` elsewhere (the ones this harness trains) keep every row
  and start from the start token's embedding, as transformers does
  (:mod:`harness.engines.ct2_conversion`, which also checks every conversion);
- beam search stops a sentence once ``num_beams`` hypotheses are finished, which is generate()'s
  ``early_stopping=True``: with it the 1-best is the same; with the default ``early_stopping=False``
  the harness searches on while a running beam could still win and sometimes finds a better
  hypothesis (never a worse one; measured: 1 of 12 tiny-model sentences at 5 beams);
- n-best tails (2nd, 3rd... hypothesis) can differ: which ending candidates may join the finished
  list is engine-specific.

``max_tokens`` becomes CTranslate2's token batching (``batch_type="tokens"``, budget / beams).
Non-goals: decoder-only models (CTranslate2's Generator), CUDA graphs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..decoding import BeamConfig, Finished, SampleConfig
from ..errors import HarnessError, ModelLoadError
from .ct2_conversion import cache_root, converted_dir, converted_vocabulary, load_tokenizer_for

__all__ = ["CT2Search", "cache_root", "converted_dir", "load_ct2_model"]


class _ModelFacts:
    """Stands in for the transformers model inside :class:`GenerationModel` (config + generation_config)."""

    def __init__(self, config, generation_config):
        self.config, self.generation_config = config, generation_config


def load_ct2_model(spec, *, seed: int = 0):
    import ctranslate2
    from transformers import GenerationConfig

    from ..models.hf import GenerationModel, load_config

    from . import ct2_device, ct2_layout_problem

    config = load_config(spec)
    problem = ct2_layout_problem(config.to_dict())
    if problem or spec.kind == "causal":
        raise ModelLoadError(f"model '{spec.path}': {problem or 'engine ctranslate2 runs encoder-decoder models only'}")
    try:
        gen = GenerationConfig.from_pretrained(spec.path, revision=spec.revision)
    except OSError:
        gen = GenerationConfig.from_model_config(config)
    device, index = ct2_device(spec.device)
    compute = spec.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "float32"
    supported = sorted(ctranslate2.get_supported_compute_types(device))
    if compute not in supported:
        raise ModelLoadError(f"model '{spec.path}': compute_type {compute} is not available on {device} here; "
                             f"allowed: {', '.join(supported)}")
    path = converted_dir(spec, seed)
    import torch

    def new_translator():
        return ctranslate2.Translator(str(path), device=device, device_index=index, compute_type=compute,
                                      intra_threads=torch.get_num_threads(), inter_threads=1)

    tokenizer = load_tokenizer_for(spec)
    gm = GenerationModel(spec, _ModelFacts(config, gen), tokenizer, device)
    gm.search_engine = CT2Search(gm, new_translator, path)
    gm.compute_type = compute
    return gm


class CT2Search:
    """The search interface the built-in decoders call (the names of :mod:`harness.decoding.core`:
    ``greedy_search``, ``beam_search``, ``sample_search`` and their configs, the same classes),
    run by a ``ctranslate2.Translator``."""

    BeamConfig = BeamConfig
    SampleConfig = SampleConfig

    def __init__(self, gm, new_translator, path: Path):
        self.gm, self.new_translator, self.path = gm, new_translator, path
        self.translator = new_translator()
        self.tokenizer = gm.tokenizer
        self.vocab: set[str] | None = None
        try:
            self.vocab = set(converted_vocabulary(path))
        except ModelLoadError:  # no vocabulary file: suppressed tokens are passed on unfiltered
            pass

    # -- rules -> translate_batch options

    def options(self, rules) -> dict[str, Any]:
        unsupported = []
        if rules.begin_suppress_tokens:
            unsupported.append(f"begin_suppress_tokens={list(rules.begin_suppress_tokens)}")
        if rules.exponential_decay_length_penalty is not None:
            unsupported.append(f"exponential_decay_length_penalty={rules.exponential_decay_length_penalty}")
        if rules.min_length > 1:  # prefix (decoder start) + generated: 1 is the start token alone
            unsupported.append(f"min_length={rules.min_length}")
        if unsupported:
            raise HarnessError(f"model '{self.gm.spec.path}': its generation_config sets {', '.join(unsupported)}, "
                               f"which engine ctranslate2 cannot apply; remove it or use engine: transformers")
        tok = self.tokenizer.convert_ids_to_tokens
        suppress = [list(w) for w in rules.bad_words_ids] + [[t] for t in rules.suppress_tokens]
        # tokens the converted vocabulary lacks (Marian's <pad>) can never be generated anyway; passing
        # them would suppress <unk> instead
        suppress = [tok(w) for w in suppress]
        if self.vocab is not None:
            suppress = [w for w in suppress if all(t in self.vocab for t in w)]
        opts: dict[str, Any] = {
            "max_decoding_length": rules.max_new_tokens,
            "min_decoding_length": rules.min_new_tokens,
            "end_token": tok(list(rules.eos_token_ids)),
            "return_end_token": True,
            "return_scores": True,
            "no_repeat_ngram_size": rules.no_repeat_ngram_size,
            "repetition_penalty": rules.repetition_penalty,
            "max_input_length": 0,  # the harness truncated the sources already (max_source_length)
        }
        if suppress:
            opts["suppress_sequences"] = suppress
        return opts

    def _sources(self, prompts) -> list[list[str]]:
        return [self.tokenizer.convert_ids_to_tokens(list(p)) for p in prompts]

    def _prefix(self, rules, n: int):
        if rules.forced_bos_token_id is None:
            return None
        return [[self.tokenizer.convert_ids_to_tokens(rules.forced_bos_token_id)]] * n

    def _ids(self, tokens: list[str]) -> list[int]:
        return [int(i) for i in self.tokenizer.convert_tokens_to_ids(tokens)]

    def _run(self, prompts, rules, batch_size: int, progress, rows: int, max_tokens: int | None = None,
             **kw) -> list[list[Finished]]:
        opts = self.options(rules) | kw
        if max_tokens:  # the harness's token budget (sentences x beams x input tokens) as CTranslate2's
            opts |= {"batch_type": "tokens"}
        sources, out = self._sources(prompts), []
        # CTranslate2 sorts each call's inputs by length and batches them itself; calls of a few
        # batches keep the progress display moving
        step = batch_size * 4
        for i in range(0, len(sources), step):
            chunk = sources[i:i + step]
            limit = max(max_tokens // rows, 1) if max_tokens else batch_size
            res = self.translator.translate_batch(chunk, self._prefix(rules, len(chunk)), max_batch_size=limit, **opts)
            out += [[Finished(self._ids(h), float(s)) for h, s in zip(r.hypotheses, r.scores)] for r in res]
            if progress is not None:
                progress(len(out), len(sources))
        return out

    def greedy_search(self, _model, prompts, rules, *, batch_size: int = 32, max_tokens: int | None = None,
                      progress=None) -> list[list[Finished]]:
        return self._run(prompts, rules, batch_size, progress, 1, max_tokens, beam_size=1)

    def beam_search(self, _model, prompts, rules, config: BeamConfig, *, batch_size: int = 16,
                    max_tokens: int | None = None, progress=None) -> list[list[Finished]]:
        if config.num_groups > 1 and config.diversity_strength != 0.0:
            raise HarnessError("engine ctranslate2 has no diverse beam search; it runs: beam, greedy, sample")
        # CTranslate2 stops a sentence once num_hypotheses hypotheses are finished, so it is asked for
        # num_beams of them (generate()'s early_stopping=True) and the list is cut afterwards
        out = self._run(prompts, rules, batch_size, progress, config.num_beams, max_tokens, beam_size=config.num_beams,
                        length_penalty=config.length_penalty, num_hypotheses=config.num_beams)
        return [hyps[:config.num_return_sequences] for hyps in out]

    def sample_search(self, _model, prompts, rules, config: SampleConfig, seeds, *, batch_size: int = 8,
                      max_tokens: int | None = None, progress=None) -> list[list[Finished]]:
        import ctranslate2

        if config.epsilon:
            raise HarnessError("engine ctranslate2 has no epsilon sampling; use top_k / top_p")
        opts = self.options(rules)
        kw = {"beam_size": 1, "num_hypotheses": config.num_samples,
              # temperature 0 is the argmax, as in the harness sampler; top_k 0 draws from the whole vocabulary
              "sampling_topk": 1 if config.temperature == 0 else config.top_k,
              "sampling_topp": config.top_p, "sampling_temperature": config.temperature or 1.0}
        sources, out = self._sources(prompts), []
        # CTranslate2 seeds a worker thread's generator when the thread starts (set_random_seed later has
        # no effect on it), so each call gets a fresh translator seeded from the first sentence's seed and
        # draws the sentences one by one in input order: the same cell gives the same samples at any batch
        # size, but, unlike the transformers engine, a sentence's samples depend on the sentences before it
        ctranslate2.set_random_seed(int(seeds[0]) % (2 ** 32) if len(seeds) else 0)
        translator = self.new_translator()
        for src in sources:
            (r,) = translator.translate_batch([src], self._prefix(rules, 1), **opts, **kw)
            out.append([Finished(self._ids(h), float(s)) for h, s in zip(r.hypotheses, r.scores)])
            if progress is not None:
                progress(len(out), len(sources))
        return out
