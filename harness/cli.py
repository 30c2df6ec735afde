"""The ``harness`` command line.

``--help``, ``validate`` and ``plugins`` import neither torch nor transformers. User mistakes
(:class:`HarnessError`) print one message per problem and exit with code 2, no traceback.
click is used for the CLI because it gives typed options, help pages and testable invocation.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import HarnessError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HarnessError as e:
            for line in str(e).splitlines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; finished cells are kept and will be reused", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nlp-eval-harness", prog_name="harness")
def main():
    """Evaluate decoding and fine-tuning strategies on translation and classification benchmarks."""


KIND_TITLES = {"decoder": "decoders", "strategy": "strategies", "benchmark": "benchmarks", "metric": "metrics",
               "reporter": "reporters", "executor": "executors"}

_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                           help="Override a config value (YAML syntax), e.g. --set decoders.0.params.num_beams=[1,4].")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
def validate(config: Path, overrides: tuple[str, ...]):
    """Check CONFIG without loading any model; print the grid it expands to."""
    from .config import load_experiment

    resolved = load_experiment(config, list(overrides))
    cells = resolved.cells()
    click.echo(f"{config}: OK — {len(cells)} cells")
    for section, comps in resolved.components.items():
        click.echo(f"  {section}: {', '.join(c.label for c in comps)}")
    click.echo(f"  models: {', '.join(m.display for m in resolved.experiment.models)}")
    click.echo(f"  seeds: {', '.join(map(str, resolved.experiment.seeds))}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default: the config's output_dir, else runs/<name>).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Shared cache for fine-tuned checkpoints (default: $HARNESS_CACHE or ~/.cache/nlp-eval-harness).")
@click.option("--retry-failed", "only_failed", is_flag=True,
              help="Run only the cells whose last attempt failed or was interrupted; cells never run stay "
                   "skipped. (A plain re-run already retries failed cells and runs the missing ones.)")
@click.option("--skip-failed", is_flag=True,
              help="Keep recorded failures as they are (do not retry them); run only cells never run or interrupted.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display; print only errors and the final summary.")
@_set_option
def run(config: Path, outdir: Path | None, cache_dir: Path | None, only_failed: bool, skip_failed: bool, quiet: bool,
        overrides: tuple[str, ...]):
    """Run every cell of CONFIG and write results and reports.

    \b
    Resuming: finished cells are reused, so after a crash, Ctrl-C or kill, run the same
    command again; the interrupted cell starts over and the results are identical to an
    uninterrupted run. Failed cells are recorded (error and traceback in
    OUTDIR/cells/<key>/cell.json and in manifest.json) while the other cells go on.

    \b
    Exit codes: 0 all cells done; 1 some cells (or a reporter) failed, results of the
    others are written; 2 bad config, data or output directory (nothing run or written);
    130 interrupted.
    """
    from .config import load_experiment
    from .runner import run_experiment

    if only_failed and skip_failed:
        raise HarnessError("--retry-failed and --skip-failed contradict each other; give one of them")
    resolved = load_experiment(config, list(overrides))
    if outdir is None:
        exp = resolved.experiment
        outdir = (resolved.base_dir / exp.output_dir) if exp.output_dir else Path("runs") / exp.name
    summary = run_experiment(resolved, outdir, cache_dir=cache_dir, quiet=quiet, only_failed=only_failed,
                             retry_failed=not skip_failed)
    n, failed = len(summary.outcomes), summary.failed
    parts = [f"{summary.count('cached')} reused", f"{len(failed)} failed"]
    if summary.count("skipped"):
        parts.append(f"{summary.count('skipped')} skipped")
    click.echo(f"{n} cells ({', '.join(parts)}) → {outdir}")
    for f in summary.files:
        if f.name.endswith((".html", ".md")):
            click.echo(f"report: {f}")
    if summary.count("skipped"):
        click.echo(f"note: {summary.count('skipped')} cells were never run and were skipped by --retry-failed; "
                   "run without it to run them", err=True)
    for o in failed:
        where = outdir / "manifest.json" if (o.error or "").startswith("scoring failed") else outdir / "cells" / o.key / "cell.json"
        click.echo(f"failed: {' / '.join(map(str, o.labels.values()))}: {o.error} (traceback in {where})", err=True)
    for message in summary.report_errors:
        click.echo(f"failed: {message}", err=True)
    if failed or summary.report_errors:
        sys.exit(1)


@main.command()
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reporter", "reporters", multiple=True, help="Reporter plugin(s) to run (default: the run's own).")
def report(outdir: Path, reporters: tuple[str, ...]):
    """Re-render reports from the saved results in OUTDIR."""
    from .plugins import default_plugins
    from .results import load_run

    results = load_run(outdir)
    names = list(reporters) or [r["plugin"] for r in results.manifest.get("resolved", {}).get("reporters", [])] or ["html"]
    params = {r["plugin"]: r["params"] for r in results.manifest.get("resolved", {}).get("reporters", [])}
    plugins = default_plugins()
    for name in names:
        cls = plugins.get("reporter", name)
        for f in cls(cls.Params.model_validate(params.get(name, {}))).write(results, outdir):
            click.echo(f"wrote {f}")


@main.command("plugins")
@click.option("--kind", type=click.Choice(["decoder", "strategy", "benchmark", "metric", "reporter", "executor"]),
              help="Only this kind.")
def plugins_cmd(kind: str | None):
    """List every registered plugin by kind, with its parameters and package."""
    from .params import describe
    from .plugins import default_plugins

    current = None
    for info in default_plugins():
        if kind and info.kind != kind:
            continue
        if info.kind != current:
            current = info.kind
            click.echo(f"\n{KIND_TITLES[current]}:")
        extra = f" [task: {info.cls.task}]" if hasattr(info.cls, "task") and info.kind in ("benchmark", "metric") else ""
        click.echo(f"  {info.name}  ({info.package}: {info.module}){extra}")
        if info.cls.description:
            click.echo(f"      {info.cls.description}")
        for p in describe(info.cls.Params):
            cons = f" {p['constraints']}" if p["constraints"] else ""
            click.echo(f"      - {p['name']}: {p['type']} = {p['default']!r}{cons}  {p['description']}")


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

    Identical cells (same cell key) found in several runs are counted once, under the first
    run given; each row says which run it came from. Scores with another metric signature
    (e.g. tokenizer) or test set go into a separate table with a note saying why.
    """
    from .leaderboards import FORMATS, export, leaderboard

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
        click.echo(f"wrote {export(df, p, f)}")
    for table, g in df.groupby("table", sort=False):  # incomparable scores are in separate tables
        top = g.iloc[0]
        note = f" [{top['note']}]" if top["note"] else ""
        click.echo(f"{table}: best {top['model']} / {top['strategy']} / {top['decoder']} = "
                   f"{top['value']:.4g} ({top['run']}){note}")


if __name__ == "__main__":  # pragma: no cover
    main()
