"""The search core driven by scripted models whose next-token probabilities are written out,
so every kept beam and every score can be checked by hand (docs/beam_search.md walks through
the first example). The scripted model goes through the same start/step/select interface as
Hugging Face models do in production.
"""
from __future__ import annotations

import math

import pytest

from harness.decoding import BeamConfig, Rules, beam_search, greedy_search

WORDS = ["<pad>", "</s>", "I", "am", "happy", "sad", "tired", "today", "now", "later", "you", "are", "very"]
ID = {w: i for i, w in enumerate(WORDS)}
PAD, EOS = ID["<pad>"], ID["</s>"]

# The study note's example, with its numbers: after "I am": happy 0.5 / sad 0.3 / tired 0.2;
# then each kept continuation; then the sentence ends.
STUDY_NOTE = {
    ("I", "am"): {"happy": 0.5, "sad": 0.3, "tired": 0.2},
    ("I", "am", "happy"): {"today": 0.6, "now": 0.4},  # 0.30 and 0.20 in total: the two kept
    ("I", "am", "sad"): {"today": 0.5, "now": 0.5},    # 0.15 each: a tie just below the cut, both lost
}
# A variant for three beams: no tie at the cut (sad now 0.3, later 0.2), and "tired" can be expanded.
THREE_BEAMS = {
    ("I", "am"): {"happy": 0.5, "sad": 0.3, "tired": 0.2},
    ("I", "am", "happy"): {"today": 0.6, "now": 0.4},              # 0.30, 0.20
    ("I", "am", "sad"): {"today": 0.5, "now": 0.3, "later": 0.2},  # 0.15, 0.09, 0.06
    ("I", "am", "tired"): {"today": 0.5, "now": 0.5},              # 0.10 each
}


class ScriptedModel:
    """A StepModel over a probability table: history (words) -> {next word: probability}.
    Histories missing from the table end the sentence (EOS with probability 1). Every
    step's rows are logged as word tuples, so tests see exactly what the search expanded."""

    def __init__(self, table):
        self.table = table
        self.log: list[list[tuple[str, ...]]] = []

    def start(self, prompts):
        return ScriptedSession(self, prompts)


class ScriptedSession:
    def __init__(self, model: ScriptedModel, prompts):
        self.model = model
        self.prefixes = [list(p) for p in prompts]
        self.rows = [list(p) for p in prompts]
        self.sentence = list(range(len(prompts)))  # which sentence each row belongs to

    def step(self, tokens):
        import torch

        if tokens is not None:
            for row, tok in zip(self.rows, tokens.tolist()):
                row.append(tok)
        histories = [tuple(WORDS[t] for t in row) for row in self.rows]
        self.model.log.append(histories)
        logits = torch.full((len(self.rows), len(WORDS)), -math.inf)
        for i, h in enumerate(histories):
            for word, p in self.model.table.get(h, {"</s>": 1.0}).items():
                logits[i, ID[word]] = math.log(p)
        return logits

    def select(self, index, layout_unchanged):
        sentence = [self.sentence[i] for i in index.tolist()]
        if layout_unchanged:  # the search promises that every row position keeps its sentence
            assert sentence == self.sentence
        self.rows = [list(self.rows[i]) for i in index.tolist()]
        self.sentence = sentence


def ids(*words):
    return [ID[w] for w in words]


def words(tokens):
    return " ".join(WORDS[t] for t in tokens)


RULES = Rules(eos_token_ids=(EOS,), pad_token_id=PAD, max_new_tokens=6)


def test_study_note_example_keeps_top_b_of_the_b_times_v_expansion():
    model = ScriptedModel(STUDY_NOTE)
    [nbest] = beam_search(model, [ids("I", "am")], RULES, BeamConfig(num_beams=2, num_return_sequences=2))
    # step 1 scores "I am"; of happy/sad/tired the two best (happy 0.5, sad 0.3) are kept
    assert model.log[0] == [("I", "am")]
    assert model.log[1] == [("I", "am", "happy"), ("I", "am", "sad")]
    # step 2 expands both beams (2 x V candidates): happy today 0.30, happy now 0.20 beat
    # sad today and sad now (0.15 each, tied just below the cut); both kept beams continue
    # from "happy", and neither tied candidate is ever expanded
    assert model.log[2] == [("I", "am", "happy", "today"), ("I", "am", "happy", "now")]
    assert len(model.log) == 3  # both end at step 3: nothing else is ever computed
    assert [words(h.tokens) for h in nbest] == ["happy today </s>", "happy now </s>"]
    # score = sum of log-probabilities / generated length (3 tokens with </s>) ** length_penalty (1.0)
    assert nbest[0].score == pytest.approx(math.log(0.5 * 0.6) / 3)
    assert nbest[1].score == pytest.approx(math.log(0.5 * 0.4) / 3)


