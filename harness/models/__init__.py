"""Models: what the config names and what loading one takes (torch imported inside functions only).

- :mod:`.spec`: :class:`~.spec.ModelSpec`, a model as an experiment names it (torch-free);
- :mod:`.machine`: which devices and how much memory this machine has (torch-free where it can be);
- :mod:`.facts`: what a model's config.json and weight files say (kinds, position tables, sizes,
  pickled weights), read without torch;
- :mod:`.hf`: loading Hugging Face models (config, tokenizer, weights, int8, oneDNN kernels) and
  :class:`~.hf.GenerationModel`, what decoders receive;
- :mod:`.kernels`: CPU kernel helpers (oneDNN-prepacked Linear layers, Conv1D as Linear).

Which engine runs a model's decoders (and loads it for them) is :mod:`harness.engines`, a level
above: engines run :mod:`harness.decoding`'s searches, which take a :class:`~.hf.GenerationModel`.
"""
