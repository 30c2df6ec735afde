"""Reading a run directory back: metrics as a pandas DataFrame, predictions, manifest.

A damaged run directory (a truncated or hand-edited manifest.json, an empty or malformed
metrics.csv, cell predictions that no longer match the digest their cell.json records) is
refused with one :class:`DamagedRunError` line naming the file and saying how to repair it,
never read as if it were whole: a report over half a predictions file would print intervals
from fewer examples than the run scored."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .store import sha256_file

REQUIRED_COLUMNS = ("model", "benchmark", "strategy", "decoder", "seed", "metric", "value")
REPAIR = "run `harness run` with the same config and -o again to rewrite it"


class DamagedRunError(HarnessError):
    """A run directory's file that cannot be what the harness wrote."""


def read_predictions(path: Path, record: dict | None = None) -> list[dict]:
    """A cell's ``predictions.jsonl``, checked against its ``cell.json`` record (the sha256 it
    names, else its row count ``n``); :class:`DamagedRunError` naming the file and line otherwise."""
    want = (record or {}).get("predictions_sha256")
    if isinstance(want, str) and sha256_file(path) != want:
        raise DamagedRunError(f"{path}: does not match the sha256 its cell.json records (truncated or edited); "
                              f"its cell's scores, intervals and tests cannot be computed: {REPAIR} (the cell is "
                              "recomputed)")
    rows = []
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DamagedRunError(f"{path}:{i}: not a JSON line ({getattr(e, 'msg', e)}): truncated or damaged; "
                                      f"{REPAIR} (the cell is recomputed)") from None
            if not isinstance(row, dict):
                raise DamagedRunError(f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}; "
                                      f"{REPAIR}")
            rows.append(row)
    n = (record or {}).get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != len(rows):
        raise DamagedRunError(f"{path}: holds {len(rows)} rows but its cell.json records {n} (truncated); {REPAIR} "
                              "(the cell is recomputed)")
    return rows


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object file of a run directory, or one DamagedRunError line."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise DamagedRunError(f"{path}: cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise DamagedRunError(f"{path}: not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start}): damaged; "
                              f"{REPAIR}") from None
    except json.JSONDecodeError as e:
        raise DamagedRunError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}): truncated or "
                              f"damaged; {REPAIR}") from None
    except (ValueError, RecursionError) as e:
        raise DamagedRunError(f"{path}: not valid JSON ({type(e).__name__}); {REPAIR}") from None
    if not isinstance(data, dict):
        raise DamagedRunError(f"{path}: expected a JSON object ({what}), got a {type(data).__name__}; {REPAIR}")
    return data


@dataclass
class RunResults:
    outdir: Path
    manifest: dict[str, Any]
    metrics: Any  # pandas.DataFrame

    def predictions(self, cell_key: str) -> list[dict]:
        """Every example of one cell: id, source, reference, output (and nbest, probs where present).

        Checked against the cell's record (:func:`read_predictions`): a truncated file raises
        :class:`DamagedRunError` instead of yielding fewer rows."""
        celldir = self.outdir / "cells" / cell_key
        try:
            record = json.loads((celldir / "cell.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        return read_predictions(celldir / "predictions.jsonl", record if isinstance(record, dict) else None)

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.manifest.get("cells", [])

    def check_predictions(self) -> None:
        """Read every finished cell's predictions once, so that a damaged one is refused
        (:class:`DamagedRunError`) before a report is written, not halfway through it. Cells
        without a predictions file (failed ones, hand-made runs) are left to the report."""
        for cell in self.cells:
            key = cell.get("key") if isinstance(cell, dict) else None
            if cell.get("status") in ("done", "cached") and isinstance(key, str) and \
                    (self.outdir / "cells" / key / "predictions.jsonl").is_file():
                self.predictions(key)


def load_results(outdir: str | Path):
    """The metrics of a run directory as a pandas DataFrame (long format: one row per cell x metric)."""
    return load_run(outdir).metrics


def load_run(outdir: str | Path) -> RunResults:
    import pandas as pd

    outdir = Path(outdir)
    mpath, cpath = outdir / "manifest.json", outdir / "metrics.csv"
    if not outdir.is_dir():
        raise HarnessError(f"{outdir}: not a run directory ({'not found' if not outdir.exists() else 'not a directory'})"
                           f"; run `harness run CONFIG -o {outdir}` first")
    for p in (mpath, cpath):
        if not p.exists():
            raise HarnessError(f"{outdir}: not a run directory (no {p.name}); run `harness run CONFIG -o {outdir}` first")
        if not p.is_file():
            raise DamagedRunError(f"{p}: is not a regular file; {REPAIR}")
    manifest = read_json_object(mpath, "the run's manifest")
    if not isinstance(manifest.get("cells", []), list) or \
            not all(isinstance(c, dict) for c in manifest.get("cells", [])):
        raise DamagedRunError(f"{mpath}: 'cells' must be a list of objects (one per cell); {REPAIR}")
    try:
        metrics = pd.read_csv(cpath, keep_default_na=False, na_values=[""],
                              dtype={"signature": str, "decoder_params": str, "strategy_params": str,
                                     "benchmark_params": str, "decoder": str, "strategy": str, "model": str,
                                     "benchmark": str, "testset": str,
                                     # a hex cell key such as 9898349800e50592 would otherwise parse as a float
                                     "cell": str, "precision": str})
    except pd.errors.EmptyDataError:
        raise DamagedRunError(f"{cpath}: is empty (not even its header line); {REPAIR}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DamagedRunError(f"{cpath}: not a metrics table the harness wrote ({' '.join(str(e).split())}); "
                              f"{REPAIR}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in metrics.columns]
    if missing:
        raise DamagedRunError(f"{cpath}: has no column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (columns: "
                              f"{', '.join(map(str, metrics.columns[:12])) or 'none'}); {REPAIR}")
    values = pd.to_numeric(metrics["value"], errors="coerce")
    bad = metrics["value"].notna() & values.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DamagedRunError(f"{cpath}:{row + 2}: value {metrics['value'].iloc[row]!r} is not a number; {REPAIR}")
    metrics["value"] = values
    for col in ("signature", "decoder_params", "strategy_params", "benchmark_params", "testset"):
        if col in metrics:
            metrics[col] = metrics[col].fillna("")
    return RunResults(outdir, manifest, metrics)
