"""The ``sample`` decoder: the empirical frequencies of its draws match the model's (truncated,
tempered) next-token distribution, truncation never lets a disallowed token through, temperature
-> 0 is greedy, and each sentence's samples depend on the seed and its example id only (not on
batch size, batch order or its neighbours). Plus the generation rules and the run outputs.

Distributional tests run on a scripted step model whose next-token probabilities are written
out (the search talks to Hugging Face models through the same interface); chi-square tests use
fixed seeds, so they are deterministic: they pass or fail the same way every time.
"""
from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import pytest
from conftest import harness_cli
from decoding_models import SOURCES, build_gpt2_varied, build_marian_varied

from harness.api import CellContext
from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins

WORDS = ["<pad>", "</s>", "I", "am", "happy", "sad", "tired", "bored", "today", "now"]
ID = {w: i for i, w in enumerate(WORDS)}
PAD, EOS = ID["<pad>"], ID["</s>"]

FIRST = {"happy": 0.45, "sad": 0.25, "tired": 0.15, "bored": 0.1, "</s>": 0.05}
TABLE = {
    ("I", "am"): FIRST,
    **{("I", "am", w): {"today": 0.7, "now": 0.3} for w in ("happy", "sad", "tired", "bored")},
}


class Scripted:
    """A step model over a probability table: history (words) -> {next word: probability};
    unknown histories end the sentence."""

    def __init__(self, table):
        self.table = table

    def start(self, prompts):
        return _Session(self.table, prompts)


class _Session:
    def __init__(self, table, prompts):
        self.table = table
        self.prefixes = [list(p) for p in prompts]
        self.rows = [list(p) for p in prompts]

    def step(self, tokens):
        import torch

        if tokens is not None:
            for row, tok in zip(self.rows, tokens.tolist()):
                row.append(tok)
        logits = torch.full((len(self.rows), len(WORDS)), -math.inf)
        for i, row in enumerate(self.rows):
            for word, p in self.table.get(tuple(WORDS[t] for t in row), {"</s>": 1.0}).items():
                logits[i, ID[word]] = math.log(p)
        return logits

    def select(self, index, layout_unchanged):
        self.rows = [list(self.rows[i]) for i in index.tolist()]


def draws(n=4000, seed=0, prompts=None, **cfg):
    from harness.decoding import Rules, SampleConfig, sample_search, sentence_seed

    prompts = prompts or [[ID["I"], ID["am"]]]
    rules = Rules(eos_token_ids=(EOS,), pad_token_id=PAD, max_new_tokens=4)
    seeds = [sentence_seed(seed, str(i)) for i in range(len(prompts))]
    return sample_search(Scripted(TABLE), prompts, rules, SampleConfig(num_samples=n, **cfg), seeds)


def first_words(hyps) -> collections.Counter:
    return collections.Counter(WORDS[h.tokens[0]] for h in hyps)


def chi_square_p(counts: collections.Counter, probs: dict[str, float]) -> float:
    from scipy.stats import chisquare

    words = sorted(probs)
    n = sum(counts.values())
    assert set(counts) <= set(words), f"drew {set(counts) - set(words)}, which has probability 0"
    return chisquare([counts[w] for w in words], [n * probs[w] for w in words]).pvalue


def renormalised(probs: dict[str, float], keep) -> dict[str, float]:
    z = sum(p for w, p in probs.items() if w in keep)
    return {w: p / z for w, p in probs.items() if w in keep}


def test_frequencies_match_the_model_at_every_step():
    [hyps] = draws()
    assert len(hyps) == 4000
    assert chi_square_p(first_words(hyps), FIRST) > 0.01
    second = collections.Counter(WORDS[h.tokens[1]] for h in hyps if len(h.tokens) > 1)
    assert chi_square_p(second, {"today": 0.7, "now": 0.3}) > 0.01
    # and the test can fail: the same draws are far from a uniform first word
    assert chi_square_p(first_words(hyps), {w: 0.2 for w in FIRST}) < 1e-6


