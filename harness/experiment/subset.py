"""The test subset the core takes of any benchmark: ``--limit N`` (``limit:`` in the config), and
``limit:`` / ``sample:`` / ``sample_seed:`` in a benchmark's params when its plugin does not take
them itself.

So every benchmark can be limited, a plugin author's included, without a line of plugin code:
the runner loads the benchmark as usual and keeps the first N test examples, or with
``sample`` a seeded random sample of N in their original order (the same examples in every
cell and run: Python's ``random.Random(sample_seed)``, as the built-in readers draw theirs).
The experiment-wide ``--limit`` replaces a benchmark's own ``limit``/``sample`` parameters, so
``--limit 10 --sample`` draws 10 of the whole test set, not 10 of an earlier subset.

A benchmark without a subset has none in its cache key (its finished cells are reused as
before); with one, the key holds it. The manifest records it (``limit``) and the reports open
with a banner. Non-goals: subsets of the training or dev splits (``train_limit``, ``dev_limit``
belong to the plugins and strategies), stratified test samples.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from ..params import Seed, StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from ..api import BenchmarkData

SUBSET_KEYS = ("limit", "sample", "sample_seed")
"""Benchmark params the core takes over when a plugin does not declare them."""


class SubsetParams(StrictModel):
    """``limit``/``sample``/``sample_seed`` in the params of a benchmark whose plugin lacks them."""

    limit: int | None = Field(None, ge=1, description="evaluate only this many test examples (applied by the core)")
    sample: bool = Field(False, description="with limit: a seeded random sample instead of the first examples")
    sample_seed: Seed = Field(0, description="seed of that sample (fixed, so every cell sees the same examples)")

    @model_validator(mode="after")
    def _sample_needs_limit(self):
        if self.sample and self.limit is None:
            raise ValueError("sample: true needs limit: N (the number of test examples to sample)")
        return self


@dataclass(frozen=True)
class Subset:
    """Which test examples of a loaded benchmark the cells evaluate."""

    limit: int  # at most this many test examples
    sample: bool = False  # a seeded random sample instead of the first ``limit``
    seed: int = 0  # the sample's seed (the benchmark's ``sample_seed``)

    def indices(self, n: int) -> list[int]:
        """Positions of the kept examples among ``n``, in their original order."""
        if self.limit >= n:
            return list(range(n))
        if not self.sample:
            return list(range(self.limit))
        return sorted(random.Random(self.seed).sample(range(n), self.limit))

    def apply(self, data: BenchmarkData) -> BenchmarkData:
        """``data`` with only the kept test examples (train, dev and labels unchanged)."""
        keep = self.indices(len(data.test))
        if len(keep) == len(data.test):
            return data
        meta = {**data.meta, "test_before_limit": len(data.test)}
        return dataclasses.replace(data, test=[data.test[i] for i in keep], meta=meta)

    def describe(self) -> str:
        if self.sample:
            return f"a seeded random sample of {self.limit} test examples (sample_seed {self.seed})"
        return f"the first {self.limit} test examples"

    def key(self) -> dict[str, Any]:
        """As it enters a cell's cache key and identity."""
        return {"limit": self.limit, "sample": self.sample, **({"seed": self.seed} if self.sample else {})}
