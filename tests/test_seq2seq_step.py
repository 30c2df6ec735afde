"""The harness's own Marian decoder step (harness.models.seq2seq_step): the tokens and scores of
transformers' forward for every search that reorders, drops and shares rows, chosen by kernels
auto only where its probe agrees, and recorded."""
from __future__ import annotations

import pytest
from decoding_models import SOURCES, build_gpt2_varied, build_marian_varied

from harness.decoding.search import BeamConfig, HFStepModel, beam_search, greedy_search, rules_from_model
from harness.engines.load import load_generation_model
from harness.models.seq2seq_step import MarianStep
from harness.models.spec import ModelSpec


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    return build_marian_varied(tmp_path_factory.mktemp("m") / "m", extra_words=6000)


SEARCHES = {
    "greedy": lambda m, p, r: greedy_search(m, p, r, batch_size=4),
    "beam": lambda m, p, r: beam_search(m, p, r, BeamConfig(num_beams=4, num_return_sequences=3), batch_size=3),
    "diverse": lambda m, p, r: beam_search(m, p, r, BeamConfig(num_beams=4, num_groups=2, diversity_strength=0.5,
                                                                   num_return_sequences=4), batch_size=3),
    "one-sentence diverse": lambda m, p, r: beam_search(m, p[:1], r, BeamConfig(num_beams=6, num_groups=3,
                                                                                    diversity_strength=0.5), batch_size=1),
}


@pytest.mark.parametrize("search", list(SEARCHES))
@pytest.mark.parametrize("model", [{"kernels": "default"}, {"dtype": "int8", "kernels": "default"}])
def test_own_step_gives_the_hypotheses_of_transformers_forward(marian, search, model):
    """Same modules, two ways of running a step: identical n-best tokens, scores within float
    rounding, for searches that drop finished rows, reorder beams every step and (diverse beam)
    interleave the rows of several sentences."""
    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu", **model))
    rules = rules_from_model(gm, max_new_tokens=16)
    prompts = gm.encode(SOURCES)
    theirs, ours = SEARCHES[search](HFStepModel(gm), prompts, rules), SEARCHES[search](MarianStep(gm), prompts, rules)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]
    assert max(abs(a.score - b.score) for n, m in zip(ours, theirs) for a, b in zip(n, m)) < 1e-4
    if search != "one-sentence diverse":  # (one sentence: all groups' rows belong to it)
        assert len({len(h.tokens) for n in theirs for h in n}) >= 3, "varied lengths: rows finish at different steps"


@pytest.mark.parametrize("search", ["greedy", "beam", "diverse"])
@pytest.mark.parametrize("model", [{"kernels": "default"}, {"dtype": "int8", "kernels": "default"}])
def test_long_outputs_over_padded_attention_widths_and_a_grown_cache_match_transformers(marian, search, model):
    """36 to 44 decoded tokens: self-attention runs over the cache's whole capacity while fewer
    positions are written (the rest masked), and the cache grows twice past its first CAPACITY_STEP;
    sources of 2..17 tokens, so some batches' encoder keys are padded to 16 and some are not. The
    same n-best tokens as transformers' forward, scores within float rounding."""
    from harness.models.seq2seq_step import CAPACITY_STEP, attention_width

    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu", **model))
    rules = rules_from_model(gm, max_new_tokens=44, min_new_tokens=36)
    prompts = gm.encode(SOURCES)
    assert {attention_width(len(p)) > len(p) for p in prompts} == {True, False}
    theirs, ours = SEARCHES[search](HFStepModel(gm), prompts, rules), SEARCHES[search](MarianStep(gm), prompts, rules)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]
    assert max(abs(a.score - b.score) for n, m in zip(ours, theirs) for a, b in zip(n, m)) < 1e-4
    assert max(len(h.tokens) for n in ours for h in n) > 2 * CAPACITY_STEP


def test_cache_positions_copied_into_at_once_may_hold_anything(marian, monkeypatch):
    """A fresh cache buffer zeroes positions `filled` onwards (attention reads them masked); the
    first `filled` are copied into at once, so they may hold anything. Filled with NaN, which any
    read before the copy would spread (0 x NaN), the hypotheses are unchanged; and the masked
    positions are read: NaN there changes them."""
    from harness.models.seq2seq_step import MarianSession

    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu", kernels="default"))
    rules = rules_from_model(gm, max_new_tokens=44, min_new_tokens=36)
    prompts = gm.encode(SOURCES)
    clean = SEARCHES["beam"](MarianStep(gm), prompts, rules)
    real = MarianSession._new_buffers

    def poisoned(where):
        def make(self, capacity, rows, filled):
            buffers = real(self, capacity, rows, filled)
            for k, v in buffers:
                for buf in (k, v):
                    buf[:, :, where(filled)] = float("nan")
            return buffers
        return make

    monkeypatch.setattr(MarianSession, "_new_buffers", poisoned(lambda filled: slice(None, filled)))
    assert [[(h.tokens, h.score) for h in n] for n in SEARCHES["beam"](MarianStep(gm), prompts, rules)] == \
        [[(h.tokens, h.score) for h in n] for n in clean]
    monkeypatch.setattr(MarianSession, "_new_buffers", poisoned(lambda filled: slice(filled, None)))
    assert [[(h.tokens, h.score) for h in n] for n in SEARCHES["beam"](MarianStep(gm), prompts, rules)] != \
        [[(h.tokens, h.score) for h in n] for n in clean]


