"""OUTDIR/outputs/: every cell's outputs as plain text that sacrebleu reads directly."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from harness.testing import REFERENCES, SOURCES, run_config, write_translation_files


def sacrebleu_cli(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "sacrebleu", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return re.findall(r"-?\d+(?:\.\d+)?", out.stdout)


def test_sacrebleu_on_the_exported_files_gives_the_runs_scores(tmp_path, tiny_marian):
    src, ref = write_translation_files(tmp_path / "data")
    ref2 = tmp_path / "data" / "test2.de"
    ref2.write_text("".join(r.replace("die", "eine") + "\n" for r in REFERENCES), encoding="utf-8")
    config = {"name": "exp", "models": [{"path": str(tiny_marian), "label": "tiny"}],
              "benchmarks": [{"name": "parallel_text", "label": "toy",
                              "params": {"source": str(src), "references": [str(ref), str(ref2)]}},
                             {"name": "parallel_text", "label": "one-ref",
                              "params": {"source": str(src), "reference": str(ref)}}],
              "decoders": ["greedy", {"name": "beam", "params": {"num_beams": 2}}], "metrics": ["bleu", "chrf"]}
    res = run_config(config, tmp_path / "out")
    out = tmp_path / "out" / "outputs"
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert index["benchmarks"]["toy"]["references"] == [{"file": "toy.ref.1.txt", "segments_with_line_breaks": 0},
                                                        {"file": "toy.ref.2.txt", "segments_with_line_breaks": 0}]
    assert index["benchmarks"]["one-ref"]["references"][0]["file"] == "one-ref.ref.txt"
    assert (out / "toy.ref.1.txt").read_bytes() == ref.read_bytes()
    assert (out / "toy.ref.2.txt").read_bytes() == ref2.read_bytes()
    assert (out / "toy.src.txt").read_text(encoding="utf-8").splitlines() == SOURCES
    assert len(index["cells"]) == 4
    readme = (out / "README.md").read_text(encoding="utf-8")
    metrics = res.metrics.set_index(["cell", "metric"])["value"]
    for cell in index["cells"]:
        hyp = out / cell["file"]
        assert cell["file"] in readme
        predictions = res.predictions(cell["key"])
        assert hyp.read_text(encoding="utf-8").splitlines() == [r["output"] for r in predictions]
        refs = [str(out / r["file"]) for r in index["benchmarks"][cell["benchmark"]]["references"]]
        bleu, chrf = sacrebleu_cli(*refs, "-i", str(hyp), "-m", "bleu", "chrf", "-b", "-w", "4")
        assert bleu == f"{metrics[(cell['key'], 'bleu')]:.4f}" and chrf == f"{metrics[(cell['key'], 'chrf')]:.4f}"
    assert {c["file"] for c in index["cells"]} == {"toy.hyp.tiny__none__greedy__0.txt",
                                                   "toy.hyp.tiny__none__beam__0.txt",
                                                   "one-ref.hyp.tiny__none__greedy__0.txt",
                                                   "one-ref.hyp.tiny__none__beam__0.txt"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert "outputs/toy.hyp.tiny__none__greedy__0.txt" in manifest["outputs"]
    # a cell that leaves the grid takes its file with it, as predictions/ does
    from harness.experiment.load import load_experiment_dict
    from harness.run.runner import run_experiment

    run_experiment(load_experiment_dict({**config, "decoders": ["greedy"]}), tmp_path / "out", quiet=True,
                   overwrite=True, cache_dir=tmp_path / "cache")
    assert not (out / "toy.hyp.tiny__none__beam__0.txt").exists() and (out / "toy.hyp.tiny__none__greedy__0.txt").exists()
