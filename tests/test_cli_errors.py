"""The command line's failure paths: exit codes, one readable line per problem, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.configfile import load_config
from sparkscaler.core import Observation
from sparkscaler.store import Store

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SPARKSCALER_HOME", str(home))
    return home


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path, text: str = "", name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _dead_master_config(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    text = (
        f"state_dir: {state}\n"
        f"cluster:\n  master_ui_port: {_free_port()}\n  app_ui_ports: [{_free_port()}]\n"
        "metrics:\n  request_timeout_s: 1\n"
    )
    return _config(tmp_path, text), state


INVALID = "scaling:\n  max_workers: 0\ncluster:\n  worker_memory: 3x\n"


def test_invalid_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    path = _config(tmp_path, INVALID)
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith(f"invalid config {path}: ") for line in lines)
    fields = {line.removeprefix(f"invalid config {path}: ").split(":")[0]: line for line in lines}
    assert set(fields) == {"scaling.max_workers", "cluster.worker_memory"}
    assert "'3x'" in fields["cluster.worker_memory"]
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", [["run"], ["cluster", "status"], ["cluster", "stop"], ["history"]]
)
def test_every_command_checks_the_config(tmp_path: Path, command: list[str]) -> None:
    path = _config(tmp_path, "scaling:\n  interval_s: -1\n")
    result = runner.invoke(app, [*command, "--config", str(path)])
    assert result.exit_code == 2
    assert "scaling.interval_s" in result.stderr


def test_unknown_policy_exits_2(tmp_path: Path) -> None:
    path = _config(tmp_path, "policy:\n  name: magic\n")
    result = runner.invoke(app, ["run", "--dry-run", "--once", "--config", str(path)])
    assert result.exit_code == 2
    assert "policy.name" in result.stderr
    assert "'magic'" in result.stderr
    assert "dra" in result.stderr


def test_invalid_yaml_exits_2_with_the_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "scaling:\n  max_workers: 4\n   min_workers: 1\n")
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 2
    assert "line 3" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["history", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr


def test_invalid_config_as_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    path = _config(tmp_path, INVALID + "typo: 1\n")
    env = {**os.environ, "SPARKSCALER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "sparkscaler", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert sorted(line.split(": ")[1] for line in lines) == [
        "cluster.worker_memory",
        "scaling.max_workers",
        "typo",
    ]


@pytest.mark.parametrize("value", ["[/x]", "[bold]x"])
def test_config_values_that_look_like_markup_are_shown_verbatim(tmp_path: Path, value: str) -> None:
    path = _config(tmp_path, f'cluster:\n  worker_memory: "{value}"\n')
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 2
    assert f"'{value}'" in result.stderr


def test_a_value_that_is_not_a_duration_is_one_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "scaling:\n  interval_s: 5 parsecs\n")
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"invalid config {path}: scaling.interval_s: not a duration: '5 parsecs' "
        "(use seconds or 30s, 2m, 1h)"
    )


def test_history_without_a_store_exits_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = _config(tmp_path, f"state_dir: {state}\n")
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 1
    assert "no store at" in result.stderr
    assert str(state / "sparkscaler.db") in result.stderr
    assert "sparkscaler run" in result.stderr
    assert not (state / "sparkscaler.db").exists()


def test_history_uses_sparkscaler_home_by_default(_home: Path) -> None:
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 1
    assert str(_home / "sparkscaler.db") in result.stderr


def test_cluster_status_with_a_dead_master(tmp_path: Path) -> None:
    path, _ = _dead_master_config(tmp_path)
    port = load_config(path).cluster.master_ui_port
    result = runner.invoke(app, ["cluster", "status", "--config", str(path)])
    assert result.exit_code != 0
    assert f"127.0.0.1:{port} did not answer" in result.stderr
    assert "sparkscaler cluster start" in result.stderr
    assert "Traceback" not in result.output


def test_cluster_status_json_with_a_dead_master(tmp_path: Path) -> None:
    path, _ = _dead_master_config(tmp_path)
    result = runner.invoke(app, ["cluster", "status", "--json", "--config", str(path)])
    assert result.exit_code != 0
    data = json.loads(result.stdout)
    assert data["running"] is False
    assert "did not answer" in data["error"]


def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "s.yaml"
    path.parent.mkdir()
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.stdout
    config = load_config(path)
    assert config.policy.name == "hybrid"
    assert config.scaling.max_workers == 4


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = _config(tmp_path, "# mine\n", name="s.yaml")
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 1
    assert "exists" in result.stderr
    assert "--force" in result.stderr
    assert path.read_text() == "# mine\n"

    result = runner.invoke(app, ["init", str(path), "--force"])
    assert result.exit_code == 0
    assert path.read_text() != "# mine\n"
    load_config(path)


@pytest.mark.skipif(shutil.which("java") is None, reason="`run` checks for java first")
def test_run_once_dry_run_against_a_dead_master_records_a_stale_hold(tmp_path: Path) -> None:
    path, state = _dead_master_config(tmp_path)
    result = runner.invoke(app, ["run", "--once", "--dry-run", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert not (state / "logs" / "master.log").exists()  # a dry run starts no cluster
    with Store(state / "sparkscaler.db") as store:
        decisions = store.decisions()
        observations = store.observations()
    assert len(decisions) == 1
    (decision,) = decisions
    assert decision["action"] == "hold"
    assert "stale" in decision["reason"]
    assert decision["dry_run"] == 1
    assert decision["acted"] == 0
    assert len(observations) == 1
    assert observations[0]["stale"] == 1
    assert decision["observation_id"] == observations[0]["id"]


def test_error_messages_with_brackets_are_shown_verbatim(tmp_path: Path) -> None:
    state = tmp_path / "[/x]"
    path = _config(tmp_path, f'state_dir: "{state}"\n')
    result = runner.invoke(app, ["history", "--config", str(path)])
    assert result.exit_code == 1
    assert str(state) in result.stderr


# ------------------------------------------------------------------ corrupt files, end to end
def _sparkscaler(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it: through main(), which turns a SparkscalerError
    into one line (CliRunner calls the Typer app and would skip it)."""
    env = {**os.environ, "SPARKSCALER_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "sparkscaler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line.removeprefix("error: ")


def _truncated_store(path: Path) -> bytes:
    """A store of many pages cut to a third, as a full disk or a bad copy leaves it."""
    with Store(path) as store:
        for i in range(2000):
            store.add_observation(Observation(time=float(i)))
    data = path.read_bytes()
    return data[: len(data) // 3]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89\xff garbage \x00" * 300, "file is not a database"),
        (None, "database disk image is malformed"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_corrupt_store_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = home / "sparkscaler.db"
    store.write_bytes(content or _truncated_store(tmp_path / "full.db"))
    line = _one_error_line(_sparkscaler(home, "history"))
    assert line == (
        f"{store} is not a sparkscaler store ({problem}); move it away or set store: in the config"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x89\xff\x00garbage", "not JSON: 'utf-8' codec can't decode"),
        (b'{"master": {"pid": 4242, "create_t', "not JSON: Unterminated string"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_corrupt_state_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    state = home / "cluster.json"
    state.write_bytes(content)
    for command in (["cluster", "status"], ["cluster", "stop"]):
        line = _one_error_line(_sparkscaler(home, *command))
        assert line.startswith(f"state file {state} is corrupt ({why}"), line
        assert line.endswith("delete it")
