"""Named benchmark presets: ready-made test sets a config names in one word.

A preset is a small YAML file in ``harness/experiment/presets/`` (listed by ``harness benchmarks``) that says
which benchmark plugin reads the set and with which parameters, plus what a paper needs: the
language pair or columns, the split, the size and the citation. A config uses it like a plugin::

    benchmarks:
      - multi30k-2016-en-de                                  # label: multi30k-2016-en-de
      - {name: sst2, label: sst2-dev, params: {limit: 200}}  # params are merged over the preset's

Each preset has a ``remote`` source (a Hub dataset id or a sacrebleu test set, downloaded and
cached by those libraries) and/or a ``local`` layout: file names relative to a data directory
(the ``../shared/data`` layout). When a data directory is given (``data_dir:`` in the config,
``--data-dir``, or ``$HARNESS_DATA_DIR``) and holds every file of the local layout, the local
copy is read (offline); otherwise the remote source is used.

Non-goals: downloading anything here (the benchmark plugins do, at load time), checking that a
remote source is reachable at validation time, and presets for other kinds of plugins.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ...errors import ConfigError, HarnessError

DATA_DIR_ENV = "HARNESS_DATA_DIR"
PRESET_DIR = Path(__file__).resolve().parent  # the YAML files live beside this module


class PresetSource(BaseModel):
    """How one source of a preset is read: a benchmark plugin and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: str = Field(description="benchmark plugin name")
    params: dict[str, Any] = Field(default_factory=dict, description="its parameters")
    paths: list[str] = Field(default_factory=list,
                             description="local only: the params that are files relative to the data directory")


class Preset(BaseModel):
    """One preset file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="what a config writes (equals the file name)")
    task: Literal["translation", "classification"]
    description: str
    languages: str | None = Field(None, description="translation: source-target language codes")
    split: str = Field(description="the split evaluated")
    columns: str = Field(description="what the examples hold")
    size: int | None = Field(None, ge=1, description="test examples in the full set")
    citation: str
    url: str
    notes: str | None = None
    remote: PresetSource | None = Field(None, description="Hub dataset or sacrebleu test set")
    local: PresetSource | None = Field(None, description="files in a data directory (offline)")

    @model_validator(mode="after")
    def _has_a_source(self):
        if self.remote is None and self.local is None:
            raise ValueError("a preset needs a remote or a local source")
        if self.local is not None:
            missing = [p for p in self.local.paths if p not in self.local.params]
            if missing or not self.local.paths:
                raise ValueError(f"local.paths must name params holding file names (missing: {missing})")
        return self

    def local_files(self, data_dir: Path) -> dict[str, Path]:
        assert self.local is not None
        return {k: data_dir / str(self.local.params[k]) for k in self.local.paths}

    def choose(self, data_dir: Path | None) -> tuple[PresetSource, dict[str, Any], str]:
        """(source, its params with local paths made absolute, where the data comes from).

        Raises HarnessError when neither source can be used (local-only preset, no data dir)."""
        if self.local is not None and data_dir is not None:
            files = self.local_files(data_dir)
            if all(p.exists() for p in files.values()):
                return self.local, {**self.local.params, **{k: str(p) for k, p in files.items()}}, \
                    f"local copy in {data_dir}"
        if self.remote is not None:
            return self.remote, dict(self.remote.params), _remote_origin(self.remote)
        where = f"the data directory {data_dir}" if data_dir is not None else \
            f"a data directory (none given: use data_dir:, --data-dir or ${DATA_DIR_ENV})"
        files = ", ".join(str(self.local.params[k]) for k in self.local.paths)
        raise HarnessError(f"benchmark preset '{self.name}' has no download source; it needs {files} in {where}. "
                           f"{self.notes or ''}".strip())


def _remote_origin(src: PresetSource) -> str:
    p = src.params
    if src.benchmark == "sacrebleu_testset":
        return f"sacrebleu {p.get('test_set')} {p.get('langpair')}"
    if "path" in p:
        return f"Hugging Face dataset {p['path']}" + (f" ({p['name']})" if p.get("name") else "")
    return src.benchmark


@lru_cache(maxsize=1)
def _load_all() -> tuple[Preset, ...]:
    from ..yamlio import load_yaml_file

    out = []
    for f in sorted(PRESET_DIR.glob("*.yaml")):
        try:
            preset = Preset.model_validate(load_yaml_file(f))
        except ValidationError as e:  # a broken file shipped with the package: a bug, said plainly
            raise ConfigError(str(f), "", f"invalid benchmark preset: {e}") from None
        if preset.name != f.stem:
            raise ConfigError(str(f), "name", f"preset name '{preset.name}' must equal the file name '{f.stem}'")
        out.append(preset)
    return tuple(out)


def presets() -> dict[str, Preset]:
    """Every preset shipped with the harness, by name."""
    return {p.name: p for p in _load_all()}


def get(name: str) -> Preset | None:
    return presets().get(name)


def data_dir_from(config_value: str | None, base_dir: Path) -> Path | None:
    """The data directory: the config's ``data_dir`` (relative to the config), else $HARNESS_DATA_DIR."""
    value = config_value if config_value is not None else os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return None
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base_dir / p).resolve()


@dataclass(frozen=True)
class Expansion:
    """A preset turned into a plugin reference."""

    plugin: str
    params: dict[str, Any]
    origin: str


def expand(name: str, user_params: dict[str, Any], data_dir: Path | None) -> Expansion:
    preset = presets()[name]
    source, params, origin = preset.choose(data_dir)
    return Expansion(source.benchmark, {**params, **user_params}, f"preset {name}: {origin}")
