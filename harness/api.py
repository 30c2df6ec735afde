"""What a plugin author needs: the base classes of every plugin kind and the data they pass.

One kind per base class. A plugin subclasses one, sets ``name`` (what YAML calls it),
``description`` and ``Params`` (a :class:`harness.params.Params` model), implements one
method, and registers the class from the matching hook in :mod:`harness.hookspecs`.

Nothing here imports torch or transformers: a plugin module must not import them at module
level either, so that ``harness plugins`` and ``harness validate`` stay fast and light.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .params import NoParams, Params

if TYPE_CHECKING:  # pragma: no cover
    from .models.hf import GenerationModel
    from .models.spec import ModelSpec
    from .results import RunResults

Task = Literal["translation", "classification"]
TASKS: tuple[str, ...] = ("translation", "classification")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Example:
    """One benchmark example. Translation uses source/reference; classification uses
    source (the text), source_pair (optional second text) and label (a label *name*)."""

    id: str
    source: str
    reference: str | None = None
    label: str | None = None
    source_pair: str | None = None
    # several references of a translation (2-4 in WMT test sets), ``reference`` being the first;
    # None when there is one. Metrics read them through all_references() / reference_streams().
    references: tuple[str, ...] | None = None

    def all_references(self) -> tuple[str, ...]:
        """Every reference of the example (empty for classification)."""
        if self.references:
            return tuple(self.references)
        return () if self.reference is None else (self.reference,)


def reference_streams(examples: Sequence[Example] | Sequence[dict]) -> list[list[str | None]]:
    """The references in sacrebleu's layout: one list per reference position, one entry per
    example (None where an example has fewer references than the others). Takes Examples or
    prediction rows (dicts with ``reference`` and, when there are several, ``references``)."""
    def refs_of(x) -> tuple[str, ...]:
        if isinstance(x, dict):
            many = x.get("references")
            return tuple(str(r) for r in many) if many else ((str(x["reference"]),) if x.get("reference") is not None else ())
        return x.all_references()

    refs = [refs_of(x) or ("",) for x in examples]
    width = max((len(r) for r in refs), default=1)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


@dataclass
class BenchmarkData:
    task: str
    test: list[Example]
    train: list[Example] | None = None
    dev: list[Example] | None = None
    labels: list[str] | None = None  # classification: label names, index = class id
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hypothesis:
    """One output of a decoder: the text, its score (decoder-defined, e.g. length-normalised
    log-probability) and the generated token ids."""

    text: str
    score: float | None = None
    tokens: list[int] | None = None


@dataclass
class MetricValue:
    value: float
    signature: str | None = None  # e.g. sacrebleu's signature, so scores are comparable
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellContext:
    """What a plugin may use while running one cell."""

    seed: int
    workdir: Path  # scratch space private to this cell (kept with its results)
    cache_dir: Path  # shared across runs, e.g. for fine-tuned checkpoints
    device: str = "auto"
    progress: Callable[[int, int | None], None] = lambda done, total: None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("harness"))
    # ids of the examples a decoder is given, in the order of its sources (None: not known);
    # seeded decoders key each sentence's random stream by them, so batching cannot change it
    example_ids: Sequence[str] | None = None
    # torch threads training runs with (``training_threads:``, default 1, whatever the machine): a seed
    # then gives the same checkpoint anywhere; harness.training.cached_checkpoint applies it and keys by it
    training_threads: int = 1


# ----------------------------------------------------------------------------- plugins


class Plugin:
    """Common part of all plugins."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = NoParams
    version: ClassVar[str] = "1"  # bump when outputs change, to invalidate cached cells

    def __init__(self, params: Params | None = None):
        self.params = params if params is not None else self.Params()


class Decoder(Plugin):
    """Turns source texts into hypotheses with a generation model."""

    kind = "decoder"
    deterministic: ClassVar[bool] = True  # False: the cell's seed changes the output

    def decode(self, model: GenerationModel, sources: Sequence[str], ctx: CellContext) -> list[list[Hypothesis]]:
        """Return, for each source in order, its hypotheses best first (length >= 1)."""
        raise NotImplementedError