def test_three_beams_and_length_penalty_on_a_variant_of_the_example():
    model = ScriptedModel(THREE_BEAMS)
    [nbest] = beam_search(model, [ids("I", "am")], RULES,
                          BeamConfig(num_beams=3, num_return_sequences=3, length_penalty=2.0))
    assert model.log[1] == [("I", "am", "happy"), ("I", "am", "sad"), ("I", "am", "tired")]
    # top 3 of 3 x V: 0.30, 0.20, then sad today 0.15 (tired today/now are 0.10)
    assert model.log[2] == [("I", "am", "happy", "today"), ("I", "am", "happy", "now"), ("I", "am", "sad", "today")]
    assert [words(h.tokens) for h in nbest] == ["happy today </s>", "happy now </s>", "sad today </s>"]
    assert [h.score for h in nbest] == pytest.approx([math.log(p) / 3 ** 2 for p in (0.30, 0.20, 0.15)])


def test_greedy_on_the_study_note_example():
    model = ScriptedModel(STUDY_NOTE)
    [[hyp]] = greedy_search(model, [ids("I", "am")], RULES)
    assert words(hyp.tokens) == "happy today </s>"
    assert hyp.score == pytest.approx(math.log(0.5 * 0.6 * 1.0) / 3)  # mean log-probability per token


DIVERSE = {
    ("I", "am"): {"happy": 0.5, "sad": 0.3, "tired": 0.2},
    ("I", "am", "happy"): {"today": 0.6, "now": 0.4},
    ("I", "am", "sad"): {"today": 0.9, "now": 0.1},
    ("I", "am", "tired"): {"today": 0.5, "now": 0.5},
}
L = {k: {w: math.log(p) for w, p in v.items()} for k, v in DIVERSE.items()}


def test_diverse_beam_two_groups_of_one_by_hand():
    """B=2, G=2, lambda=1. Step 1: group 0 takes happy (log .5); group 1 sees happy at
    log .5 - 1 = -1.69 < sad log .3 = -1.20, so it takes sad. Step 2: group 0 takes happy->today
    (-1.20); group 1 is penalised 1 for today (group 0's choice) but sad->today
    (log .3 + log .9 - 1 = -2.31) still beats sad->now (log .3 + log .1 = -3.51): the penalty
    stays in its score, as in transformers 4.x. Step 3: both end."""
    model = ScriptedModel(DIVERSE)
    [nbest] = beam_search(model, [ids("I", "am")], RULES,
                          BeamConfig(num_beams=2, num_groups=2, diversity_strength=1.0, num_return_sequences=2))
    assert model.log[1] == [("I", "am", "happy"), ("I", "am", "sad")]
    assert model.log[2] == [("I", "am", "happy", "today"), ("I", "am", "sad", "today")]
    a = L[("I", "am")]["happy"] + L[("I", "am", "happy")]["today"]
    b = L[("I", "am")]["sad"] + L[("I", "am", "sad")]["today"] - 1.0
    assert [words(h.tokens) for h in nbest] == ["happy today </s>", "sad today </s>"]
    assert [h.score for h in nbest] == pytest.approx([a / 3, b / 3], rel=1e-6)
    # plain beam search finds the same two here, but without the penalty in the second score
    [plain] = beam_search(ScriptedModel(DIVERSE), [ids("I", "am")], RULES, BeamConfig(num_beams=2, num_return_sequences=2))
    assert [words(h.tokens) for h in plain] == ["happy today </s>", "sad today </s>"]
    assert plain[1].score == pytest.approx((b + 1.0) / 3, rel=1e-6)


