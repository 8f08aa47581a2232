"""``sparkscaler evaluate``: policies side by side on the same seeded workloads, with an oracle.

- :mod:`~sparkscaler.evaluation.paper_grid`: the OLA 2019 experiment (T x N, rounds of one job);
- :mod:`~sparkscaler.evaluation.continuous`: week-long traces and the user's own history;
- :mod:`~sparkscaler.evaluation.oracle`: the clairvoyant floor every policy is measured against;
- :mod:`~sparkscaler.evaluation.lineup`: how each compared policy is built;
- :mod:`~sparkscaler.evaluation.harness`: planning, parallel runs, ``results.json``/``.csv``;
- :mod:`~sparkscaler.evaluation.report`: the self-contained ``report.html``.
"""
