"""Reading a run directory back: metrics as a pandas DataFrame, predictions, manifest."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .store import read_jsonl


@dataclass
class RunResults:
    outdir: Path
    manifest: dict[str, Any]
    metrics: Any  # pandas.DataFrame

    def predictions(self, cell_key: str) -> list[dict]:
        """Every example of one cell: id, source, reference, output (and nbest, probs where present)."""
        return read_jsonl(self.outdir / "cells" / cell_key / "predictions.jsonl")

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.manifest.get("cells", [])


def load_results(outdir: str | Path):
    """The metrics of a run directory as a pandas DataFrame (long format: one row per cell x metric)."""
    return load_run(outdir).metrics


def load_run(outdir: str | Path) -> RunResults:
    import pandas as pd

    outdir = Path(outdir)
    mpath, cpath = outdir / "manifest.json", outdir / "metrics.csv"
    for p in (mpath, cpath):
        if not p.exists():
            raise HarnessError(f"{outdir}: not a run directory (no {p.name}); run `harness run CONFIG -o {outdir}` first")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    metrics = pd.read_csv(cpath, keep_default_na=False, na_values=[""],
                          dtype={"signature": str, "decoder_params": str, "strategy_params": str,
                                 "benchmark_params": str, "decoder": str, "strategy": str, "model": str,
                                 "benchmark": str, "testset": str,
                                 # a hex cell key such as 9898349800e50592 would otherwise parse as a float
                                 "cell": str, "precision": str})
    for col in ("signature", "decoder_params", "strategy_params", "benchmark_params", "testset"):
        if col in metrics:
            metrics[col] = metrics[col].fillna("")
    return RunResults(outdir, manifest, metrics)
