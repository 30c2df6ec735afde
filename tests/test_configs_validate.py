"""Every experiment in configs/ passes `harness validate` as shipped.

A config that names a plugin, parameter or file that does not exist is a broken promise to a
user; this catches it when a plugin is renamed or a parameter changes. Configs that read
../shared/data skip (with the reason) where that data is absent; Hub model ids and sacrebleu
test sets need no network at validate time.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from harness.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"multi30k-opus-mt.yaml", "wmt14-opus-mt.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates(config):
    if "shared/data" in config.read_text(encoding="utf-8") and not SHARED_DATA.exists():
        pytest.skip(f"{config.name} reads ../shared/data, which is absent at {SHARED_DATA}")
    res = CliRunner().invoke(main, ["validate", str(config)])
    assert res.exit_code == 0, res.output
    assert f"{config}: OK" in res.output


def test_real_benchmark_configs_expand_to_greedy_and_beam():
    for name, bench in (("multi30k-opus-mt.yaml", "multi30k-test2016"), ("wmt14-opus-mt.yaml", "newstest2014")):
        config = CONFIGS[0].parent / name
        if name.startswith("multi30k") and not SHARED_DATA.exists():
            continue
        res = CliRunner().invoke(main, ["validate", str(config)])
        assert res.exit_code == 0, res.output
        assert "OK — 2 cells" in res.output
        assert f"  benchmarks: {bench}\n" in res.output
        assert "  decoders: greedy, beam4\n" in res.output
        assert "  metrics: bleu, chrf, chrf++, ter\n" in res.output
        assert "  models: opus-mt-en-de\n" in res.output


def test_validating_the_translation_configs_imports_no_torch():
    """`harness validate` must stay light: no torch, transformers or datasets for these configs."""
    names = ["wmt14-opus-mt.yaml"] + (["multi30k-opus-mt.yaml"] if SHARED_DATA.exists() else [])
    code = ("import sys; from harness.experiment.load import load_experiment\n"
            f"for p in {[str(CONFIGS[0].parent / n) for n in names]!r}: load_experiment(p)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