def test_temperature_sharpens_the_distribution_as_p_to_the_1_over_t():
    [hyps] = draws(temperature=0.5)
    assert chi_square_p(first_words(hyps), renormalised({w: p ** 2 for w, p in FIRST.items()}, FIRST)) > 0.01
    [hot] = draws(temperature=2.0)
    assert chi_square_p(first_words(hot), renormalised({w: p ** 0.5 for w, p in FIRST.items()}, FIRST)) > 0.01


@pytest.mark.parametrize("setting,allowed", [
    ({"top_k": 2}, {"happy", "sad"}),
    ({"top_k": 1}, {"happy"}),
    ({"top_p": 0.7}, {"happy", "sad"}),                 # 0.45 + 0.25 reaches 0.7
    ({"top_p": 0.71}, {"happy", "sad", "tired"}),
    ({"epsilon": 0.12}, {"happy", "sad", "tired"}),     # bored 0.1 and </s> 0.05 are below epsilon
    ({"epsilon": 0.9}, {"happy"}),                      # the most probable token always stays
    ({"top_k": 3, "top_p": 0.6, "epsilon": 0.02}, {"happy", "sad"}),
])
def test_truncation_never_draws_outside_the_allowed_set_and_renormalises(setting, allowed):
    [hyps] = draws(**setting)
    counts = first_words(hyps)
    assert set(counts) == allowed
    if len(allowed) > 1:
        assert chi_square_p(counts, renormalised(FIRST, allowed)) > 0.01


def test_the_inverse_cdf_never_lands_on_a_token_of_probability_zero():
    import torch

    from harness.decoding import draw

    inf = float("inf")
    scores = torch.tensor([[0.0, -inf, 1.0, -inf], [-inf, 2.0, -inf, -inf], [-inf, -inf, 0.0, 0.0]])
    for u, want in ((0.0, [0, 1, 2]), (0.5, [2, 1, 3]), (1 - 2 ** -53, [2, 1, 3])):  # u < 1 at the top end
        assert draw(scores, torch.full((3,), u, dtype=torch.float64)).tolist() == want


def test_temperature_zero_is_argmax_on_the_scripted_model():
    [hyps] = draws(n=5, temperature=0.0)
    assert all(WORDS[h.tokens[0]] == "happy" and WORDS[h.tokens[1]] == "today" for h in hyps)
    assert hyps[0].score == pytest.approx((math.log(0.45) + math.log(0.7) + 0) / 3)


def test_scores_are_mean_log_probabilities_under_the_model():
    [hyps] = draws(n=50, temperature=3.0, top_k=3)
    for h in hyps:
        path = [WORDS[t] for t in h.tokens]
        lp = [math.log(FIRST[path[0]])]
        if path[0] != "</s>":
            lp += [math.log({"today": 0.7, "now": 0.3}[path[1]]), 0.0]  # then </s> with probability 1
        assert h.score == pytest.approx(sum(lp) / len(lp), abs=1e-6)


def test_a_sentence_draws_the_same_whoever_shares_its_batch():
    from harness.decoding import Rules, SampleConfig, sample_search, sentence_seed

    rules = Rules(eos_token_ids=(EOS,), pad_token_id=PAD, max_new_tokens=4)
    prompts = [[ID["I"], ID["am"]], [ID["I"]], [ID["I"], ID["am"]], [ID["am"]]]
    seeds = [sentence_seed(7, f"ex{i}") for i in range(4)]
    cfg = SampleConfig(num_samples=20)
    together = sample_search(Scripted(TABLE), prompts, rules, cfg, seeds, batch_size=4)
    alone = [sample_search(Scripted(TABLE), [p], rules, cfg, [s])[0] for p, s in zip(prompts, seeds)]
    backwards = sample_search(Scripted(TABLE), prompts[::-1], rules, cfg, seeds[::-1], batch_size=3)[::-1]
    tokens = lambda out: [[h.tokens for h in hyps] for hyps in out]  # noqa: E731
    assert tokens(together) == tokens(alone) == tokens(backwards)
    # same prompt, other example id: other draws (20 draws over 5 first words cannot all agree by chance)
    assert tokens(together)[0] != tokens(together)[2]


