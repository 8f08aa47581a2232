"""Errors a user can act on, each reported by the command line as one line, never a traceback.

A module deep in the stack (the store, a state file, a policy that needs an extra) knows what
went wrong but not how it is shown; the CLI knows how to show it but not every cause. This base
class is the contract between them: raise a subclass with a message that names the file or
setting and what to do, and ``sparkscaler`` prints ``error: <message>`` and exits with
``exit_code``.
"""

from __future__ import annotations


class SparkscalerError(Exception):
    """A problem the user can fix, with a message that says how."""

    exit_code: int = 1


class MissingExtraError(SparkscalerError, ImportError):
    """A feature needs an optional dependency group that is not installed."""

    def __init__(self, feature: str, extra: str, missing: str | None, hint: str = "") -> None:
        self.feature, self.extra, self.missing = feature, extra, missing
        what = f" ({missing} is missing)" if missing else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra{what}: pip install 'sparkscaler[{extra}]'"
            + (f" {hint}" if hint else "")
        )
