"""``markdown``: report.md, the report's text for a README, a pull request or a paper draft.

The same analysis as the HTML report (:func:`harness.report.analyze`): best configuration
per benchmark and metric, the significance verdicts, and one table per benchmark and metric
with 95% intervals and p-values, and the study section (Δ vs the baseline strategy per dataset
with its intervals, the effect pooled across datasets, the MLM-head losses), the note's arguments
(one row per argument of the study note: its two arms, the pooled Δ and the verdict), and the
Training table (one row per fine-tuned checkpoint).

Written to be read raw as well as rendered: text from the data is escaped only where Markdown
would act on it (:func:`md_text`: a backslash before what could start markup, never an HTML
entity), numeric columns are right-aligned, rows are in rank order, an empty output reads
``(empty)``, and the verdicts are grouped per benchmark and baseline with the deciding test named
once. Non-goals: plots and the drill-down (see report.html).
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from harness.api import Reporter
from harness.hookspecs import hookimpl
from harness.report import AnalysisParams, analyze, by_rank, fmt
from harness.report.analysis.training import THREADS_NOTE
from harness.report.analysis.verdicts import decimals_of
from harness.stats.decide import VERDICTS
from harness.stats.significance import p_number
from harness.store import atomic_write_text, safe_child


class MarkdownParams(AnalysisParams):
    filename: str = Field("report.md", description="file name inside the run directory")


def _p(p, floor=None) -> str:
    return p_number(p, floor)


# what Markdown (CommonMark + GFM tables) would turn into markup, and nothing else, so the raw
# text stays readable: `<` only before a tag or comment, `&` only before an entity, `_` only
# where it can open or close emphasis (not inside a word like num_beams), `]` only where it
# could close a link
_MD_SPECIAL = re.compile(r"[\\`*|~]|<(?=[A-Za-z/!?])|&(?=#?\w+;)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|\](?=[(\[:])")


def md_text(text) -> str:
    """``text`` shown literally in Markdown, on one line (safe inside a table cell): no HTML
    entities in the raw file, no raw HTML, no emphasis, links or table breaks when rendered."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)


_NUMBER = re.compile(r"^(?:[\[(]?[+\-−]?\d|[<>≤≥] ?\d|–$|n/a$|not pooled$|$)")


def _table(rows: list[dict]) -> str:
    """A Markdown table whose numeric columns (every cell a number, an interval, a p-value or a
    placeholder) are right-aligned, so digits line up in the raw text as well as rendered."""
    import pandas as pd

    df = pd.DataFrame(rows).astype(str)
    align = ["right" if all(_NUMBER.match(v.strip()) for v in df[c]) and any(v.strip() not in ("–", "", "n/a", "not pooled")
                                                                                 for v in df[c]) else "left"
             for c in df.columns]
    return df.apply(lambda col: col.map(md_text)).to_markdown(index=False, disable_numparse=True, colalign=align)


