"""Built-in plugins of the harness (installed as the ``harness_plugins`` package).

Each module is one plugin (or a small family) and registers through the same hooks and the
same ``harness`` entry-point group that a third-party package uses; see pyproject.toml.
"""
