"""The ``sparkscaler`` command line: one module per group of commands.

Every command turns SIGTERM into the same clean shutdown as Ctrl-C, so that a supervisor
stopping sparkscaler leaves no JVM behind. Modules here import only Typer and Rich at the top;
each command imports what it needs when it runs, so ``--help`` answers at once and a base
install (no extras) runs every command whose dependencies it has.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sparkscaler import __version__
from sparkscaler.cli import cluster, configure, demo, evaluate, loop, simulation
from sparkscaler.cli.common import console, err
from sparkscaler.errors import SparkscalerError

app = typer.Typer(
    help="Keep a Spark standalone cluster at the right size: scale out before the backlog "
    "builds, scale in gracefully, explain every decision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(cluster.cluster_app, name="cluster")
app.add_typer(configure.config_app, name="config")
app.add_typer(simulation.train_app, name="train")
for command in (
    configure.init,
    loop.run,
    loop.serve,
    loop.history,
    simulation.calibrate,
    simulation.simulate,
    evaluate.evaluate,
    demo.demo,
):
    app.command()(command)


def _version(value: bool) -> None:
    if value:
        console.print(f"sparkscaler {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """sparkscaler: a deadline-aware autoscaler for Spark standalone clusters."""


def main() -> None:
    """The console script: a problem the user can fix is one line on stderr, not a traceback."""
    try:
        app()
    except SparkscalerError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise SystemExit(error.exit_code) from None


__all__ = ["app", "main"]