def render_markdown(data) -> str:
    m = data.manifest
    out = [f"# {md_text(data.experiment)}", ""]
    if data.description:
        out += [md_text(data.description), ""]
    n_cached = sum(c.status == "cached" for c in data.cells)
    out += [f"{len(data.cells)} cells ({n_cached} reused from cache, {len(data.failed)} failed); "
            f"started {md_text(m.get('started') or '?')}, run time {fmt(m.get('seconds'), 1)} s.", ""]
    limit = m.get("limit")
    if limit:
        what = (f"Limited to {limit['n']} examples per benchmark"
                + (" (a seeded random sample)" if limit.get("sample") else f" (the first {limit['n']})")) \
            if limit.get("n") else "Limited test sets: " + ", ".join(
                f"{md_text(str(b))} ({n} examples)" for b, n in limit.get("benchmarks", {}).items())
        out += [f"> **{what}:** not comparable to full-test-set results.", ""]
    if data.failed:
        out += ["**Failed cells:**", ""]
        out += [f"- {md_text(' / '.join(map(str, (c.benchmark, c.model, c.strategy, c.decoder))))} / seed {c.seed}: "
                f"{md_text(c.error or 'failed')}" for c in data.failed]
        out.append("")
    out += ["## Best configuration per benchmark and metric", ""]
    best = [{"Benchmark": b.name, "Metric": f"{mt.title} {mt.arrow}", "Best": r.config.label,
             "Score": fmt(r.value, decimals_of(b, mt.label)),
             "Verdict vs baseline": "baseline" if r.is_baseline else "identical outputs" if r.identical else
             (r.verdict_label or "–")} for b, mt, r in data.best()]
    if best:
        out += [_table(best), ""]
    out += verdicts_markdown(data)
    out += study_markdown(data)
    out += arguments_markdown(data)
    out += training_markdown(data)
    for b in data.benchmarks:
        out += [f"## {md_text(b.name)} ({b.task})", "", f"Baseline: {md_text(b.baseline_label)}.", ""]
        out += [f"> {md_text(n)}" for n in b.notes]
        for mt in b.metrics:
            rows = b.rows[mt.label]
            dec = decimals_of(b, mt.label)
            kinds = {r.ci_kind for r in rows if r.ci_kind}
            ci_name = {"bootstrap": "95% CI (bootstrap over examples)", "t": "95% CI (t over seeds)"}.get(
                next(iter(kinds)) if len(kinds) == 1 else "", "95% CI")
            table = [{"Rank": r.rank or "–", "Configuration": r.config.label,
                      mt.title: ("n/a" if r.na_reason else fmt(r.value, dec) + (f" ± {fmt(r.std, dec)}" if r.std is not None else "")),
                      ci_name: "–" if r.ci_low is None else (f"[{fmt(r.ci_low, dec)}, {fmt(r.ci_high, dec)}]"
                                                           + (f" ({r.ci_kind})" if len(kinds) > 1 else "")
                                                           + (" cut" if r.ci_clipped else "")),
                      "Δ": "–" if r.delta is None else f"{r.delta:+.{dec}f}",
                      "Baseline": r.baseline.label if r.baseline else ("(baseline)" if r.is_baseline else ""),
                      "p": _p(r.p, r.decision.floor if r.decision is not None else None), "p (Holm)": _p(r.p_holm),
                      "Decided by": r.test_name or "–",
                      "Verdict": "identical outputs" if r.identical else (r.verdict_label or "–")}
                     for r in by_rank(rows)]
            out += [f"### {md_text(mt.title)} ({mt.direction_text})", "",
                    _table(table), ""]
            if b.signatures.get(mt.label):
                out += [f"{md_text(mt.signature_label).capitalize()}: `{b.signatures[mt.label].replace('`', '')}`", ""]
    git = (m.get("git") or {}).get("harness") or {}
    out += ["## Methods", "",
            "- Outputs identical to the baseline's on every example: no test (\"identical outputs\").",
            "- Two or more paired evaluations (seeds) with different predictions: the seeds × examples t-test decides "
            "(seed-to-seed and test-set variance, conservative Satterthwaite df; its 95% interval of the difference "
            "is shown); beside it the paired t-test and the sign-flip permutation test over seeds (which take the "
            "test set as fixed), each seed's own test over its examples (never pooled), and the seeds the deciding "
            f"test would need for {data.params.power:.0%} power over the range of seed variance the data allow.",
            "- One evaluation per arm: McNemar's exact test (accuracy) or paired approximate randomisation (other "
            "metrics with per-example statistics; exact over all 2^k swaps when k <= 16 examples differ) decides. "
            "With k examples that differ in the metric's statistics p cannot fall below 2/2^k; when that is at "
            "least alpha the data cannot decide. sacrebleu's paired bootstrap is shown for comparison (its size is "
            "above alpha) and never decides.",
            "- Verdicts: better / worse (significant), no significant difference (with the difference the test had "
            f"{data.params.power:.0%} power to see), the data cannot decide (why; what would), identical outputs. "
            f"Holm's family: {md_text(data.holm_family or 'none')}.",
            "- 95% CI: t over seeds with several seeds, percentile bootstrap over examples with one; cut to the "
            "metric's range. Ranks: best first, equal scores share a rank. See docs/statistics.md."]
    if data.study is not None:
        out.append("- Study: Δ per dataset with the seeds × examples interval and the t interval over seeds; pooled "
                   "across datasets by a t-test over the datasets' effects (equal weights, t(k−1)), with "
                   "DerSimonian–Laird's τ², I² and Q describing the heterogeneity; one dataset is not pooled.")
    out.append("")
    out += ["## Provenance", "",
            f"- config: `{str(m.get('config_file') or '?').replace('`', '')}`; seeds: {md_text(m.get('seeds'))}",
            f"- harness {md_text(m.get('harness_version') or '?')}, commit "
            f"`{str(git.get('commit') or 'unknown').replace('`', '')}`" + (" (uncommitted changes)" if git.get("dirty") else ""),
            "- packages: " + ", ".join(f"{md_text(k)} {md_text(v)}" for k, v in (m.get("packages") or {}).items()),
            f"- tests: bootstrap {data.params.bootstrap_samples} resamples, approximate randomisation "
            f"{data.params.ar_trials} trials, seed {data.params.seed}, alpha {data.params.alpha}; multiple comparisons: "
            + ("Holm-adjusted p-values decide" if data.params.multiple_comparisons == "holm" else
               "raw p-values decide (Holm-adjusted ones shown)"), ""]
    return "\n".join(out)


