"""``html``: a self-contained comparison page (report.html). Minimal first version."""
from __future__ import annotations

import html

from harness.api import Reporter
from harness.hookspecs import hookimpl
from harness.store import atomic_write_text


class HtmlReport(Reporter):
    name = "html"
    description = "Self-contained HTML comparison report (report.html)."

    def write(self, results, outdir):
        df = results.metrics
        parts = [f"<h1>{html.escape(results.manifest.get('experiment', ''))}</h1>"]
        for bench, sub in df.groupby("benchmark", sort=True):
            table = sub.pivot_table(index=["model", "strategy", "decoder"], columns="metric", values="value",
                                    aggfunc="mean")
            parts.append(f"<h2>{html.escape(str(bench))}</h2>" + table.to_html(float_format="%.2f", escape=True))
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>report</title></head><body>"
                + "\n".join(parts) + "</body></html>")
        path = outdir / "report.html"
        atomic_write_text(path, page)
        return [path]


@hookimpl
def register_reporters(register):
    register(HtmlReport)
