"""``local``: run cells one after another in this process (the default executor)."""
from __future__ import annotations

from harness.api import Executor
from harness.hookspecs import hookimpl


class LocalExecutor(Executor):
    name = "local"
    description = "Run cells sequentially in this process, reusing a loaded model across cells."

    def run(self, jobs, run_one, on_done):
        for job in jobs:
            on_done(run_one(job))


@hookimpl
def register_executors(register):
    register(LocalExecutor)
