"""Multi30k test_2016_flickr en->de from ../shared/data through parallel_text and the sacrebleu
metrics, with two trivial systems whose scores are known: copying the reference (BLEU 100) and
copying the English source (BLEU near 0, equal to sacrebleu's own API).

Skips with a reason when ../shared/data is absent (a fresh clone has none)."""
from __future__ import annotations

import textwrap

import pytest

from conftest import shared_data
from bench_helpers import load
from harness.plugins import default_plugins

pytestmark = pytest.mark.integration

FIRST_EN = "A man in an orange hat starring at something."
FIRST_DE = "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."


@pytest.fixture(scope="module")
def multi30k():
    return shared_data("multi30k")


def scores(outputs, examples):
    out = {}
    for name in ("bleu", "chrf", "ter"):
        cls = default_plugins().get("metric", name)
        out[name] = cls(cls.Params()).compute(outputs, examples)
    return out


def test_reads_the_test_set_with_limit(multi30k, tmp_path):
    data = load("parallel_text", tmp_path, source=str(multi30k / "test_2016_flickr.en"),
                reference=str(multi30k / "test_2016_flickr.de"), limit=100)
    assert len(data.test) == 100 and data.meta["test_lines"] == 1000
    assert (data.test[0].id, data.test[0].source, data.test[0].reference) == ("test-1", FIRST_EN, FIRST_DE)
    assert data.test[99].source == "A young boy in a soccer uniform crying into his palms."
    assert all(e.source.strip() and e.reference.strip() for e in data.test)


def test_trivial_systems_score_as_sacrebleu_says(multi30k, tmp_path):
    import sacrebleu

    data = load("parallel_text", tmp_path, source=str(multi30k / "test_2016_flickr.en"),
                reference=str(multi30k / "test_2016_flickr.de"), limit=100)
    refs = [e.reference for e in data.test]
    srcs = [e.source for e in data.test]

    perfect = scores(refs, data.test)
    assert perfect["bleu"].value == pytest.approx(100.0)
    assert perfect["chrf"].value == pytest.approx(100.0)
    assert perfect["ter"].value == 0.0

    copy = scores(srcs, data.test)
    assert copy["bleu"].value == sacrebleu.corpus_bleu(srcs, [refs]).score
    assert copy["chrf"].value == sacrebleu.corpus_chrf(srcs, [refs]).score
    assert copy["ter"].value == sacrebleu.corpus_ter(srcs, [refs]).score
    # the numbers themselves (sacrebleu 2.x, 13a): English is not German, but names and numbers overlap
    assert copy["bleu"].value == pytest.approx(0.1824, abs=1e-4)
    assert copy["chrf"].value == pytest.approx(16.0722, abs=1e-4)
    assert copy["ter"].value == pytest.approx(104.0179, abs=1e-4)
    assert copy["bleu"].signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_train_split_and_seeded_sample(multi30k, tmp_path):
    data = load("parallel_text", tmp_path, source=str(multi30k / "test_2016_flickr.en"),
                reference=str(multi30k / "test_2016_flickr.de"), limit=50, sample=True,
                train_source=str(multi30k / "train.en"), train_reference=str(multi30k / "train.de"), train_limit=500)
    assert len(data.test) == 50 and len(data.train) == 500
    ids = [int(e.id.split("-")[1]) for e in data.test]
    assert ids == sorted(ids) and max(ids) > 50


class _CopySource:
    """A test-only decoder plugin: the output is the source (needs no model computation)."""

    from harness.hookspecs import hookimpl

    @staticmethod
    @hookimpl
    def register_decoders(register):
        from harness.api import Decoder, Hypothesis

        class CopySource(Decoder):
            name = "copy_source"

            def decode(self, model, sources, ctx):
                return [[Hypothesis(text=s, score=0.0)] for s in sources]

        register(CopySource)


def test_runner_writes_the_same_bleu(multi30k, tmp_path, tiny_marian):
    """Through a whole run (config -> cells -> metrics.csv) the copy-source BLEU is unchanged."""
    import sacrebleu

    from harness.experiment.load import load_experiment
    from harness.plugins import PluginSet
    from harness.results import load_results
    from harness.run.runner import run_experiment

    (tmp_path / "model").symlink_to(tiny_marian, target_is_directory=True)
    (tmp_path / "exp.yaml").write_text(textwrap.dedent(f"""\
        name: multi30k-copy
        models: [{{path: ./model, label: tiny}}]
        benchmarks:
          - name: parallel_text
            label: multi30k
            params: {{source: {multi30k / 'test_2016_flickr.en'}, reference: {multi30k / 'test_2016_flickr.de'}, limit: 100}}
        decoders: [copy_source]
        metrics: [bleu]
        reporters: []
        """), encoding="utf-8")
    resolved = load_experiment(tmp_path / "exp.yaml", plugins=PluginSet(extra=[_CopySource]))
    run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    df = load_results(tmp_path / "out")
    (bleu,) = df[df.metric == "bleu"].value
    en = (multi30k / "test_2016_flickr.en").read_text(encoding="utf-8").split("\n")[:100]
    de = (multi30k / "test_2016_flickr.de").read_text(encoding="utf-8").split("\n")[:100]
    assert bleu == pytest.approx(sacrebleu.corpus_bleu(en, [de]).score, abs=1e-9)
