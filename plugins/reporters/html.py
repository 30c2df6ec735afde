"""``html``: one self-contained report.html a researcher can publish or mail.

Everything is inline (styles, the small sorting script, SVG plots), so the file opens offline
with no CDN. Every string from the data or a model is HTML-escaped by Jinja2's autoescaping;
the embedded JSON escapes ``<``, ``>``, ``&`` and line separators, so an output containing
``</script>`` cannot close its script element; and a Content-Security-Policy allows only the
report's own script (by hash), as a second line of defence.

What it shows is computed by :func:`harness.report.analyze`. Non-goals: interactive
charts, server-side features, pages per cell.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.api import Reporter
from harness.hookspecs import hookimpl
from harness.report import AnalysisParams, ReportData, analyze, by_rank, fmt
from harness.report.analysis.verdicts import decimals_of
from harness.report.page import asset, csp_for, environment, json_for_script, json_safe
from harness.stats.significance import p_number
from harness.store import atomic_write_text, safe_child

TEMPLATES = Path(__file__).parent / "templates"  # report.html.j2 (harness.report.page has the shared assets)


class HtmlParams(AnalysisParams):
    filename: str = Field("report.html", description="file name inside the run directory")
    plots: bool = Field(True, description="draw plots (needs matplotlib)")


def dv(v: Any) -> str:
    """A ``data-v`` sort key: the number, or empty for a missing value (sorted last)."""
    if v is None or isinstance(v, bool):
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return repr(f) if math.isfinite(f) else ""


def fp(p: float | None, floor: float | None = None) -> str:
    return p_number(p, floor)


def signed(v: float | None, decimals: int) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.{decimals}f}".replace("-", "−")


def ci(row, decimals: int) -> str:
    if row.ci_low is None or row.ci_high is None or not (math.isfinite(row.ci_low) and math.isfinite(row.ci_high)):
        return "–"
    return f"[{row.ci_low:.{decimals}f}, {row.ci_high:.{decimals}f}]"


def ci_header(rows) -> tuple[str, bool]:
    """The CI column's header naming the interval, and whether cells must say it row by row (mixed kinds)."""
    kinds = {r.ci_kind for r in rows if r.ci_kind}
    if kinds == {"bootstrap"}:
        return "95% CI (bootstrap over examples)", False
    if kinds == {"t"}:
        return "95% CI (t over seeds)", False
    return "95% CI", len(kinds) > 1


def best_first(mt) -> str:
    """data-best of a sortable column header: which way the first click sorts (best first)."""
    if mt.direction == "target":
        return f"target:{mt.target!r}"
    return "desc" if mt.direction == "higher" else "asc"


def shown(text: Any):
    """An output as the page shows it: an empty one as a visible, muted "(empty)" (not a blank cell
    that looks like missing data); anything else as escaped text."""
    from markupsafe import Markup

    if text is None:
        return "–"
    if str(text) == "":
        return Markup('<em class="empty">(empty)</em>')
    if not str(text).strip():
        return Markup('<em class="empty">(whitespace only)</em>')
    return text


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(json_safe(obj), sort_keys=False, allow_unicode=True, default_flow_style=False)


