"""Reading a config: a YAML file or a mapping, checked whole, one readable line per problem.

Apart from :mod:`sparkscaler.config` (the settings as pydantic models, at the bottom of the
package) because checking a config whole means checking its policy's parameters, and those are
the policies' own models: the settings must not import the policies that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sparkscaler.config import DEFAULT_POLICY, Config
from sparkscaler.errors import format_validation_error
from sparkscaler.policies import validate_policy_settings


class ConfigError(Exception):
    """An invalid configuration, with one human-readable line per problem in ``problems``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """The config ``data`` describes, or a :class:`ConfigError` with every problem in it: the
    settings' and the policy parameters' together, in that order."""
    problems: list[str] = []
    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems += format_validation_error(error)
    policy = data.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("params", {}), dict):
        problems += validate_policy_settings(
            policy.get("name", DEFAULT_POLICY), policy.get("params", {})
        )
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def load_config(path: Path) -> Config:
    """Read and validate a YAML file; every problem becomes a :class:`ConfigError` line."""
    source = str(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(source, [f"cannot read the file: {error.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(error, "problem", error)
        raise ConfigError(source, [f"{where}not valid YAML ({problem})"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping of settings"])
    return config_from_dict(data, source)
