"""Experiments from command-line options: ``harness run --model M --benchmark B --decoder beam:num_beams=4``.

The options build the same raw config a YAML file would hold (``--model`` -> ``models:``,
``--benchmark``/``--strategy``/``--decoder``/``--metric`` -> those sections, ``--seeds``,
``--limit``/``--sample``/``--data-dir`` -> the experiment-wide keys), so the run is validated,
keyed and cached exactly like a YAML run. Without a CONFIG the run writes ``OUTDIR/config.yaml``,
which reproduces it (``harness run OUTDIR/config.yaml``). With a CONFIG, the options replace the
sections they name. Errors name the option the user typed (``error: --decoder beam:num_beams=0: ...``).

A plugin is given as ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE``; values are YAML, and commas inside
brackets or quotes do not split (``beam:num_beams=[2,4]`` sweeps).

Non-goals: every YAML feature on the command line (labels, scopes, baselines: use --set or a file).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HarnessError
from .config import SECTION_KIND, ResolvedExperiment, plain_data
from .load import resolve_and_check
from .overrides import Override, apply_all, attribute, parse_set, parse_unset
from .yamlio import LineDict, load_yaml_file, load_yaml_text

COMMAND_LINE = "<command line>"
SECTION_OPTIONS = {"models": "--model", "benchmarks": "--benchmark", "strategies": "--strategy",
                   "decoders": "--decoder", "metrics": "--metric"}


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets, braces and quotes."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return parts


def parse_spec(spec: str, option: str) -> Any:
    """``beam:num_beams=4,length_penalty=1.0`` -> ``{name: beam, params: {...}}``; ``greedy`` -> ``"greedy"``."""
    source = f"{option} {spec}"
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(source, "", f"expected NAME or NAME:KEY=VALUE,..., e.g. {option} beam:num_beams=4")
    if not rest.strip():
        return name
    params = {}
    for item in split_top_level(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(source, "", f"expected KEY=VALUE after '{name}:', got {item.strip()!r} "
                                          f"(e.g. {option} beam:num_beams=4,length_penalty=1.0)")
        params[key.strip()] = load_yaml_text(value, source) if value.strip() else ""
    return {"name": name, "params": params}


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text}", "", "expected comma-separated integers, e.g. --seeds 0,1,2") from None


def _absolute_if_local(value: Any, cwd: Path) -> Any:
    """Relative paths on the command line are relative to the working directory; config.yaml
    lives elsewhere, so it records them absolute."""
    if isinstance(value, str) and value and not Path(value).is_absolute() and (cwd / value).exists():
        return str((cwd / value).resolve())
    return value


def _absolute_paths(kind: str, item: Any, cwd: Path, plugins) -> Any:
    """Make the plugin's file parameters (InputPath) absolute; other values are left alone, even
    when a file of that name happens to exist (``split=test`` next to a directory ``test``)."""
    from ..params import describe
    from ..plugins import default_plugins

    if not isinstance(item, dict):
        return item
    try:
        cls = (plugins or default_plugins()).get(kind, item["name"])
    except HarnessError:  # an unknown name or a preset: resolve() reports it / owns its paths
        return item
    paths = {p["name"] for p in describe(cls.Params) if "existing" in p["constraints"]}  # file or directory

    def absolute(v: Any) -> Any:
        return [absolute(x) for x in v] if isinstance(v, list) else _absolute_if_local(v, cwd)

    item["params"] = {k: absolute(v) if k in paths else v for k, v in item["params"].items()}
    return item


@dataclass
class Built:
    resolved: ResolvedExperiment
    config: dict | None  # the YAML that reproduces an options-only experiment (None with a CONFIG file)
    command: str = "harness run"  # what wrote it (`harness score` builds experiments too)

    def config_text(self) -> str:
        import yaml

        return (f"# Written by `{self.command}` from its command-line options; this file reproduces the run:\n"
                "#   harness run config.yaml -o <output directory>\n"
                + yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True, default_flow_style=None))


def build(config: Path | None, *, overrides=(), unsets=(), models=(), benchmarks=(), strategies=(), decoders=(),
          metrics=(), seeds: str | None = None, exp_name: str | None = None, data_dir: Path | None = None,
          limit: int | None = None, sample: bool = False, outdir: Path | None = None, plugins=None) -> Built:
    """Resolve the experiment of CONFIG edited by the options, or of the options alone."""
    cwd = Path.cwd()
    sections = {"models": models, "benchmarks": benchmarks, "strategies": strategies, "decoders": decoders,
                "metrics": metrics}
    if config is not None:
        raw = load_yaml_file(config)
        source, base_dir = str(config), Path(config).parent.resolve()
        if exp_name is not None and isinstance(raw, dict):  # a list or empty file: refused below
            raw["name"] = exp_name
    else:
        missing = [SECTION_OPTIONS[s] for s in ("models", "benchmarks") if not sections[s]]
        if missing:
            raise HarnessError(f"give a CONFIG file, or describe the experiment with options: {' and '.join(missing)} "
                               "missing (e.g. harness run --model Helsinki-NLP/opus-mt-en-de --benchmark "
                               "multi30k-2016-en-de -o runs/m30k)")
        name = exp_name or (re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(outdir).resolve().name) if outdir else "run")
        raw, source, base_dir = LineDict(name=name), COMMAND_LINE, cwd
    if not isinstance(raw, dict):
        # raises the "must be a mapping" error
        return Built(resolve_and_check(raw, source, base_dir, plugins=plugins), None)

    trail: list[tuple[tuple, Override]] = []
    if exp_name is not None:  # errors about the name point at the option, not at line 1 of CONFIG
        trail.append((("name",), Override(f"name={exp_name}", ("name",), exp_name, shown=f"--name {exp_name}")))
    for section, specs in sections.items():
        if not specs:
            continue
        option = SECTION_OPTIONS[section]
        items = [{"path": _absolute_if_local(s, cwd)} if section == "models" else parse_spec(s, option) for s in specs]
        if section != "models":  # file params are relative to the working directory, as --model (not to CONFIG)
            items = [_absolute_paths(SECTION_KIND[section], item, cwd, plugins) for item in items]
        raw[section] = items
        trail += [((section, i), Override(s, (section, i), shown=f"{option} {s}")) for i, s in enumerate(specs)]
    edits: list[Override] = []
    if seeds is not None:
        edits.append(Override(f"seeds={seeds}", ("seeds",), parse_seeds(seeds), shown=f"--seeds {seeds}"))
    if data_dir is not None:
        edits.append(Override(f"data_dir={data_dir}", ("data_dir",), str(Path(data_dir).resolve()),
                              shown=f"--data-dir {data_dir}"))
    if limit is not None:
        edits.append(Override(f"limit={limit}", ("limit",), limit, shown=f"--limit {limit}"))
    if sample:
        edits.append(Override("sample=true", ("sample",), True, shown="--sample"))
    edits += [parse_unset(u) for u in unsets] + [parse_set(o) for o in overrides]
    trail += apply_all(raw, edits)
    try:
        resolved = resolve_and_check(raw, source, base_dir, plugins=plugins)
    except HarnessError as e:
        raise attribute(e, trail) from None
    return Built(resolved, plain_data(raw) if config is None else None)
