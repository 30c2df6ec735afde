"""Statistics of the reports, with no knowledge of runs, plugins or files (numpy, scipy, sacrebleu).

- :mod:`.significance`: paired significance tests and confidence intervals over examples and
  over seeds (sacrebleu-exact bootstrap and approximate randomisation, exact over the swaps when
  few examples differ, McNemar, sign-flip, t, two-level bootstrap, Holm); see docs/statistics.md;
- :mod:`.crossed`: the seeds × examples t-test, its interval, power and seeds needed;
- :mod:`.meta_analysis`: pooling per-dataset effects (the t-test over datasets that decides;
  DerSimonian-Laird's heterogeneity);
- :mod:`.decide`: the decision rule of each situation and the five verdicts a report may say;
- :mod:`.ranking`: competition ranks and test-set fingerprints.
"""
