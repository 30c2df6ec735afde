"""Reading a run directory for the analysis: cells with their metric values, metric plugins,
predictions (read once each) and the on-disk cache of per-cell sentence statistics.

Non-goals: writing anything but the statistics cache; loading metrics.csv (see :mod:`harness.results`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import CACHE_DIR, LOWER_IS_BETTER, NO_DECODER, CellInfo, MetricInfo, finite, loads

def metric_infos(results, plugins=None) -> dict[str, MetricInfo]:
    """MetricInfo for every metric label of the run, from the resolved config and the plugins."""
    manifest = results.manifest
    resolved = (manifest.get("resolved") or {}).get("metrics") or []
    by_label = {m.get("label") or m.get("plugin"): m for m in resolved}
    df = results.metrics
    tasks = {}
    if len(df):
        for label, task in df[["metric", "task"]].drop_duplicates().itertuples(index=False):
            tasks[label] = task
    out = {}
    registry = None
    for label in list(dict.fromkeys(list(by_label) + list(tasks))):
        spec = by_label.get(label, {"plugin": label, "params": {}})
        plugin = spec.get("plugin") or label
        cls = None
        try:
            if registry is None:
                from ...plugins import default_plugins

                registry = plugins or default_plugins()
            cls = registry.get("metric", plugin)
        except Exception:  # noqa: BLE001 - a plugin missing here only costs the tests over examples
            cls = None
        task = tasks.get(label) or (getattr(cls, "task", None) if cls else None) or "translation"
        info = MetricInfo(label=label, plugin=plugin, task=task,
                          higher_is_better=plugin not in LOWER_IS_BETTER, params=spec.get("params") or {})
        if cls is not None:
            info.direction = cls.resolved_direction() if hasattr(cls, "resolved_direction") else (
                "higher" if cls.higher_is_better else "lower")
            info.higher_is_better = info.direction == "higher"
            info.target = getattr(cls, "target", None)
            info.display = getattr(cls, "title", "") or ""
            if info.display and label != plugin:  # one plugin under two labels (chrf, chrf++): tell them apart
                info.display = f"{info.display} ({label})"
            info.decimals = getattr(cls, "decimals", None)
            info.value_range = tuple(getattr(cls, "value_range", (None, None)) or (None, None))
            info.scope = getattr(cls, "scope", "outputs") or "outputs"
            info.signature_source = getattr(cls, "signature_source", "") or ""
            info.version = str(getattr(cls, "version", "1"))
            try:
                inst = cls(cls.Params.model_validate(spec.get("params") or {}))
                make = getattr(inst, "scorer", None)
                scorer = make() if callable(make) else None
                from sacrebleu.metrics.base import Metric as _SacreMetric

                if isinstance(scorer, _SacreMetric):
                    info.scorer = scorer
                from ...api import Metric

                # only a plugin that overrides the base method has per-example scores
                if getattr(cls, "example_scores", None) is not getattr(Metric, "example_scores", None):
                    info.example_scores = inst.example_scores
            except Exception:  # noqa: BLE001 - params from an older plugin version, etc.
                info.scorer = None
        if task == "classification":
            from ...stats.significance import CONFUSION_METRICS

            info.confusion = CONFUSION_METRICS.get(plugin) or CONFUSION_METRICS.get(label)
        out[label] = info
    return out


def read_cells(results) -> list[CellInfo]:
    """Every cell of the manifest (failed ones included) with its metric values and timings."""
    cells: dict[tuple, CellInfo] = {}
    order = []
    for c in results.manifest.get("cells", []):
        info = CellInfo(key=c.get("key", ""), model=str(c.get("model", "")), benchmark=str(c.get("benchmark", "")),
                        strategy=str(c.get("strategy", "")), decoder=str(c.get("decoder") or NO_DECODER),
                        seed=int(c.get("seed", 0) or 0), status=c.get("status", "done"), seconds=c.get("seconds"),
                        error=c.get("error"), traceback=c.get("traceback"))
        k = (info.key, info.model, info.benchmark, info.strategy, info.decoder, info.seed)
        cells[k] = info
        order.append(k)
    df = results.metrics
    for rec in df.to_dict("records"):
        k = (str(rec["cell"]), str(rec["model"]), str(rec["benchmark"]), str(rec["strategy"]),
             str(rec["decoder"]) if rec["decoder"] == rec["decoder"] else NO_DECODER, int(rec["seed"]))
        info = cells.get(k)
        if info is None:  # metrics.csv without a manifest entry (hand-made runs): still report it
            info = CellInfo(key=k[0], model=k[1], benchmark=k[2], strategy=k[3], decoder=k[4], seed=k[5], status="done")
            cells[k] = info
            order.append(k)
        info.task = rec.get("task")
        info.n = int(rec["n"]) if finite(rec.get("n")) else info.n
        info.values[str(rec["metric"])] = float(rec["value"])
        sig = rec.get("signature")
        if isinstance(sig, str) and sig:
            info.signatures[str(rec["metric"])] = sig
        prec = rec.get("precision")
        info.precision = prec if isinstance(prec, str) and prec else info.precision
        info.decoder_params = loads(rec.get("decoder_params"))
        info.strategy_params = loads(rec.get("strategy_params"))
    for k in order:
        info = cells[k]
        meta_path = results.outdir / "cells" / info.key / "cell.json"
        if info.key and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except ValueError:
                meta = {}
            t = (meta.get("timings") or {}).get("predict")
            info.predict_seconds = float(t) if finite(t) else None
            if info.status == "failed":
                info.traceback = info.traceback or meta.get("traceback")
                info.error = info.error or meta.get("error")
            if info.task is None:
                info.task = meta.get("task")
    return [cells[k] for k in dict.fromkeys(order)]


def finetune_records(outdir: str | Path, cells: list[CellInfo]) -> list[tuple[CellInfo, dict[str, Any]]]:
    """Each cell's fine-tuning record (``cells/<key>/finetune.json``) with its cell. Failed cells,
    and cells without a readable one (strategy ``none``, old runs, a corrupt file), are left out."""
    out = []
    for c in cells:
        if not c.key or c.status == "failed":
            continue
        try:
            rec = json.loads((Path(outdir) / "cells" / c.key / "finetune.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict):
            out.append((c, rec))
    return out


class Predictions:
    """Predictions of cells, read once each."""

    def __init__(self, results):
        self.results = results
        self._rows: dict[str, list[dict]] = {}

    def __call__(self, key: str) -> list[dict] | None:
        if key not in self._rows:
            try:
                self._rows[key] = self.results.predictions(key)
            except FileNotFoundError:  # no per-example rows (failed cells, hand-made runs): no intervals for it
                self._rows[key] = None
            # a truncated or edited file raises DamagedRunError: intervals from part of it would be wrong
        return self._rows[key]


class StatsCache:
    """Sentence statistics per (metric, references, outputs) on disk, so re-rendering is cheap."""

    def __init__(self, outdir: Path, enabled: bool):
        from ...store import linked_part

        self.dir = outdir / CACHE_DIR / "stats"
        # a cache reached through a link inside the run directory is neither read nor written
        self.enabled = enabled and linked_part(outdir, self.dir) is None
        self.hits = self.misses = 0

    def get(self, key: str):
        import numpy as np

        if not self.enabled:
            return None
        p = self.dir / f"{key}.npy"
        if p.exists():
            try:
                arr = np.load(p, allow_pickle=False)
                self.hits += 1
                return arr
            except (OSError, ValueError):
                return None
        return None

    def put(self, key: str, arr) -> None:
        import io

        import numpy as np

        from ...store import atomic_write_bytes

        self.misses += 1
        if not self.enabled:
            return
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        try:
            atomic_write_bytes(self.dir / f"{key}.npy", buf.getvalue())
        except OSError:  # a read-only run directory still gets its report
            self.enabled = False