@pytest.mark.parametrize("search", ["greedy", "beam", "diverse"])
@pytest.mark.parametrize("model,step", [({"kernels": "default"}, MarianStep),
                                        ({"dtype": "int8", "kernels": "default"}, MarianStep),
                                        ({"dtype": "int8", "kernels": "default"}, HFStepModel)],
                         ids=["float32-own-step", "int8-own-step", "int8-transformers-split-head"])
def test_logits_beyond_the_per_call_limit_run_in_row_blocks_into_one_reused_buffer(marian, search, model, step,
                                                                                   monkeypatch):
    """More rows x vocabulary than HEAD_CALL_BYTES (here 3 rows; 145 of a 58k vocabulary in real
    use): the head runs on blocks of rows copied into a buffer the session reuses step after step,
    in the harness's own step and in transformers' forward with a folded head (int8 folds it).
    The same n-best tokens as one call over all rows, the same scores (int8 rows are computed
    independently: bit for bit; float32 within rounding, the bias added per block)."""
    from harness.models import kernels

    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu", **model))
    rules = rules_from_model(gm, max_new_tokens=16)
    prompts = gm.encode(SOURCES)
    whole = SEARCHES[search](step(gm), prompts, rules)
    vocab = gm.model.config.vocab_size
    monkeypatch.setattr(kernels, "HEAD_CALL_BYTES", 3 * vocab * 4)
    real, buffers = kernels.BlockedHead.__call__, []

    def watched(self, x):
        out = real(self, x)
        if x.shape[0] > 3:
            buffers.append(out.untyped_storage().data_ptr())
        return out

    monkeypatch.setattr(kernels.BlockedHead, "__call__", watched)
    blocks = SEARCHES[search](step(gm), prompts, rules)
    assert [[h.tokens for h in n] for n in blocks] == [[h.tokens for h in n] for n in whole]
    gap = max(abs(a.score - b.score) for n, m in zip(blocks, whole) for a, b in zip(n, m))
    assert gap == 0.0 if model.get("dtype") == "int8" else gap < 1e-5
    assert len(buffers) > 2 * len(set(buffers)), "one buffer per session, reused at every step"


@pytest.mark.parametrize("search", ["beam", "diverse"])
def test_reordering_only_the_changed_cache_entries_is_bit_identical_to_a_full_reorder(marian, search, monkeypatch):
    """Beams of a sentence share their past: the in-place reorder copies a beam's new entries
    from the first position it and its source were fed different tokens. Same n-best tokens and
    the same float32 scores, bit for bit, as copying every row's whole cache; and it is taken."""
    from harness.models.seq2seq_step import MarianSession

    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu", kernels="default"))
    rules = rules_from_model(gm, max_new_tokens=16)
    prompts = gm.encode(SOURCES)
    real = MarianSession._select_in_place
    taken = []

    def counted(self, index):
        done = real(self, index)
        taken.append(done)
        return done

    monkeypatch.setattr(MarianSession, "_select_in_place", counted)
    ours = SEARCHES[search](MarianStep(gm), prompts, rules)
    monkeypatch.setattr(MarianSession, "_select_in_place", lambda self, index: False)
    full = SEARCHES[search](MarianStep(gm), prompts, rules)
    assert [[(h.tokens, h.score) for h in n] for n in ours] == [[(h.tokens, h.score) for h in n] for n in full]
    assert sum(taken) >= len(taken) // 2 > 0


def test_auto_decodes_marian_with_the_own_step_and_says_so(marian):
    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu"))
    assert isinstance(gm.step_model, MarianStep)
    record = gm.kernels.record()
    assert record["step"] == "harness" and 0 <= record["step_gap"] <= 1e-4
    plain = load_generation_model(ModelSpec(path=str(marian), device="cpu", kernels="default"))
    assert plain.step_model is None and plain.kernels.record()["step"] == "transformers"


def test_a_step_that_computes_another_model_is_refused_by_the_probe(marian, monkeypatch):
    """Were the own step wrong (here: its embeddings scaled twice), the probe would see it and
    decoding would run transformers' forward."""
    import harness.models.seq2seq_step as own

    real = own.MarianStep.__init__

    def wrong(self, gm):
        real(self, gm)
        self.embed_scale *= 2.0

    monkeypatch.setattr(own.MarianStep, "__init__", wrong)
    gm = load_generation_model(ModelSpec(path=str(marian), device="cpu"))
    assert gm.step_model is None
    assert gm.kernels.step == "transformers" and gm.kernels.step_reason.startswith("the harness's step differs by")


def test_other_families_keep_transformers_forward(tmp_path):
    gm = load_generation_model(ModelSpec(path=str(build_gpt2_varied(tmp_path / "g")), device="cpu",
                                         prompt_template="{source} ="))
    assert gm.step_model is None and gm.kernels.step_reason == "decoder-only: transformers' forward"
