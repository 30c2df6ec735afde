"""``sacrebleu_testset``: the WMT/IWSLT/FLORES test sets that sacrebleu knows by name.

The data comes through sacrebleu's own download and cache (``$SACREBLEU``, default
``~/.sacrebleu``), so the segments are exactly those ``sacrebleu -t wmt14 -l en-de`` scores
against (Post 2018, "A Call for Clarity in Reporting BLEU Scores"). The test set and language
pair are checked against sacrebleu's catalogue at ``harness validate``; the download happens
at load time. Where the network is unreachable and the set is not cached, loading fails with
one DataError saying so and pointing at ``parallel_text`` with local copies.

Test sets with several references (some WMT pairs have 2-4) are scored against the first
unless ``all_references: true``, which scores against all of them as the sacrebleu CLI does
with several reference files. Non-goals: sacrebleu's ``--origlang``/``--subset`` filters.
"""
from __future__ import annotations

import os
import tarfile

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harness.api import Benchmark, BenchmarkData
from harness.errors import DataError, unknown_choice_message
from harness.hookspecs import hookimpl
from harness.params import InputPath, aligned

from ._common import SubsetParams
from .translation import read_aligned


class SacrebleuTestsetParams(SubsetParams):
    test_set: str = Field(description="sacrebleu test set, e.g. wmt14, wmt20, flores200 (see `sacrebleu --list`)")
    langpair: str = Field(description="language pair, e.g. en-de")
    train_source: InputPath | None = Field(None, description="local training source file (for fine-tuning)",
                                           json_schema_extra=aligned("train"))
    train_reference: InputPath | None = Field(None, description="local training targets, aligned with train_source",
                                              json_schema_extra=aligned("train"))
    all_references: bool = Field(False, description="score against every reference of the test set (false: the first)")

    # sacrebleu's catalogue is plain Python (no network, no torch), so validate can check names
    @field_validator("test_set")
    @classmethod
    def _known_set(cls, v: str) -> str:
        from sacrebleu.dataset import DATASETS

        if v not in DATASETS:
            raise ValueError(unknown_choice_message("unknown sacrebleu test set", v, DATASETS))
        return v

    @field_validator("langpair")
    @classmethod
    def _known_pair(cls, v: str, info: ValidationInfo) -> str:
        from sacrebleu.dataset import DATASETS

        test_set = info.data.get("test_set")
        if test_set in DATASETS and v not in DATASETS[test_set].langpairs:
            raise ValueError(unknown_choice_message(f"{test_set} has no language pair", v, DATASETS[test_set].langpairs))
        return v

    @model_validator(mode="after")
    def _train_pair(self):
        if (self.train_source is None) != (self.train_reference is None):
            raise ValueError("train_source and train_reference must be given together")
        return self


class SacrebleuTestset(Benchmark):
    name = "sacrebleu_testset"
    task = "translation"
    description = "A test set known to sacrebleu (wmt14 en-de, ...), fetched and cached by sacrebleu."
    Params = SacrebleuTestsetParams

    def _files(self) -> tuple[str, list[str]]:
        from sacrebleu.dataset import DATASETS
        from sacrebleu.utils import SACREBLEU_DIR

        p = self.params
        ds = DATASETS[p.test_set]
        try:
            return ds.get_source_file(p.langpair), ds.get_reference_files(p.langpair)
        except (OSError, SystemExit, tarfile.TarError) as e:
            # OSError covers URLError (no network); sacrebleu calls sys.exit on checksum/SSL failures
            reason = f"{type(e).__name__}: {e}" if not isinstance(e, SystemExit) else "download failed (see the log above)"
            raise DataError(
                f"sacrebleu test set {p.test_set} {p.langpair} is not cached in {os.path.join(SACREBLEU_DIR, p.test_set)} "
                f"and could not be downloaded ({reason}). The network may be unreachable: fetch it once where it is "
                f"(`sacrebleu -t {p.test_set} -l {p.langpair} --echo src > test.src`, and `--echo ref > test.ref`), "
                "or use the parallel_text benchmark with local copies (source: test.src, reference: test.ref)") from None

    def load(self, ctx):
        p = self.params
        src_file, ref_files = self._files()
        refs = list(ref_files) if p.all_references and len(ref_files) > 1 else ref_files[0]
        test, total = read_aligned(src_file, refs, "test-", limit=p.limit, sample=p.sample, seed=p.sample_seed)
        train = None
        if p.train_source:
            train, _ = read_aligned(p.train_source, p.train_reference, "train-", limit=p.train_limit, sample=True,
                                    seed=p.sample_seed)
        return BenchmarkData(task="translation", test=test, train=train,
                             meta={"source": f"sacrebleu:{p.test_set}/{p.langpair}", "test_lines": total,
                                   "references": len(ref_files)})


@hookimpl
def register_benchmarks(register):
    register(SacrebleuTestset)
