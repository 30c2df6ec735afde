"""Leaderboards across run directories: merge, deduplicate, separate the incomparable, rank, export.

(The module is ``leaderboards`` so that the public function ``harness.leaderboard`` is not
shadowed by a submodule of the same name once this module is imported.)

:func:`leaderboard` reads any number of run directories and returns one long DataFrame with a
row per (benchmark, metric, configuration, run): the mean over seeds, its standard deviation,
the number of seeds, the run the row came from and every run that holds the same cells.

Only comparable scores share a table. A table holds the rows of one benchmark label and metric
that have the same metric signature (sacrebleu's tokenizer, smoothing, version...; the
classification metrics' n and scale) and the same test set (:func:`harness.stats.ranking.testset_fingerprint`
over the ordered references or gold labels and n, stored per cell by the runner). The largest
such table of a (benchmark, metric) is table 1 and keeps the plain title; every other one is a
separate table whose ``note`` says why, e.g. ``tokenizer differs: tok:char vs tok:13a`` or
``different test set (n=5 vs n=30)``. Runs written before fingerprints were stored get theirs
from the references in their cells' predictions; a run that has neither gets a table of its own
("test set unknown"). Ranks (:func:`harness.stats.ranking.competition_ranks`: best first, equal
printed scores share a rank) are within a table.

Rows are labelled (``label``) by the configuration parameters that differ within their table
(model, strategy, decoder and their parameters), so two different configurations never share a
label; the same configuration evaluated differently in two runs is labelled with its run.

Deduplication: a cell key hashes everything that determines a cell's predictions, so the same
key in two runs is the same evaluation; it is counted once, under the first run given, and the
other runs are listed in ``runs``. Configurations evaluated differently in two runs (other data,
model files or harness version) keep one row per run.

Exports by file extension: ``.csv``, ``.parquet`` (pyarrow), ``.md`` (pandas ``to_markdown``,
tabulate), ``.tex`` (booktabs; numbers right-aligned, the best score bold, a ``\\label`` per
table), ``.html`` (self-contained, sortable). Each of md/tex/html shows n, the signature and the
note of every table.

Non-goals: significance tests across runs (runs need not share examples; use the run report),
failed cells (they have no scores; the run report lists them), deciding that two signatures are
"close enough" (any difference separates).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..stats.ranking import competition_ranks, testset_of_rows

FORMATS = {".csv": "csv", ".parquet": "parquet", ".md": "markdown", ".markdown": "markdown", ".tex": "latex",
           ".html": "html", ".htm": "html"}
# The first 21 columns are the historical ones, in their historical order; new ones are appended.
COLUMNS = ["benchmark", "task", "metric", "higher_is_better", "rank", "model", "strategy", "decoder", "value", "std",
           "seeds", "seed_list", "run", "runs", "n", "signature", "model_path", "benchmark_params", "strategy_params",
           "decoder_params", "cells", "testset", "table", "group", "note", "label", "direction", "target",
           "benchmark_label", "also_labelled"]
_IDENTITY = ["benchmark", "task", "metric", "model", "strategy", "decoder", "model_path", "benchmark_params",
             "strategy_params", "decoder_params", "signature", "testset"]
# Readable names of signature fields (sacrebleu's, the classification and diversity metrics').
SIGNATURE_FIELDS = {"tok": "tokenizer", "smooth": "smoothing", "case": "case", "eff": "effective order",
                    "nrefs": "number of references", "version": "version", "nc": "character order",
                    "nw": "word order", "space": "whitespace", "norm": "normalization", "punct": "punctuation",
                    "asian": "Asian support", "lc": "lowercasing", "scale": "scale", "n": "n"}


def run_names(paths: Sequence[Path]) -> list[str]:
    """Short, unique names for run directories: the directory name, else more of the path."""
    paths = [Path(p).resolve() for p in paths]
    for depth in range(1, 6):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _metric_infos(results_list, plugins=None) -> dict[str, dict[str, Any]]:
    """Per metric label, from each run's resolved metric plugins: how to rank it (``direction``,
    ``target``) and show it (``title``, ``decimals``), as the run reports do."""
    from .analysis import LOWER_IS_BETTER, METRIC_TITLES

    out: dict[str, dict[str, Any]] = {}
    registry = plugins
    for res in results_list:
        for m in (res.manifest.get("resolved") or {}).get("metrics") or []:
            label, plugin = m.get("label") or m.get("plugin"), m.get("plugin") or m.get("label")
            if label in out:
                continue
            cls = None
            try:
                if registry is None:
                    from ..plugins import default_plugins

                    registry = default_plugins()
                cls = registry.get("metric", plugin)
            except Exception:  # noqa: BLE001 - an uninstalled plugin: fall back on the known names
                cls = None
            info = _default_info(label, plugin)
            if cls is not None:
                resolved = getattr(cls, "resolved_direction", None)
                info["direction"] = resolved() if callable(resolved) else (
                    "higher" if cls.higher_is_better else "lower")
                info["target"] = getattr(cls, "target", None) if info["direction"] == "target" else None
                info["title"] = getattr(cls, "title", "") or METRIC_TITLES.get(plugin, label)
                info["decimals"] = getattr(cls, "decimals", None)
            elif plugin in LOWER_IS_BETTER:
                info["direction"] = "lower"
            out[label] = info
    return out


def _default_info(label: str, plugin: str | None = None) -> dict[str, Any]:
    from .analysis import LOWER_IS_BETTER, METRIC_TITLES

    plugin = plugin or label
    return {"direction": "lower" if plugin in LOWER_IS_BETTER else "higher", "target": None,
            "title": METRIC_TITLES.get(plugin, label), "decimals": None}


def _cell_testset(outdir: Path, key: str) -> str:
    """The fingerprint of a cell written before metrics.csv stored one: from cell.json, else
    recomputed from the references in its predictions (what the runner hashes); "" if neither."""
    from ..store import read_jsonl

    celldir = outdir / "cells" / key
    try:
        record = json.loads((celldir / "cell.json").read_text(encoding="utf-8"))
        if isinstance(record, dict) and record.get("testset"):
            return str(record["testset"])
    except (OSError, ValueError):
        pass
    try:
        rows = read_jsonl(celldir / "predictions.jsonl")
    except (OSError, ValueError):
        return ""
    if not rows or any(not isinstance(r, dict) or "reference" not in r for r in rows):
        return ""
    return testset_of_rows(rows)


def _fill_testsets(df, outdir: Path):
    if "testset" not in df:
        df["testset"] = ""
    df["testset"] = df["testset"].fillna("").astype(str)
    missing = (df["testset"] == "") & df["cell"].fillna("").astype(str).ne("")
    if missing.any():
        found = {key: _cell_testset(outdir, key) for key in dict.fromkeys(df.loc[missing, "cell"].astype(str))}
        df.loc[missing, "testset"] = df.loc[missing, "cell"].astype(str).map(found)
    return df


def leaderboard(run_dirs: Iterable[str | Path], *, benchmarks: Sequence[str] = (), metrics: Sequence[str] = (),
                plugins=None):
    """One leaderboard row per (benchmark, metric, configuration, run); see the module docstring."""
    import pandas as pd

    from ..results import load_run

    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise HarnessError("leaderboard: give at least one run directory")
    seen_dirs: dict[Path, Path] = {}
    for d in dirs:
        if not d.is_dir():
            raise HarnessError(f"{d}: no such run directory")
        seen_dirs.setdefault(d.resolve(), d)
    dirs = list(seen_dirs.values())  # the same directory twice adds nothing
    names = run_names(dirs)
    results = [load_run(d) for d in dirs]
    infos = _metric_infos(results, plugins)
    frames = []
    for name, res in zip(names, results):
        df = res.metrics.copy()
        if df.empty:
            continue
        df["run"] = name
        if "cell" not in df:
            df["cell"] = ""
        frames.append(_fill_testsets(df, res.outdir))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    cells = pd.concat(frames, ignore_index=True)
    for col in ("model_path", "benchmark_params", "strategy_params", "decoder_params", "signature", "testset"):
        if col not in cells:
            cells[col] = ""
        cells[col] = cells[col].fillna("").astype(str)
    cells["decoder"] = cells["decoder"].fillna("-").astype(str)
    cells["cell"] = cells["cell"].fillna("").astype(str)
    cells = file_by_testset(cells)
    if benchmarks:  # the name a test set is filed under, or a label some run gave it: the whole test set
        named = cells["benchmark"].isin(benchmarks) | cells["benchmark_label"].isin(benchmarks)
        cells = cells[cells["benchmark"].isin(set(cells.loc[named, "benchmark"]))]
    if metrics:
        cells = cells[cells["metric"].isin(metrics)]
    # every run holding each (cell, metric); then keep the first occurrence only
    has_key = cells["cell"] != ""
    holders = cells[has_key].groupby(["cell", "metric"], sort=False)["run"].agg(lambda s: list(dict.fromkeys(s)))
    cells = pd.concat([cells[has_key].drop_duplicates(["cell", "metric"], keep="first"), cells[~has_key]])
    rows = []
    for ident, g in cells.groupby(_IDENTITY + ["run"], sort=False, dropna=False):
        rec = dict(zip(_IDENTITY + ["run"], ident))
        vals = [float(v) for v in g["value"] if v == v]
        runs = [rec["run"]]
        for key in g["cell"]:
            if key and (key, rec["metric"]) in holders.index:
                runs += holders[(key, rec["metric"])]
        seeds = sorted({int(s) for s in g["seed"]})
        rec.update(benchmark_label=str(g["benchmark_label"].iloc[0]), also_labelled=str(g["also_labelled"].iloc[0]))
        rec.update(value=sum(vals) / len(vals) if vals else math.nan,
                   std=float(pd.Series(vals).std(ddof=1)) if len(vals) > 1 else math.nan,
                   seeds=len(g), seed_list=",".join(map(str, seeds)), runs=",".join(dict.fromkeys(runs)),
                   n=int(g["n"].max()) if "n" in g and g["n"].notna().any() else None,
                   cells=",".join(g["cell"]))
        info = infos.get(rec["metric"]) or _default_info(rec["metric"])
        rec.update(direction=info["direction"], target=info["target"], higher_is_better=info["direction"] == "higher")
        rows.append(rec)
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(rows)
    # how the exports title and round each metric (a plugin's own title and decimals, as in the reports)
    shown = {m: {"title": (infos.get(m) or _default_info(m))["title"], "decimals": (infos.get(m) or {}).get("decimals")}
             for m in out["metric"].unique()}
    out = _assign_tables(out, shown)
    out = out.sort_values(["benchmark", "metric", "group", "rank", "run"], kind="stable", na_position="last")
    out = out.reset_index(drop=True)[COLUMNS]
    out.attrs["metrics"] = shown
    return out


# ============================================================================ which benchmark a row is filed under


def file_by_testset(cells):
    """Set each row's ``benchmark`` to the name its test set is known by, whichever run it came from.

    Runs may label one test set differently (``parallel_text`` in one, ``numbers-de-en`` in the
    other), and a cell found in both is kept once, from the first run given: filed under that run's
    label, it would sit alone in a table of its own while its peers are ranked elsewhere. So rows
    of one test set (:func:`harness.stats.ranking.testset_fingerprint`) under several labels are
    one benchmark, filed under the label most of their rows carry (ties: the alphabetically first,
    so the order of the runs never decides). Translation test sets are identified by their
    fingerprint (the ordered reference texts); a classification fingerprint (gold labels only)
    joins two labels only when a cell key (which hashes the benchmark's data) occurs under both.
    ``benchmark_label`` keeps each row's own label, ``also_labelled`` names the others with their runs.
    """
    cells = cells.copy()
    cells["benchmark_label"] = cells["benchmark"].astype(str)
    cells["also_labelled"] = ""
    known = cells[cells["testset"] != ""]
    if known.empty:
        return cells
    # nodes: (label, test set); linked when they share a test set (translation) or a cell key
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    def union(a, b):
        parent[find(a)] = find(b)

    task = known["task"].astype(str) if "task" in known else None
    for ts, g in known.groupby("testset", sort=False):
        nodes = list(dict.fromkeys(zip(g["benchmark_label"], g["testset"])))
        for n in nodes:
            find(n)
        if task is not None and (task.loc[g.index] == "translation").all():
            for n in nodes[1:]:
                union(nodes[0], n)
        else:
            for _, c in g[g["cell"] != ""].groupby("cell", sort=False):
                linked = list(dict.fromkeys(zip(c["benchmark_label"], c["testset"])))
                for n in linked[1:]:
                    union(linked[0], n)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for n in list(parent):
        groups.setdefault(find(n), []).append(n)
    for members in groups.values():
        labels = sorted({label for label, _ in members})
        if len(labels) < 2:
            continue
        rows = known[[(lab, ts) in members for lab, ts in zip(known["benchmark_label"], known["testset"])]]
        counts = rows.drop_duplicates(["run", "cell", "benchmark_label", "model", "strategy", "decoder", "seed"]) \
            .groupby("benchmark_label").size()
        name = sorted(labels, key=lambda lab: (-int(counts.get(lab, 0)), lab))[0]
        runs_of = {lab: ", ".join(dict.fromkeys(rows.loc[rows["benchmark_label"] == lab, "run"])) for lab in labels}
        also = "; ".join(f"{lab} (run {runs_of[lab]})" for lab in labels if lab != name)
        idx = rows.index
        cells.loc[idx, "benchmark"] = name
        cells.loc[idx, "also_labelled"] = also
    return cells


# ============================================================================ tables: what may be compared


ONE_ENTRY = "one entry: nothing to rank it against"


def _comparability_key(row) -> tuple[str, str]:
    # An unknown test set matches nothing, not even another unknown one of another run.
    return row["signature"], row["testset"] or f"?{row['run']}"


def _assign_tables(out, shown: dict[str, dict[str, Any]]):
    """Split each (benchmark, metric) into tables of one signature and test set; rank and label within."""
    import pandas as pd

    out = out.copy()
    out["group"], out["table"], out["note"], out["label"] = 0, "", "", ""
    out["rank"] = pd.array([None] * len(out), dtype="Int64")
    for (bench, metric), idx in out.groupby(["benchmark", "metric"], sort=False).groups.items():
        part = out.loc[idx]
        keys = [_comparability_key(r) for _, r in part.iterrows()]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        order = sorted(first, key=lambda k: (-keys.count(k), first[k]))  # largest first; ties: first run given
        main = part[[k == order[0] for k in keys]]
        # one precision per metric, the one the tables print, so that printed ties are rank ties
        decimals = _decimals(part, shown.get(metric, {}).get("decimals"))
        for group, key in enumerate(order, start=1):
            rows = part[[k == key for k in keys]]
            ridx = rows.index
            out.loc[ridx, "group"] = group
            out.loc[ridx, "table"] = f"{bench} / {metric}" + (f" #{group}" if group > 1 else "")
            out.loc[ridx, "note"] = "" if group == 1 else separation_note(rows, main)
            direction, target = _direction_of(rows)
            ranks = competition_ranks(list(rows["value"]), direction, target, decimals=decimals)
            if len(rows) == 1:  # nothing to rank it against: a lone "#1" would read as a win
                ranks = [None]
                if group == 1:  # (a separate table's note already says it is not ranked with table 1)
                    out.loc[ridx, "note"] = ONE_ENTRY
            out.loc[ridx, "rank"] = pd.array(ranks, dtype="Int64")
            out.loc[ridx, "label"] = config_labels(rows)
    out["group"] = out["group"].astype(int)
    return out


def parse_signature(sig: str) -> dict[str, str]:
    """``nrefs:1|case:mixed|tok:13a`` -> {"nrefs": "1", ...}; a bare part (``accuracy``) is keyed by position."""
    fields: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in str(sig).split("|")):
        if not part:
            continue
        k, sep, v = part.partition(":")
        if sep:
            fields[k.strip()] = v.strip()
        else:
            fields[f"#{i}"] = part
    return fields


def signature_differences(sig: str, other: str) -> list[str]:
    """What differs between two metric signatures, readable: ``tokenizer differs: tok:char vs tok:13a``."""
    a, b = parse_signature(sig), parse_signature(other)
    out = []
    differing = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    for k in differing:
        if k == "n":  # the test-set part of the note says it
            continue
        if k.startswith("#"):
            out.append(f"metric differs: {a.get(k, '-')} vs {b.get(k, '-')}")
        else:
            out.append(f"{SIGNATURE_FIELDS.get(k, k)} differs: {k}:{a.get(k, '-')} vs {k}:{b.get(k, '-')}")
    if not differing and sig != other:
        out.append(f"metric signature differs: {sig or '(none)'} vs {other or '(none)'}")
    return out


def _ns(rows) -> str:
    ns = sorted({int(v) for v in rows["n"] if v == v and v is not None})
    return "/".join(map(str, ns)) or "?"


def separation_note(rows, main) -> str:
    """Why ``rows`` (one table) are not ranked with ``main`` (table 1 of the same benchmark and metric)."""
    reasons = signature_differences(str(rows["signature"].iloc[0]), str(main["signature"].iloc[0]))
    mine, theirs = str(rows["testset"].iloc[0]), str(main["testset"].iloc[0])
    if not mine or not theirs:
        unknown = rows if not mine else main
        which = ", ".join(dict.fromkeys(unknown["run"]))
        reasons.append(f"test set unknown (run {which} stores no test-set fingerprint and its cells' predictions "
                       "are missing): not ranked with other runs")
    elif mine != theirs:
        n_mine, n_theirs = _ns(rows), _ns(main)
        reasons.append(f"different test set (n={n_mine} vs n={n_theirs})" if n_mine != n_theirs
                       else f"different test set (same n={n_mine}, other references)")
    return "not ranked with table 1: " + "; ".join(reasons or ["a different evaluation"])


def _params(text: str) -> dict[str, Any]:
    try:
        v = json.loads(text) if text else {}
    except ValueError:
        return {"params": text}
    return v if isinstance(v, dict) else {"params": v}


def _short(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v


def label_parts(rows) -> list[dict[str, str]]:
    """Per row, the text of each configuration part that differs between ``rows``: keys among
    ``model``, ``strategy``, ``decoder``, ``benchmark`` (benchmark parameters); see :func:`config_labels`."""
    recs = rows.to_dict("records")
    parts: list[dict[str, str]] = [{} for _ in recs]
    for comp, params_col in (("model", "model_path"), ("strategy", "strategy_params"),
                             ("decoder", "decoder_params"), ("benchmark", "benchmark_params")):
        labels = [str(r[comp]) for r in recs]
        if comp == "model":
            params = [{"path": str(r["model_path"])} for r in recs]
        else:
            params = [_params(str(r[params_col])) for r in recs]
        extras: list[list[str]] = [[] for _ in recs]
        for label in dict.fromkeys(labels):
            members = [i for i, lab in enumerate(labels) if lab == label]
            for k in dict.fromkeys(k for i in members for k in params[i]):
                if len({json.dumps(params[i].get(k), sort_keys=True, default=str) for i in members}) < 2:
                    continue  # the label already tells these rows apart, or they agree on k
                for i in members:
                    text = _short(params[i].get(k)) if comp == "model" else f"{k}={_short(params[i].get(k))}"
                    if text not in label:
                        extras[i].append(text)
        show_label = comp != "benchmark" and len(set(labels)) > 1
        for i, label in enumerate(labels):
            if comp == "benchmark":
                if extras[i]:
                    parts[i][comp] = ", ".join(extras[i])
            elif show_label or extras[i]:
                parts[i][comp] = label + (f" ({', '.join(extras[i])})" if extras[i] else "")
    return parts


def config_labels(rows) -> list[str]:
    """One label per row naming what differs between the rows' configurations.

    Model, strategy and decoder labels are shown when they vary; a parameter (or model path) is
    added where rows share a label but not that parameter, e.g. ``greedy (max_new_tokens=3)``,
    so two different configurations never share a label. Rows of one configuration evaluated
    differently in two runs (other model files, harness version) are told apart by their run.
    """
    recs = rows.to_dict("records")
    labels = [" / ".join(p.values()) for p in label_parts(rows)]
    base = [str(r["decoder"]) if str(r["decoder"]) not in ("-", "") else str(r["strategy"]) for r in recs]
    labels = [lab or b for lab, b in zip(labels, base)]
    count: dict[str, int] = {}
    for lab in labels:
        count[lab] = count.get(lab, 0) + 1
    return [f"{lab} @ {r['run']}" if count[lab] > 1 else lab for lab, r in zip(labels, recs)]


# ============================================================================ exports

NUMERIC = ("Rank", "Score", "SD", "Seeds")  # right-aligned in every format
_PART_COLUMNS = (("model", "Model"), ("strategy", "Strategy"), ("decoder", "Decoder"), ("benchmark", "Data"))


def _tables(df) -> list[dict[str, Any]]:
    """Each table of ``df`` (one benchmark, metric, signature and test set) with what its heading shows."""
    out = []
    sort_cols = ["benchmark", "metric", "group"] if "group" in df else ["benchmark", "metric"]
    shown = (df.attrs or {}).get("metrics", {})
    decimals = {k: _decimals(g, shown.get(k[1], {}).get("decimals"))
                for k, g in df.groupby(["benchmark", "metric"], sort=False)}
    for key, g in df.groupby(sort_cols, sort=False):
        bench, metric = str(key[0]), str(key[1])
        group = int(key[2]) if len(key) > 2 else 1
        direction, target = _direction_of(g)
        title = f"{bench}: {_title(metric, df)} ({_direction_text(g)})"
        testset = str(g["testset"].iloc[0]) if "testset" in g else ""
        out.append({"benchmark": bench, "metric": metric, "group": group, "rows": g, "direction_text": _direction_text(g),
                    "arrow": "↑" if direction == "higher" else "↓" if direction == "lower" else f"→ {target:g}",
                    "decimals": decimals[(key[0], key[1])],
                    "title": title + (f", separate table {group}" if group > 1 else ""),
                    "note": str(g["note"].iloc[0]) if "note" in g else "",
                    "n": _ns(g), "signature": str(g["signature"].iloc[0]) or "(none)",
                    "testset": testset[:12] if testset else "unknown",
                    "also_labelled": "; ".join(dict.fromkeys(x for x in g["also_labelled"].astype(str) if x))
                    if "also_labelled" in g else ""})
    return out


def _meta_line(t: dict[str, Any]) -> str:
    also = f"; also labelled {t['also_labelled']}" if t.get("also_labelled") else ""
    return f"n = {t['n']}; signature: {t['signature']}; test set: {t['testset']}{also}"


def summary_lines(df) -> list[str]:
    """One line per table for the terminal: its best entry (or its only one, unranked) with the
    score at the table's precision, the run it came from and the table's note."""
    out = []
    for t in _tables(df):
        g = t["rows"]
        top = g.iloc[0]
        name = f"{t['benchmark']} / {t['metric']}" + (f" #{t['group']}" if t["group"] > 1 else "")
        value = "–" if top["value"] != top["value"] else f"{top['value']:.{t['decimals']}f}"
        who = f"{top['model']} / {top['strategy']} / {top['decoder']} = {value} ({top['run']})"
        note = str(top["note"])
        out.append(f"{name}: {'only' if len(g) == 1 else 'best'} {who}" + (f" [{note}]" if note else ""))
    return out


def _display(g, decimals: int):
    """The columns a reader wants, as text-ready values."""
    import pandas as pd

    d = pd.DataFrame({"Rank": ["–" if _rank(r) is None else str(_rank(r)) for r in g["rank"]]}, index=g.index)
    parts = label_parts(g)
    shown = [(comp, title) for comp, title in _PART_COLUMNS if any(comp in p for p in parts)]
    if not shown:
        shown = [("decoder", "Decoder")] if (g["decoder"] != "-").any() else [("strategy", "Strategy")]
    for comp, title in shown:
        plain = g[comp].astype(str).tolist() if comp != "benchmark" else [""] * len(g)
        d[title] = [p.get(comp, x) for p, x in zip(parts, plain)]
    d["Score"] = g["value"].map(lambda v: "–" if v != v else f"{v:.{decimals}f}")
    d["SD"] = g["std"].map(lambda v: "" if v != v else f"{v:.{decimals}f}")
    d["Seeds"] = g["seeds"].astype(int).astype(str)
    d["Run"] = g["run"].astype(str)
    d["Also in"] = [",".join(r for r in rs.split(",") if r != run) for rs, run in zip(g["runs"], g["run"])]
    return d.reset_index(drop=True)


def _rank(r) -> int | None:
    import pandas as pd

    return None if r is None or pd.isna(r) else int(r)


def _best(g) -> list[bool]:
    return [_rank(r) == 1 for r in g["rank"]]


def _decimals(g, fixed: int | None = None) -> int:
    from .analysis import metric_decimals

    return int(fixed) if fixed is not None else metric_decimals(list(g["value"]))


def _direction_of(g) -> tuple[str, float | None]:
    import pandas as pd

    if "direction" in g and str(g["direction"].iloc[0]) in ("higher", "lower", "target"):
        direction = str(g["direction"].iloc[0])
        target = g["target"].iloc[0] if "target" in g else None
        if direction == "target" and target is not None and not pd.isna(target):
            return direction, float(target)
        if direction != "target":
            return direction, None
    return ("higher" if bool(g["higher_is_better"].iloc[0]) else "lower"), None


def _direction_text(g) -> str:
    direction, target = _direction_of(g)
    return f"closer to {target:g} is better" if direction == "target" else f"{direction} is better"


def _title(metric: str, df=None) -> str:
    from .analysis import METRIC_TITLES

    shown = (getattr(df, "attrs", None) or {}).get("metrics", {}).get(metric, {})
    return shown.get("title") or METRIC_TITLES.get(metric, metric)


def md_escape(text: Any) -> str:
    """Text safe inside a Markdown table cell: no HTML, no table breaks, no emphasis."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|":
        s = s.replace(ch, "\\" + ch)
    return s


def latex_escape(text: Any) -> str:
    # | < > are not in OT1 text fonts (they print as an em dash, inverted ! and ?): use the text commands
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
            "<": r"\textless{}", ">": r"\textgreater{}"}
    return "".join(repl.get(ch, ch) for ch in str(text))


