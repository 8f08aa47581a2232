"""``sparkscaler evaluate``: policies side by side on the same seeded workloads, with an oracle.

- :mod:`~sparkscaler.evaluation.paper_grid`: the OLA 2019 experiment (T x N, rounds of one job);
- :mod:`~sparkscaler.evaluation.continuous`: week-long traces and the user's own history;
- :mod:`~sparkscaler.evaluation.oracle`: the clairvoyant floor every policy is measured against;
- :mod:`~sparkscaler.evaluation.lineup`: which policy, with which parameters, each key names
  (the wiring builds it, as ``sparkscaler run`` would);
- :mod:`~sparkscaler.evaluation.simulation`: one policy through the loop over a simulated
  workload (also ``sparkscaler simulate``);
- :mod:`~sparkscaler.evaluation.harness`: planning, parallel runs, ``results.json``/``.csv``;
- :mod:`~sparkscaler.evaluation.report`: the self-contained ``report.html``.
"""
