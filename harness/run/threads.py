"""Torch threads per cell: how many (``--threads`` > config > ``OMP_NUM_THREADS`` > the usable
cores), setting them in whatever process runs a cell, and recording them with it; and the
threads training runs with (``training_threads:``, default 1, whatever the machine).

Why training has its own, fixed count: torch's CPU kernels give other float bits at another
thread count (LayerNorm weight gradients, softmax backward over rows whose length is not a
multiple of 16, the gradient norm, matrix products of 5 to 9 rows: measured in docs/threads.md),
and over hundreds of steps those bits grow into another model. The quickstart's masked
translator scored BLEU 95.85 trained at 1 thread and 85.95 at 2. Trained at one fixed count, a
seed gives the same checkpoint on any machine; another count is part of the checkpoint's key
(``harness.training.checkpoints``) and shown in the report. Decoding keeps the cell's threads:
its results can differ in the last digits of a beam score, not in what was trained.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment.config import ResolvedExperiment


def set_torch_threads(n: int | None) -> None:
    """Give torch ``n`` intra-op threads (None: leave them). Called per cell, in whatever process
    runs it, so a Ray worker gets the run's setting too."""
    if n is None:
        return
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def torch_threads() -> int | None:
    """Recorded with each cell: float results (e.g. beam scores) can differ in the last digits
    between thread counts, so byte-identical reruns need the same count."""
    import sys

    return sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None


def decide_threads(resolved: ResolvedExperiment, explicit: int | None = None) -> tuple[int | None, str]:
    """Torch threads per cell, and where the number came from.

    ``--threads`` > the config's ``threads:`` > ``OMP_NUM_THREADS`` > a default that cannot
    oversubscribe the CPU by itself: the cores this process may use (affinity and cgroup quota;
    torch would take every core of the host) divided by the cells running at once (the local
    executor's ``workers``, default 1). The default does not follow the machine's load, so that
    reruns and resumes compute with the same count (float results can differ in the last digits
    between counts); what made torch's default collapse on a loaded machine was OpenMP threads
    spin-waiting for a descheduled partner, which the CLI turns off (``OMP_WAIT_POLICY=PASSIVE``,
    see :mod:`harness.cli`). Other executors place cells on cores themselves (Ray:
    ``torch_threads``, default its ``num_cpus``), so only an explicit setting is passed to them.
    """
    if explicit is not None:
        return explicit, "--threads"
    configured = getattr(resolved.experiment, "threads", None)
    if configured is not None:
        return configured, "config threads:"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env), "OMP_NUM_THREADS"
    if resolved.executor.name != "local":
        return None, f"executor '{resolved.executor.name}' decides"
    cores = usable_cores()
    at_once = getattr(resolved.executor.params, "workers", 1)
    return max(1, cores // at_once), f"default: {cores} usable cores / {at_once} cell{'s' if at_once > 1 else ''} at a time"


DEFAULT_RULE = ("the cores this process may use (CPU affinity, capped by a cgroup CPU quota) divided by the cells "
                "running at once (the local executor's workers:, default 1); not the machine's load")
"""The default of ``--threads``, as ``harness run --help`` and docs/running.md state it."""

TRAINING_THREADS = 1
"""Torch threads fine-tuning runs with unless ``training_threads:`` says otherwise."""


def decide_training_threads(resolved: ResolvedExperiment) -> tuple[int, str]:
    """Torch threads of every training in the run (``training_threads:``, default
    :data:`TRAINING_THREADS`), and where the number came from."""
    exp = resolved.experiment
    if "training_threads" in exp.model_fields_set:
        return exp.training_threads, "config training_threads:"
    return TRAINING_THREADS, "default: 1, the same checkpoint on any machine"


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container limited to 2 CPUs on a 64-core host gets 2, not 64)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path(CGROUP_CPU_MAX).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores
