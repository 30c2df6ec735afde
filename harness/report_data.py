"""Compatibility name of :mod:`harness.analysis` (the report analysis, now a package)."""
from __future__ import annotations

from .analysis import *  # noqa: F401,F403
from .analysis import __all__  # noqa: F401