def render(data: ReportData, *, plots: bool = True) -> str:
    """The report page for ``data``."""
    import sacrebleu

    from harness import __version__
    from harness.stats.crossed import SEED_RANGE_LEVEL
    from harness.stats.decide import VERDICTS

    m = data.manifest
    decs, row_of, is_base, cached, rendered_plots = {}, {}, {}, {}, {}
    for b in data.benchmarks:
        decs[b.name] = {mt.label: decimals_of(b, mt.label) for mt in b.metrics}
        row_of[b.name] = {mt.label: {r.config.label: r for r in b.rows[mt.label]} for mt in b.metrics}
        is_base[b.name] = {cfg.label: any(r.is_baseline for rows in b.rows.values() for r in rows if r.config is cfg)
                           for cfg in b.configs}
        cached[b.name] = {cfg.label: bool(cfg.cells) and all(c.status == "cached" for c in cfg.cells)
                          for cfg in b.configs}
        rendered_plots[b.name] = []
        if plots and b.plots:
            from ._plots import render_all

            rendered_plots[b.name] = render_all(b.plots, prefix=f"b{len(rendered_plots)}")
    study_plots, study_dec = [], 4
    if data.study is not None:
        first = next((b for b in data.benchmarks if b.name == data.study.rows[0].benchmark), None)
        study_dec = decimals_of(first, data.study.metric.label) if first is not None else 4
        if plots and data.study.plots:
            from ._plots import STUDY_PLOTS, render_all

            study_plots = render_all(data.study.plots, prefix="study", plots=STUDY_PLOTS)
    arguments_dec = 4
    if data.arguments is not None and data.arguments.rows and data.arguments.rows[0].datasets:
        first = next((b for b in data.benchmarks if b.name == data.arguments.rows[0].datasets[0].benchmark), None)
        arguments_dec = decimals_of(first, data.arguments.metric.label) if first is not None else 4
    from harness.report.analysis.study import mlm_head_summary
    from harness.report.analysis.training import THREADS_NOTE, training_plot_data

    training_data = training_plot_data(data.training) if data.training else None
    training_plots = []
    if plots and training_data:
        from ._plots import TRAINING_PLOTS, render_all

        training_plots = render_all({"learning_curves": training_data}, prefix="train", plots=TRAINING_PLOTS)

    git = (m.get("git") or {}).get("harness") or (m.get("git") or {}).get("config") or {}
    script = asset("sort.js")
    n_tests = sum(1 for _, _, r in data.verdicts() if r.p is not None)
    n_identical = sum(1 for _, _, r in data.verdicts() if r.identical)
    payload = {"experiment": data.experiment, "alpha": data.params.alpha, "results": data.records()}
    page = environment(TEMPLATES).get_template("report.html.j2").render(
        d=data, m=_Attr(m), css=asset("report.css"), script=script, csp=csp_for(script),
        data_json=json_for_script(payload), fmt=fmt, fp=fp, dv=dv, by_rank=by_rank, ci=ci, ci_header=ci_header, best_first=best_first, signed=signed, shown=shown,
        n_identical=n_identical, decs=decs, row_of=row_of,
        is_base=is_base, cached=cached, plots=rendered_plots, n_tests=n_tests, study_plots=study_plots,
        study_dec=study_dec, arguments_dec=arguments_dec, mlm_summary=mlm_head_summary(data.mlm_heads),
        training_plots=training_plots, training_data=training_data, threads_note=THREADS_NOTE,
        n_done=sum(c.status == "done" for c in data.cells), n_cached=sum(c.status == "cached" for c in data.cells),
        git_commit=(git.get("commit") or "")[:12] if isinstance(git, dict) else "",
        config_yaml=_yaml(m.get("config") or {}), resolved_yaml=_yaml(m.get("resolved") or {}),
        sacrebleu_version=sacrebleu.__version__, harness_version=__version__, verdicts=VERDICTS,
        seed_range_level=SEED_RANGE_LEVEL)
    return page


class _Attr(dict):
    """Manifest access as ``m.key`` in templates, None when absent (old or hand-made manifests)."""

    def __getattr__(self, name):
        return self.get(name)


class HtmlReport(Reporter):
    name = "html"
    description = "Self-contained HTML report: leaderboards with 95% CIs, paired significance tests, plots, drill-down."
    Params = HtmlParams

    def outputs(self):
        return [self.params.filename]

    def write(self, results, outdir):
        p = self.params
        data = analyze(results, AnalysisParams(**{k: getattr(p, k) for k in AnalysisParams.model_fields}))
        path = safe_child(Path(outdir), p.filename)
        atomic_write_text(path, render(data, plots=p.plots))
        return [path]


@hookimpl
def register_reporters(register):
    register(HtmlReport)
