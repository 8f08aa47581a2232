"""The service's modes, shared by the runtime that obeys them, the API that sets them and the
metric that shows them.

- ``auto``: the controller acts on its decisions;
- ``recommend``: decisions are computed and stored as a dry run; nothing ever acts;
- ``manual``: the loop still observes and records (dry run); only a size set by hand
  (``POST /api/scale``) acts.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["auto", "recommend", "manual"]
MODES: tuple[Mode, ...] = get_args(Mode)
