"""The ``harness`` command line.

``--help``, ``validate`` and ``plugins`` import neither torch nor transformers. User mistakes
(:class:`HarnessError`) print one message per problem and exit with code 2, no traceback.
click is used for the CLI because it gives typed options, help pages and testable invocation.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import click

# OpenMP threads that finish first spin-wait for the others by default; on a loaded machine a
# descheduled partner turns that into burnt CPU: measured on 2 cores at load 3, 60 training steps
# of a quickstart-sized Marian took over 100 s with 2 spinning threads, 3.4 s with 2 passive
# ones, 2.6 s with one.
# Read when torch loads its OpenMP runtime, so it is set before anything imports torch; a
# value the user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import HarnessError, printable
from .run.threads import DEFAULT_RULE


def echo(message="", err: bool = False) -> None:
    """click.echo, with the control characters of labels and data escaped (no ANSI sequences
    from a config or a data file reach the terminal raw)."""
    click.echo(printable(str(message)), err=err)


def _usage_error(ctx, e: click.UsageError) -> None:
    """click's usage errors as one ``error:`` line (click prints usage, a hint and the error on
    three), exit code 2 like any other bad input."""
    where = e.ctx.command_path if e.ctx is not None else ctx.command_path
    echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
    ctx.exit(2)


def _parse_args(parse, command: click.Command, ctx: click.Context, args: list[str]):
    """click's parsing, except that an unknown option gets the harness's answer (harness.habits):
    another tool's habit is answered with the harness's way, and a guess is only a near miss of
    the command's own spelling (click's would offer --sample for lm-eval's --log_samples)."""
    try:
        return parse(ctx, args)
    except click.NoSuchOption as e:
        from .habits import unknown_option_message

        options = [o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)]
        names, c = [], ctx
        while c.parent is not None:  # "harness run", however the program was started (python -m ...)
            names.append(c.info_name)
            c = c.parent
        where = " ".join(["harness", *reversed(names)])
        echo(f"error: {unknown_option_message(e.option_name, where, options)}", err=True)
        ctx.exit(2)


class _Command(click.Command):
    def parse_args(self, ctx, args):
        return _parse_args(super().parse_args, self, ctx, args)


class _Group(click.Group):
    command_class = _Command

    def parse_args(self, ctx, args):
        try:
            return _parse_args(super().parse_args, self, ctx, args)
        except click.UsageError as e:
            _usage_error(ctx, e)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            _usage_error(ctx, e)
        except HarnessError as e:
            for line in str(e).splitlines():
                echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            echo("interrupted; finished cells are kept and will be reused", err=True)
            ctx.exit(130)
        except OSError as e:  # a full disk anywhere else (a temp directory...): one line, not a traceback
            from .store import storage_fault

            fault = storage_fault(e)
            if fault is None:
                raise
            echo(f"error: {fault}", err=True)
            ctx.exit(fault.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nlp-eval-harness", prog_name="harness")
def main():
    """Evaluate decoding and fine-tuning strategies on translation and classification benchmarks."""


KIND_TITLES = {"decoder": "decoders", "strategy": "strategies", "benchmark": "benchmarks", "metric": "metrics",
               "reporter": "reporters", "executor": "executors"}

_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                           help="Override a config value (YAML syntax), e.g. --set decoders.0.params.num_beams=[1,4]; "
                                "'*' matches every item: --set benchmarks.*.params.limit=100.")
_unset_option = click.option("--unset", "unsets", multiple=True, metavar="KEY.PATH",
                             help="Remove a config key so its default applies, e.g. --unset baseline.")

SPEC = "NAME[:KEY=VALUE,...]"


