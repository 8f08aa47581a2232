"""A newcomer's first minutes: `--help` loads nothing heavy, a base install (no extras) runs the
rule policies and names the extra a command needs, every `--help` shows defaults and choices,
and a short flag means one thing everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import click
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from sparkscaler.cli import app
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

#: What a base install lacks: the import names of every extra's packages.
EXTRAS_MODULES = (
    "pyspark",
    "sklearn",
    "joblib",
    "matplotlib",
    "torch",
    "stable_baselines3",
    "gymnasium",
)
#: Libraries that `--help`, `--version` and `init` must not load (each costs 0.1 to 2 s).
HEAVY = (*EXTRAS_MODULES, "numpy", "pandas", "scipy", "httpx", "psutil")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SPARK_HOME"}
    return {**env, "SPARKSCALER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def _sparkscaler(
    tmp_path: Path, *args: str, blocked: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the console script's main() in a fresh interpreter with ``blocked`` modules made
    unimportable (as on a base install), and report which heavy modules got loaded."""
    code = textwrap.dedent(
        f"""
        import atexit, sys
        for name in {blocked!r}:
            sys.modules[name] = None
        atexit.register(
            lambda: print("LOADED", sorted(m for m in {HEAVY!r} if sys.modules.get(m)),
                          file=sys.stderr)
        )
        from sparkscaler.cli import main
        main()
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


def _loaded(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.rsplit("LOADED", 1)[-1].strip()


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["init", "x.yaml"],
        ["run", "--help"],
        ["serve", "--help"],
        ["simulate", "--help"],
        ["evaluate", "--help"],
        ["cluster", "start", "--help"],
    ],
)
def test_help_version_and_init_load_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    result = _sparkscaler(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert _loaded(result) == "[]"


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("LOADED")]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_base_install_runs_init_config_and_the_rule_policies(tmp_path: Path) -> None:
    base = EXTRAS_MODULES
    assert _sparkscaler(tmp_path, "--help", blocked=base).returncode == 0
    assert _sparkscaler(tmp_path, "init", "c.yaml", blocked=base).returncode == 0
    checked = _sparkscaler(tmp_path, "config", "validate", "c.yaml", blocked=base)
    assert checked.returncode == 0, checked.stderr
    assert "c.yaml: valid" in checked.stdout
    # the example config's policy is hybrid: validating it says what running it needs
    assert "pip install 'sparkscaler[ml]'" in checked.stderr
    for policy in ("static", "hpa", "dra", "dataproc", "planner"):
        result = _sparkscaler(
            tmp_path,
            *("simulate", "--policy", policy, "--duration", "2h"),
            *("--workload", "poisson:rate=20"),
            blocked=base,
        )
        assert result.returncode == 0, (policy, result.stderr)
        assert "deadline misses" in result.stdout
        assert not {"sklearn", "torch", "gymnasium"} & set(_loaded(result).strip("[]").split())


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["simulate", "--policy", "hybrid", "--duration", "1h"], "ml"),
        (["simulate", "--policy", "predictive", "--duration", "1h"], "ml"),
        (["simulate", "--policy", "dqn", "--duration", "1h"], "rl"),
        (["train", "dqn", "--timesteps", "100"], "rl"),
        (["serve"], "ml"),  # the default policy is hybrid
        (["run", "--once"], "ml"),
    ],
)
def test_a_command_that_needs_an_extra_names_it_in_one_line(
    tmp_path: Path, args: list[str], extra: str
) -> None:
    result = _sparkscaler(tmp_path, *args, blocked=EXTRAS_MODULES)
    assert result.returncode != 0
    line = _one_line_error(result)
    assert f"pip install 'sparkscaler[{extra}]'" in line
    assert not (tmp_path / "home" / "logs").exists()  # refused before anything was started


@pytest.mark.skipif(shutil.which("java") is None, reason="both check for java first")
@pytest.mark.parametrize("command", [["cluster", "start"], ["serve"]])
def test_a_local_cluster_without_pyspark_or_spark_home_names_the_local_extra(
    tmp_path: Path, command: list[str]
) -> None:
    """`serve` on a base install gets as far as starting its cluster: only Spark is missing."""
    config = tmp_path / "c.yaml"
    ports = {k: free_port() for k in ("master_port", "master_ui_port", "worker_ui_port")}
    settings = {"cluster": ports, "service": {"port": free_port()}, "policy": {"name": "dra"}}
    config.write_text(yaml.safe_dump(settings))
    result = _sparkscaler(tmp_path, *command, "--config", str(config), blocked=EXTRAS_MODULES)
    assert result.returncode != 0
    line = _one_line_error(result)
    assert "pip install 'sparkscaler[local]'" in line and "SPARK_HOME" in line


def test_the_extras_are_honest() -> None:
    """The base dependencies carry none of the extras' packages; `all` names every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("pyspark", "scikit-learn", "torch", "gymnasium", "stable-baselines3", "paramiko"):
        assert heavy not in base
    extras = project["optional-dependencies"]
    own = set(extras) - {"all", "dev"}
    assert {"local", "ml", "rl", "hosts"} <= own
    (everything,) = extras["all"]
    assert sorted(everything.removeprefix("sparkscaler[").removesuffix("]").split(",")) == sorted(
        own
    )


# ------------------------------------------------------------------------------ help texts
def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


def test_every_option_shows_its_default_or_is_required() -> None:
    missing = []
    for path, command in COMMANDS:
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or param.required:
                continue
            if param.default is None and not isinstance(param.show_default, str):
                missing.append(f"{path} {param.opts[0]}")
            if "[default" in (param.help or ""):  # Typer's markup would swallow it
                missing.append(f"{path} {param.opts[0]}: '[default' written into the help")
    assert not missing


def test_a_short_flag_means_one_thing_everywhere() -> None:
    meaning: dict[str, set[str]] = {}
    for _path, command in COMMANDS:
        for param in command.params:
            if isinstance(param, click.Option):
                longs = [o for o in param.opts if o.startswith("--")]
                for short in (o for o in param.opts if not o.startswith("--")):
                    meaning.setdefault(short, set()).update(longs)
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert not clashes


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["serve", "--help"], "[default: (service.host, 127.0.0.1)]"),
        (["serve", "--help"], "[default: (service.port, 8765)]"),
        (["cluster", "scale", "--help"], "[default: (scaling.decommission_timeout_s, 120)]"),
        (["evaluate", "--help"], "[default: -1]"),
        (["simulate", "--help"], "hybrid"),
        (["train", "dqn", "--help"], "<paper|paper-cost|improved|residual>"),
        (["run", "--help"], "<debug|info|warning|error>"),
    ],
)
def test_help_shows_defaults_and_choices(args: list[str], shown: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert shown in result.output


def test_policy_and_variant_are_choices() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--policy", "nope"])
    assert result.exit_code == 2 and "'nope' is not one of" in result.output
    result = runner.invoke(app, ["train", "dqn", "--variant", "fancy"])
    assert result.exit_code == 2 and "'fancy' is not one of" in result.output