def verdicts_markdown(data) -> list[str]:
    """The significance verdicts, grouped: one heading per benchmark and baseline naming the
    deciding test(s) once, a bullet per metric, a sub-bullet per configuration in rank order."""
    from harness.stats.significance import format_p

    out = ["## Significance against the baseline", ""]
    p = data.params
    decides = "Holm-adjusted p-values decide" if p.multiple_comparisons == "holm" else \
        "raw p-values decide (Holm-adjusted ones beside them)"
    groups: dict[tuple[str, str], list] = {}
    for b in data.benchmarks:
        for mt in b.metrics:
            for r in by_rank(b.rows.get(mt.label, [])):
                if r.verdict and r.baseline is not None:
                    groups.setdefault((b.name, r.baseline.label), []).append((b, mt, r))
    if not groups:
        return out + ["No comparisons.", ""]
    out += [f"Significant: p below {p.alpha:g} in the deciding test; {decides}. Δ = configuration minus "
            "baseline. Each comparison's full sentence, with every test beside the deciding one, is in report.html.",
            ""]
    for (bench, base), items in groups.items():
        out += [f"### {md_text(bench)}: against {md_text(base)}", ""]
        tests = list(dict.fromkeys(r.test_name for _, _, r in items if r.p is not None))
        if tests:
            out += [f"Decided by {md_text(' / '.join(tests))}.", ""]
        metric = None
        for b, mt, r in items:
            if mt.label != metric:
                metric = mt.label
                out.append(f"- **{md_text(mt.title)}** ({mt.direction_text})")
            dec = decimals_of(b, mt.label)
            d = r.delta
            digits = 3 if dec > 2 else (1 if abs(d) >= 0.1 else 2)
            head = f"{md_text(r.config.label)}: {d:+.{digits}f}"
            dcs = r.decision
            if r.identical:
                line = f"{md_text(r.config.label)}: identical outputs to the baseline: no test, not a difference"
            elif r.p is None:
                line = f"{head}: **{dcs.label if dcs is not None else 'the data cannot decide'}**" + (
                    f" ({md_text(dcs.why)}; {md_text(dcs.would)})" if dcs is not None and dcs.why else "")
            else:
                ps = format_p(r.p, dcs.floor if dcs is not None else None) + (
                    f", Holm {p_number(r.p_holm)}" if r.p_holm is not None else "")
                if len(tests) > 1:
                    ps = f"{md_text(r.test_name)} {ps}"
                line = f"{head}, {ps}: **{dcs.label}**"
                if dcs.kind == "no_difference" and dcs.mde is not None:
                    line += f" ({dcs.power:.0%} power to see {dcs.mde:.{max(digits, 2) if dec <= 2 else dec}f} or more)"
                elif dcs.kind == "cannot_decide":
                    line += f": {md_text(dcs.why)}" + (f"; {md_text(dcs.would)}" if dcs.would else "")
                if r.disagreement:
                    line += f". {md_text(r.disagreement.rstrip('.'))}"
                need = r.seeds_need if r.test == "crossed" else None
                if need is not None and need.estimate is not None and not r.significant and d != 0:
                    rng = "" if need.low == need.high == need.estimate else (
                        f", {need.low if need.low is not None else '–'}–"
                        f"{need.high if need.high is not None else '>10,000'} over the seed variance's range")
                    line += f". About {need.estimate} seeds would detect it ({p.power:.0%} power{rng})"
            out.append(f"  - {line}")
        out.append("")
    return out


def _signed(v, dec: int) -> str:
    return "–" if v is None else f"{v:+.{dec}f}"


def _iv(lo, hi, dec: int) -> str:
    return "–" if lo is None or hi is None else f"[{lo:+.{dec}f}, {hi:+.{dec}f}]"


