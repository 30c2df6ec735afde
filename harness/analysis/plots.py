"""The numbers behind each plot (drawn by ``harness_plugins.reporters._plots``), or nothing for
a plot whose data is absent. Non-goals: drawing.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from .model import METRIC_TITLES, BenchmarkReport, Config, finite

def _expected_utility(cfg: Config, dec_plugin: dict[str, str], preds) -> dict[str, Any]:
    """For an ``mbr`` configuration: the mean expected utility of its chosen outputs (their
    prediction scores) and the utility's name, so the diversity plot shows what MBR optimised
    next to the quality it reached; nothing for other decoders."""
    import numpy as np

    if preds is None or dec_plugin.get(cfg.decoder) != "mbr" or not cfg.cells:
        return {}
    vals = [r["score"] for c in cfg.cells for r in (preds(c.key) or [])
            if isinstance(r.get("score"), (int, float)) and finite(r["score"])]
    if not vals:
        return {}
    return {"expected_utility": float(np.mean(vals)), "utility": str((cfg.cells[0].decoder_params or {}).get("utility", "chrf"))}


def plot_data(br: BenchmarkReport, dec_plugin: dict[str, str], preds=None) -> dict[str, Any]:
    """The numbers behind each plot, or nothing for a plot whose data is absent. ``preds``
    (cell key -> prediction rows) adds MBR's expected utility to the diversity plot."""
    import numpy as np

    plots: dict[str, Any] = {}
    labels = [m.label for m in br.metrics]
    quality = [m for m in br.metrics if m.scorer is not None] or br.metrics[:1]
    if not quality:
        return plots
    primary = quality[0]

    def mean_of(cfg: Config, label: str) -> float | None:
        v = [c.values[label] for c in cfg.cells if finite(c.values.get(label))]
        return float(np.mean(v)) if v else None

    if br.task == "translation":
        # quality vs beam size: one line per decoder family (plugin + its other parameters)
        series: dict[tuple, list[tuple[float, Config]]] = defaultdict(list)
        greedy_refs = []
        for cfg in br.configs:
            if not cfg.cells:
                continue
            dp = cfg.cells[0].decoder_params
            nb = dp.get("num_beams")
            if isinstance(nb, (int, float)) and not isinstance(nb, bool):
                others = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in dp.items() if k != "num_beams"))
                series[(cfg.model, cfg.strategy, dec_plugin.get(cfg.decoder) or cfg.decoder.split("[")[0], others)].append((float(nb), cfg))
            elif (dec_plugin.get(cfg.decoder) or cfg.decoder) == "greedy":
                greedy_refs.append(cfg)
        if any(len({x for x, _ in pts}) >= 2 for pts in series.values()):
            varying = [i for i in range(4) if len({k[i] for k in series}) > 1]
            lines = []
            for key, pts in series.items():
                pts.sort(key=lambda p: p[0])
                parts = [str(key[i]) if i < 3 else ", ".join(f"{k}={v}" for k, v in key[3]) for i in varying]
                name = " / ".join(p for p in parts if p) or key[2]
                lines.append({"name": name, "x": [x for x, _ in pts],
                              "y": {m.label: [mean_of(c, m.label) for _, c in pts] for m in quality}})
            plots["beam"] = {"metrics": [(m.label, m.title, m.higher_is_better) for m in quality], "lines": lines,
                             "greedy": [{"name": g.label, "y": {m.label: mean_of(g, m.label) for m in quality}}
                                        for g in greedy_refs]}
        # quality vs diversity
        div = next((d for d in ("distinct_2", "distinct_1", "self_bleu") if d in labels), None)
        if div is not None:
            pts = [{"name": cfg.label, "x": mean_of(cfg, div), "y": mean_of(cfg, primary.label),
                    "oracle": mean_of(cfg, "oracle_bleu") if "oracle_bleu" in labels else None,
                    **_expected_utility(cfg, dec_plugin, preds)}
                   for cfg in br.configs if cfg.cells]
            pts = [p for p in pts if p["x"] is not None and p["y"] is not None]
            if len(pts) >= 2:
                plots["diversity"] = {"x_label": METRIC_TITLES.get(div, div), "x_lower_is_more_diverse": div == "self_bleu",
                                      "y_label": primary.title, "points": pts}
        # decoding speed vs quality
        sp = []
        for cfg in br.configs:
            t = [c.n / c.predict_seconds for c in cfg.cells if c.predict_seconds and c.n]
            y = mean_of(cfg, primary.label)
            if t and y is not None:
                sp.append({"name": cfg.label, "x": float(np.mean(t)), "y": y})
        if len(sp) >= 2:
            plots["speed"] = {"y_label": primary.title, "points": sp}
    # scores across seeds with error bars
    seeded = [cfg for cfg in br.configs if len(cfg.distinct_keys) >= 2]
    if seeded:
        m = br.metrics[0]
        plots["seeds"] = {"metric": m.title, "configs": [
            {"name": cfg.label, "values": [c.values[m.label] for c in cfg.cells if finite(c.values.get(m.label))]}
            for cfg in br.configs if cfg.cells]}
    return plots
