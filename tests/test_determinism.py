"""Same config and seeds → byte-identical predictions and metrics.csv, however the run happened:
in one go, again in a fresh directory, one seed alone, or resumed after losing cells.
(manifest.json holds timings and dates, so it is not compared.)

The model is built with ``init: random`` so that the seed really changes the predictions: a
test where every seed gave the same output could not catch seeds leaking between cells.
"""
from __future__ import annotations

import shutil

import pytest

from harness.experiment.load import load_experiment
from harness.run.runner import run_experiment

CONFIG = """\
name: determinism
seeds: [0, 1]
models: [{path: ./model, label: rnd, init: random}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: 8}}
reporters: []
"""


def outputs(outdir):
    files = {"metrics.csv": (outdir / "metrics.csv").read_bytes()}
    files |= {f"predictions/{p.name}": p.read_bytes() for p in sorted((outdir / "predictions").iterdir())}
    return files


@pytest.fixture
def cfg(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return path


def run(cfg, out, *overrides):
    summary = run_experiment(load_experiment(cfg, list(overrides)), cfg.parent / out, cache_dir=cfg.parent / "cache",
                             quiet=True)
    assert not summary.failed
    return summary


def test_same_config_gives_identical_bytes_fresh_alone_and_resumed(cfg):
    first = run(cfg, "a")
    a = outputs(cfg.parent / "a")
    assert len(a) == 1 + 2
    # the seed matters here (random init), so equal outputs below are not a coincidence
    assert a["predictions/rnd__toy__none__greedy__0.jsonl"] != a["predictions/rnd__toy__none__greedy__1.jsonl"]

    run(cfg, "b")
    assert outputs(cfg.parent / "b") == a

    # seed 1 alone (no seed-0 model loaded before it in this worker) gives the same bytes
    run(cfg, "c", "seeds=[1]")
    c = outputs(cfg.parent / "c")
    for name in c:
        if name.startswith("predictions/"):
            assert c[name] == a[name]

    # lose seed 0's cell and resume: seed 0 runs after nothing, seed 1 is reused; identical again
    shutil.rmtree(cfg.parent / "a" / "cells" / first.outcomes[0].key)
    again = run(cfg, "a")
    assert [o.status for o in again.outcomes] == ["done", "cached"]
    assert outputs(cfg.parent / "a") == a


# ----------------------------------------------------------------------------- threads and training

# The quickstart's translator (d=128, 400 words: big enough for torch to split its sums across
# threads) trained briefly from scratch; at 1 and 2 threads torch's sums give other bits
# (docs/threads.md), and over 1,760 steps BLEU 95.85 became 85.95.
TRAINING = """\
name: threads
models: [{path: MODEL, label: numbers-marian, init: random, device: cpu}]
benchmarks:
  - name: numbers
    label: numbers-de-en
    params: {source_lang: de, target_lang: en, max_number: 999, train_size: 160, dev_size: 0, test_size: 20}
strategies:
  - {name: input_mask, params: {learning_rate: 5.0e-4, batch_size: 16, max_steps: 12, mask_prob: 0.15,
                                max_length: 32, group_by_length: false}}
decoders: [{name: greedy, params: {max_new_tokens: 24}}]
metrics: [chrf]
reporters: [html, markdown]
"""


@pytest.fixture
def training_cfg(tmp_path):
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "configs" / "models" / "numbers-marian"
    path = tmp_path / "train.yaml"
    path.write_text(TRAINING.replace("MODEL", str(model)))
    return path


def _trained(outdir):
    """The checkpoint a run's one cell trained (weights file bytes) and its finetune.json."""
    import json
    from pathlib import Path

    rec = json.loads(next((outdir / "cells").glob("*/finetune.json")).read_text())
    return (Path(rec["checkpoint"]) / "model.safetensors").read_bytes(), rec


def test_a_seed_trains_the_same_checkpoint_at_any_thread_count(training_cfg):
    """--threads (or the machine's cores) sets how decoding runs; training runs at training_threads
    (default 1) whatever it is, so 1 and 2 threads give one checkpoint, and the same predictions."""
    import torch

    before = torch.get_num_threads()
    out = {}
    try:
        for n in (1, 2):
            summary = run_experiment(load_experiment(training_cfg), training_cfg.parent / f"t{n}",
                                     cache_dir=training_cfg.parent / f"cache{n}", quiet=True, threads=n)
            assert not summary.failed, summary.failed[0].error
            out[n] = _trained(training_cfg.parent / f"t{n}")
    finally:
        torch.set_num_threads(before)  # (the in-process runner leaves the cells' count set)
    assert out[1][0] == out[2][0]  # the weights, bit for bit
    assert out[1][1]["torch_threads"] == out[2][1]["torch_threads"] == 1
    assert outputs(training_cfg.parent / "t1") == outputs(training_cfg.parent / "t2")


def test_another_training_thread_count_is_another_checkpoint_and_the_report_says_so(training_cfg):
    import json

    runs = {}
    for n in (1, 2):
        resolved = load_experiment(training_cfg, [f"training_threads={n}"])
        summary = run_experiment(resolved, training_cfg.parent / f"t{n}", cache_dir=training_cfg.parent / "cache",
                                 quiet=True, threads=1)
        assert not summary.failed, summary.failed[0].error
        runs[n] = summary
    one, two = _trained(training_cfg.parent / "t1"), _trained(training_cfg.parent / "t2")
    # one cache: the 2-thread checkpoint is not the 1-thread one reused, and neither are the cells
    assert one[1]["key"] != two[1]["key"] and two[1]["torch_threads"] == 2 and not two[1]["cache_hit"]
    assert runs[1].outcomes[0].key != runs[2].outcomes[0].key
    manifest = json.loads((training_cfg.parent / "t2" / "manifest.json").read_text())
    assert manifest["threads"]["training"] == 2 and manifest["threads"]["training_source"] == "config training_threads:"
    page = (training_cfg.parent / "t2" / "report.html").read_text()
    assert '<th class="num">Threads</th></tr>' in page and '<td class="num" data-v="2.0">2</td></tr>' in page
    assert "part of the checkpoint&#39;s key" in page
    section = (training_cfg.parent / "t2" / "report.md").read_text().split("## Training", 1)[1]
    table = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert table[0].rstrip(" |").endswith("Threads") and table[2].rstrip(" |").endswith(" 2")
