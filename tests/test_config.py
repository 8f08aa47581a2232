"""The YAML config: defaults, the shipped example, and one readable line per problem."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkscaler.config import Config, default_state_dir
from sparkscaler.configfile import ConfigError, config_from_dict, load_config
from sparkscaler.policies import make_policy


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SPARKSCALER_HOME", str(home))
    return home


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "test.yaml")
    assert info.value.source == "test.yaml"
    return info.value.problems


def _problems_of_file(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    return info.value.problems


# ------------------------------------------------------------------------------- valid files
def test_empty_file_is_valid_with_defaults(tmp_path: Path, _home: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    config = load_config(path)
    assert config == Config()
    assert config.scaling.min_workers == 1
    assert config.scaling.max_workers == 4
    assert config.cluster.master_url == "spark://127.0.0.1:7077"
    assert config.cluster.master_ui_url == "http://127.0.0.1:8080"
    assert config.cluster.worker_memory_mb == 1024
    assert config.policy.name == "hybrid"
    assert config.state_dir == _home
    assert config.store_path == _home / "sparkscaler.db"


def test_comment_only_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "comments.yaml"
    path.write_text("# nothing set\n\n")
    assert load_config(path) == Config()


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "store: /tmp/elsewhere.db\n"
        "cluster:\n  worker_memory: 2g\n  master_ui_port: 9090\n"
        "scaling:\n  min_workers: 0\n  max_workers: 8\n"
        "policy:\n  name: dra\n  params:\n    idle_timeout_s: 15\n"
    )
    config = load_config(path)
    assert config.cluster.worker_memory_mb == 2048
    assert config.cluster.master_ui_url == "http://127.0.0.1:9090"
    assert (config.scaling.min_workers, config.scaling.max_workers) == (0, 8)
    assert config.policy.params == {"idle_timeout_s": 15}
    assert config.store_path == Path("/tmp/elsewhere.db")


def _example_text() -> str:
    return resources.files("sparkscaler").joinpath("example-config.yaml").read_text()


def test_shipped_example_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(_example_text())
    config = load_config(path)
    assert config.policy.name == "hybrid"


def test_shipped_example_lists_the_defaults() -> None:
    data = yaml.safe_load(_example_text())
    config = config_from_dict(data, "example")
    defaults = Config()
    checked = 0
    for section, value in data.items():
        if section == "policy":
            assert value["name"] == defaults.policy.name
            policy_defaults = make_policy(value["name"]).get_params()
            for key, param in value["params"].items():
                assert param == policy_defaults[key], f"policy.params.{key}"
                checked += 1
        elif isinstance(value, dict):
            for key, setting in value.items():
                expected = getattr(getattr(defaults, section), key)
                in_yaml = list(expected) if isinstance(expected, tuple) else expected
                assert setting == in_yaml, f"{section}.{key}"
                assert getattr(getattr(config, section), key) == expected
                checked += 1
        else:
            assert value == getattr(defaults, section), section
            checked += 1
    assert checked >= 25  # the example really lists the settings
    # The policy params it lists are the policy's defaults, so the policies are the same.
    assert make_policy(config.policy.name, config.policy.params).get_params() == (
        make_policy(defaults.policy.name, defaults.policy.params).get_params()
    )


# ----------------------------------------------------------------------- one line per problem
@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        (
            {"scaling": {"max_workers": 0}},
            "scaling.max_workers",
            ["greater than or equal to 1", "0"],
        ),
        (
            {"scaling": {"min_workers": 5, "max_workers": 2}},
            "scaling",
            ["min_workers (5)", "max_workers (2)"],
        ),
        ({"scaling": {"interval_s": -1}}, "scaling.interval_s", ["greater than 0", "-1"]),
        ({"scaling": {"max_worker": 3}}, "scaling.max_worker", ["unknown setting"]),
        ({"clustr": {}}, "clustr", ["unknown setting"]),
        ({"scaling": {"interval_s[0]": 1}}, "scaling.interval_s[0]", ["unknown setting"]),
        ({"cluster": {"worker_memory": "3x"}}, "cluster.worker_memory", ["512m or 2g", "'3x'"]),
        (
            {"cluster": {"worker_memory": "256m"}},
            "cluster.worker_memory",
            ["at least 512m", "256m"],
        ),
        (
            {"cluster": {"worker_ip_base": "10.0.0"}},
            "cluster.worker_ip_base",
            ["127.x.y", "10.0.0"],
        ),
        ({"cluster": {"worker_ip_base": "127.0.300"}}, "cluster.worker_ip_base", ["127.x.y"]),
        ({"cluster": {"worker_ip_base": "127.0.0.1"}}, "cluster.worker_ip_base", ["127.x.y"]),
        ({"cluster": {"master_ui_port": 70000}}, "cluster.master_ui_port", ["65535"]),
        ({"policy": {"name": "nope"}}, "policy.name", ["unknown policy 'nope'", "dra"]),
        (
            {"policy": {"name": "dra", "params": {"idle_timeout_s": -5}}},
            "policy.params.idle_timeout_s",
            ["-5"],
        ),
        ({"policy": {"params": {"bogus": 1}}}, "policy.params.bogus", ["unknown setting"]),
        ({"backend": "yarn"}, "backend", ["'local'", "yarn"]),
    ],
)
def test_each_invalid_value_gives_one_line_naming_the_field(
    data: dict[str, Any], path: str, words: list[str]
) -> None:
    problems = _problems(data)
    assert len(problems) == 1, problems
    line = problems[0]
    assert line.startswith(f"{path}: "), line
    for word in words:
        assert word in line, (word, line)
    assert "\n" not in line


def test_worker_ip_base_accepts_other_loopback_subnets() -> None:
    assert (
        config_from_dict({"cluster": {"worker_ip_base": "127.1.2"}}).cluster.worker_ip_base
        == "127.1.2"
    )


def test_several_problems_give_several_lines() -> None:
    problems = _problems(
        {
            "scaling": {"max_workers": 0, "interval_s": 0},
            "cluster": {"worker_memory": "3x"},
            "typo": 1,
            "policy": {"name": "dra", "params": {"idle_timeout_s": -1}},
        }
    )
    assert len(problems) == 5, problems
    fields = sorted(p.split(":", 1)[0] for p in problems)
    assert fields == [
        "cluster.worker_memory",
        "policy.params.idle_timeout_s",
        "scaling.interval_s",
        "scaling.max_workers",
        "typo",
    ]


def test_error_message_has_one_line_per_problem_prefixed_by_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"scaling": {"max_workers": 0}, "x": 1}, "my.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("my.yaml: ") for line in lines)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scaling:\n  max_workers: 4\n   min_workers: 1\n")
    problems = _problems_of_file(path)
    assert len(problems) == 1
    assert problems[0].startswith("line 3: not valid YAML")


def test_invalid_yaml_tab_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tab.yaml"
    path.write_text("backend: local\nscaling:\n\tmax_workers: 1\n")
    (line,) = _problems_of_file(path)
    assert line.startswith("line 3: not valid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    assert _problems_of_file(path) == ["the top level must be a mapping of settings"]


def test_unreadable_file(tmp_path: Path) -> None:
    (line,) = _problems_of_file(tmp_path / "missing.yaml")
    assert line.startswith("cannot read the file")
    assert "No such file" in line
    (line,) = _problems_of_file(tmp_path)  # a directory
    assert line.startswith("cannot read the file")


def test_load_config_reports_validation_problems_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("scaling:\n  max_workers: 0\npolicy:\n  name: nope\n")
    problems = _problems_of_file(path)
    assert [p.split(":", 1)[0] for p in problems] == ["scaling.max_workers", "policy.name"]


# ------------------------------------------------------------------------------- state dir
def test_sparkscaler_home_sets_the_default_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKSCALER_HOME", str(tmp_path / "elsewhere"))
    assert default_state_dir() == tmp_path / "elsewhere"
    assert config_from_dict({}).state_dir == tmp_path / "elsewhere"
    assert config_from_dict({}).store_path == tmp_path / "elsewhere" / "sparkscaler.db"
    # An explicit state_dir beats the environment.
    assert config_from_dict({"state_dir": str(tmp_path / "x")}).state_dir == tmp_path / "x"


def test_without_sparkscaler_home_the_state_dir_is_in_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKSCALER_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Config().state_dir == tmp_path / ".sparkscaler"
    monkeypatch.setenv("SPARKSCALER_HOME", "")
    assert Config().state_dir == tmp_path / ".sparkscaler"


def test_state_dir_with_tilde_means_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = config_from_dict({"state_dir": "~/.sparkscaler"})
    assert config.state_dir == tmp_path / ".sparkscaler"


# ------------------------------------------------------------------- durations and memory
def test_every_time_setting_takes_spark_and_dataproc_durations() -> None:
    config = config_from_dict(
        {
            "deadline_s": "5min",
            "cluster": {"startup_timeout_s": "1.5m"},
            "scaling": {
                "interval_s": "500ms",
                "scale_out_cooldown_s": "30s",
                "scale_in_cooldown_s": "2m",
                "scale_in_stabilization_s": "1h",
                "decommission_timeout_s": 90,
            },
            "metrics": {"request_timeout_s": "1500ms"},
            "simulation": {"provisioning": ["1m", "2m"], "executor_startup_s": ["4s", 5.9]},
        }
    )
    assert config.deadline_s == 300.0
    assert config.cluster.startup_timeout_s == 90.0
    s = config.scaling
    assert s.interval_s == 0.5
    assert (s.scale_out_cooldown_s, s.scale_in_cooldown_s) == (30.0, 120.0)
    assert (s.scale_in_stabilization_s, s.decommission_timeout_s) == (3600.0, 90.0)
    assert config.metrics.request_timeout_s == 1.5
    assert config.simulation.provisioning == (60.0, 120.0)
    assert config.simulation.executor_startup_s == (4.0, 5.9)


def test_a_duration_in_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("scaling:\n  interval_s: 30s\n  scale_in_cooldown_s: 2m\n")
    config = load_config(path)
    assert (config.scaling.interval_s, config.scaling.scale_in_cooldown_s) == (30.0, 120.0)


def test_policy_params_take_durations() -> None:
    config = config_from_dict(
        {"policy": {"name": "dra", "params": {"idle_timeout_s": "60s", "backlog_timeout_s": "1s"}}}
    )
    params = make_policy(config.policy.name, config.policy.params).get_params()
    assert (params["idle_timeout_s"], params["backlog_timeout_s"]) == (60.0, 1.0)


def test_an_invalid_duration_is_one_line_naming_the_field_and_the_forms() -> None:
    (line,) = _problems({"scaling": {"interval_s": "5 parsecs"}})
    assert line == "scaling.interval_s: not a duration: '5 parsecs' (use seconds or 30s, 2m, 1h)"
    (line,) = _problems({"policy": {"name": "dra", "params": {"idle_timeout_s": "soon"}}})
    assert line.startswith("policy.params.idle_timeout_s: not a duration: 'soon'"), line


def test_a_duration_still_obeys_the_bounds() -> None:
    (line,) = _problems({"scaling": {"interval_s": "0s"}})
    assert line.startswith("scaling.interval_s: Input should be greater than 0"), line


def test_a_bad_range_names_the_field_not_the_union_branch() -> None:
    problems = _problems({"simulation": {"provisioning": ["1m", "later"]}})
    assert problems, problems
    assert all(p.startswith("simulation.provisioning") for p in problems), problems
    assert not any("tuple[" in p or "literal[" in p for p in problems), problems
    assert any("not a duration: 'later'" in p for p in problems), problems


@pytest.mark.parametrize(
    ("value", "kept", "mb"),
    [("2g", "2g", 2048), ("2GB", "2g", 2048), ("1536mb", "1536m", 1536), (2048, "2g", 2048)],
)
def test_worker_memory_takes_spark_notation_and_is_kept_unambiguous(
    value: str | int, kept: str, mb: int
) -> None:
    """A bare number is MiB (as spark.executor.memory reads it); the worker is handed '2g',
    since ``start-worker --memory 2048`` would mean 2048 bytes."""
    cluster = config_from_dict({"cluster": {"worker_memory": value}}).cluster
    assert (cluster.worker_memory, cluster.worker_memory_mb) == (kept, mb)


def test_regression_executor_memory_takes_spark_notation() -> None:
    config = config_from_dict(
        {"policy": {"name": "regression", "params": {"executor_memory_mb": "4g"}}}
    )
    params = make_policy(config.policy.name, config.policy.params).get_params()
    assert params["executor_memory_mb"] == 4096


# ----------------------------------------------------------------------- default policy
def test_params_without_a_name_are_checked_against_the_default_policy() -> None:
    """The default policy is hybrid, so a hybrid params block needs no name."""
    config = config_from_dict({"policy": {"params": {"reactive": {"idle_timeout_s": "30s"}}}})
    assert config.policy.name == Config().policy.name == "hybrid"
    policy = make_policy(config.policy.name, config.policy.params)
    assert policy.get_params()["reactive"]["idle_timeout_s"] == 30.0
    # ... and a DRA-only parameter is not one of hybrid's.
    (line,) = _problems({"policy": {"params": {"idle_timeout_s": 30}}})
    assert line.startswith("policy.params.idle_timeout_s: unknown setting"), line


def test_example_config_without_a_policy_name_is_valid() -> None:
    data = yaml.safe_load(_example_text())
    del data["policy"]["name"]
    assert data["policy"]["params"]["reactive"]  # the block that the old default rejected
    config = config_from_dict(data, "example")
    assert config.policy.name == "hybrid"
