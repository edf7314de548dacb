"""uvicorn's per-request access log is off by default (issue 17 item 4: a line per request
costs CPU on every request) and on with ``relay serve --access-log`` or
``server.access_log: true``; a real ``relay serve`` process at ``log_level: info``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from relay.config.settings import Settings
from tests.e2e.harness import HOST, api_client, eventually, free_port, relay_config, write_config

pytestmark = pytest.mark.slow


async def served_log(tmp_path: Path, *flags: str, **server: object) -> str:
    """What ``relay serve FLAGS`` logs while it answers ``GET /v1/me`` (401: no key) once."""
    tmp_path.mkdir(exist_ok=True)  # noqa: ASYNC240 - a test's setup
    port = free_port()
    config = relay_config(tmp_path, port, log_level="info", server=server)
    path = write_config(tmp_path, config)
    log_path = tmp_path / "relay.log"
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - the child writes it, not this loop
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "serve",
            "--config",
            str(path),
            *flags,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "RELAY_LOG_FORMAT": "text"},
        )
    try:
        async with api_client(f"http://{HOST}:{port}") as client:

            async def answered() -> bool:
                assert proc.returncode is None, log_path.read_text()
                try:
                    return (await client.get("/v1/me")).status_code == 401
                except Exception:
                    return False

            await eventually(answered, within=30, what="relay serve")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)
    return log_path.read_text(errors="replace")


async def test_no_access_log_by_default(tmp_path: Path) -> None:
    text = await served_log(tmp_path)
    assert "relay ready" in text  # info lines are there
    assert '"GET /v1/me HTTP/1.1" 401' not in text


async def test_access_log_on_with_the_flag(tmp_path: Path) -> None:
    text = await served_log(tmp_path, "--access-log")
    assert '"GET /v1/me HTTP/1.1" 401' in text


async def test_access_log_on_in_the_config_and_off_with_the_flag(tmp_path: Path) -> None:
    on = await served_log(tmp_path / "on", access_log=True)
    assert '"GET /v1/me HTTP/1.1" 401' in on
    off = await served_log(tmp_path / "off", "--no-access-log", access_log=True)
    assert "relay ready" in off
    assert '"GET /v1/me HTTP/1.1" 401' not in off


def test_the_setting_defaults_to_off() -> None:
    assert Settings.from_mapping({}, env={}).server.access_log is False
