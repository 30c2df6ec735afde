"""Statistics of the reports, with no knowledge of runs, plugins or files (numpy, scipy, sacrebleu).

- :mod:`.significance`: paired significance tests and confidence intervals over examples and
  over seeds (sacrebleu-exact bootstrap and approximate randomisation, McNemar, sign-flip, t,
  two-level bootstrap, seeds needed, Holm); see docs/statistics.md;
- :mod:`.meta_analysis`: DerSimonian-Laird pooling of per-dataset effects;
- :mod:`.ranking`: competition ranks and test-set fingerprints.
"""
