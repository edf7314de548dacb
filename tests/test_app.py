"""The composition root: what starting the relay refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.app import create_app
from relay.config.settings import Settings
from relay.errors import ConfigError, StoreError


async def test_a_second_relay_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        {"database_url": f"sqlite:///{tmp_path / 'relay.db'}", "server": {"port": 8799}}, env={}
    )
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first):
        with pytest.raises(StoreError, match="SQLite is for one instance"):
            async with second.router.lifespan_context(second):
                pass  # pragma: no cover - must not start
    # Once the first one has stopped, the file is free again.
    async with second.router.lifespan_context(second):
        pass


@pytest.mark.parametrize("role", ["api", "worker"])
def test_split_roles_need_postgresql(tmp_path: Path, role: str) -> None:
    settings = Settings.from_mapping({"database_url": f"sqlite:///{tmp_path / 'relay.db'}"}, env={})
    with pytest.raises(ConfigError, match=f"--role {role} needs PostgreSQL"):
        create_app(settings, role=role)  # type: ignore[arg-type]


def test_a_worker_serves_only_health_metrics_and_the_sandbox(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        {"database_url": "postgresql://postgres@127.0.0.1:5432/test"}, env={}
    )
    paths = {getattr(r, "path", "") for r in create_app(settings, role="worker").routes}
    assert paths == {"/healthz", "/readyz", "/metrics", "/sandbox"}
    api = {getattr(r, "path", "") for r in create_app(settings, role="api").routes}
    assert {"/v1/tasks", "/v1/subscriptions", "/healthz", "/metrics"} <= api


def test_a_dialect_the_relay_does_not_speak_is_refused_naming_the_key(tmp_path: Path) -> None:
    # The configuration's own validation refuses such a name first; this is the registry's
    # guard for settings built another way: never a silent fallback to Ark.
    settings = Settings.from_mapping(
        {
            "database_url": f"sqlite:///{tmp_path / 'relay.db'}",
            "providers": {"acme": {"dialect": "ark", "base_url": "https://acme.example"}},
        },
        env={},
    )
    acme = settings.providers["acme"].model_copy(update={"dialect": "klingon"})
    odd = settings.model_copy(update={"providers": {**settings.providers, "acme": acme}})
    with pytest.raises(ConfigError, match=r"^providers\.acme\.dialect: unknown dialect 'klingon'"):
        create_app(odd)