def study_markdown(data) -> list[str]:
    """The study section (Δ per dataset, pooled effects) and the MLM-head losses, as Markdown lines."""
    from harness.report.analysis.study import mlm_head_summary

    out: list[str] = []
    st = data.study
    if st is not None:
        bench = next((b for b in data.benchmarks if b.name == st.rows[0].benchmark), None)
        dec = decimals_of(bench, st.metric.label) if bench is not None else 4
        base = md_text(st.baseline)
        out += [f"## Study: Δ {md_text(st.metric.title)} vs {base}", "",
                f"{len(st.rows)} comparisons with the baseline strategy {base} over {len(st.datasets)} dataset(s), "
                f"paired by seed ({md_text(st.grouping)}). Δ = arm minus {base}, mean over seeds "
                f"({st.metric.direction_text}). The seeds × examples t-test decides, as in the benchmark sections.", ""]
        model = [{"Model": s.model} for s in st.rows] if st.multi_model else [{} for _ in st.rows]
        out += [_table([{**mcol, "Dataset": s.dataset, "Budget": "–" if s.budget is None else s.budget, "Arm": s.arm,
                         "Rate": "–" if s.rate is None else f"{s.rate:g}", "Seeds": s.n,
                         f"Δ vs {st.baseline}": _signed(s.delta, dec),
                         "Δ 95% CI (seeds × examples)": _iv(s.ci_low, s.ci_high, dec),
                         "Δ 95% CI (t over seeds)": _iv(s.t_low, s.t_high, dec),
                         "p": _p(s.p), "p (Holm)": _p(s.p_holm),
                         "Verdict": "identical outputs" if s.identical else (VERDICTS.get(s.decision) or "–")}
                        for mcol, s in zip(model, st.rows)]), ""]
        out += ["### Pooled across datasets (t over datasets, equal weights)", ""]
        prow = []
        for p in st.pools:
            e, h = p.pooled, p.heterogeneity
            ok = e is not None and e.estimate is not None
            hk = h is not None and h.estimate is not None
            prow.append({**({"Model": p.model} if st.multi_model else {}),
                         "Budget": "–" if p.budget is None else p.budget, "Arm": p.arm,
                         "Rate": "–" if p.rate is None else f"{p.rate:g}", "Datasets": ", ".join(p.datasets),
                         "Pooled Δ": _signed(e.estimate, dec) if ok else "not pooled",
                         "95% CI (t over datasets)": _iv(e.ci_low, e.ci_high, dec) if ok else "–",
                         "p": _p(e.p) if ok else "–",
                         "Verdict": p.decision.label if ok and p.decision is not None else "–",
                         "τ²": f"{h.tau2:.2g}" if hk and h.tau2 is not None else "–",
                         "I²": f"{h.i2:.1f}%" if hk and h.i2 is not None else "–",
                         "Q (df, p)": f"{h.q:.2f} ({h.q_df}, p {_p(h.q_p)})" if hk and h.q is not None else "–",
                         "Note": p.reason or "; ".join(x for x in (p.decision.phrase(dec) if ok and p.decision else "",
                                                                   e.note if e is not None and e.note else "") if x)})
        out += [_table(prow), "",
                "Pooled: a t-test over the datasets' effects with equal weights, t(k−1) (Hartung–Knapp–"
                "Sidik–Jonkman with equal weights: docs/statistics.md says why not inverse-variance or "
                "DerSimonian–Laird weights with 3 seeds); τ², I² (Higgins & Thompson 2002) and Q describe the "
                "heterogeneity. Per-dataset intervals: seeds × examples (seed and test-set variance); the t interval "
                "uses only the per-seed differences. The plots of Δ vs budget and vs masking rate are in report.html.",
                ""]
    if data.mlm_heads:
        out += ["## MLM head: loss before and after warm-up", "",
                "Masked-LM loss (nats per masked token) from each cell's finetune.json (`mlm_head`), mean over "
                "seeds. A pretrained head has no warm-up: its loss at the start is under \"after warm-up\".", ""]
        out += [_table([{"Benchmark": h["benchmark"], "Model": h["model"], "Strategy": h["strategy"],
                         "Seeds": ", ".join(map(str, h["seeds"])), "New head": "yes" if h["new_head"] else "no",
                         "Warm-up steps": "–" if h["warmup_steps"] is None else h["warmup_steps"],
                         "Before warm-up": fmt(h["loss_before_warmup"], 3),
                         "After warm-up": fmt(h["loss_after_warmup"] if h["loss_after_warmup"] is not None else
                                              (h["loss_at_start"] if not h["new_head"] else None), 3),
                         "After MLM stage": fmt(h["loss_after_mlm_stage"], 3),
                         "After training": fmt(h["loss_after_training"], 3)}
                        for h in mlm_head_summary(data.mlm_heads)]), ""]
    return out


