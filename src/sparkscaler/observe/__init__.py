"""What the cluster looks like, from sources that reach every host.

- ``spark_master``: the master's ``/json/``: workers by state, cores, memory, applications.
- ``app_discovery``: where each application's REST API is: the master's reverse proxy, the
  driver UI address on the master's application page, or a probe of UI ports.
- ``spark_app``: each application's tasks (running, pending, backlog age), executor memory
  (``mt``, ``ma``), signature, declared deadline and input size, core cap, input read so far,
  and the job's own context (``AppLoad.job``); ``stage_work`` its work (task CPU, bytes in and
  out) and every stage's progress, stage by stage.
- ``host`` (psutil, workers on this machine) and ``spark_metrics`` (Spark's task metrics, any
  host): the CPU and network features (``cu``, ``cs``, ``bi``, ``bo``), in the same units.
- ``observer``: one :class:`~sparkscaler.core.Observation` per interval from all of these.
- ``eventlog``, ``history``, ``driverlog``: finished jobs, from event logs and driver logs.
"""
