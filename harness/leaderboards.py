"""Leaderboards across run directories: merge, deduplicate, rank, export.

(The module is ``leaderboards`` so that the public function ``harness.leaderboard`` is not
shadowed by a submodule of the same name once this module is imported.)

:func:`leaderboard` reads any number of run directories and returns one long DataFrame with a
row per (benchmark, metric, configuration, run): the mean over seeds, its standard deviation,
the number of seeds, the rank within (benchmark, metric) respecting lower-is-better metrics
(TER), the run the row came from and every run that holds the same cells.

Deduplication: a cell key hashes everything that determines a cell's predictions, so the same
key in two runs is the same evaluation; it is counted once, under the first run given, and the
other runs are listed in ``runs``. Configurations evaluated differently in two runs (other data,
model files or harness version) keep one row per run.

Exports by file extension: ``.csv``, ``.parquet`` (pyarrow), ``.md`` (pandas ``to_markdown``,
tabulate), ``.tex`` (pandas ``Styler.to_latex``, jinja2), ``.html`` (self-contained, sortable).

Non-goals: significance tests across runs (runs need not share examples; use the run report),
failed cells (they have no scores; the run report lists them).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import HarnessError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".md": "markdown", ".markdown": "markdown", ".tex": "latex",
           ".html": "html", ".htm": "html"}
COLUMNS = ["benchmark", "task", "metric", "higher_is_better", "rank", "model", "strategy", "decoder", "value", "std",
           "seeds", "seed_list", "run", "runs", "n", "signature", "model_path", "benchmark_params", "strategy_params",
           "decoder_params", "cells"]
_IDENTITY = ["benchmark", "task", "metric", "model", "strategy", "decoder", "model_path", "benchmark_params",
             "strategy_params", "decoder_params", "signature"]


def run_names(paths: Sequence[Path]) -> list[str]:
    """Short, unique names for run directories: the directory name, else more of the path."""
    paths = [Path(p).resolve() for p in paths]
    for depth in range(1, 6):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _direction(results_list, plugins=None) -> dict[str, bool]:
    """higher_is_better per metric label, from each run's resolved metric plugins."""
    from .report_data import LOWER_IS_BETTER

    out: dict[str, bool] = {}
    registry = plugins
    for res in results_list:
        for m in (res.manifest.get("resolved") or {}).get("metrics") or []:
            label, plugin = m.get("label") or m.get("plugin"), m.get("plugin") or m.get("label")
            if label in out:
                continue
            hib = None
            try:
                if registry is None:
                    from .plugins import default_plugins

                    registry = default_plugins()
                hib = bool(registry.get("metric", plugin).higher_is_better)
            except Exception:  # noqa: BLE001 - an uninstalled plugin: fall back on the known names
                hib = None
            out[label] = hib if hib is not None else plugin not in LOWER_IS_BETTER
    return out


def leaderboard(run_dirs: Iterable[str | Path], *, benchmarks: Sequence[str] = (), metrics: Sequence[str] = (),
                plugins=None):
    """One leaderboard row per (benchmark, metric, configuration, run); see the module docstring."""
    import pandas as pd

    from .results import load_run

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
    direction = _direction(results, plugins)
    frames = []
    for name, res in zip(names, results):
        df = res.metrics.copy()
        if df.empty:
            continue
        df["run"] = name
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    cells = pd.concat(frames, ignore_index=True)
    for col in ("model_path", "benchmark_params", "strategy_params", "decoder_params", "signature"):
        if col not in cells:
            cells[col] = ""
        cells[col] = cells[col].fillna("").astype(str)
    cells["decoder"] = cells["decoder"].fillna("-").astype(str)
    cells["cell"] = cells["cell"].fillna("").astype(str)
    if benchmarks:
        cells = cells[cells["benchmark"].isin(benchmarks)]
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
        rec.update(value=sum(vals) / len(vals) if vals else math.nan,
                   std=float(pd.Series(vals).std(ddof=1)) if len(vals) > 1 else math.nan,
                   seeds=len(g), seed_list=",".join(map(str, seeds)), runs=",".join(dict.fromkeys(runs)),
                   n=int(g["n"].max()) if "n" in g and g["n"].notna().any() else None,
                   cells=",".join(g["cell"]), higher_is_better=direction.get(rec["metric"], rec["metric"] not in ("ter",)))
        rows.append(rec)
    out = pd.DataFrame(rows)
    out["rank"] = 0
    for (_, metric), idx in out.groupby(["benchmark", "metric"], sort=False).groups.items():
        hib = bool(out.loc[idx[0], "higher_is_better"])
        out.loc[idx, "rank"] = out.loc[idx, "value"].rank(ascending=not hib, method="min").fillna(0).astype(int)
    out["rank"] = out["rank"].astype(int)
    out = out.sort_values(["benchmark", "metric", "rank", "run"], kind="stable").reset_index(drop=True)
    return out[COLUMNS]


