"""The package's layers, checked mechanically: a module imports only from layers below it.

Every ``import`` and ``from … import`` of every module counts, those inside functions and under
``TYPE_CHECKING`` included: a lazy import is still a dependency, and a typing-only one still
ties a lower layer to an upper one's names. The layers are DESIGN.md's table, top to bottom; a
module in no row of it is placed where the modules that use it are.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import sparkscaler

PACKAGE = Path(sparkscaler.__file__).parent

#: Rank of each top-level module or package of sparkscaler: higher is upper.
RANK = {
    "cli": 10,
    "__main__": 10,
    "demo": 10,
    "demo_report": 10,
    "service": 9,
    "logs": 9,  # log lines of the loop's steps, for the command line and the service
    "evaluation": 8,
    "rl": 7,
    "wiring": 6,
    "controller": 5,
    "guard": 5,
    "policies": 4,
    "models": 3,
    "backends": 2,
    "workloads": 2,  # submits and replays jobs on a cluster, as a backend drives one
    "sim": 1.8,
    "observe": 1.5,
    "store": 1.2,
    "configfile": 4.5,  # reads a config whole: its settings and its policy's parameters
    "config": 1,
    "core": 1,
    "clock": 0,
    "units": 0,
    "errors": 0,
    "processes": 0,
    "htmlpage": 0,
    "": 0,  # the package itself: its version
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (sparkscaler's own as ``sparkscaler.x.y``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # ``from sparkscaler.backends import local`` imports the module backends.local
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


IMPORTS = {module: _imports(path) for module, path in _modules()}


def _own(module: str) -> set[str]:
    return {
        name for name in IMPORTS[module] if name.split(".")[0] == "sparkscaler" and name in IMPORTS
    }


def test_every_module_has_a_layer() -> None:
    assert {_layer(m) for m in IMPORTS} <= set(RANK)


def test_no_module_imports_a_layer_above_it() -> None:
    upward = sorted(
        (module, name)
        for module in IMPORTS
        for name in _own(module)
        if RANK[_layer(name)] > RANK[_layer(module)]
    )
    assert not upward


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if _layer(m) == "policies"))
def test_policies_never_import_the_simulator_gymnasium_backends_or_the_loop(module: str) -> None:
    banned = ("sparkscaler.sim", "sparkscaler.backends", "sparkscaler.controller", "gymnasium")
    assert not {n for n in IMPORTS[module] for b in banned if n == b or n.startswith(f"{b}.")}


def test_the_controller_imports_no_backend_but_the_protocol() -> None:
    backends = {n for n in _own("sparkscaler.controller") if _layer(n) == "backends"}
    assert backends <= {"sparkscaler.backends.base"}


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if _layer(m) == "models"))
def test_models_import_only_core_and_units(module: str) -> None:
    assert {n for n in _own(module) if _layer(n) != "models"} <= {
        "sparkscaler.core",
        "sparkscaler.units",
    }


def test_the_check_sees_lazy_and_typing_only_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sparkscaler.controller import Step\n"
        "def f():\n    import sparkscaler.sim.cluster\n"
        "    from sparkscaler.backends import local\n"
    )
    assert {"sparkscaler.controller", "sparkscaler.sim.cluster", "sparkscaler.backends.local"} <= (
        _imports(source)
    )
