"""The harness's version, in a module of its own so that any module can read it without
importing the package face (:mod:`harness`), which imports the runner."""

__version__ = "0.1.0"