# ============================================================================ exports


def _groups(df) -> list[tuple[str, str, bool, Any]]:
    out = []
    for (bench, metric), g in df.groupby(["benchmark", "metric"], sort=False):
        out.append((str(bench), str(metric), bool(g["higher_is_better"].iloc[0]), g))
    return out


def _display(g, decimals: int):
    """The columns a reader wants, as text-ready values."""
    import pandas as pd

    varying = [c for c in ("model", "strategy", "decoder") if g[c].nunique() > 1] or ["decoder" if (g["decoder"] != "-").any() else "strategy"]
    d = pd.DataFrame({"Rank": g["rank"].astype(int)})
    for c in ("model", "strategy", "decoder"):
        if c in varying or g[c].nunique() > 1:
            d[c.capitalize()] = g[c].astype(str)
    d["Score"] = g["value"].map(lambda v: "–" if v != v else f"{v:.{decimals}f}")
    d["SD"] = g["std"].map(lambda v: "" if v != v else f"{v:.{decimals}f}")
    d["Seeds"] = g["seeds"].astype(int)
    d["Run"] = g["run"].astype(str)
    d["Also in"] = [",".join(r for r in rs.split(",") if r != run) for rs, run in zip(g["runs"], g["run"])]
    return d


def _decimals(g) -> int:
    from .report_data import metric_decimals

    return metric_decimals(list(g["value"]))


def _title(metric: str) -> str:
    from .report_data import METRIC_TITLES

    return METRIC_TITLES.get(metric, metric)


def md_escape(text: Any) -> str:
    """Text safe inside a Markdown table cell: no HTML, no table breaks, no emphasis."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|":
        s = s.replace(ch, "\\" + ch)
    return s


def latex_escape(text: Any) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in str(text))


def to_markdown(df) -> str:
    parts = ["# Leaderboard\n"]
    for bench, metric, hib, g in _groups(df):
        d = _display(g, _decimals(g)).astype(str).apply(lambda col: col.map(md_escape))
        d.columns = [md_escape(c) for c in d.columns]
        parts.append(f"## {md_escape(bench)}: {md_escape(_title(metric))} ({'higher' if hib else 'lower'} is better)\n")
        parts.append(d.to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(parts)


def to_latex(df) -> str:
    parts = ["% nlp-eval-harness leaderboard: one table per benchmark and metric (needs \\usepackage{booktabs})"]
    for bench, metric, hib, g in _groups(df):
        d = _display(g, _decimals(g)).astype(str)
        caption = latex_escape(f"{bench}: {_title(metric)} ({'higher' if hib else 'lower'} is better)")
        d.columns = [latex_escape(c) for c in d.columns]
        styler = d.style.hide(axis="index").format(escape="latex")
        parts.append(styler.to_latex(hrules=True, caption=caption, position="ht", position_float="centering"))
    return "\n".join(parts)


def to_html(df, title: str = "Leaderboard") -> str:
    from harness_plugins.reporters.html import asset, csp_for, environment, json_for_script

    groups = []
    for bench, metric, hib, g in _groups(df):
        dec = _decimals(g)
        groups.append({"benchmark": bench, "metric": _title(metric), "hib": hib, "columns": list(_display(g, dec).columns),
                       "rows": _display(g, dec).to_dict("records"), "values": list(g["value"])})
    script = asset("sort.js")
    return environment().get_template("leaderboard.html.j2").render(
        title=title, groups=groups, css=asset("report.css"), script=script, csp=csp_for(script),
        runs=sorted({r for rs in df["runs"] for r in str(rs).split(",") if r}),
        data_json=json_for_script(json.loads(df.to_json(orient="records"))))


def export(df, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path`` in ``fmt`` (default: from the extension)."""
    from .store import atomic_write_bytes, atomic_write_text

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
