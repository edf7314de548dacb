"""The floors of ``relay/``: imports only point down (or sideways on one floor), never up.

    4  app, cli                          composition root and commands
    3  api, dashboard                    the HTTP edge
    2  tasks, delivery engine, pump,     engines: sequence I/O around the pure rules
       heartbeat, jobs, metrics, operator actions, services, sandbox, copier
    1  store, adapters, net, config,     storage, provider dialects, the network, settings,
       outputs                           stored videos
    0  models, provider answers, errors, pure values and decisions, no I/O
       transitions, submissions, polling, delivery outcomes, task verdicts, copies, backoff,
       limits, signing, logs, clock, ids

Two more rules: the sandbox (a fake provider) never imports the adapters it is there to
exercise, and nothing outside ``relay.store`` imports a backend (``open_store`` is the door).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[1] / "relay"

FLOORS: dict[str, int] = {
    "relay.__main__": 4,
    "relay.app": 4,
    "relay.cli": 4,
    "relay.api": 3,
    "relay.dashboard": 3,
    "relay.doors": 3,
    "relay.doors.ark_shapes": 0,
    "relay.doors.openai_shapes": 0,
    "relay.tasks": 2,
    "relay.tasks.verdicts": 0,
    "relay.copier": 2,
    "relay.streams": 2,  # the live event stream's tail: reads the store
    "relay.streams.tail": 0,
    "relay.copies": 0,
    "relay.delivery.engine": 2,
    "relay.delivery.attempts": 2,
    "relay.delivery.recorder": 2,
    "relay.delivery.fresh_urls": 2,
    "relay.pump": 2,
    "relay.heartbeat": 2,
    "relay.jobs": 2,
    "relay.metrics": 2,
    "relay.operator_actions": 2,
    "relay.services": 2,
    "relay.sandbox": 2,
    "relay.store": 1,
    "relay.adapters": 1,
    "relay.net": 1,
    "relay.outputs": 1,
    "relay.config": 1,
    "relay": 0,
    "relay.models": 0,
    "relay.provider_answers": 0,
    "relay.errors": 0,
    "relay.transitions": 0,
    "relay.submissions": 0,
    "relay.polling": 0,
    "relay.delivery": 0,
    "relay.delivery.outcomes": 0,
    "relay.backoff": 0,
    "relay.limits": 0,
    "relay.signing": 0,
    "relay.logs": 0,
    "relay.clock": 0,
    "relay.ids": 0,
}
BACKENDS = ("relay.store.sqlite", "relay.store.postgres")


def module_name(path: Path) -> str:
    parts = path.relative_to(RELAY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    """The floor of the longest ``FLOORS`` entry that is ``module`` or a package of it."""
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return FLOORS[prefix]
    raise AssertionError(f"{module} has no floor")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def relay_imports(path: Path) -> set[str]:
    """Every relay module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if within(a.name, "relay")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "relay":
                found |= {f"relay.{a.name}" for a in node.names}
            elif within(node.module, "relay"):
                found.add(node.module)
    return found


MODULES = {module_name(p): p for p in sorted(RELAY.rglob("*.py"))}
ARROWS = sorted((m, target) for m, p in MODULES.items() for target in relay_imports(p))


def test_every_module_has_a_floor() -> None:
    for module in MODULES:
        floor(module)


def test_no_import_points_up() -> None:
    upward = [
        f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)})"
        for m, t in ARROWS
        if floor(t) > floor(m)
    ]
    assert not upward, "\n".join(upward)


def test_the_sandbox_does_not_import_the_adapters() -> None:
    found = [
        f"{m} imports {t}"
        for m, t in ARROWS
        if within(m, "relay.sandbox") and within(t, "relay.adapters")
    ]
    assert not found, "\n".join(found)


def test_only_the_store_package_imports_a_backend() -> None:
    found = [
        f"{m} imports {t}"
        for m, t in ARROWS
        if any(within(t, b) for b in BACKENDS) and not within(m, "relay.store")
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("backend", "other"), [BACKENDS, BACKENDS[::-1]])
def test_a_backend_does_not_import_the_other(backend: str, other: str) -> None:
    found = [f"{m} imports {t}" for m, t in ARROWS if within(m, backend) and within(t, other)]
    assert not found, "\n".join(found)


def test_the_rules_see_the_imports() -> None:
    """The reader is not blind: the composition root's arrows reach every floor."""
    assert {floor(t) for m, t in ARROWS if m == "relay.app"} >= {0, 1, 2, 3}