def test_diverse_beam_counts_every_earlier_beam_that_chose_the_token():
    """B=4, G=2 (2 beams per group), lambda=0.5; expected values follow transformers 4.x
    group_beam_search + HammingDiversityLogitsProcessor (penalty = lambda x how many beams of
    earlier groups picked the token at this step, applied to log-probabilities before the
    other rules, kept in the beam scores) and BeamSearchScorer.finalize (all groups'
    hypotheses pooled and sorted by score)."""
    lam = 0.5
    model = ScriptedModel(DIVERSE)
    [nbest] = beam_search(model, [ids("I", "am")], RULES,
                          BeamConfig(num_beams=4, num_groups=2, diversity_strength=lam, num_return_sequences=4))
    s1 = L[("I", "am")]
    # step 1: group 0 keeps happy, sad; group 1: happy -0.5 -> -1.19, sad -0.5 -> -1.70, tired -1.61
    assert model.log[1] == [("I", "am", w) for w in ("happy", "sad", "happy", "tired")]
    g1_happy, g1_tired = s1["happy"] - lam, s1["tired"]
    # step 2: group 0 keeps happy today (-1.20) and sad today (-1.31): "today" chosen twice, so
    # group 1 pays 2 x 0.5 for it: happy now (-2.11) and tired now (-2.30) win
    assert model.log[2] == [("I", "am", "happy", "today"), ("I", "am", "sad", "today"),
                            ("I", "am", "happy", "now"), ("I", "am", "tired", "now")]
    expected = {
        "happy today </s>": s1["happy"] + L[("I", "am", "happy")]["today"],
        "sad today </s>": s1["sad"] + L[("I", "am", "sad")]["today"],
        "happy now </s>": g1_happy + L[("I", "am", "happy")]["now"],
        "tired now </s>": g1_tired + L[("I", "am", "tired")]["now"],
    }
    assert g1_happy + L[("I", "am", "happy")]["today"] - 2 * lam < expected["happy now </s>"]
    assert [words(h.tokens) for h in nbest] == list(expected)  # pooled over groups, best first
    assert [h.score for h in nbest] == pytest.approx([v / 3 for v in expected.values()], rel=1e-6)


def test_a_finished_group_counts_as_pad_tokens_for_later_groups():
    """4.x kept a finished group in the batch and fed its beams pad tokens, which the Hamming
    penalty of later groups counted. Group 0 ends after "happy </s>" (step 2); at step 3
    group 1 would take <pad> (0.6) but pays lambda=2 for it, so it takes "today" (0.4)."""
    table = {
        ("I", "am"): {"happy": 0.5, "sad": 0.3, "tired": 0.2},
        ("I", "am", "sad"): {"very": 1.0},
        ("I", "am", "sad", "very"): {"<pad>": 0.6, "today": 0.4},
    }
    model = ScriptedModel(table)
    [nbest] = beam_search(model, [ids("I", "am")], RULES,
                          BeamConfig(num_beams=2, num_groups=2, diversity_strength=2.0, num_return_sequences=2))
    # group 0 finished at step 2 and left the batch: only group 1's row is computed afterwards
    assert model.log[2] == [("I", "am", "sad", "very")]
    assert [words(h.tokens) for h in nbest] == ["happy </s>", "sad very today </s>"]
    assert nbest[1].score == pytest.approx(math.log(0.3 * 1.0 * 0.4) / 4)


def test_no_diversity_means_identical_groups():
    """Without a penalty both groups run the same search; on this example it keeps what beam
    search with their share of beams keeps (4.x's and v5's stopping rules agree here). Scores:
    4.x divides in double precision, v5 in float32."""
    [diverse] = beam_search(ScriptedModel(STUDY_NOTE), [ids("I", "am")], RULES,
                            BeamConfig(num_beams=4, num_groups=2, diversity_strength=0.0, num_return_sequences=4))
    [beam] = beam_search(ScriptedModel(STUDY_NOTE), [ids("I", "am")], RULES, BeamConfig(num_beams=2, num_return_sequences=2))
    assert [h.tokens for h in diverse] == [h.tokens for h in beam for _ in range(2)]
    assert [h.score for h in diverse] == pytest.approx([h.score for h in beam for _ in range(2)], rel=1e-6)


LATE_WINNER = {
    ("I", "am"): {"</s>": 0.4, "sad": 0.35, "happy": 0.25},
    ("I", "am", "sad"): {"</s>": 0.8, "now": 0.2},
    ("I", "am", "happy"): {"today": 0.6, "</s>": 0.4},
}


