"""Errors a user can act on, each reported by the command line as one line, never a traceback.

A module deep in the stack (the store, a state file, a policy that needs an extra) knows what
went wrong but not how it is shown; the CLI knows how to show it but not every cause. This base
class is the contract between them: raise a subclass with a message that names the file or
setting and what to do, and ``sparkscaler`` prints ``error: <message>`` and exits with
``exit_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per pydantic error: ``scaling.max_workers: must be ≥ 1 (got 0)``.

    Here, at the bottom, so that the config and the policies' parameters (which the config
    holds, and which the REST API validates on their own) report errors alike without either
    importing the other.
    """
    lines = []
    for item in error.errors():
        # A union names the branch it tried ("tuple[...]"), which no one writes in a config;
        # an unknown key is shown as typed.
        loc = [
            p
            for p in item["loc"]
            if item["type"] == "extra_forbidden" or not (isinstance(p, str) and "[" in p)
        ]
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; `sparkscaler init` lists them all)"
        elif (
            "input" in item
            and not isinstance(item["input"], dict)
            and repr(item["input"]) not in message
        ):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"{where}: {message}")
    return lines