def _experiment_options(f):
    """Options that build or edit an experiment; `validate` and `run` share them."""
    options = [
        _set_option, _unset_option,
        click.option("--model", "models", multiple=True, metavar="PATH_OR_HUB_ID",
                     help="Model directory or Hub id (repeatable); replaces the config's models."),
        click.option("--benchmark", "benchmarks", multiple=True, metavar=SPEC,
                     help="A preset (`harness benchmarks`) or a benchmark plugin with parameters, e.g. "
                          "multi30k-2016-en-de or parallel_text:source=a.en,reference=a.de (repeatable)."),
        click.option("--strategy", "strategies", multiple=True, metavar=SPEC, help="Fine-tuning strategy (repeatable)."),
        click.option("--decoder", "decoders", multiple=True, metavar=SPEC,
                     help="Decoder, e.g. greedy or beam:num_beams=4 (a list sweeps: beam:num_beams=[2,4]) (repeatable)."),
        click.option("--metric", "metrics", multiple=True, metavar=SPEC, help="Metric, e.g. bleu (repeatable)."),
        click.option("--seeds", metavar="0,1,...", help="Comma-separated seeds."),
        click.option("--name", "exp_name", help="Experiment name (without CONFIG: default from -o, else 'run')."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where benchmark presets find local copies (default: $HARNESS_DATA_DIR)."),
        click.option("--limit", type=click.IntRange(min=1),
                     help="Evaluate only N test examples of every benchmark (the first N; see --sample). "
                          "Shown as a banner in the report: not comparable to full-test-set results."),
        click.option("--sample", is_flag=True, help="With --limit: a seeded random sample of N examples."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@_experiment_options
def validate(config: Path | None, **options):
    """Check CONFIG (or the experiment the options describe) without loading any model; print
    the grid it expands to and where each benchmark preset's data comes from."""
    from .experiment.oneliner import build

    resolved = build(config, **options).resolved
    cells = resolved.cells()
    for warning in resolved.warnings:
        echo(f"warning: {warning}", err=True)
    echo(f"{config or 'command line'}: OK — {len(cells)} cells")
    for section, comps in resolved.components.items():
        echo(f"  {section}: {', '.join(c.label for c in comps)}")
        if section == "benchmarks":
            for c in comps:
                if c.base_label in resolved.origins:
                    given = ", ".join(f"{k}={v}" for k, v in c.params.model_dump(mode="json", exclude_defaults=True).items())
                    echo(f"    {c.label} = {c.name}({given})  [{resolved.origins[c.base_label]}]")
    echo(f"  models: {', '.join(m.display for m in resolved.experiment.models)}")
    echo(f"  seeds: {', '.join(map(str, resolved.experiment.seeds))}")
    if resolved.experiment.limit is not None:
        how = "a seeded random sample" if resolved.experiment.sample else "the first ones"
        echo(f"  limit: {resolved.experiment.limit} test examples per benchmark ({how}); "
                   "not comparable to full-test-set results")
    else:
        for c in resolved.components["benchmarks"]:
            if c.subset is not None:
                echo(f"  limit: {c.label}: {c.subset.describe()} (taken by the harness); "
                           "not comparable to full-test-set results")


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path),
              help="Output directory (default: the config's output_dir, else runs/<name>).")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Shared cache for fine-tuned checkpoints (default: $HARNESS_CACHE or ~/.cache/nlp-eval-harness).")
@click.option("--retry-failed", "only_failed", is_flag=True,
              help="Run only the cells whose last attempt failed or was interrupted; cells never run stay "
                   "skipped. (A plain re-run already retries failed cells and runs the missing ones.)")
@click.option("--skip-failed", is_flag=True,
              help="Keep recorded failures as they are (do not retry them); run only cells never run or interrupted.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display; print only errors and the final summary.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help=f"torch threads per cell (default: the config's threads:, else OMP_NUM_THREADS, else {DEFAULT_RULE}). "
                   "Training runs at the config's training_threads: (default 1, so a seed gives the same checkpoint "
                   "on any machine). Both are recorded in manifest.json.")
@click.option("--overwrite", is_flag=True,
              help="Write into an output directory that holds results of another config, replacing them "
                   "(its finished cells stay cached).")
@_experiment_options
def run(config: Path, outdir: Path | None, cache_dir: Path | None, only_failed: bool, skip_failed: bool, quiet: bool,
        threads: int | None, overwrite: bool, **options):
    """Run every cell of CONFIG and write results and reports.

    \b
    Without CONFIG, the options describe the experiment, and OUTDIR/config.yaml records it:
      harness run --model Helsinki-NLP/opus-mt-en-de --benchmark multi30k-2016-en-de \\
        --decoder greedy --decoder beam:num_beams=4 --metric bleu --seeds 0,1 -o runs/m30k
    With CONFIG, --model/--benchmark/--decoder/... replace those sections of it.

    \b
    Resuming: finished cells are reused, so after a crash, Ctrl-C or kill, run the same
    command again; the interrupted cell starts over and the results are identical to an
    uninterrupted run. Failed cells are recorded (error and traceback in
    OUTDIR/cells/<key>/cell.json and in manifest.json) while the other cells go on.

    \b
    Exit codes: 0 all cells done; 1 some cells (or a metric or reporter) failed, results
    of the others are written; 2 bad config, data or output directory (nothing run or
    written); 3 a result file could not be written (disk full, read-only...): the run
    stopped, finished cells are kept, run again once there is space; 130 interrupted.
    """
    from .experiment.oneliner import build
    from .run.runner import run_experiment

    if only_failed and skip_failed:
        raise HarnessError("--retry-failed and --skip-failed contradict each other; give one of them")
    built = build(config, outdir=outdir, **options)
    resolved = built.resolved
    for warning in resolved.warnings:
        echo(f"warning: {warning}", err=True)
    if outdir is None:
        exp = resolved.experiment
        outdir = (resolved.base_dir / exp.output_dir) if exp.output_dir else Path("runs") / exp.name
    if built.config is not None:  # options gave the experiment: OUTDIR/config.yaml will record it
        _check_config_target(outdir)
    summary = run_experiment(resolved, outdir, cache_dir=cache_dir, quiet=quiet, only_failed=only_failed,
                             retry_failed=not skip_failed, threads=threads, overwrite=overwrite)
    if built.config is not None and not summary.write_errors:  # options gave the experiment: keep its YAML
        echo(f"config: {_write_config(built, outdir)}")
    _summarize(summary, outdir, only_failed)


def _check_config_target(outdir: Path) -> None:
    """OUTDIR/config.yaml will record an options-only experiment: refused now, not after the run,
    when a file there is not the harness's."""
    from .run.ownership import RunFiles, directory_problem

    if directory_problem(outdir) is None and Path(outdir).is_dir():
        RunFiles(outdir).check_target(Path(outdir) / "config.yaml")


def _write_config(built, outdir: Path) -> Path:
    """Write OUTDIR/config.yaml (the YAML that reproduces an options-only run), through the ledger."""
    from .run.ownership import RunFiles
    from .store import atomic_write_text

    target, text = Path(outdir) / "config.yaml", built.config_text()
    ledger = RunFiles(outdir)
    ledger.check_target(target)
    ledger.will_write({target: text.encode("utf-8")})
    atomic_write_text(target, text)
    return target


def _summarize(summary, outdir: Path, only_failed: bool = False) -> None:
    """What `run` and `score` print after a run, and their exit code (see `harness run --help`)."""
    n, failed = len(summary.outcomes), summary.failed
    parts = [f"{summary.count('cached')} reused", f"{len(failed)} failed"]
    if summary.count("skipped"):
        parts.append(f"{summary.count('skipped')} skipped")
    echo(f"{n} cells ({', '.join(parts)}) → {outdir}")
    for f in summary.files:
        if f.name.endswith((".html", ".md")) and f.parent.name != "outputs":  # (outputs/README.md: not a report)
            echo(f"report: {f}")
    if summary.count("skipped") and only_failed:
        echo(f"note: {summary.count('skipped')} cells were never run and were skipped by --retry-failed; "
                   "run without it to run them", err=True)
    for o in failed:
        where = outdir / "manifest.json" if (o.error or "").startswith("scoring failed") else outdir / "cells" / o.key / "cell.json"
        echo(f"failed: {' / '.join(map(str, o.labels.values()))}: {o.error} (traceback in {where})", err=True)
    for o in summary.outcomes:
        for message in o.metric_errors:
            echo(f"failed: {' / '.join(map(str, o.labels.values()))}: {message}", err=True)
    for message in summary.report_errors:
        echo(f"failed: {message}", err=True)
    if summary.write_errors:
        more = len(summary.write_errors) - 1
        echo(f"error: {summary.write_errors[0]}" + (f" (and {more} more files)" if more else "")
                   + "; finished cells are kept: run the same command again once it can be written", err=True)
        sys.exit(3)
    if failed or summary.report_errors or any(o.metric_errors for o in summary.outcomes):
        sys.exit(1)


SCORE_EPILOG = """\
examples:
  harness score ref.de -i sys1.de sys2.de -m bleu chrf -o runs/mine     (sacrebleu ref.de -i sys1.de sys2.de --paired-bs)
  harness score ref.A.de ref.B.de --source src.en -i base=out/base.de new=out/new.de --baseline base
  harness score --systems-dir wmt19/de --references wmt19/de/newstest2019.ref.A.de -m bleu chrf:word_order=2

The first system is the baseline (as in sacrebleu's paired tests) unless --baseline names one.
Every system is compared with it by the report's tests (approximate randomisation decides; sacrebleu's
paired bootstrap is shown beside it), ranked, and written as a run directory: metrics.csv, predictions/,
outputs/ (plain text), manifest.json, results.json, report.html, and config.yaml, which reproduces it
(harness run OUT/config.yaml -o OUT). docs/score.md has the details.
"""


class _ScoreParser(argparse.ArgumentParser):
    """argparse, as sacrebleu parses its own options (``-i SYS1 SYS2``, ``-m bleu chrf``); a
    mistake is one ``error:`` line and exit code 2, like every other command."""

    def error(self, message):
        raise HarnessError(f"{self.prog}: {message} (see harness score --help)")


def _score_parser() -> argparse.ArgumentParser:
    p = _ScoreParser(prog="harness score", allow_abbrev=False, epilog=SCORE_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Score system output files against reference files, as sacrebleu does, through "
                                 "the harness's cells, paired tests and reports.")
    p.add_argument("refs", nargs="*", metavar="REF", help="reference file(s), one segment per line; several files "
                                                         "are several references per segment")
    p.add_argument("-i", "--input", dest="systems", nargs="+", action="extend", default=[], metavar="SYS",
                   help="system output file(s): plain text (one segment per line) or JSONL ({\"output\": ...} per "
                        "line, e.g. a run's predictions/*.jsonl); NAME=PATH names a system (default: from the file "
                        "name; NAME of a shared task's <testset>.hyp.NAME.<lang>)")
    p.add_argument("-m", "--metrics", nargs="+", action="extend", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="metric plugins, e.g. bleu chrf:word_order=2 ter (default: bleu chrf ter)")
    p.add_argument("-o", "--output", metavar="OUT", help="run directory (default: runs/<test set name>)")
    p.add_argument("--source", metavar="FILE", help="source file aligned with the references (optional)")
    p.add_argument("--references", dest="more_refs", nargs="+", action="extend", default=[], metavar="REF",
                   help="reference file(s), as REF (added after them)")
    p.add_argument("--systems-dir", metavar="DIR",
                   help="a shared task's directory of <testset>.hyp.<SYSTEM>.<lang> files (the WMT metrics-task "
                        "layout), with its <testset>.ref.*.<lang> references and <testset>.src.* source unless given")
    p.add_argument("--baseline", metavar="NAME", help="the system every other one is compared with (default: the "
                                                       "first -i, else the first of --systems-dir by name)")
    p.add_argument("--testset", metavar="NAME", help="name of the test set in reports and leaderboards (default: "
                                                      "the shared task's test set, else the first reference's name)")
    p.add_argument("--name", metavar="NAME", help="experiment name (default: the test set's name)")
    p.add_argument("--paired-bs", action="store_true",
                   help="accepted for sacrebleu's habit: the report always shows sacrebleu's paired bootstrap")
    p.add_argument("--paired-ar", action="store_true",
                   help="accepted for sacrebleu's habit: approximate randomisation always decides")
    p.add_argument("--paired-bs-n", type=int, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--paired-ar-n", type=int, metavar="N", help="approximate randomisation trials (default 10000)")
    p.add_argument("-tok", "--tokenize", help="BLEU tokenizer, as sacrebleu's -tok (= -m bleu:tokenize=...)")
    p.add_argument("-lc", "--lowercase", action="store_true", default=None,
                   help="case-insensitive BLEU, as sacrebleu's -lc (= -m bleu:lowercase=true)")
    p.add_argument("-cw", "--chrf-word-order", type=int, metavar="N",
                   help="chrF word n-gram order, as sacrebleu's -cw (2 gives chrF++; = -m chrf:word_order=N)")
    p.add_argument("--cache-dir", metavar="DIR", help="shared cache (default: $HARNESS_CACHE)")
    p.add_argument("--overwrite", action="store_true", help="replace another config's results in OUT")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress lines")
    return p


@main.command("score", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              add_help_option=False)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def score_cmd(argv: tuple[str, ...]):
    """Score system output files against references, as sacrebleu does:
    harness score REF [REF ...] -i SYS [SYS ...] -m bleu chrf -o OUT (see harness score --help)."""
    from .experiment.score import build
    from .run.runner import run_experiment

    args = _score_parser().parse_args(list(argv))
    sacrebleu_options = {k: v for k, v in (("tokenize", args.tokenize), ("lowercase", args.lowercase),
                                           ("chrf_word_order", args.chrf_word_order)) if v is not None}
    analysis = {k: v for k, v in (("bootstrap_samples", args.paired_bs_n), ("ar_trials", args.paired_ar_n))
                if v is not None}
    built = build([*args.refs, *args.more_refs], args.systems, metrics=args.metrics, source=args.source,
                  baseline=args.baseline, systems_dir=args.systems_dir, testset=args.testset, name=args.name,
                  sacrebleu_options=sacrebleu_options, analysis=analysis)
    outdir = Path(args.output) if args.output else Path("runs") / built.resolved.experiment.name
    _check_config_target(outdir)
    summary = run_experiment(built.resolved, outdir, cache_dir=args.cache_dir, quiet=args.quiet,
                             overwrite=args.overwrite)
    if not summary.write_errors:
        echo(f"config: {_write_config(built, outdir)}")
        for line in _ranking_lines(outdir):
            echo(line)
    _summarize(summary, outdir)


def _ranking_lines(outdir: Path) -> list[str]:
    """The systems ranked by the first metric, with every metric's score and the report's verdict
    against the baseline (read from results.json: the report's own numbers and sentences)."""
    import json

    try:
        doc = json.loads((outdir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    from .report.analysis import metric_decimals

    aggregates, comparisons = doc.get("aggregates") or [], doc.get("comparisons") or []
    lines = []
    for bench in dict.fromkeys(a["benchmark"] for a in aggregates):
        rows = [a for a in aggregates if a["benchmark"] == bench]
        metrics = list(dict.fromkeys(a["metric"] for a in rows))
        first = metrics[0]
        value = {(a["label"], a["metric"]): a["value"] for a in rows}
        decimals = {m: _decimals_of(doc, m, [a["value"] for a in rows if a["metric"] == m], metric_decimals)
                    for m in metrics}
        ranked = sorted((a for a in rows if a["metric"] == first),
                        key=lambda a: (a["rank"] is None, a["rank"] or 0))
        width = max([len("system"), *(len(str(a["label"])) for a in ranked)])
        titles = {m: _metric_title(doc, m) for m in metrics}
        baseline = next((c["baseline"] for c in comparisons if c["benchmark"] == bench), None)
        lines.append(f"{bench}: {len(ranked)} systems ranked by {titles[first]}"
                     + (f", baseline {baseline}" if baseline else ""))
        lines.append(f"  {'rank':>4}  {'system':<{width}}  " + "  ".join(f"{titles[m]:>8}" for m in metrics))
        for a in ranked:
            scores = "  ".join(f"{_fmt(value.get((a['label'], m)), decimals[m]):>8}" for m in metrics)
            rank = "–" if a["rank"] is None else str(a["rank"])
            lines.append(f"  {rank:>4}  {a['label']:<{width}}  {scores}")
        verdicts = {c["label"]: c["verdict"] for c in comparisons if c["benchmark"] == bench and c["metric"] == first}
        for a in ranked:
            if verdicts.get(a["label"]):
                lines.append(f"  {verdicts[a['label']]}")
    return lines


def _metric_class(doc: dict, metric: str):
    from .plugins import default_plugins

    plugin = (doc.get("metrics") or {}).get(metric, {}).get("plugin") or metric
    try:
        return default_plugins().get("metric", plugin)
    except HarnessError:
        return None


def _metric_title(doc: dict, metric: str) -> str:
    cls = _metric_class(doc, metric)
    return (getattr(cls, "title", "") or metric) if cls is not None else metric


def _decimals_of(doc: dict, metric: str, values: list, default) -> int:
    """Digits a metric is shown with: its plugin's ``decimals``, else from the scale of its values."""
    fixed = getattr(_metric_class(doc, metric), "decimals", None)
    return int(fixed) if fixed is not None else default([v for v in values if v is not None])


def _fmt(v, decimals: int) -> str:
    return "–" if v is None else f"{v:.{decimals}f}"


@main.command()
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reporter", "reporters", multiple=True, help="Reporter plugin(s) to run (default: the run's own).")
@click.option("--baseline", "baselines", multiple=True, metavar="FACTOR=LABEL",
              help="Compare against another baseline than the run's: decoder=LABEL, strategy=LABEL or model=LABEL "
                   "(repeatable). The run's own files are left alone unless --out is OUTDIR itself.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the reports (default: OUTDIR; with --baseline: OUTDIR/baseline-<labels>).")
def report(outdir: Path, reporters: tuple[str, ...], baselines: tuple[str, ...], out: Path | None):
    """Re-render reports from the saved results in OUTDIR."""
    from .plugins import default_plugins
    from .results import load_run
    from .store import slug

    from .run.ownership import claim

    results = load_run(outdir)
    results.check_predictions()  # a damaged cell is refused before any report is written
    if baselines:
        wanted = _baseline_overrides(results.manifest, baselines)
        results.manifest["baseline"] = {**(results.manifest.get("baseline") or {}), **wanted}
        if out is None:  # slug: a label such as org/model must not make a nested directory
            out = outdir / slug("baseline-" + "-".join(f"{k}-{v}" for k, v in wanted.items()))
    target = out or outdir
    names = list(reporters) or [r["plugin"] for r in results.manifest.get("resolved", {}).get("reporters", [])] or ["html"]
    params = {r["plugin"]: r["params"] for r in results.manifest.get("resolved", {}).get("reporters", [])}
    plugins = default_plugins()
    chosen = []
    for name in names:
        cls = plugins.get("reporter", name)
        chosen.append(cls(cls.Params.model_validate(params.get(name, {}))))
    # the reports replace only files the harness wrote there (a --out directory of the user's is refused)
    ledger = claim(target)
    planned = [target / n for r in chosen for n in (r.outputs() or [])] + [target / "results.json"]
    ledger.check_targets(planned)
    target.mkdir(parents=True, exist_ok=True)
    ledger.will_write_unknown(planned)
    wrote: list[Path] = []
    for reporter in chosen:
        for f in reporter.write(results, target):
            wrote.append(Path(f))
            echo(f"wrote {f}")
    from .report.results_json import write as write_results_json

    wrote.append(write_results_json(results, target))  # regenerated from the saved results
    echo(f"wrote {wrote[-1]}")
    ledger.wrote(wrote)


def _baseline_overrides(manifest: dict, items: tuple[str, ...]) -> dict[str, str]:
    """``--baseline decoder=beam5`` -> {"decoder": "beam5"}, checked against the run's labels."""
    from .errors import unknown_choice_message

    cells = manifest.get("cells") or []  # the labels the reports use
    labels = {f: list(dict.fromkeys(str(c.get(f)) for c in cells if c.get(f))) for f in ("decoder", "strategy", "model")}
    out: dict[str, str] = {}
    for item in items:
        factor, sep, label = item.partition("=")
        if not sep or factor not in labels:
            raise HarnessError(f"--baseline {item}: give FACTOR=LABEL with FACTOR one of decoder, strategy, model")
        if label not in labels[factor]:
            raise HarnessError(f"--baseline {item}: " + unknown_choice_message(f"no {factor} labelled", label,
                                                                               labels[factor]))
        out[factor] = label
    return out


KIND_BY_NAME = {**{k: k for k in KIND_TITLES}, **{v: k for k, v in KIND_TITLES.items()}}


def _param_line(p: dict) -> str:
    cons = f" {p['constraints']}" if p["constraints"] else ""
    value = "required" if p["required"] else f"= {p['default']!r}"
    return f"- {p['name']}: {p['type']} {value}{cons}  {p['description']}".rstrip()


def _echo_plugin(info, params: list[dict], shared_note: str = "") -> None:
    extra = f" [task: {info.cls.task}]" if hasattr(info.cls, "task") and info.kind in ("benchmark", "metric") else ""
    echo(f"  {info.name}  ({info.package}: {info.module}){extra}")
    if info.cls.description:
        echo(f"      {info.cls.description}")
    for p in params:
        echo(f"      {_param_line(p)}")
    if shared_note:
        echo(f"      {shared_note}")


@main.command("plugins")
@click.argument("name", required=False)
@click.option("--kind", type=click.Choice(sorted(KIND_BY_NAME)), help="Only this kind (singular or plural).")
def plugins_cmd(name: str | None, kind: str | None):
    """List every registered plugin by kind, with its parameters and package; with NAME, only that plugin.

    Parameters that several plugins of a kind share unchanged are listed once, after that kind.
    """
    from .errors import unknown_choice_message
    from .params import describe
    from .plugins import default_plugins

    kind = KIND_BY_NAME.get(kind) if kind else None
    infos = [i for i in default_plugins() if kind is None or i.kind == kind]
    if name is not None:
        chosen = [i for i in infos if i.name == name]
        if not chosen:
            what = f"{kind} plugin" if kind else "plugin"
            raise HarnessError(unknown_choice_message(f"no {what} named", name, sorted({i.name for i in infos})))
        for info in chosen:
            echo(f"{info.kind}:")
            _echo_plugin(info, describe(info.cls.Params))
        return
    by_kind: dict[str, list] = {}
    for info in infos:
        by_kind.setdefault(info.kind, []).append(info)
    for k, group in by_kind.items():
        described = {i.name: describe(i.cls.Params) for i in group}
        # a parameter (same name, type, default, description) in >= 2 plugins of this kind is shown once
        users: dict[str, tuple[dict, list[str]]] = {}
        for plugin, params in described.items():
            for p in params:
                users.setdefault(repr(sorted(p.items())), (p, []))[1].append(plugin)
        shared = {key: v for key, v in users.items() if len(v[1]) > 1}
        echo(f"\n{KIND_TITLES[k]}:")
        for info in group:
            params = described[info.name]
            common = [p["name"] for p in params if repr(sorted(p.items())) in shared]
            _echo_plugin(info, [p for p in params if repr(sorted(p.items())) not in shared],
                         f"(+ shared: {', '.join(common)})" if common else "")
        if shared:
            echo(f"  shared parameters of {KIND_TITLES[k]}:")
            for p, names in shared.values():
                echo(f"      {_param_line(p)}  [{', '.join(names)}]")
    broken = default_plugins().broken
    if broken and kind is None:
        echo("\nbroken (skipped; block with HARNESS_BLOCK_PLUGINS):")
        for b in broken:
            echo(f"  {b.name}  ({b.package}): {b.error}")


@main.command("benchmarks")
@click.argument("name", required=False)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Say which presets would read local copies from here (default: $HARNESS_DATA_DIR).")
def benchmarks_cmd(name: str | None, data_dir: Path | None):
    """List the named benchmark presets (use them as `benchmarks: [NAME]` or --benchmark NAME);
    with NAME, show that preset's YAML, citation and where its data would come from."""
    from .experiment import presets as preset_lib
    from .errors import unknown_choice_message

    found = preset_lib.presets()
    data = preset_lib.data_dir_from(str(data_dir) if data_dir else None, Path.cwd())
    if name is not None:
        if name not in found:
            raise HarnessError(unknown_choice_message("no benchmark preset named", name, found))
        preset = found[name]
        echo((preset_lib.PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8").rstrip())
        try:
            source, _, where = preset.choose(data)
            missing = preset_lib.layout_note(preset, data) if data is not None and source is not preset.local else None
            echo(f"\n# data: {where}" + (f" ({missing})" if missing else ""))
        except HarnessError as e:
            echo(f"\n# data: unavailable: {e}")
        return
    for task in ("translation", "classification"):
        group = [p for p in found.values() if p.task == task]
        echo(f"{task}:")
        width = max(len(p.name) for p in group)
        for p in group:
            try:
                source, _, where = p.choose(data)
                if data is not None and p.local is not None and source is not p.local:
                    where += f" (no local copy in {data})"
            except HarnessError:
                where = "local files needed (see `harness benchmarks " + p.name + "`)"
            size = f"{p.size:,}" if p.size else "?"
            echo(f"  {p.name:<{width}}  {p.description} [{size}]  <- {where}")
    echo("\nUse: harness run --model M --benchmark NAME, or `benchmarks: [NAME]` in a config; "
               "`harness benchmarks NAME` shows a preset's source, split, columns and citation.")


@main.command("compare")
@click.argument("files", nargs=-1, required=True, metavar="SYSTEM BASELINE [SYSTEM BASELINE]...")
@click.option("--metric", help="The score to compare: a key of predictions/*.jsonl rows' `scores` (e.g. correct, "
                               "chrf), or bleu/chrf/ter for corpus statistics from the outputs. Not needed for "
                               "one-number-per-line files.")
@click.option("--direction", type=click.Choice(["higher", "lower"]), default=None,
              help="Which way is better (default: lower for ter, higher otherwise).")
@click.option("--alpha", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level.")
@click.option("--power", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Power of the detectable-difference and seeds-needed statements.")
@click.option("--min-effect", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The difference that matters, in the metric's units: a test that cannot see it says the data "
                   "cannot decide.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def compare_cmd(files: tuple[str, ...], metric: str | None, direction: str | None, alpha: float, power: float,
                min_effect: float | None, as_json: bool):
    """Compare two systems from per-example scores: verdict, p, interval and the deciding test.

    Arguments come in pairs, SYSTEM then BASELINE. Each is a file, or several files separated
    by commas (one per seed, paired by position), optionally prefixed with a dataset label:
    `sst2=sys0.jsonl,sys1.jsonl,sys2.jsonl sst2=base0.jsonl,base1.jsonl,base2.jsonl`. More pairs
    are more datasets. Files: a run's predictions/*.jsonl (with --metric) or one number per line.

    \b
    harness compare runs/x/predictions/beam.jsonl runs/x/predictions/greedy.jsonl --metric bleu
    harness compare a_s0.txt,a_s1.txt,a_s2.txt b_s0.txt,b_s1.txt,b_s2.txt
    """
    import json as _json

    from .report.compare import compare_files

    if len(files) % 2:
        raise HarnessError(f"compare: {len(files)} arguments; they come in pairs, SYSTEM then BASELINE "
                           f"(the last one, {files[-1]!r}, has no baseline)")
    pairs = []
    for i in range(0, len(files), 2):
        (ls, fs), (lb, fb) = (_compare_arg(files[i]), _compare_arg(files[i + 1]))
        if ls and lb and ls != lb:
            raise HarnessError(f"compare: pair {i // 2 + 1} has system label {ls!r} but baseline label {lb!r}")
        pairs.append((ls or lb or f"dataset {i // 2 + 1}", fs, fb))
    labels = [p[0] for p in pairs]
    if len(set(labels)) < len(labels):
        raise HarnessError(f"compare: dataset label {next(x for x in labels if labels.count(x) > 1)!r} is given twice")
    res = compare_files(pairs, metric=metric, direction=direction, alpha=alpha, power=power, min_effect=min_effect,
                        system_name=files[0].split("=", 1)[-1].split(",")[0],
                        baseline_name=files[1].split("=", 1)[-1].split(",")[0])
    if as_json:
        echo(_json.dumps(_plain(res.as_dict()), indent=2))
        return
    d = res.decision
    echo(f"verdict: {res.verdict}")
    echo(f"deciding test: {res.test_name}")
    from .stats.significance import format_p

    echo(f"{format_p(d.p, d.floor)}" if d.p is not None else "p: n/a")
    echo(f"difference: {res.delta:+.4g}" + (f", 95% CI [{res.ci[0]:.4g}, {res.ci[1]:.4g}] ({d.ci_method})"
                                                   if res.ci else ""))
    for ds in res.datasets if len(res.datasets) > 1 else []:
        echo(f"  {ds.label}: {ds.delta:+.4g}, {ds.decision.test_name} {format_p(ds.decision.p, ds.decision.floor)}: "
                   f"{ds.decision.label}")
    echo(res.sentence())


def _compare_arg(arg: str) -> tuple[str | None, list[str]]:
    label, _, rest = arg.rpartition("=") if "=" in arg.split(",")[0] else (None, "", arg)
    files = [f for f in rest.split(",") if f]
    if not files:
        raise HarnessError(f"compare: {arg!r} names no file")
    return (label or None), files


def _plain(v):
    import math as _math

    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    return None if isinstance(v, float) and not _math.isfinite(v) else v


@main.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write here; the format follows the extension (.html .csv .parquet .md .tex). Repeatable. "
                   "Default: reports/leaderboard.html.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV here.")
@click.option("--parquet", "parquet_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write Parquet here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write Markdown here.")
@click.option("--latex", "tex_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write LaTeX here.")
@click.option("--benchmark", "benchmarks", multiple=True, help="Only this benchmark (repeatable).")
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
def leaderboard_cmd(run_dirs: tuple[Path, ...], outputs: tuple[Path, ...], csv_path: Path | None,
                    parquet_path: Path | None, md_path: Path | None, tex_path: Path | None,
                    benchmarks: tuple[str, ...], metrics: tuple[str, ...]):
    """Merge RUN_DIRS into one leaderboard per benchmark and metric.

    Identical cells (same cell key) found in several runs are counted once (from the first run
    given; each row says which run it came from), filed under the test set they were scored on:
    runs that label one test set differently share one table, named after the label most of its
    rows carry. Scores with another metric signature (e.g. tokenizer) or test set go into a
    separate table with a note saying why; a table of one entry is not ranked.
    """
    from .report.leaderboards import FORMATS, export, leaderboard

    targets = [(p, None) for p in outputs]
    targets += [(p, f) for p, f in ((csv_path, "csv"), (parquet_path, "parquet"), (md_path, "markdown"),
                                    (tex_path, "latex")) if p is not None]
    if not targets:
        targets = [(Path("reports") / "leaderboard.html", None)]
    for p, f in targets:  # refuse a bad extension before reading any run
        if f is None and p.suffix.lower() not in FORMATS:
            raise HarnessError(f"{p}: unknown leaderboard format '{p.suffix or '(no extension)'}'. "
                               f"Allowed extensions: {', '.join(sorted(FORMATS))}")
    df = leaderboard(run_dirs, benchmarks=benchmarks, metrics=metrics)
    for p, f in targets:
        echo(f"wrote {export(df, p, f)}")
    from .report.leaderboards import summary_lines

    for line in summary_lines(df):  # incomparable scores are in separate tables
        echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
