"""``init`` and ``config``: write, check and show the configuration."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sparkscaler.cli.common import console, err, fail, load

config_app = typer.Typer(
    help="Check a config file, or show the effective settings.", no_args_is_help=True
)


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        "sparkscaler.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config with every setting and its default."""
    if path.exists() and not force:
        raise fail(f"{path} exists (use --force to overwrite)")
    path.write_text(resources.files("sparkscaler").joinpath("example-config.yaml").read_text())
    console.print(f"wrote {path}; check it with `sparkscaler config validate {path}`")


@config_app.command("validate")
def config_validate(
    path: Annotated[Path, typer.Argument(help="The YAML config to check.")],
) -> None:
    """Check a config file: one line per problem and exit 2, or a one-line summary and exit 0.

    Also says when the configured policy needs an extra that is not installed.
    """
    from sparkscaler.policies import required_extra

    cfg = load(path)
    extra = required_extra(cfg.policy.name)
    s = cfg.scaling
    console.print(
        f"{escape(str(path))}: valid; policy {cfg.policy.name}, {s.min_workers}–{s.max_workers} "
        f"workers, a decision every {s.interval_s:g} s",
        highlight=False,
    )
    if extra:
        note = (
            f"the {cfg.policy.name} policy needs the '{extra}' extra, which is not installed: "
            f"pip install 'sparkscaler[{extra}]'"
        )
        err.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)


@config_app.command("show")
def config_show(
    config: Annotated[
        Path | None,
        typer.Argument(help="The YAML config to show.", show_default="built-in defaults"),
    ] = None,
) -> None:
    """Print the effective config as YAML: the file's settings with every default filled in,
    the policy's parameters included. The service token is masked."""
    import yaml

    from sparkscaler.policies import POLICIES

    cfg = load(config)
    data = cfg.model_dump(mode="json")
    params = POLICIES[cfg.policy.name].Params(**cfg.policy.params)
    data["policy"]["params"] = params.model_dump(mode="json")
    console.print(
        escape(yaml.safe_dump(data, sort_keys=False, allow_unicode=True)).rstrip(),
        highlight=False,
    )
