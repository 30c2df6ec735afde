"""Translation benchmarks from aligned plain-text files (one segment per line)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from harness.api import BenchmarkData, Benchmark, Example
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.params import InputPath, Params


class ParallelTextParams(Params):
    source: InputPath = Field(description="source-language file, one segment per line")
    reference: InputPath = Field(description="reference translations, aligned line by line with source")
    train_source: InputPath | None = Field(None, description="training source file (for fine-tuning strategies)")
    train_reference: InputPath | None = Field(None, description="training targets, aligned with train_source")
    limit: int | None = Field(None, ge=1, description="use only this many test segments")
    sample: bool = Field(False, description="with limit: a seeded random sample instead of the first segments")
    sample_seed: int = Field(0, description="seed of that sample (fixed, so every cell sees the same segments)")
    train_limit: int | None = Field(None, ge=1, description="use only this many training pairs")

    @model_validator(mode="after")
    def _pairs(self):
        if (self.train_source is None) != (self.train_reference is None):
            raise ValueError("train_source and train_reference must be given together")
        return self


def read_lines(path: str) -> list[str]:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        "convert it, e.g. `iconv -f cp1252 -t utf-8`") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def aligned(src_path: str, ref_path: str, prefix: str) -> list[Example]:
    src, ref = read_lines(src_path), read_lines(ref_path)
    if len(src) != len(ref):
        raise DataError(f"{src_path} has {len(src)} lines but {ref_path} has {len(ref)}; they must be aligned line by line")
    for i, (s, r) in enumerate(zip(src, ref), 1):
        if not s.strip():
            raise DataError(f"{src_path}:{i}: empty source segment")
    return [Example(id=f"{prefix}{i}", source=s, reference=r) for i, (s, r) in enumerate(zip(src, ref), 1)]


def take(examples: list[Example], limit: int | None, sample: bool, seed: int) -> list[Example]:
    if limit is None or limit >= len(examples):
        return examples
    if not sample:
        return examples[:limit]
    import random

    idx = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in idx]


class ParallelText(Benchmark):
    name = "parallel_text"
    task = "translation"
    description = "Aligned plain-text files: source and reference, one segment per line (UTF-8)."
    Params = ParallelTextParams

    def load(self, ctx):
        p = self.params
        test = take(aligned(p.source, p.reference, "test-"), p.limit, p.sample, p.sample_seed)
        train = None
        if p.train_source:
            train = take(aligned(p.train_source, p.train_reference, "train-"), p.train_limit, False, 0)
        return BenchmarkData(task="translation", test=test, train=train)


@hookimpl
def register_benchmarks(register):
    register(ParallelText)
