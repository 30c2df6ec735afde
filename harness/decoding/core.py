"""The ``core`` a decoder's search function is handed for a model transformers runs.

:func:`harness.decoding.run_search` calls ``search(step_model, prompts, rules, core)``. For a
model of engine ``transformers`` ``core`` is this module: the searches of :mod:`.search` and
:mod:`.sampling`; for a model another engine runs it is that engine's search object
(``harness.engines.ctranslate2.CT2Search``). Both offer these five names, so a decoder written
against ``core`` runs on every engine without asking which one it has.

Imports torch (through the searches): run_search imports it inside the decode only.
"""
from __future__ import annotations

from .sampling import SampleConfig, sample_search
from .search import BeamConfig, beam_search, greedy_search

__all__ = ["BeamConfig", "SampleConfig", "beam_search", "greedy_search", "sample_search"]
