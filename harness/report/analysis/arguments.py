"""The note's arguments: the study note's four reasons against masking, each as two arms compared
(issue #25), and the masking the literature says helps.

The note argues that masking tokens while fine-tuning BERT is a bad idea because (1) the task is
not word prediction, (2) fine-tuning data is small and masking throws part of it away, (3)
pre-training and fine-tuning have separate roles, (4) [MASK] never appears at inference. Each
argument is tested by a pair of arms that differ in what the argument is about and in nothing
else the harness controls (equal steps; see docs/note-arguments.md for what each pair holds
equal): :data:`ARGUMENTS` is the one table of them, an arm being a strategy plugin and the
parameter values that make it that arm. ``tests/test_note_arguments.py`` checks that every
plugin named here is registered, ``tests/test_note_arguments_config.py`` that
``configs/note-arguments.yaml`` runs every arm and no other.

When a row appears. For an argument, a benchmark contributes when it has exactly one
configuration of each arm per model (and decoder); the two must agree on the parameters that
fix the steps (:data:`STEP_PARAMS`) and on the argument's ``same`` parameters, otherwise the
benchmark is left out with a note saying why. Datasets and budgets are read as the study
section reads them (``<dataset>-b<budget>`` labels, else ``train_limit``).

Nothing here is new statistics:

- per dataset, the treatment arm is compared with the reference arm exactly as the report compares
  a configuration with its baseline, with the reference arm as the baseline: the same tests over
  examples and over seeds and the same verdict sentence (:func:`.examples.example_tests`,
  :func:`.verdicts.fill_rows`, :func:`.verdicts.finalize`; Holm over this section's per-dataset
  comparisons);
- per argument and budget, the datasets' effects are pooled as the study section pools them
  (:func:`harness.stats.meta_analysis.pool_datasets`, the t-test over datasets, which decides;
  :func:`harness.stats.decide.decide_datasets`), the interval labelled :data:`.model.POOLED_INTERVAL`,
  and the row's verdict is :func:`.verdicts.verdict` of a row whose deciding test is that pooled
  test (``Row.test`` "datasets_t"; Holm over this section's rows). Fewer than two datasets with two
  or more paired seeds are not pooled, and the row says why instead of giving a verdict.

Non-goals: arguments other than the note's, comparisons across budgets, and deciding what an
argument's verdict means for the note (docs/note-arguments.md says what would count as evidence).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .model import POOLED_INTERVAL, AnalysisParams, BenchmarkReport, Config, MetricInfo, Row, finite
from .study import BUDGET_LABEL, BUDGET_PARAM


@dataclass(frozen=True)
class Arm:
    """A strategy plugin and the parameter values (others free) that make it one arm."""

    strategy: str
    params: tuple[tuple[str, Any], ...] = ()

    def matches(self, plugin: str | None, params: dict[str, Any]) -> bool:
        return plugin == self.strategy and all(params.get(k) == v for k, v in self.params)

    @property
    def label(self) -> str:
        return self.strategy + "".join(f" {k}={v}" for k, v in self.params)


@dataclass(frozen=True)
class ArgumentTest:
    """One argument of the note and the comparison that tests it: Δ = treatment − reference."""

    key: str                                   # "1", "2", "3", "4a", "4b", "C1", "C2"
    argument: str                              # the note's argument, in a few words
    treatment: Arm
    reference: Arm
    predicts: Literal["higher", "lower", "not higher"]  # the treatment's score if the note's argument holds
    holds_equal: str                           # what the pair holds equal, for the report
    same: tuple[str, ...] = ()                 # parameters both arms must share besides STEP_PARAMS

    @property
    def relation(self) -> str:
        """``predicts`` as the sign between the arms: treatment > reference, <, or ≤."""
        return {"higher": ">", "lower": "<", "not higher": "≤"}[self.predicts]


STEP_PARAMS = ("train_limit", "epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "learning_rate",
               "max_length")
"""Parameters two arms of one comparison must share: the same sentences, steps and schedule."""

MASKING = ("mask_prob", "mask_ratio", "random_ratio", "keep_ratio")

ARGUMENTS: tuple[ArgumentTest, ...] = (
    ArgumentTest("1", "objective: the task is not word prediction, so a masked objective fights it",
                 Arm("aux_mlm"), Arm("mask_augment"), "lower",
                 "the clean batch and the same masked copy each step; only the copy's loss differs: "
                 "the masked words vs the label", same=MASKING),
    ArgumentTest("2", "data loss: fine-tuning data is small and masking throws part of it away",
                 Arm("mask_augment"), Arm("input_mask"), "higher",
                 "the same sentences, steps and masked copies; the clean batch is added, not replaced", same=MASKING),
    ArgumentTest("3", "separate roles: masked-LM belongs to pre-training, not to fine-tuning",
                 Arm("tapt"), Arm("aux_mlm"), "higher",
                 "the same masked-LM and classification passes (mlm_epochs = epochs), in two stages vs jointly",
                 same=("mask_prob", "mlm_head_warmup_steps")),
    ArgumentTest("4a", "mismatch: [MASK] never appears at inference",
                 Arm("input_noise"), Arm("input_mask"), "higher",
                 "the same tokens selected each step; they become random tokens instead of 80% [MASK]",
                 same=("mask_prob",)),
    ArgumentTest("4b", "mismatch: [MASK] never appears at inference",
                 Arm("matched_mask"), Arm("input_mask"), "higher",
                 "the same training (the same weights); the test inputs masked alike", same=MASKING),
    ArgumentTest("C1", "counter-evidence: token cutoff with a consistency loss helps (Shen et al. 2020)",
                 Arm("cutoff", (("cutoff", "token"),)), Arm("unmasked"), "not higher",
                 "the same sentences and steps; a cut view and the JS term added"),
    ArgumentTest("C2", "counter-evidence: span cutoff with a consistency loss helps (Shen et al. 2020)",
                 Arm("cutoff", (("cutoff", "span"),)), Arm("unmasked"), "not higher",
                 "the same sentences and steps; a cut view and the JS term added"),
)
"""The arguments and their arms. ``predicts``: the treatment's score against the reference's if
the note's argument holds (C1/C2: the note predicts that erasing tokens does not help, the
literature that it does)."""


@dataclass
class ArgumentDataset:
    """One dataset of an argument's row: the per-dataset comparison, as the report's own row."""

    dataset: str
    benchmark: str
    row: Row                                   # treatment vs reference (its baseline), with verdict


@dataclass
class ArgumentRow:
    """One argument at one budget (and model): Δ pooled over its datasets and the verdict."""

    test: ArgumentTest
    model: str
    budget: int | None
    treatment: str                             # configuration labels in the report
    reference: str
    datasets: list[ArgumentDataset] = field(default_factory=list)
    pooled: Any = None                         # harness.stats.meta_analysis.DatasetPool (t over datasets)
    reason: str = ""                           # "not pooled: ..." when there is no pooled estimate
    row: Row | None = None                     # the pooled comparison, its verdict in .verdict

    @property
    def estimate(self) -> float | None:
        return None if self.pooled is None else self.pooled.estimate


@dataclass
class NoteArguments:
    metric: MetricInfo
    rows: list[ArgumentRow]
    notes: list[str] = field(default_factory=list)   # benchmarks left out of a comparison, and why
    interval: str = POOLED_INTERVAL
    multi_model: bool = False


def _params(cfg: Config) -> dict[str, Any]:
    return cfg.cells[0].strategy_params if cfg.cells else {}


def _unequal(t: Config, r: Config, names: tuple[str, ...]) -> list[str]:
    pt, pr = _params(t), _params(r)
    return [f"{k} {pt.get(k)!r} vs {pr.get(k)!r}" for k in names if pt.get(k) != pr.get(k)]


def _dataset_budget(b: BenchmarkReport, t: Config, r: Config) -> tuple[str, int | None]:
    match = BUDGET_LABEL.match(b.name)
    if match:
        return match["dataset"], int(match["budget"])
    vals = {c.strategy_params.get(BUDGET_PARAM) for c in t.cells + r.cells}
    budget = next(iter(vals)) if len(vals) == 1 else None
    return b.name, budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def note_arguments(benchmarks: list[BenchmarkReport], preds, cache, params: AnalysisParams,
                   strategy_plugins: dict[str, str] | None = None) -> NoteArguments | None:
    """The section's rows, or None when no argument has both its arms on a classification benchmark.
    ``strategy_plugins`` maps strategy labels to plugin names (the manifest's resolved strategies)."""
    from ...stats.decide import decide_datasets
    from ...stats.meta_analysis import pool_datasets
    from .examples import example_tests
    from .verdicts import fill_rows, finalize

    plugin_of = strategy_plugins or {}
    cls = [b for b in benchmarks if b.task == "classification" and b.metrics]
    metric: MetricInfo | None = None
    notes: list[str] = []
    groups: dict[tuple[str, str, int | None], ArgumentRow] = {}
    derived: list[BenchmarkReport] = []
    for test in ARGUMENTS:
        for b in cls:
            def arm_configs(arm: Arm) -> list[Config]:
                return [c for c in b.configs if c.cells and arm.matches(plugin_of.get(c.strategy) or c.strategy,
                                                                      _params(c))]

            treat, ref = arm_configs(test.treatment), arm_configs(test.reference)
            for model in dict.fromkeys(c.model for c in treat):
                for decoder in dict.fromkeys(c.decoder for c in treat if c.model == model):
                    ts = [c for c in treat if (c.model, c.decoder) == (model, decoder)]
                    rs = [c for c in ref if (c.model, c.decoder) == (model, decoder)]
                    if not rs:
                        continue
                    where = f"argument {test.key} on {b.name}"
                    if len(ts) > 1 or len(rs) > 1:
                        many = ts if len(ts) > 1 else rs
                        notes.append(f"{where}: left out, {len(many)} configurations are that arm "
                                     f"({', '.join(c.strategy for c in many)}); the comparison needs one of each")
                        continue
                    t, r = ts[0], rs[0]
                    diff = _unequal(t, r, STEP_PARAMS + test.same)
                    if diff:
                        notes.append(f"{where}: left out, {t.strategy} and {r.strategy} differ in "
                                     f"{'; '.join(diff)} (the comparison holds these equal)")
                        continue
                    m = metric or b.metrics[0]
                    if not any(x.label == m.label for x in b.metrics):
                        continue
                    metric = m
                    one = dataclasses.replace(b, metrics=[m], configs=[t, r], rows={}, notes=[], base_strategy=r.strategy,
                                              base_model=None, drilldown=None, plots={}, signatures={})
                    ex = example_tests(one, preds, cache, params)
                    fill_rows(one, {(c.benchmark, c.model, c.strategy, c.decoder): c for c in (t, r)},
                              one.base_decoder, r.strategy, ex, params)
                    row = next(x for x in one.rows[m.label] if x.config is t)
                    if row.baseline is None or not finite(row.delta):
                        continue
                    derived.append(one)
                    dataset, budget = _dataset_budget(b, t, r)
                    g = groups.setdefault((test.key, model, budget),
                                          ArgumentRow(test, model, budget, t.label or t.strategy, r.label or r.strategy))
                    g.datasets.append(ArgumentDataset(dataset, b.name, row))
    if metric is None or not groups:
        return None
    # per-dataset verdicts, Holm over this section's per-dataset comparisons
    finalize(derived, params, scope="the note's arguments, per dataset")
    order = {t.key: i for i, t in enumerate(ARGUMENTS)}
    rows = sorted(groups.values(), key=lambda g: (order[g.test.key], g.model, g.budget if g.budget is not None else -1))
    pooled_rows: list[Row] = []
    for g in rows:
        paired = [d for d in g.datasets if d.row.seeds_paired >= 2]
        if len(paired) < 2:
            g.reason = (f"not pooled: {len(paired)} dataset(s) with two or more paired seeds; a pooled effect "
                        "needs at least two")
            continue
        g.pooled = pool_datasets([d.row.delta for d in paired], labels=[d.dataset for d in paired], level=0.95,
                                 variances=[d.row.crossed.se ** 2 if d.row.crossed is not None else None
                                            for d in paired])
        if g.pooled.estimate is None:
            g.reason = f"not pooled: {g.pooled.note or ''}"
            continue
        first = paired[0].row
        values = [d.row.value for d in paired if finite(d.row.value)]
        me = params.min_effect.get(metric.label) if isinstance(params.min_effect, dict) else params.min_effect
        g.row = Row(first.config, metric, value=sum(values) / len(values) if values else None, baseline=first.baseline,
                    delta=g.pooled.estimate, p=g.pooled.p, test="datasets_t",
                    seeds_paired=min(d.row.seeds_paired for d in paired),
                    decision=decide_datasets(g.pooled, alpha=params.alpha, power=params.power, min_effect=me,
                                             higher_is_better=metric.direction != "lower"),
                    delta_ci_low=g.pooled.ci_low, delta_ci_high=g.pooled.ci_high)
        g.row.mde = g.row.decision.mde
        pooled_rows.append(g.row)
    if pooled_rows:
        table = BenchmarkReport("the note's arguments", "classification", [metric],
                                [c for one in derived for c in one.configs], {metric.label: pooled_rows})
        finalize([table], params, scope="the note's arguments")  # the rows' verdicts, Holm over this section's rows
    return NoteArguments(metric, rows, notes, multi_model=len({g.model for g in rows}) > 1)
