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

A data directory that lacks a preset's files is said so, never passed over in silence
(:func:`missing_local_copy`): which files were expected where (and a directory nearby that holds
them: ``--data-dir`` one level too high), and that the remote source would be fetched instead.
Offline (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``), or when the source's host cannot be
reached, with the remote copy not cached, ``harness validate`` refuses it; so it does when the
params given are the local copy's and the remote source does not take them.

Non-goals: downloading anything here (the benchmark plugins do, at load time), checking a
cached remote copy's content, and presets for other kinds of plugins.
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
            return self.remote, dict(self.remote.params), remote_origin(self.remote)
        raise HarnessError(f"benchmark preset '{self.name}' has no download source, and {layout_note(self, data_dir)}. "
                           f"{self.notes or ''}".strip())


def data_dir_missing(path: Path | None, value: str, from_env: bool, names: list[str]) -> str:
    """Why a data directory the presets ``names`` would read cannot be one (it does not exist, or
    is a file): said once for the directory, not once per preset."""
    why = "not found" if path is None or not path.exists() else f"is a {'file' if path.is_file() else 'special file'}"
    listed = ", ".join(sorted(set(names)))
    if from_env:
        return (f"{DATA_DIR_ENV}={value}: {path} {why}; the benchmark presets ({listed}) look for local copies of "
                f"their data there; allowed: an existing directory, or unset {DATA_DIR_ENV}")
    return f"{path} {why}; the benchmark presets ({listed}) look for local copies of their data there; " \
           "allowed: an existing directory"


def layout_note(preset: Preset, data_dir: Path | None, how: str = "") -> str | None:
    """Why the preset's local copy is not used, or None when it is (or the preset has none):
    the files expected in the data directory, and a directory nearby that holds them."""
    if preset.local is None:
        return None
    rel = [str(preset.local.params[k]) for k in preset.local.paths]
    if data_dir is None:
        return (f"its local copy needs {', '.join(rel)} in a data directory, and none is given (data_dir:, "
                f"--data-dir or ${DATA_DIR_ENV})")
    files = preset.local_files(data_dir)
    missing = [str(p) for p in files.values() if not p.exists()]
    if not missing:
        return None
    where = f"data directory {data_dir}{how}" + ("" if data_dir.is_dir() else " (which does not exist)")
    note = f"the {where} has no local copy: expected {', '.join(missing)}"
    near = find_layout(data_dir, rel)
    if near is not None:
        note += f" (they are in {near}: --data-dir {near})"
    return note


def find_layout(data_dir: Path, rel: list[str], depth: int = 2, budget: int = 500) -> Path | None:
    """A directory near ``data_dir`` (below it, up to ``depth`` levels, or its parents) holding every
    file of ``rel``: a data directory one level too high or too low. At most ``budget`` directories
    are looked at, so a huge tree costs nothing noticeable."""
    def holds(d: Path) -> bool:
        return all((d / r).exists() for r in rel)

    for parent in list(data_dir.parents)[:depth]:
        if holds(parent):
            return parent
    level, seen = [data_dir], 0
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                children = sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
            except OSError:
                continue
            for c in children:
                seen += 1
                if seen > budget:
                    return None
                if holds(c):
                    return c
                nxt.append(c)
        level = nxt
    return None


OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_setting() -> str | None:
    """The variable that switches downloads off (``HF_HUB_OFFLINE=1``...), or None."""
    for v in OFFLINE_VARS:
        if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{v}={os.environ[v]}"
    return None


def remote_cached(src: PresetSource) -> bool | None:
    """Whether the remote source is already in its library's local cache (True/False), without a
    request; None when that cannot be told."""
    p = src.params
    try:
        if src.benchmark == "sacrebleu_testset":
            from sacrebleu.dataset import DATASETS

            ds = DATASETS[p["test_set"]]
            # the text files sacrebleu extracts on first use (what get_files() reads)
            return all(os.path.exists(ds._get_txt_file_path(p["langpair"], f)) for f in ds.fieldnames(p["langpair"]))
        if isinstance(p.get("path"), str):
            from huggingface_hub.constants import HF_HUB_CACHE

            hub = Path(HF_HUB_CACHE) / f"datasets--{p['path'].replace('/', '--')}"
            cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(HF_HUB_CACHE).parent / "datasets")
            return hub.is_dir() or (cache / p["path"].replace("/", "___")).is_dir()
    except Exception:  # noqa: BLE001 - a best-effort look into other libraries' caches
        return None
    return None


def remote_host(src: PresetSource) -> str | None:
    """The host a remote source downloads from (for a reachability check), or None."""
    from urllib.parse import urlparse

    try:
        if src.benchmark == "sacrebleu_testset":
            from sacrebleu.dataset import DATASETS

            return urlparse(DATASETS[src.params["test_set"]].data[0]).hostname
        if isinstance(src.params.get("path"), str):
            from huggingface_hub.constants import ENDPOINT

            return urlparse(ENDPOINT).hostname
    except Exception:  # noqa: BLE001
        return None
    return None


def reachable(host: str, timeout: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Fallback:
    """A preset read from its remote source because its local copy is missing."""

    note: str  # which files were expected where (layout_note)
    remote: str  # the remote source, as validate names it
    problem: str | None  # why the remote source cannot be used here (offline...), or None
    cached: bool = False  # the remote source is in its library's cache: nothing is downloaded


def missing_local_copy(preset: Preset, data_dir: Path | None, *, how: str = "", probe: bool = True) -> Fallback | None:
    """When a data directory is given but lacks the preset's files and the remote source will be
    read instead: what to say (and, offline or unreachable with nothing cached, why it cannot
    work). None when the local copy is used, or no data directory is given."""
    if data_dir is None or preset.local is None or preset.remote is None:
        return None
    note = layout_note(preset, data_dir, how)
    if note is None:
        return None
    remote = remote_origin(preset.remote)
    problem = None
    cached = bool(remote_cached(preset.remote))
    if not cached:
        off = offline_setting()
        host = remote_host(preset.remote)
        if off:
            problem = f"downloads are switched off ({off})"
        elif probe and host and not reachable(host):
            problem = f"{host} cannot be reached"
    return Fallback(note, remote, problem, cached)


def remote_origin(src: PresetSource) -> str:
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
    local: bool = False  # its local copy (in the data directory) is read


def expand(name: str, user_params: dict[str, Any], data_dir: Path | None) -> Expansion:
    preset = presets()[name]
    source, params, origin = preset.choose(data_dir)
    return Expansion(source.benchmark, {**params, **user_params}, f"preset {name}: {origin}",
                     local=source is preset.local)
