"""`sparkscaler config validate FILE` and `sparkscaler config show`: check a file in one go, and
see the settings in force with every default filled in."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.config import Config

runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_validate_summarises_a_valid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "scaling:\n  max_workers: 6\n  interval_s: 30s\npolicy:\n  name: dra\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid; policy dra, 1–6 workers, a decision every 30 s" in result.stdout
    assert result.stderr == ""


def test_validate_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "scaling:\n  max_workers: 0\n  interval_s: soon\nbogus: 1\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"invalid config {path}: ") for line in lines)
    joined = "\n".join(lines)
    assert "scaling.max_workers" in joined and "scaling.interval_s" in joined
    assert "bogus: unknown setting" in joined


def test_validate_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot read the file" in result.stderr


def test_show_fills_in_every_default_and_the_policys_params(tmp_path: Path) -> None:
    path = _write(tmp_path, f"state_dir: {tmp_path}\nscaling:\n  scale_in_cooldown_s: 2m\n")
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    defaults = Config().model_dump(mode="json")
    assert set(shown) == set(defaults)  # every section, whether the file had it or not
    assert shown["scaling"]["scale_in_cooldown_s"] == 120.0  # the file's, as seconds
    assert shown["scaling"]["max_workers"] == defaults["scaling"]["max_workers"]
    assert shown["policy"]["name"] == "hybrid"
    # hybrid's nested parameters with their defaults, though the file names none
    assert shown["policy"]["params"]["reactive"]["idle_timeout_s"] == 60.0
    # what `show` prints is itself a valid config that means the same
    again = tmp_path / "shown.yaml"
    again.write_text(result.stdout)
    assert runner.invoke(app, ["config", "validate", str(again)]).exit_code == 0


def test_show_masks_the_service_token(tmp_path: Path) -> None:
    secret = "s3cret-token-0123456789"
    path = _write(tmp_path, f"service:\n  token: {secret}\n")
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert secret not in result.stdout
    assert "token: '**********'" in result.stdout


def test_show_without_a_file_is_the_built_in_defaults(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["config", "show"], env={"SPARKSCALER_HOME": str(tmp_path / "home")}
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["state_dir"] == str(tmp_path / "home")
