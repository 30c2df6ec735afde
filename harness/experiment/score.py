"""Experiments from system output files: ``harness score REF [REF ...] -i SYS [SYS ...] -m bleu chrf``.

``harness score`` builds an ordinary experiment and runs it like ``harness run``: one
``references`` benchmark (the reference files and the optional ``--source``), one model of
``kind: outputs`` per system (:mod:`harness.models.outputs`: its cells read the file instead of
decoding), the metrics of ``-m`` (``NAME`` or ``NAME:KEY=VALUE,...`` as in the one-liner), and the
first system (sacrebleu's convention for ``--paired-bs``) or ``--baseline NAME`` as the baseline
model. The experiment is validated, keyed, cached, tested and reported exactly as a YAML one, and
``OUTDIR/config.yaml`` reproduces it (``harness run OUTDIR/config.yaml -o OUTDIR``).

Systems: each ``-i`` file is named after its file (``sys1.txt`` -> ``sys1``; a shared task's
``newstest2019.hyp.SYSTEM.de`` -> ``SYSTEM``); ``-i NAME=PATH`` names one. A shared task's
directory (``--systems-dir DIR``) holds ``<testset>.hyp.<SYSTEM>.<lang>`` files, one per system,
and may hold the references (``<testset>.ref.<NAME>.<lang>`` or ``<testset>.ref.<lang>``) and the
source (``<testset>.src.<lang>``); REF files given on the command line replace the directory's.
Two systems of one name are refused, as sacrebleu refuses them.

Non-goals: reading systems from stdin (sacrebleu without ``-i``), sacrebleu's test-set downloads
(``-t``: use the ``sacrebleu_testset`` benchmark with ``harness run``), tab-separated references
in one file (``--num-refs``: give one file per reference), several test sets in one command.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HarnessError, unknown_choice_message
from ..models.outputs import SHARED_TASK_HYP, system_name
from ..params import not_a_regular_file
from .oneliner import COMMAND_LINE, Built, _absolute_paths, parse_spec
from .overrides import Override, attribute

SCORE = "harness score"
# sacrebleu options that set a metric parameter: option -> (metric, parameter)
SACREBLEU_OPTIONS = {"tokenize": ("bleu", "tokenize"), "lowercase": ("bleu", "lowercase"),
                     "chrf_word_order": ("chrf", "word_order")}


@dataclass
class System:
    name: str
    path: Path
    given: str  # as typed, for messages


@dataclass
class SharedTask:
    """What a shared task's directory holds for one test set and target language."""

    directory: Path
    testset: str
    lang: str
    systems: list[System] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)
    source: Path | None = None


def parse_system(arg: str, cwd: Path) -> System:
    """``sys1.txt`` or ``NAME=PATH`` (a file whose own name holds ``=`` is taken as a path)."""
    name, eq, path = arg.partition("=")
    if eq and name and path and not (cwd / arg).exists() and "/" not in name:
        return System(name, cwd / path, arg)
    return System(system_name(arg), cwd / arg, arg)


def read_systems_dir(directory: Path, shown: str | None = None) -> SharedTask:
    """The systems, references and source of a shared task's directory (see the module docstring);
    ``shown``: the directory as the user typed it, for messages."""
    shown = shown or str(directory)
    if not directory.is_dir():
        raise HarnessError(f"--systems-dir {shown}: no such directory")
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    hyps = [(n, m) for n in names if (m := SHARED_TASK_HYP.match(n))]
    if not hyps:
        raise HarnessError(f"--systems-dir {shown}: no system outputs named <testset>.hyp.<SYSTEM>.<lang> "
                           "(the WMT layout, e.g. newstest2019.hyp.SYSTEM.de)")
    groups = sorted({(m.group("testset"), m.group("lang")) for _, m in hyps})
    if len(groups) > 1:
        listed = ", ".join(f"{t} .{lang} ({sum((m.group('testset'), m.group('lang')) == (t, lang) for _, m in hyps)} "
                           "systems)" for t, lang in groups)
        t, lang = groups[0]
        raise HarnessError(f"--systems-dir {shown}: holds outputs of {len(groups)} test sets or languages: "
                           f"{listed}; score one at a time, e.g. -i {shown}/{t}.hyp.*.{lang}")
    testset, lang = groups[0]
    task = SharedTask(directory, testset, lang)
    task.systems = [System(m.group("system"), directory / n, f"{shown}/{n}") for n, m in hyps]
    ref = re.compile(rf"^{re.escape(testset)}\.ref(\.[^/]+)?\.{re.escape(lang)}$")
    task.references = [directory / n for n in names if ref.match(n)]
    src = [n for n in names if re.match(rf"^{re.escape(testset)}\.src\.[^.]+$", n)]
    if len(src) > 1:
        raise HarnessError(f"--systems-dir {shown}: several source files ({', '.join(src)}); choose one with "
                           "--source")
    task.source = directory / src[0] if src else None
    return task


def _check_file(what: str, path: Path) -> None:
    problem = not_a_regular_file(path)
    if problem:
        raise HarnessError(f"{what}: {problem}")


def _slug_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "score"


