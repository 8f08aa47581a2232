"""The service of ``sparkscaler serve``: the controller's loop in a background thread, a REST
API to watch and steer it, and Prometheus metrics, all in one process.

- ``runtime.py``: owns the controller and its loop; the one place where API calls and the loop
  take turns;
- ``modes.py``: auto, recommend, manual;
- ``app.py``: the FastAPI app (``create_app``);
- ``schemas.py``: its request and response bodies, which make its OpenAPI schema;
- ``auth.py``: the bearer token that guards every change;
- ``metrics.py``: the Prometheus collectors;
- ``server.py``: uvicorn in a thread, started and stopped explicitly.
"""