# ----------------------------------------------------------------------------- on Hugging Face models

MAX_NEW = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import transformers

    transformers.logging.set_verbosity_error()
    marian = build_marian_varied(tmp_path_factory.mktemp("varied-marian"))
    gpt2 = build_gpt2_varied(tmp_path_factory.mktemp("varied-gpt2"))
    return {"marian": load_generation_model(ModelSpec(path=str(marian), device="cpu")),
            "gpt2": load_generation_model(ModelSpec(path=str(gpt2), device="cpu", prompt_template="{source} ="))}


def decoder(name: str, **params):
    cls = default_plugins().get("decoder", name)
    return cls(cls.Params(**params))


def ctx(tmp_path, seed=0, ids=None, progress=None) -> CellContext:
    kw = {"progress": progress} if progress else {}
    return CellContext(seed=seed, workdir=tmp_path, cache_dir=tmp_path, example_ids=ids, **kw)


def tokens(out):
    return [[h.tokens for h in hyps] for hyps in out]


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_batched_equals_one_at_a_time_and_any_order(models, kind, tmp_path):
    gm = models[kind]
    ids = [f"s{i}" for i in range(len(SOURCES))]
    params = {"num_samples": 3, "max_new_tokens": MAX_NEW, "order": "drawn"}
    batched = decoder("sample", batch_size=5, **params).decode(gm, SOURCES, ctx(tmp_path, ids=ids))
    single = [decoder("sample", batch_size=1, **params).decode(gm, [s], ctx(tmp_path, ids=[i]))[0]
              for s, i in zip(SOURCES, ids)]
    shuffled = decoder("sample", batch_size=4, **params).decode(gm, SOURCES[::-1], ctx(tmp_path, ids=ids[::-1]))[::-1]
    assert tokens(batched) == tokens(single) == tokens(shuffled)
    lengths = {len(h.tokens) for hyps in batched for h in hyps}
    assert len(lengths) >= 4, f"test model too degenerate: lengths {lengths}"


