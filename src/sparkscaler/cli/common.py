"""What every command shares: the consoles, the config option, one-line errors, signals.

Kept free of heavy imports: ``sparkscaler --help`` loads this module, so anything that needs
NumPy, Spark or a learning library is imported inside the command that uses it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sparkscaler.config import Config

console = Console(soft_wrap=True)  # a path must not be split across lines
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config (`sparkscaler init` writes one with every setting).",
        show_default="built-in defaults",
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned Exit."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def load(config: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """The config file (or the defaults) with command-line overrides; exit 2 when invalid."""
    from sparkscaler.config import Config
    from sparkscaler.configfile import ConfigError, config_from_dict, load_config

    try:
        base = load_config(config) if config else Config()
        if overrides:
            # Python mode: a JSON dump would mask service.token, and the mask would become it.
            data = base.model_dump(exclude_none=True)
            for section, values in overrides.items():
                data.setdefault(section, {}).update(values)
            base = config_from_dict(data, str(config or "command line"))
    except ConfigError as error:
        for problem in error.problems:
            err.print(
                f"[red]invalid config[/red] {escape(error.source)}: {escape(problem)}",
                highlight=False,
            )
        raise typer.Exit(2) from None
    return base


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM and SIGHUP (a closed terminal) raise KeyboardInterrupt, so that one
    cleanup path serves all three."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def require_java() -> None:
    if shutil.which("java") is None:
        raise fail(
            "java is not on PATH; Spark needs Java 17 (`apt-get install openjdk-17-jre-headless`)"
        )
