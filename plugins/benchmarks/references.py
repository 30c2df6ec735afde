"""``references``: a test set given as reference files (one or several) and, optionally, a source
file: what ``sacrebleu REF [REF ...]`` reads, for scoring system outputs (``kind: outputs``
models, ``harness score``).

Lines are read as sacrebleu's command line reads them: UTF-8 (or ``encoding``), split on ``\\n``
only, trailing whitespace dropped, so the scores of a system's file equal ``sacrebleu REF -i
SYS``. Every file must have the same number of lines. An empty reference segment is refused
(usually a misalignment; ``skip_empty`` drops the segment, which sacrebleu would not). Without a
source file, examples have an empty source: fine for scoring given outputs, refused before any
cell runs for a model that would have to translate them.

Non-goals: decoding with a model (give ``source`` or use ``parallel_text``), training data,
tab-separated references in one file (sacrebleu's ``--num-refs``: give one file per reference).
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Benchmark, BenchmarkData, Example
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.params import InputPath

from ._common import EncodingParams, SubsetParams, choose, read_lines


class ReferencesParams(EncodingParams, SubsetParams):
    references: list[InputPath] = Field(min_length=1, description="reference files, one segment per line, aligned "
                                                                   "with each other (several: multi-reference)")
    source: InputPath | None = Field(None, description="source file aligned with the references (optional: shown "
                                                       "in reports, read by source-aware metrics)")
    skip_empty: bool = Field(False, description="drop segments with an empty reference instead of refusing the files")


def read_references(p: ReferencesParams) -> tuple[list[Example], int]:
    """Examples ``test-{line}`` from the reference files (and source), and the total line count."""
    files = [str(f) for f in p.references]
    refs = [[ln.rstrip() for ln in read_lines(f, p.encoding)] for f in files]
    src = [ln.rstrip() for ln in read_lines(p.source, p.encoding)] if p.source else None
    n = len(refs[0])
    for f, r in [*zip(files, refs), *([(str(p.source), src)] if src is not None else [])]:
        if len(r) != n:
            raise DataError(f"{files[0]} has {n} lines but {f} has {len(r)}; the files must be aligned line by line "
                            "(one segment per line in each)")
    if n == 0:
        raise DataError(f"{files[0]}: empty file; references have one segment per line")
    out = []
    for i in choose(n, p.limit, p.sample, p.sample_seed):
        texts = tuple(r[i] for r in refs)
        empty = [f for f, t in zip(files, texts) if not t]
        if empty:
            if p.skip_empty:
                continue
            raise DataError(f"{empty[0]}:{i + 1}: empty reference segment; remove it from every file (systems too), "
                            "or set skip_empty: true to drop such segments")
        out.append(Example(id=f"test-{i + 1}", source=src[i] if src is not None else "", reference=texts[0],
                           references=texts if len(texts) > 1 else None))
    if not out:
        raise DataError(f"{files[0]}: no examples left: skip_empty dropped every selected segment")
    return out, n


class References(Benchmark):
    name = "references"
    task = "translation"
    description = "Reference files (one or several, as sacrebleu REF...) and an optional source, to score outputs."
    Params = ReferencesParams

    def load(self, ctx):
        test, total = read_references(self.params)
        p = self.params
        return BenchmarkData(task="translation", test=test,
                             meta={"references": [str(f) for f in p.references], "test_lines": total,
                                   **({"source": str(p.source)} if p.source else {})})


@hookimpl
def register_benchmarks(register):
    register(References)