def test_the_seed_and_the_example_id_decide_the_samples(models, tmp_path):
    gm = models["marian"]
    dec = decoder("sample", num_samples=4, max_new_tokens=MAX_NEW)
    a = tokens(dec.decode(gm, SOURCES, ctx(tmp_path, seed=0)))
    assert a == tokens(dec.decode(gm, SOURCES, ctx(tmp_path, seed=0)))
    assert a != tokens(dec.decode(gm, SOURCES, ctx(tmp_path, seed=1)))
    # without ids the positions are the ids; explicit ids "0".."n-1" give the same samples
    assert a == tokens(dec.decode(gm, SOURCES, ctx(tmp_path, ids=[str(i) for i in range(len(SOURCES))])))


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_temperature_towards_zero_is_greedy(models, kind, tmp_path):
    gm = models[kind]
    greedy = decoder("greedy", max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    zero = decoder("sample", temperature=0.0, num_samples=2, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    cold = decoder("sample", temperature=1e-6, num_samples=2, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    want = [[g[0].tokens] * 2 for g in greedy]
    assert tokens(zero) == want and tokens(cold) == want
    for g, z in zip(greedy, zero):  # the same score too: mean log-probability per token
        assert z[0].score == pytest.approx(g[0].score, abs=1e-5)


def test_n_best_is_ordered_by_score_or_kept_in_draw_order(models, tmp_path):
    gm = models["marian"]
    by_score = decoder("sample", num_samples=6, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    drawn = decoder("sample", num_samples=6, max_new_tokens=MAX_NEW, order="drawn").decode(gm, SOURCES, ctx(tmp_path))
    for s, d in zip(by_score, drawn):
        assert [h.score for h in s] == sorted((h.score for h in s), reverse=True)
        assert sorted(h.tokens for h in s) == sorted(h.tokens for h in d)
        assert all(h.text == gm.decode_text(h.tokens) and 1 <= len(h.tokens) <= MAX_NEW for h in s)
    assert tokens(by_score) != tokens(drawn)


def test_generation_rules_hold_for_samples(models, tmp_path):
    gm = models["marian"]
    out = decoder("sample", num_samples=8, max_new_tokens=MAX_NEW, min_new_tokens=5, no_repeat_ngram_size=1,
                  temperature=1.5).decode(gm, SOURCES, ctx(tmp_path))
    for hyps in out:
        for h in hyps:
            assert len(h.tokens) >= 6 or len(h.tokens) == MAX_NEW  # EOS only from the 6th token on
            body = [t for t in h.tokens if t not in gm.eos_token_ids]
            assert len(body) == len(set(body)), "no_repeat_ngram_size=1 repeated a token"
            assert h.tokens[-1] in gm.eos_token_ids  # the model's forced_eos_token_id at max_new_tokens
    plain = decoder("sample", num_samples=8, max_new_tokens=MAX_NEW, temperature=1.5).decode(gm, SOURCES, ctx(tmp_path))
    assert any(len(h.tokens) < 6 for hyps in plain for h in hyps)  # the rule changed something


def test_progress_is_reported_per_sentence(models, tmp_path):
    calls = []
    decoder("sample", num_samples=2, max_new_tokens=MAX_NEW, batch_size=5).decode(
        models["gpt2"], SOURCES, ctx(tmp_path, progress=lambda done, total: calls.append((done, total))))
    assert calls == [(i, len(SOURCES)) for i in range(1, len(SOURCES) + 1)]


# ----------------------------------------------------------------------------- config and run outputs

CONFIG = """\
name: sampling
seeds: [0, 1]
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders:
  - name: sample
    params: PARAMS
metrics: [chrf, distinct_1]
reporters: []
"""


@pytest.fixture
def project(tmp_path, translation_files, models):
    (tmp_path / "model").symlink_to(Path(models["marian"].spec.path))
    return tmp_path


@pytest.mark.parametrize("params,expected", [
    ("{top_p: 0}", "exp.yaml:10: decoders[0].params.top_p: Input should be greater than 0 (got 0)"),
    ("{epsilon: 1.0}", "exp.yaml:10: decoders[0].params.epsilon: Input should be less than 1 (got 1.0)"),
    ("{order: best}", "decoders[0].params.order: Input should be 'score' or 'drawn'"),
])
def test_bad_sampling_parameters_are_config_errors(project, params, expected):
    (project / "exp.yaml").write_text(CONFIG.replace("PARAMS", params))
    res = harness_cli(project, "validate", "exp.yaml")
    assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_each_seed_is_its_own_cell_with_reproducible_samples(project):
    (project / "exp.yaml").write_text(CONFIG.replace("PARAMS", "{num_samples: 3, max_new_tokens: 10, order: drawn}"))
    res = harness_cli(project, "run", "exp.yaml", "-o", "out")
    assert res.returncode == 0, res.stderr
    preds = sorted((project / "out" / "predictions").iterdir())
    assert len(preds) == 2  # a non-deterministic decoder: one cell per seed
    rows = [[json.loads(line) for line in p.read_text().splitlines()] for p in preds]
    assert all(len(r["nbest"]) == 3 and r["output"] == r["nbest"][0]["text"] for rs in rows for r in rs)
    assert [r["nbest"] for r in rows[0]] != [r["nbest"] for r in rows[1]]
    # another batch size: the same samples (each example draws from its own stream)
    (project / "exp.yaml").write_text(CONFIG.replace("PARAMS", "{num_samples: 3, max_new_tokens: 10, order: drawn, "
                                                               "batch_size: 1}"))
    res = harness_cli(project, "run", "exp.yaml", "-o", "out2")
    assert res.returncode == 0, res.stderr
    again = [[json.loads(line) for line in p.read_text().splitlines()]
             for p in sorted((project / "out2" / "predictions").iterdir())]
    # texts, not scores: the padding of another batch size moves log-probabilities in the last digits
    key = lambda rs: sorted(json.dumps([h["text"] for h in r["nbest"]]) for r in rs)  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, rows))