def arguments_markdown(data) -> list[str]:
    """The note's arguments: one row per argument and budget (pooled Δ, its interval, the verdict),
    then each row's per-dataset verdicts and the comparisons left out; none without the arms."""
    na = data.arguments
    if na is None:
        return []
    first = na.rows[0].datasets[0].benchmark if na.rows and na.rows[0].datasets else None
    bench = next((b for b in data.benchmarks if b.name == first), None)
    dec = decimals_of(bench, na.metric.label) if bench is not None else 4
    out = ["## The note's arguments", "",
           f"Each argument of the study note against masking while fine-tuning, tested by two arms that differ in "
           f"what it is about (docs/note-arguments.md). Δ = first arm minus second, {md_text(na.metric.title)} "
           f"({na.metric.direction_text}), per dataset paired by seed as in the benchmark sections, pooled across "
           f"datasets ({md_text(na.interval)}).", ""]
    rows = []
    for r in na.rows:
        e = r.pooled
        ok = e is not None and e.estimate is not None
        rows.append({**({"Model": r.model} if na.multi_model else {}), "#": r.test.key, "Argument": r.test.argument,
                     "Arms": f"{r.treatment} vs {r.reference}",
                     "If the note is right": f"{r.treatment} {r.test.relation} {r.reference}",
                     "Budget": "–" if r.budget is None else r.budget,
                     "Datasets": len(r.datasets), "Pooled Δ": _signed(e.estimate, dec) if ok else "not pooled",
                     f"95% CI ({na.interval})": _iv(e.ci_low, e.ci_high, dec) if ok else "–",
                     "p": _p(e.p) if ok else "–",
                     "Verdict": r.row.verdict if r.row is not None and r.row.verdict else r.reason})
    out += [_table(rows), ""]
    for r in na.rows:
        out += [f"**({md_text(r.test.key)}) {md_text(r.treatment)} vs {md_text(r.reference)}"
                + (f", budget {r.budget}" if r.budget is not None else "") + f"** (held equal: {md_text(r.test.holds_equal)})",
                ""]
        out += [f"- {md_text(d.dataset)}: {md_text(d.row.verdict)}" for d in r.datasets]
        out.append("")
    if na.notes:
        out += ["Left out:", ""] + [f"- {md_text(n)}" for n in na.notes] + [""]
    return out


def training_markdown(data) -> list[str]:
    """The Training section (one row per fine-tuned checkpoint) as Markdown lines; none without one."""
    runs = data.training
    if not runs:
        return []
    with_acc = any(r.final_dev_accuracy is not None for r in runs)
    with_es = any(r.stopped_early or r.best_dev_step is not None for r in runs)
    with_threads = any(r.threads is not None for r in runs)
    rows = []
    for r in runs:
        row = {"Checkpoint": r.label, "Cells": r.cells,
               "Train examples": "–" if r.train_examples is None else r.train_examples,
               "Steps": "–" if r.steps is None else r.steps, "Epochs": fmt(r.epochs, 2), "Time (s)": fmt(r.seconds, 1),
               "Examples/s": fmt(r.examples_per_second, 1), "Last train loss": fmt(r.final_train_loss, 4),
               "Last dev loss": fmt(r.final_dev_loss, 4)}
        if with_acc:
            row["Last dev accuracy"] = fmt(r.final_dev_accuracy, 4)
        if with_es:
            row["Early stopping"] = ((f"early stop at step {r.steps}" if r.stopped_early else "ran to the end")
                                     + (f"; weights of step {r.best_dev_step} kept" if r.best_dev_step is not None else ""))
        if with_threads:
            row["Threads"] = "–" if r.threads is None else r.threads
        rows.append(row)
    out = ["## Training", "",
           "One row per fine-tuned checkpoint, from each cell's finetune.json (cells decoding one checkpoint share "
           "its row). Losses in nats per target token (translation) or per example (classification); training loss: "
           "mean over the last logging window, as the optimizer saw the batches (dropout, input masking, label "
           "smoothing); dev loss: clean dev inputs, eval mode. The learning curves are in report.html.", "",
           _table(rows), ""]
    if with_threads:
        out += [md_text(THREADS_NOTE), ""]
    smoothed = [r.label for r in runs if r.label_smoothing]
    if smoothed:
        out += [f"Label smoothing is part of the training loss but not of the dev loss of: {md_text(', '.join(smoothed))}.",
                ""]
    return out


class MarkdownReport(Reporter):
    name = "markdown"
    description = "report.md: best configurations, significance verdicts and leaderboards with CIs, in Markdown."
    Params = MarkdownParams

    def outputs(self):
        return [self.params.filename]

    def write(self, results, outdir):
        p = self.params
        data = analyze(results, AnalysisParams(**{k: getattr(p, k) for k in AnalysisParams.model_fields}))
        path = safe_child(Path(outdir), p.filename)
        atomic_write_text(path, render_markdown(data))
        return [path]


@hookimpl
def register_reporters(register):
    register(MarkdownReport)
