"""Experiments: from a YAML file (or command-line options) to a checked grid of cells.

- :mod:`.yamlio`: the safe YAML loader (line numbers, duplicate keys and alias bombs refused);
- :mod:`.overrides`: ``--set`` / ``--unset`` edits; :mod:`.oneliner`: experiments from options;
- :mod:`.presets`: named benchmark presets (their YAML files live beside the module);
- :mod:`.config`: the schema and :func:`~.config.resolve` (pure: the config on its own);
- :mod:`.checks`: the config against its models, their engines and this machine;
- :mod:`.load`: :func:`~.load.load_experiment` and :func:`~.load.resolve_and_check`, which
  resolve, then check.

Nothing here loads a model or imports torch. ``harness.load_experiment`` is the public entry.
"""
