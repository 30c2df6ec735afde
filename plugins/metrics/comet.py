"""``comet``: COMET-family neural metrics from a local checkpoint (wmt22-comet-da, CometKiwi, XCOMET).

The checkpoint directory (``hparams.yaml`` + ``checkpoints/model.ckpt``) is scored by
:mod:`harness.comet`, this project's implementation, which gives unbabel-comet 2.2.7's segment and
system scores (to 1e-5, tests/test_comet_reference.py) without the Hub, pytorch-lightning or
unpickling anything but tensors. The value is COMET's system score, the mean of the segment
scores, on COMET's own scale (e.g. 0.8512, not x100); the segment scores are the per-example
scores, so the paired tests, intervals and verdicts of the reports apply as for sentence chrF.

References: a reference-based model (``regression_metric``, unified ``[mt, ref]``) needs them; a
reference-free one (CometKiwi, COMET-QE) never reads them; XCOMET and unified ``[mt, src, ref]``
models use them unless ``use_references: false``. An example with several references is scored
against its first (COMET takes one). The signature names the model class, the sha256 of the
checkpoint with its encoder files, the implementation version, whether references were read, the
batch settings and the dtype: scores of different checkpoints or versions never share a table.

Also an MBR utility (``mbr`` decoder, ``utility: comet``): :meth:`Comet.mbr_utility`, each
candidate and pseudo-reference encoded once per sentence; and the ``qe_rerank`` decoder's scorer
(:meth:`Comet.qe_scores`, reference-free checkpoints). Non-goals: Monte Carlo dropout, error
spans in the predictions (the counts are in the details), COMET's ranking models.
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Metric, MetricValue
from harness.comet import IMPLEMENTATION_VERSION, checkpoint_digest
from harness.comet.params import ScorerParams
from harness.errors import DataError
from harness.hookspecs import hookimpl


class CometParams(ScorerParams):
    use_references: bool | None = Field(
        None, description="null: whenever the model reads references; false: score without them (XCOMET, unified "
                          "[mt, src, ref]); true: insist on them")

    def problem(self, info):
        return info.reference_problem(self.use_references)


class Comet(Metric):
    name = "comet"
    title = "COMET"
    description = ("COMET / CometKiwi / XCOMET from a local checkpoint, scored by the harness's own "
                   "implementation (equal to unbabel-comet 2.2.7); per-example scores")
    task = "translation"
    Params = CometParams
    decimals = 4
    signature_source = "harness.comet"
    version = IMPLEMENTATION_VERSION

    def _references(self, info, examples) -> list[str] | None:
        if not info.uses_references(self.params.use_references):
            return None
        refs = []
        for ex in examples:
            all_refs = ex.all_references()
            if not all_refs:
                raise DataError(f"comet: example '{ex.id}' has no reference, and {info.directory} "
                                f"({info.class_identifier}) scores with references; use a reference-free "
                                f"checkpoint or set use_references: false where the model allows it")
            refs.append(all_refs[0])
        return refs

    def result(self, outputs, examples):
        """COMET's :class:`harness.comet.CometResult` for these outputs (cached by the scorer)."""
        if len(outputs) != len(examples):
            raise DataError(f"comet: {len(outputs)} outputs for {len(examples)} examples")
        scorer = self.params.scorer()
        refs = self._references(scorer.info, examples)
        return scorer.score([ex.source for ex in examples], list(outputs), refs), scorer.info, refs is not None

    def signature(self, info, used_refs: bool) -> str:
        p = self.params
        return (f"comet|model:{info.class_identifier}|checkpoint:sha256:{checkpoint_digest(info)[:16]}"
                f"|impl:harness.comet-{IMPLEMENTATION_VERSION}|refs:{'yes' if used_refs else 'no'}"
                f"|{p.batch_signature()}|dtype:{p.dtype}")

    def example_scores(self, outputs, examples, nbest=None):
        return self.result(outputs, examples)[0].scores

    def compute(self, outputs, examples, nbest=None):
        if not examples:
            return MetricValue(float("nan"), details={"n": 0})
        res, info, used_refs = self.result(outputs, examples)
        details = {"n": len(res.scores), "class": info.class_identifier}
        if "error_spans" in res.metadata:
            counts: dict[str, int] = {}
            for spans in res.metadata["error_spans"]:
                for s in spans:
                    counts[s["severity"]] = counts.get(s["severity"], 0) + 1
            details["error_spans"] = dict(sorted(counts.items()))
        if "mqm_scores" in res.metadata:
            details["mqm_mean"] = round(sum(res.metadata["mqm_scores"]) / len(res.scores), 6)
        return MetricValue(res.system_score, self.signature(info, used_refs), details)

    # ------------------------------------------------------------------ MBR

    @classmethod
    def utility_problem(cls, params: CometParams) -> str | None:
        """Why this checkpoint cannot be an MBR utility (candidates against pseudo-references)."""
        info = params.checkpoint_info()
        if not info.uses_references(params.use_references):
            return (f"{info.directory} ({info.class_identifier}, inputs [{', '.join(info.input_segments)}]) scores "
                    f"without references, and MBR scores candidates against pseudo-references: use a "
                    f"reference-based checkpoint (e.g. Unbabel/wmt22-comet-da, XCOMET)")
        return None

    def mbr_utility(self):
        return CometUtility(self)

    # ------------------------------------------------------------------ QE reranking (qe_rerank)

    @classmethod
    def qe_problem(cls, params: CometParams) -> str | None:
        """Why this checkpoint cannot score a translation against its source alone."""
        info = params.checkpoint_info()
        if info.references == "required":
            return (f"{info.directory} is a reference-based COMET model ({info.class_identifier}, inputs "
                    f"[{', '.join(info.input_segments)}]); qe_rerank scores without references: use a "
                    f"reference-free checkpoint (e.g. Unbabel/wmt22-cometkiwi-da) or XCOMET")
        if params.use_references:
            return "use_references: true, but qe_rerank scores without references; remove it"
        return None

    def qe_scores(self, sources, outputs) -> list[float]:
        """COMET's reference-free score of each output against its source, in one batched pass."""
        return self.params.scorer().score(list(sources), list(outputs), None).scores


class CometUtility:
    """COMET as an MBR utility: ``for_source(src).matrix(candidates, references)`` is the (N, M)
    matrix of COMET(src, candidate, reference), each text encoded once (regression models: N + M + 1
    encoder inputs per sentence; unified models encode every pair jointly)."""

    name = "comet"

    def __init__(self, metric: Comet):
        self.metric = metric
        self.scorer = metric.params.scorer()

    def signature(self) -> str:
        return self.metric.signature(self.scorer.info, True)

    def prepare(self, sources, texts) -> None:
        """Encode every distinct text of all sentences at once (full, length-sorted batches)."""
        if not self.scorer.info.unified:
            self.scorer.embeddings(list(dict.fromkeys([*sources, *texts])))

    def for_source(self, source: str):
        return _SourceUtility(self, source)

    def matrix(self, hypotheses, references):
        raise TypeError("the COMET utility needs the source: call for_source(source).matrix(...)")


class _SourceUtility:
    def __init__(self, parent: CometUtility, source: str):
        self.parent, self.source = parent, source
        self.name = parent.name

    def signature(self) -> str:
        return self.parent.signature()

    def matrix(self, hypotheses, references):
        return self.parent.scorer.pairwise(self.source, list(hypotheses), list(references))


@hookimpl
def register_metrics(register):
    register(Comet)