class Strategy(Plugin):
    """Prepares the model a cell evaluates, e.g. by fine-tuning it on the benchmark's train split."""

    kind = "strategy"
    tasks: ClassVar[tuple[str, ...]] = TASKS
    uses_seed: ClassVar[bool] = True
    # classification: prepare() gives the model a sequence-classification head (it fine-tunes one);
    # False (strategy `none`): the model is evaluated with the head it has, so validate refuses a
    # pretrained model without one
    trains_head: ClassVar[bool] = True

    def prepare(self, model: ModelSpec, data: BenchmarkData, ctx: CellContext) -> ModelSpec:
        """Return the spec of the model to evaluate (the input spec if nothing changes)."""
        raise NotImplementedError

    def test_time_corruption(self) -> Any:
        """Corruption of the test inputs at prediction (classification), or None (the default):
        the classifier sees the test text as it is. A :class:`harness.training.Masking` is drawn
        per example, seeded by the cell's seed and the example's id, and recorded in the cell's
        ``test_corruption.json`` (:func:`harness.training.corrupt_test_inputs`)."""
        return None


class Benchmark(Plugin):
    """Loads the examples of one task from somewhere."""

    kind = "benchmark"
    task: ClassVar[str] = "translation"

    def load(self, ctx: CellContext) -> BenchmarkData:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes when the data changes; part of the cell cache key.
        The default hashes the parameters and the bytes of every existing path among them."""
        from .store import fingerprint_params

        return fingerprint_params(self.params)


class Metric(Plugin):
    """Scores a cell's outputs against its examples.

    What the reports need to present and test a metric, all optional: ``title`` (display name),
    ``decimals`` (digits shown), ``direction`` with ``target``, ``value_range`` (intervals are cut
    to it), ``scope`` and ``signature_source``. A metric whose value is the mean of per-example
    scores implements :meth:`example_scores` and then gets the paired tests and bootstrap
    intervals over examples (and the seeds × examples test over seeds) that the built-ins get.
    """

    kind = "metric"
    task: ClassVar[str] = "translation"
    higher_is_better: ClassVar[bool] = True  # kept for old plugins; ``direction`` wins when set
    direction: ClassVar[Literal["higher", "lower", "target"] | None] = None  # None: from higher_is_better
    target: ClassVar[float | None] = None  # direction "target": closer to this value is better
    title: ClassVar[str] = ""  # display name in reports, e.g. "BERTScore F1" (default: the name)
    decimals: ClassVar[int | None] = None  # digits shown (default: 2 on a 0-100 scale, 4 for fractions)
    value_range: ClassVar[tuple[float | None, float | None]] = (None, None)  # (low, high), None: unbounded
    # "outputs": a score of the 1-best outputs, comparable across decoders; "lists": a property of
    # n-best lists, n/a (NaN) for decoders that return one hypothesis, never ranked with "outputs"
    scope: ClassVar[Literal["outputs", "lists"]] = "outputs"
    signature_source: ClassVar[str] = ""  # what produced MetricValue.signature, e.g. "sacrebleu"

    def compute(self, outputs: Sequence[str], examples: Sequence[Example],
                nbest: Sequence[Sequence[str]] | None = None) -> MetricValue:
        """Score ``outputs`` (one per example). ``nbest`` holds each example's n-best texts,
        best first, when the decoder returned more than one (else None)."""
        raise NotImplementedError

    def example_scores(self, outputs: Sequence[str], examples: Sequence[Example],
                       nbest: Sequence[Sequence[str]] | None = None) -> Sequence[float] | None:
        """One score per example whose mean is what :meth:`compute` returns, or None (the default)
        when the value is not such a mean. The reports call it on the saved predictions; they check
        the mean against the recorded value and skip the tests over examples if it differs."""
        return None

    @classmethod
    def resolved_direction(cls) -> str:
        """``direction``, or "higher"/"lower" from ``higher_is_better`` when it is not set."""
        return cls.direction or ("higher" if cls.higher_is_better else "lower")


class Reporter(Plugin):
    """Writes files from a finished run's results."""

    kind = "reporter"

    def write(self, results: RunResults, outdir: Path) -> list[Path]:
        raise NotImplementedError

    def outputs(self) -> list[str] | None:
        """The file names (relative to ``outdir``) :meth:`write` will write, when known before it
        runs, else None. A run refuses to start rather than let a reporter replace a file there
        that the harness did not write (see :mod:`harness.run.ownership`)."""
        return None


class Executor(Plugin):
    """Runs cell jobs: in this process, or elsewhere."""

    kind = "executor"

    def run(self, jobs: Sequence[Any], run_one: Callable[[Any], Any], on_done: Callable[[Any], None]) -> None:
        """Call ``run_one(job)`` for every job (anywhere) and ``on_done(outcome)`` here as each finishes."""
        raise NotImplementedError


BASES: dict[str, type[Plugin]] = {
    c.kind: c for c in (Decoder, Strategy, Benchmark, Metric, Reporter, Executor)
}
