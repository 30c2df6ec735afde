"""``local``: run cells on this machine, one after another in this process (the default), or
``workers: N`` at once, each in a worker process of its own.

With one worker a loaded model is kept for the next cell. With several, cells that prepare the
same model (the same model, benchmark, strategy and seed: one training, several decoders) stay
together: the first of them runs on a free worker, and the others follow it on that worker,
which then reuses the trained checkpoint and the model it loaded; a worker with nothing left to
do takes them over once the checkpoint exists. So two trainings run side by side and no worker
waits for the lock of a checkpoint another one is training. A worker process that dies (killed,
segfault) fails only the cell it was running, and a fresh process takes its place.

Threads: each worker runs torch with the cell's threads, by default the usable cores divided by
``workers`` (:func:`harness.run.threads.decide_threads`); training keeps ``training_threads``
(default 1), so a checkpoint is the same bits whichever executor or worker count trained it.

Non-goals: per-example progress of cells in worker processes (their finished lines arrive as
they finish), and sharing a loaded model between processes (each worker loads its own: memory
grows with ``workers``).
"""
from __future__ import annotations

import signal
from collections import deque

from pydantic import Field

from harness.api import Executor
from harness.hookspecs import hookimpl
from harness.params import Params


class LocalParams(Params):
    workers: int = Field(1, ge=1, description="cells run at once, each in a worker process of its own "
                                             "(1: one after another in this process)")


class LocalExecutor(Executor):
    name = "local"
    description = "Run cells in this process, one after another (or workers: N at once, in worker processes)."
    Params = LocalParams

    def run(self, jobs, run_one, on_done):
        if self.params.workers == 1 or len(jobs) < 2:
            for job in jobs:
                on_done(run_one(job))
            return
        _run_in_processes(jobs, on_done, min(self.params.workers, len(jobs)))


def _same_model(job) -> tuple:
    """What a cell prepares its model from: cells that agree on it train (at most) one checkpoint."""
    return tuple(sorted((k, str(v)) for k, v in job.cell.labels().items() if k != "decoder"))


def _serve(conn) -> None:
    """A worker process: run the jobs it is sent, one at a time, and send back their outcomes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    from harness.run.runner import Worker
    from harness.store import storage_fault

    worker = Worker()
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the driver is gone
            return
        if job is None:  # no more work: exit normally, so the process's finalizers run
            return
        try:
            conn.send(("done", worker(job)))
        except Exception as e:  # noqa: BLE001 - Worker records cell failures itself; what escapes stops the run
            fault = storage_fault(e)
            conn.send(("storage", (fault.path, fault.errno, fault.strerror)) if fault is not None
                      else ("error", f"{type(e).__name__}: {e}"))


class _Slot:
    """One worker process, the job it is running and the cells that follow that job's model."""

    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        # not daemonic: an idle worker told to exit may finish exiting after the run returns
        # (multiprocessing joins such children when the driver exits)
        self.process = ctx.Process(target=_serve, args=(child,))
        self.process.start()
        child.close()
        self.job = None
        self.leading = False  # running the first cell of its group (which may be training)
        self.followers: deque = deque()

    def give(self, job, leading: bool) -> None:
        self.job, self.leading = job, leading
        self.conn.send(job)

def _run_in_processes(jobs, on_done, workers: int) -> None:
    import multiprocessing
    from multiprocessing.connection import wait

    from harness.errors import HarnessError
    from harness.run.runner import record_failure
    from harness.store import OutputWriteError

    groups: dict[tuple, deque] = {}
    for job in jobs:
        groups.setdefault(_same_model(job), deque()).append(job)
    fresh = deque(groups.values())  # groups no worker has started
    # spawn, not fork: the driver may hold OpenMP and torch threads, which a forked child inherits broken
    ctx = multiprocessing.get_context("spawn")
    slots = [_Slot(ctx) for _ in range(workers)]

    def next_job(slot: _Slot):
        if slot.followers:
            return slot.followers.popleft(), False
        if fresh:
            group = fresh.popleft()
            slot.followers = group
            return group.popleft(), True
        # take over the last cells of a group whose checkpoint exists (its first cell is done)
        donor = max((s for s in slots if s.followers and not s.leading), key=lambda s: len(s.followers), default=None)
        return (donor.followers.pop(), False) if donor is not None else (None, False)

    def feed(slot: _Slot) -> None:
        job, leading = next_job(slot)
        if job is not None:
            slot.give(job, leading)
        else:
            slot.job = None

    try:
        for slot in slots:
            feed(slot)
        while any(s.job is not None for s in slots):
            busy = [s for s in slots if s.job is not None]
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for i, slot in enumerate(slots):
                if slot.job is None or (slot.conn not in ready and slot.process.sentinel not in ready):
                    continue
                job = slot.job
                try:
                    kind, value = slot.conn.recv() if slot.conn.poll() else ("died", None)
                except (EOFError, OSError):
                    kind, value = "died", None
                if kind == "storage":  # a full disk is the run's problem, not this cell's: stop
                    path, errno, strerror = value
                    raise OutputWriteError(path, OSError(errno, strerror))
                if kind == "error":
                    raise HarnessError(f"executor 'local': a worker process failed outside any cell: {value}")
                if kind == "died":
                    slot.process.join(5)
                    outcome = record_failure(job, f"worker process died (exit code {slot.process.exitcode}) "
                                                  "while running this cell")
                    followers = slot.followers
                    slot.job = None
                    _stop([slot], wait=True)
                    slot = slots[i] = _Slot(ctx)
                    slot.followers = followers
                else:
                    outcome = value
                on_done(outcome)
                feed(slot)
    except BaseException:
        _stop(slots, wait=True)
        raise
    _stop(slots, wait=False)  # the workers' exit (a second or more with torch loaded) overlaps the reports


def _stop(slots: list[_Slot], *, wait: bool, grace: float = 10.0) -> None:
    """End the workers: idle ones are told to exit (normally: their finalizers release what they
    hold, e.g. tqdm's semaphore), busy ones (an interrupted run) are terminated. ``wait``: join
    them, terminating any still there after ``grace`` seconds."""
    import time

    for slot in slots:
        if slot.job is None and slot.process.is_alive():
            try:
                slot.conn.send(None)
                continue
            except OSError:
                pass
        if slot.process.is_alive():
            slot.process.terminate()
    if not wait:
        return
    deadline = time.monotonic() + grace
    for slot in slots:
        slot.process.join(max(0.0, deadline - time.monotonic()))
        if slot.process.is_alive():
            slot.process.terminate()
            slot.process.join(5)
        slot.conn.close()


@hookimpl
def register_executors(register):
    register(LocalExecutor)
