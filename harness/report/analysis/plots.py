"""The numbers behind each plot (drawn by ``harness_plugins.reporters._plots``), or nothing for
a plot whose data is absent, and the names of the plotted series: only what differs between
them (:func:`legend_names`). Non-goals: drawing.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from .model import METRIC_TITLES, NO_DECODER, BenchmarkReport, Config, finite


def _split_label(label: str) -> tuple[str, dict[str, str]] | None:
    """``plugin[k=v,k=v]`` -> (plugin, {k: v}); None for a label of another form."""
    m = re.fullmatch(r"([^\[\]]+)\[(.*)\]", label)
    if m is None:
        return label, {}
    items = [kv.split("=", 1) for kv in m.group(2).split(",")] if m.group(2) else []
    if any(len(kv) != 2 for kv in items):
        return None
    return m.group(1), {k.strip(): v.strip() for k, v in items}


def _shortest_labels(labels: list[str]) -> dict[str, str]:
    """Component labels (``input_mask[mask_prob=0.1,schedule=linear]``) named by what differs:
    the plugin when it differs, and per plugin only the parameters whose values differ."""
    uniq = list(dict.fromkeys(labels))
    parsed = {lab: _split_label(lab) for lab in uniq}
    if any(v is None for v in parsed.values()):
        return {lab: lab for lab in uniq}
    show_plugin = len({p for p, _ in parsed.values()}) > 1
    out = {}
    for lab, (plugin, params) in parsed.items():
        peers = [q for p, q in parsed.values() if p == plugin]
        keys = [k for k in params if len({q.get(k) for q in peers}) > 1]
        args = ", ".join(f"{k}={params[k]}" for k in keys)
        out[lab] = (f"{plugin}[{args}]" if args else plugin) if show_plugin else (args or plugin)
    return out if len(set(out.values())) == len(out) else {lab: lab for lab in uniq}


def legend_names(configs: list[Config], dec_plugin: dict[str, str]) -> dict[int, str]:
    """A short name per plotted configuration (keyed by ``id``) naming only what differs among
    them: the model and strategy when they vary, the decoder plugin when it varies, and of the
    decoder's parameters only those that differ between configurations of the same plugin.
    A name that would not be unique falls back to the configuration's full label."""
    def params(c: Config) -> dict[str, str]:
        dp = (c.cells[0].decoder_params if c.cells else None) or {}
        return {k: json.dumps(v, sort_keys=True).strip('"') for k, v in dp.items()}

    plugin = {id(c): dec_plugin.get(c.decoder) or c.decoder.split("[")[0] for c in configs}
    by_plugin: dict[str, list[Config]] = defaultdict(list)
    for c in configs:
        by_plugin[plugin[id(c)]].append(c)
    differing: dict[str, list[str]] = {}
    for name, group in by_plugin.items():
        keys = list(dict.fromkeys(k for c in group for k in params(c)))
        differing[name] = [k for k in keys if len({params(c).get(k) for c in group}) > 1]
    show = {a: len({getattr(c, a) for c in configs}) > 1 for a in ("model", "strategy")}
    show_plugin = len(set(plugin.values())) > 1
    strategy = _shortest_labels([c.strategy for c in configs]) if show["strategy"] else {}
    out = {}
    for c in configs:
        parts = ([c.model] if show["model"] else []) + ([strategy[c.strategy]] if show["strategy"] else [])
        if c.decoder != NO_DECODER:
            pp = params(c)
            args = ", ".join(f"{k}={pp[k]}" for k in differing[plugin[id(c)]] if k in pp)
            if show_plugin:
                parts.append(f"{plugin[id(c)]}[{args}]" if args else plugin[id(c)])
            elif args:
                parts.append(args)
        out[id(c)] = " / ".join(parts) or c.label
    if len(set(out.values())) < len(out):
        return {id(c): c.label for c in configs}
    return out

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
            # of the other decoder parameters, only those whose value differs between the lines
            params = [dict(k[3]) for k in series]
            differ = [n for n in dict.fromkeys(n for p in params for n in p) if len({p.get(n) for p in params}) > 1]
            lines = []
            for key, pts in series.items():
                pts.sort(key=lambda p: p[0])
                own = dict(key[3])
                parts = [str(key[i]) if i < 3 else ", ".join(f"{n}={own[n]}" for n in differ if n in own)
                         for i in varying]
                name = " / ".join(p for p in parts if p) or key[2]
                lines.append({"name": name, "x": [x for x, _ in pts],
                              "y": {m.label: [mean_of(c, m.label) for _, c in pts] for m in quality}})
            plots["beam"] = {"metrics": [(m.label, m.title, m.higher_is_better) for m in quality], "lines": lines,
                             "greedy": [{"name": g.label, "y": {m.label: mean_of(g, m.label) for m in quality}}
                                        for g in greedy_refs]}
        # quality vs diversity
        names = legend_names([c for c in br.configs if c.cells], dec_plugin)
        div = next((d for d in ("distinct_2", "distinct_1", "self_bleu") if d in labels), None)
        if div is not None:
            pts = [{"name": names[id(cfg)], "x": mean_of(cfg, div), "y": mean_of(cfg, primary.label),
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
                sp.append({"name": names[id(cfg)], "x": float(np.mean(t)), "y": y})
        if len(sp) >= 2:
            plots["speed"] = {"y_label": primary.title, "points": sp}
    # scores across seeds with error bars
    seeded = [cfg for cfg in br.configs if len(cfg.distinct_keys) >= 2]
    if seeded:
        m = br.metrics[0]
        names = legend_names([c for c in br.configs if c.cells], dec_plugin)
        plots["seeds"] = {"metric": m.title, "configs": [
            {"name": names[id(cfg)], "values": [c.values[m.label] for c in cfg.cells if finite(c.values.get(m.label))]}
            for cfg in br.configs if cfg.cells]}
    return plots
