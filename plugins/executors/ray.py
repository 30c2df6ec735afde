"""``ray``: run each cell as a Ray task, on a local Ray instance or an existing cluster.

Every cell becomes one task with the resources the executor params ask for (``num_cpus``,
``num_gpus``, ``memory``), so Ray packs as many cells onto the machines as fit. A task runs the
same :class:`harness.run.runner.Worker` as the local executor: it writes the cell's
``cells/<key>/`` files itself, atomically, so results land in the same run directory and cache,
and a resumed run (with either executor) reuses them. A cell that raises is recorded as failed
by its task; a task whose worker process dies (killed, segfault, Ray's out-of-memory killer) is
recorded as failed here. Outcomes arrive in the order cells finish and drive the progress display.

Determinism: a task runs torch with ``torch_threads`` threads (default: its ``num_cpus``).
Float results such as beam scores can differ in the last digits between thread counts (seen
on a d_model=256 Marian: -3.13233042 vs -3.13233066 with 2 vs 1 threads), so byte-identical
results across executors need the same count the local run used (torch's default there is
the number of cores); each cell's ``cell.json`` records the count it ran with.

``address`` joins a running cluster (``auto``: the one ``ray start`` launched on this machine);
without it a local instance with ``local_cpus`` CPUs is started for the run and stopped after.

Requirements: ``pip install 'nlp-eval-harness[ray]'``. On a multi-machine cluster the output
directory must be on a filesystem every node sees (the harness writes through paths, not Ray
objects) and the harness and plugins must be installed on every node. Non-goals: per-example
progress of remote cells, and cross-machine locking of the output directory.
"""
from __future__ import annotations

import math
import os
import re
import traceback

from pydantic import Field, field_validator

from harness.api import Executor
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.params import Params

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_bytes(value: int | str) -> int:
    """``4GB`` / ``512MiB`` / ``1000000`` → bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"memory must be a number of bytes or a size like '4GB' or '512MiB', got {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


class RayParams(Params):
    address: str | None = Field(None, description="cluster to join ('auto', 'ray://host:10001'); unset: start a local one")
    local_cpus: int | None = Field(None, ge=1, description="CPUs of the local instance started without address (default: all)")
    num_cpus: float = Field(1, gt=0, description="CPUs reserved by each cell task")
    num_gpus: float = Field(0, ge=0, description="GPUs reserved by each cell task (fractions share a GPU)")
    memory: int | str | None = Field(None, description="memory reserved by each cell task, e.g. '8GB' (Ray schedules by it)")
    torch_threads: int | None = Field(None, ge=1, description="torch threads in each task (default: num_cpus, at least 1)")
    max_retries: int = Field(0, ge=0, description="re-run a task whose worker process died (cells that raise are not retried)")
    log_to_driver: bool = Field(False, description="stream the tasks' stdout/stderr into this terminal")
    worker_niceness: int = Field(0, ge=-20, le=19, description="nice value of the workers of a local instance "
                                 "(Ray's own default, 15, starves cells on a shared machine)")

    @field_validator("memory")
    @classmethod
    def _memory(cls, v):
        if v is not None:
            parse_bytes(v)
        return v


# One Worker per Ray worker process: Ray reuses processes across tasks, so a cell that needs the
# same model as the previous cell on that process finds it already loaded.
_PROCESS_WORKER = None


def run_cell(job, torch_threads: int):
    """The body of a cell task (module-level so Ray pickles it by reference)."""
    global _PROCESS_WORKER
    import torch

    from harness.run.runner import Worker

    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    if _PROCESS_WORKER is None:
        _PROCESS_WORKER = Worker()
    return _PROCESS_WORKER(job)


class RayExecutor(Executor):
    name = "ray"
    description = "Run cells as Ray tasks (local instance or existing cluster), one task per cell."
    Params = RayParams

    def run(self, jobs, run_one, on_done):
        try:
            import ray
        except ImportError:
            raise HarnessError("executor 'ray' needs Ray: pip install 'nlp-eval-harness[ray]' (or pip install ray)") from None
        from harness.run.runner import record_failure
        from harness.store import storage_fault

        p = self.params
        started_here = not ray.is_initialized()
        if started_here:
            import logging

            kw = {"address": p.address} if p.address else {"num_cpus": p.local_cpus, "include_dashboard": False}
            # Ray starts its workers at nice 15, below everything else: on a busy machine the cells,
            # which are the whole point of this run, then crawl (measured: greedy decoding 5-10x
            # slower than the local executor with the same threads, under a load average of 8).
            # The raylet reads RAY_worker_niceness from the environment it is started with.
            saved = os.environ.get("RAY_worker_niceness")
            if not p.address:
                os.environ["RAY_worker_niceness"] = str(p.worker_niceness)
            try:
                ray.init(**kw, log_to_driver=p.log_to_driver, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise HarnessError(f"executor 'ray': cannot {'join ' + p.address if p.address else 'start Ray'}: {e}") from None
            finally:
                if saved is None:
                    os.environ.pop("RAY_worker_niceness", None)
                else:
                    os.environ["RAY_worker_niceness"] = saved
        options = {"num_cpus": p.num_cpus, "num_gpus": p.num_gpus, "max_retries": p.max_retries}
        if p.memory is not None:
            options["memory"] = parse_bytes(p.memory)
        threads = p.torch_threads or max(1, math.ceil(p.num_cpus))
        task = ray.remote(run_cell).options(**options)
        pending = {}
        try:
            pending = {task.remote(job, threads): job for job in jobs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the task's process died; only this cell fails
                        cause = getattr(e, "cause", None) or e
                        fault = storage_fault(cause)
                        if fault is not None:  # a full disk is the run's problem, not this cell's: stop
                            raise fault from None
                        first = (str(cause).strip().splitlines() or [""])[0]  # Ray's messages run for pages
                        outcome = record_failure(job, f"ray task failed: {type(cause).__name__}: {first}",
                                                 tb=traceback.format_exc())
                    on_done(outcome)
        finally:
            for ref in pending:  # interrupted: do not leave cells running for nobody
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            if started_here:
                ray.shutdown()


@hookimpl
def register_executors(register):
    register(RayExecutor)