def to_markdown(df) -> str:
    parts = ["# Leaderboard\n"]
    for t in _tables(df):
        g = t["rows"]
        d = _display(g, t["decimals"]).apply(lambda col: col.map(md_escape))
        d.columns = [md_escape(c) for c in d.columns]
        parts.append(f"## {md_escape(t['title'])}\n")
        if t["note"]:
            parts.append(f"> {md_escape(t['note'].capitalize())}.\n")
        parts.append(md_escape(_meta_line(t)) + "\n")
        align = ["right" if c in NUMERIC else "left" for c in d.columns]
        parts.append(d.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n")
    return "\n".join(parts)


def _tex_label(t: dict[str, Any], used: set[str]) -> str:
    base = "tab:leaderboard-" + "-".join(re.sub(r"[^A-Za-z0-9]+", "-", str(x)).strip("-").lower() or "x"
                                         for x in (t["benchmark"], t["metric"]))
    if t["group"] > 1:
        base += f"-{t['group']}"
    label, i = base, 2
    while label in used:
        label, i = f"{base}-{i}", i + 1
    used.add(label)
    return label


def to_latex(df) -> str:
    """One booktabs ``table`` per leaderboard table: numbers right-aligned, the best score bold,
    n, signature and (for a separate table) why it is separate in the caption, a ``\\label``."""
    parts = ["% nlp-eval-harness leaderboard: one table per benchmark, metric, signature and test set "
             "(needs \\usepackage{booktabs})"]
    used: set[str] = set()
    for t in _tables(df):
        g = t["rows"]
        d = _display(g, t["decimals"])
        best = _best(g)
        caption = f"{t['title']}. {_meta_line(t)}."
        if t["note"]:
            caption += f" {t['note'].capitalize()}."
        spec = "".join("r" if c in NUMERIC else "l" for c in d.columns)
        lines = ["\\begin{table}[ht]", "\\centering", f"\\caption{{{latex_escape(caption)}}}",
                 f"\\label{{{_tex_label(t, used)}}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                 " & ".join(latex_escape(c) for c in d.columns) + " \\\\", "\\midrule"]
        for row, is_best in zip(d.to_dict("records"), best):
            cells = []
            for c, v in row.items():
                v = latex_escape(v)
                cells.append(f"\\textbf{{{v}}}" if c == "Score" and is_best and v != "–" else v)
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def to_html(df, title: str = "Leaderboard") -> str:
    from .page import asset, csp_for, environment, json_for_script

    groups = []
    for t in _tables(df):
        g = t["rows"]
        d = _display(g, t["decimals"])
        groups.append({"benchmark": t["benchmark"], "metric": _title(t["metric"], df), "arrow": t["arrow"],
                       "direction_text": t["direction_text"],
                       "group": t["group"], "title": t["title"], "note": t["note"], "n": t["n"],
                       "signature": t["signature"], "testset": t["testset"], "also_labelled": t["also_labelled"], "numeric": NUMERIC,
                       "columns": list(d.columns), "rows": d.to_dict("records"), "best": _best(g),
                       "values": list(g["value"])})
    script = asset("sort.js")
    return environment().get_template("leaderboard.html.j2").render(
        title=title, groups=groups, css=asset("report.css"), script=script, csp=csp_for(script),
        runs=sorted({r for rs in df["runs"] for r in str(rs).split(",") if r}),
        data_json=json_for_script(json.loads(df.to_json(orient="records"))))


def export(df, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path`` in ``fmt`` (default: from the extension)."""
    from ..store import atomic_write_bytes, atomic_write_text

    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise HarnessError(f"{path}: unknown leaderboard format '{path.suffix or '(no extension)'}'. "
                           f"Allowed extensions: {', '.join(sorted(FORMATS))}")
    if fmt == "csv":
        atomic_write_text(path, df.to_csv(index=False))
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise HarnessError(f"{path}: Parquet export needs pyarrow (pip install pyarrow)") from None
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    elif fmt == "markdown":
        atomic_write_text(path, to_markdown(df))
    elif fmt == "latex":
        atomic_write_text(path, to_latex(df))
    elif fmt == "html":
        atomic_write_text(path, to_html(df))
    else:
        raise HarnessError(f"{path}: unknown leaderboard format '{fmt}'. Allowed: {', '.join(sorted(set(FORMATS.values())))}")
    return path