def testset_name(references: list[Path]) -> str:
    """The test set's label in reports: its shared-task prefix, else the first reference's name
    without extensions (``newstest2019-ref.de`` -> ``newstest2019-ref``)."""
    first = references[0].name
    m = re.match(r"^(.+?)\.ref(\.|$)", first)
    return m.group(1) if m else (first.split(".")[0] or first)


def build(references: list[str], systems: list[str], *, metrics: list[str] = (), source: str | None = None,
          baseline: str | None = None, systems_dir: str | None = None, testset: str | None = None,
          name: str | None = None, sacrebleu_options: dict[str, Any] | None = None,
          analysis: dict[str, Any] | None = None, plugins=None) -> Built:
    """Resolve the experiment ``harness score`` runs (see the module docstring)."""
    from .load import resolve_and_check

    cwd = Path.cwd()
    task = read_systems_dir(cwd / systems_dir, systems_dir) if systems_dir else None
    given = [parse_system(s, cwd) for s in systems] + (task.systems if task else [])
    if not given:
        raise HarnessError(f"{SCORE}: no system outputs; give -i SYS [SYS ...] (or --systems-dir DIR of "
                           "<testset>.hyp.<SYSTEM>.<lang> files)")
    refs = [(f"reference {r}", cwd / r) for r in references]
    if not refs and task and task.references:
        refs = [(f"--systems-dir reference {p.name}", p) for p in task.references]
    if not refs:
        where = f" (--systems-dir {systems_dir} has no {task.testset}.ref.*.{task.lang})" if task else ""
        raise HarnessError(f"{SCORE}: no reference files{where}; give them first: harness score REF [REF ...] -i SYS ...")
    src = (cwd / source) if source else (task.source if task else None)
    checked = list(refs)
    if src is not None:
        checked.append((f"--source {source}" if source else f"--systems-dir source {src.name}", src))
    for what, p in checked:
        _check_file(what, p)
    seen: dict[str, System] = {}
    for s in given:
        _check_file(f"-i {s.given}", s.path)
        if s.name in seen:
            a, b = seen[s.name].given, s.given
            raise HarnessError(f"{SCORE}: two systems are named '{s.name}' ({a} and {b}); name them apart, e.g. "
                               f"-i {s.name}-1={a} {s.name}-2={b}")
        seen[s.name] = s
    names = list(seen)
    if baseline is not None and baseline not in seen:
        raise HarnessError(f"--baseline {baseline}: " + unknown_choice_message("no system named", baseline, names))
    label = testset or (task.testset if task else testset_name([p for _, p in refs]))
    params: dict[str, Any] = {"references": [str(p.resolve()) for _, p in refs]}
    if src is not None:
        params["source"] = str(src.resolve())
    from .config import DEFAULT_METRICS

    specs = list(metrics) or list(DEFAULT_METRICS["translation"])  # `harness run`'s defaults, written out
    metric_items = [_absolute_paths("metric", parse_spec(m, "-m"), cwd, plugins) for m in specs]
    trail: list[tuple[tuple, Override]] = [
        (("metrics", i), Override(m, ("metrics", i), shown=f"-m {m}")) for i, m in enumerate(metrics)]
    for option, value in (sacrebleu_options or {}).items():
        metric, key = SACREBLEU_OPTIONS[option]
        flag = "--" + option.replace("_", "-")
        hits = [i for i, item in enumerate(metric_items) if (item if isinstance(item, str) else item["name"]) == metric]
        if not hits:
            raise HarnessError(f"{flag}: sets a parameter of {metric}, which -m does not list ({', '.join(specs)})")
        for i in hits:
            item = metric_items[i]
            item = {"name": item, "params": {}} if isinstance(item, str) else item
            item["params"][key] = value
            metric_items[i] = item
            trail.append((("metrics", i, "params", key), Override(f"{key}={value}", ("metrics", i, "params", key),
                                                                  shown=f"{flag} {value}")))
    raw: dict[str, Any] = {
        "name": name or _slug_name(label),
        "description": f"{SCORE}: {len(names)} system{'s' * (len(names) != 1)} against {len(refs)} "
                       f"reference{'s' * (len(refs) != 1)}",
        "models": [{"path": str(s.path.resolve()), "kind": "outputs", "label": s.name} for s in seen.values()],
        "benchmarks": [{"name": "references", "label": label, "params": params}],
        "baseline": {"model": baseline or names[0]},
    }
    raw["metrics"] = metric_items
    if analysis:
        raw["reporters"] = [{"name": "html", "params": dict(analysis)}]
    trail += [(("models", i), Override(s.given, ("models", i), shown=f"-i {s.given}")) for i, s in enumerate(seen.values())]
    trail += [(("benchmarks", 0, "params", "references"), Override("", (), shown=" ".join(r for r in references)
                                                                    or f"--systems-dir {systems_dir}"))]
    import copy

    config = copy.deepcopy(raw)  # as written to OUTDIR/config.yaml, before resolving touches anything
    try:
        resolved = resolve_and_check(raw, COMMAND_LINE, cwd, plugins=plugins)
    except HarnessError as e:
        raise attribute(e, trail) from None
    return Built(resolved, config, command=SCORE)
