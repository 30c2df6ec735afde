"""``none``: evaluate the model as it is, without fine-tuning."""
from __future__ import annotations

from harness.api import Strategy
from harness.hookspecs import hookimpl


class NoFineTuning(Strategy):
    name = "none"
    description = "Evaluate the model as it is (a classifier must already have its task head)."
    uses_seed = False
    trains_head = False  # evaluates the model's own head: validate refuses a classifier without one

    def prepare(self, model, data, ctx):
        return model


@hookimpl
def register_strategies(register):
    register(NoFineTuning)