def test_a_group_stops_by_the_4x_rule_best_candidate_of_the_step():
    """Two beams per group. Step 1 finishes "</s>" (log .4 = -0.92). Step 2 finishes "sad </s>"
    ((log .35 + log .8) / 2 = -0.64): two finished, the worst -0.92. The best *running* beam,
    "happy today" ((log .25 + log .6) / 2 = -0.95), cannot beat -0.92 now, so transformers v5's
    rule (what `beam` follows) stops here. 4.x's rule reads the best *candidate* of the step,
    "sad </s>" (-0.64) itself, so the group goes on, and at step 3 "happy today </s>" scores
    (log .25 + log .6) / 3 = -0.632 and beats them all."""
    L2 = {k: {w: math.log(p) for w, p in v.items()} for k, v in LATE_WINNER.items()}
    sad_end = (L2[("I", "am")]["sad"] + L2[("I", "am", "sad")]["</s>"]) / 2
    happy_today_end = (L2[("I", "am")]["happy"] + L2[("I", "am", "happy")]["today"]) / 3
    [beam] = beam_search(ScriptedModel(LATE_WINNER), [ids("I", "am")], RULES, BeamConfig(num_beams=2, num_return_sequences=2))
    assert [words(h.tokens) for h in beam] == ["sad </s>", "</s>"]
    # without a penalty the two groups are the same search, each 4.x beam search with two beams
    [groups] = beam_search(ScriptedModel(LATE_WINNER), [ids("I", "am")], RULES,
                           BeamConfig(num_beams=4, num_groups=2, diversity_strength=0.0, num_return_sequences=4))
    assert [words(h.tokens) for h in groups] == ["happy today </s>"] * 2 + ["sad </s>"] * 2
    assert [h.score for h in groups] == pytest.approx([happy_today_end] * 2 + [sad_end] * 2, rel=1e-6)


TWO_SENTENCES = {
    ("you", "are"): {"happy": 1.0},                    # ends right after "happy"
    ("I", "am"): {"happy": 0.5, "sad": 0.3, "tired": 0.2},
    ("I", "am", "happy"): {"today": 0.6, "now": 0.4},
    ("I", "am", "happy", "today"): {"now": 0.7, "later": 0.3},
    ("I", "am", "happy", "now"): {"later": 1.0},
    ("I", "am", "happy", "today", "now"): {"later": 1.0},
    ("I", "am", "happy", "today", "later"): {"now": 1.0},
    ("I", "am", "sad"): {"today": 1.0},
    ("I", "am", "sad", "today"): {"now": 1.0},
    ("I", "am", "tired"): {"today": 1.0},
}


@pytest.mark.parametrize("search", ["greedy", "beam", "diverse_beam"])
def test_finished_sentences_leave_the_batch(search):
    model = ScriptedModel(TWO_SENTENCES)
    prompts = [ids("you", "are"), ids("I", "am")]
    if search == "greedy":
        out = greedy_search(model, prompts, RULES)
    else:
        config = BeamConfig(num_beams=2) if search == "beam" else BeamConfig(num_beams=2, num_groups=2, diversity_strength=0.5)
        out = beam_search(model, prompts, RULES, config)
    assert words(out[0][0].tokens) == "happy </s>"
    assert out[1][0].tokens[-1] == EOS
    # "you are happy </s>" is done after step 2: from step 3 on only "I am ..." rows are computed
    assert all(h[:2] == ("I", "am") for step in model.log[2:] for h in step)
    assert len(model.log) >= 4


def test_max_new_tokens_ends_every_hypothesis():
    loop = {("I", "am"): {"happy": 1.0}, **{("I", "am") + ("happy",) * k: {"happy": 1.0} for k in range(1, 10)}}
    rules = Rules(eos_token_ids=(EOS,), pad_token_id=PAD, max_new_tokens=3)
    [[g]] = greedy_search(ScriptedModel(loop), [ids("I", "am")], rules)
    [b] = beam_search(ScriptedModel(loop), [ids("I", "am")], rules, BeamConfig(num_beams=2))
    assert words(g.tokens) == words(b[0].tokens) == "happy happy happy"
