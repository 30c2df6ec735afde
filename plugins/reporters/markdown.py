"""``markdown``: report.md, the report's text for a README, a pull request or a paper draft.

The same analysis as the HTML report (:func:`harness.report_data.analyze`): best configuration
per benchmark and metric, the significance verdicts, and one table per benchmark and metric
with 95% intervals and p-values. Text from data is escaped for Markdown (no raw HTML, no table
breaks). Non-goals: plots and the drill-down (see report.html).
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.api import Reporter
from harness.hookspecs import hookimpl
from harness.leaderboards import md_escape
from harness.report_data import AnalysisParams, analyze, fmt, metric_decimals
from harness.store import atomic_write_text, safe_child


class MarkdownParams(AnalysisParams):
    filename: str = Field("report.md", description="file name inside the run directory")


def _p(p) -> str:
    if p is None or p != p:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def render_markdown(data) -> str:
    import pandas as pd

    m = data.manifest
    out = [f"# {md_escape(data.experiment)}", ""]
    if data.description:
        out += [md_escape(data.description), ""]
    n_cached = sum(c.status == "cached" for c in data.cells)
    out += [f"{len(data.cells)} cells ({n_cached} reused from cache, {len(data.failed)} failed); "
            f"started {md_escape(m.get('started') or '?')}, run time {fmt(m.get('seconds'), 1)} s.", ""]
    if data.failed:
        out += ["**Failed cells:**", ""]
        out += [f"- {md_escape(' / '.join(map(str, (c.benchmark, c.model, c.strategy, c.decoder))))} / seed {c.seed}: "
                f"{md_escape(c.error or 'failed')}" for c in data.failed]
        out.append("")
    out += ["## Best configuration per benchmark and metric", ""]
    best = [{"Benchmark": b.name, "Metric": f"{mt.title} {mt.arrow}", "Best": r.config.label,
             "Score": fmt(r.value, metric_decimals([x.value for x in b.rows[mt.label]])),
             "Significant vs baseline": "baseline" if r.is_baseline else
             ("yes" if r.significant else ("no" if r.significant is not None else "–"))} for b, mt, r in data.best()]
    if best:
        out += [pd.DataFrame(best).astype(str).apply(lambda col: col.map(md_escape)).to_markdown(index=False, disable_numparse=True), ""]
    out += ["## Significance against the baseline", ""]
    verdicts = data.verdicts()
    out += [f"- **{md_escape(bench)}**: {md_escape(r.verdict)}" for bench, _, r in verdicts] or ["No comparisons."]
    out.append("")
    for b in data.benchmarks:
        out += [f"## {md_escape(b.name)} ({b.task})", "", f"Baseline: {md_escape(b.baseline_label)}.", ""]
        out += [f"> {md_escape(n)}" for n in b.notes]
        for mt in b.metrics:
            rows = b.rows[mt.label]
            dec = metric_decimals([r.value for r in rows])
            table = [{"Rank": r.rank or "–", "Configuration": r.config.label,
                      mt.title: fmt(r.value, dec) + (f" ± {fmt(r.std, dec)}" if r.std is not None else ""),
                      "95% CI": "–" if r.ci_low is None else f"[{fmt(r.ci_low, dec)}, {fmt(r.ci_high, dec)}]",
                      "Δ": "–" if r.delta is None else f"{r.delta:+.{dec}f}",
                      "Baseline": r.baseline.label if r.baseline else ("(baseline)" if r.is_baseline else ""),
                      "p": _p(r.p), "Test": r.test or "–",
                      "Significant": "yes" if r.significant else ("no" if r.significant is not None else "–")}
                     for r in rows]
            out += [f"### {md_escape(mt.title)} ({'higher' if mt.higher_is_better else 'lower'} is better)", "",
                    pd.DataFrame(table).astype(str).apply(lambda col: col.map(md_escape)).to_markdown(index=False, disable_numparse=True), ""]
            if b.signatures.get(mt.label):
                out += [f"Signature: `{b.signatures[mt.label].replace('`', '')}`", ""]
    git = (m.get("git") or {}).get("harness") or {}
    out += ["## Provenance", "",
            f"- config: `{str(m.get('config_file') or '?').replace('`', '')}`; seeds: {md_escape(m.get('seeds'))}",
            f"- harness {md_escape(m.get('harness_version') or '?')}, commit "
            f"`{str(git.get('commit') or 'unknown').replace('`', '')}`" + (" (uncommitted changes)" if git.get("dirty") else ""),
            "- packages: " + ", ".join(f"{md_escape(k)} {md_escape(v)}" for k, v in (m.get("packages") or {}).items()),
            f"- tests: bootstrap {data.params.bootstrap_samples} resamples, approximate randomisation "
            f"{data.params.ar_trials} trials, seed {data.params.seed}, alpha {data.params.alpha}", ""]
    return "\n".join(out)


class MarkdownReport(Reporter):
    name = "markdown"
    description = "report.md: best configurations, significance verdicts and leaderboards with CIs, in Markdown."
    Params = MarkdownParams

    def write(self, results, outdir):
        p = self.params
        data = analyze(results, AnalysisParams(**{k: getattr(p, k) for k in AnalysisParams.model_fields}))
        path = safe_child(Path(outdir), p.filename)
        atomic_write_text(path, render_markdown(data))
        return [path]


@hookimpl
def register_reporters(register):
    register(MarkdownReport)
