"""Starting ``relay serve`` as a real process: whatever stops it is one line naming what to
fix and a non-zero exit, never a traceback (the port taken, a second relay on the same
SQLite file, a database that cannot be reached, a bad configuration); "ready" is said only
once the port accepts connections; ``--dev`` lets webhooks reach this machine, on a loopback
host only; ``check-config`` prints every warning ``serve`` logs."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    HOST,
    RelayProcess,
    api_client,
    ark_input,
    create_account,
    free_port,
    relay_config,
    write_config,
)

pytestmark = pytest.mark.slow


async def relay_command(*args: str, within: float = 30) -> tuple[int, str, str]:
    """``python -m relay ARGS`` to its end: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RELAY_LOG_FORMAT": "text"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_error(stderr: str) -> str:
    """The one error line of a failed start: no traceback, nothing else at WARNING or above."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    noisy = [line for line in stderr.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", line)]
    assert noisy == [], stderr
    assert "relay ready" not in stderr
    return errors[0].removeprefix("Error: ")


def config_file(tmp_path: Path, port: int, name: str = "relay.yaml", **sections: Any) -> Path:
    return write_config(tmp_path, relay_config(tmp_path, port, **sections), name)


async def test_a_taken_port_is_one_line_and_touches_no_database(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await relay_command("serve", "-c", str(config_file(tmp_path, port)))
    assert code == 1
    assert one_error(err) == (
        f"cannot listen on {HOST}:{port}: the port is already in use (another relay, or "
        "another program); stop it or choose another port with --port"
    )
    assert not (tmp_path / "relay.db").exists()  # refused before the database is opened


async def test_a_second_relay_on_the_same_sqlite_file_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    first = RelayProcess(config_file(tmp_path, port), port, tmp_path / "first.log")
    try:
        await first.start()
        second = config_file(tmp_path, free_port(), name="second.yaml")
        code, _, err = await relay_command("serve", "-c", str(second))
        assert code == 1
        assert one_error(err).startswith(
            f"another relay is already serving {tmp_path / 'relay.db'}: SQLite is for one instance"
        )
        async with api_client(first.url) as client:  # the first one is untouched
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await first.ensure_dead()


async def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    config = relay_config(tmp_path, free_port())
    config["database_url"] = f"sqlite:///{tmp_path / 'no' / 'such' / 'relay.db'}"
    code, _, err = await relay_command("serve", "-c", str(write_config(tmp_path, config)))
    assert code == 1
    assert one_error(err) == (
        f"cannot start: {tmp_path / 'no' / 'such' / 'relay.db.lock'}: No such file or directory"
    )

    # A PostgreSQL server that does not answer: its driver's warnings stay quiet too.
    with socket.socket() as closed:
        closed.bind((HOST, 0))
        dead_port = closed.getsockname()[1]
    config["database_url"] = f"postgresql://relay@{HOST}:{dead_port}/relay"
    code, _, err = await relay_command("serve", "-c", str(write_config(tmp_path, config)))
    assert code == 1
    assert one_error(err).startswith("PostgreSQL: no connection within")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {port: 0}\n", "configuration: server.port: Input should be greater than"),
        ("server: [\n", "configuration: config file {path} is not valid YAML: while parsing"),
        ("providers: {x: {dialect: nope}}\n", "configuration: providers.x.dialect: "),
    ],
)
async def test_a_bad_configuration_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = await relay_command("serve", "-c", str(path))
    assert (code, out) == (1, "")
    assert one_error(err).startswith(expected.format(path=path)), err
    assert err.count("\n") == 1, err  # nothing else at all: it stopped before logging began


async def test_ready_is_said_once_connections_are_accepted(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "relay.log"
    relay = RelayProcess(config_file(tmp_path, port, log_level="info"), port, log_path)
    try:
        await start_serve(relay)
        # At once, without a retry: the line came after the port accepted connections.
        async with httpx.AsyncClient(base_url=relay.url, trust_env=False) as client:
            assert (await client.get("/healthz")).status_code == 200
        lines = relay.log().splitlines()
        ready = next(i for i, line in enumerate(lines) if "relay ready" in line)
        started = next(i for i, line in enumerate(lines) if "relay started as all" in line)
        assert started < ready
        assert lines[ready].endswith(
            f"relay ready on http://{HOST}:{port} as all; dashboard: http://{HOST}:{port}/dashboard/"
        )
    finally:
        await relay.ensure_dead()


async def test_dev_serves_on_loopback_only(tmp_path: Path) -> None:
    code, _, err = await relay_command(
        "serve", "--dev", "--host", "0.0.0.0", "-c", str(config_file(tmp_path, free_port()))
    )
    assert code == 1
    assert one_error(err).startswith("--dev serves on a loopback host only")


async def test_without_dev_a_loopback_callback_is_refused_and_with_dev_accepted(
    tmp_path: Path,
) -> None:
    """The default network policy (no allow_networks) refuses a receiver on this machine;
    ``--dev`` is what the README's walkthrough starts the relay with."""
    for dev, expected in ((False, 400), (True, 201)):
        port = free_port()
        config = relay_config(tmp_path, port, log_level="info")
        del config["network"]  # the defaults, as a first run has them
        path = write_config(tmp_path, config, name=f"dev-{dev}.yaml")
        relay = RelayProcess(path, port, tmp_path / f"dev-{dev}.log")
        try:
            await start_serve(relay, *(["--dev"] if dev else []))
            account = await create_account(path, f"dev-{dev}")
            async with api_client(
                relay.url, headers={"Authorization": f"Bearer {account.api_key}"}
            ) as client:
                answer = await client.post(
                    "/v1/tasks",
                    json={
                        "provider": "sandbox",
                        "input": ark_input(),
                        "callback_url": f"http://127.0.0.1:{free_port()}/hooks",
                    },
                )
            assert answer.status_code == expected, answer.text
            if not dev:
                assert answer.json()["error"]["code"] == "destination_not_allowed"
            else:
                assert "--dev: webhooks may go to this machine" in relay.log()
        finally:
            await relay.ensure_dead()
        (tmp_path / "relay.db").unlink()


async def start_serve(relay: RelayProcess, *args: str) -> None:
    """``relay serve --config ... ARGS`` as ``relay``'s process; returns once it is ready."""
    with open(relay.log_path, "ab") as log:  # noqa: ASYNC230 - opened once, for the child
        relay.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "serve",
            "--config",
            str(relay.config_path),
            *args,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "RELAY_LOG_FORMAT": "text"},
        )
    deadline = time.monotonic() + 20
    while "relay ready" not in relay.log():
        assert relay.proc.returncode is None, relay.log()
        assert time.monotonic() < deadline, relay.log()
        await asyncio.sleep(0.01)


async def test_check_config_prints_every_warning_serve_logs(tmp_path: Path) -> None:
    port = free_port()
    config = relay_config(
        tmp_path,
        port,
        log_level="info",
        providers={"seedance2ink": {"api_key": "sk-test", "base_url": f"http://{HOST}:1"}},
        outputs={"store": f"file://{tmp_path / 'outputs'}"},
    )
    path = write_config(tmp_path, config)
    code, _, err = await relay_command("check-config", "-c", str(path))
    assert code == 0, err
    warnings = [line.removeprefix("warning: ") for line in err.splitlines()]
    assert all(line.startswith("warning: ") for line in err.splitlines()), err
    assert any("provider seedance2ink pushes results" in w for w in warnings), warnings
    assert any("outputs.store is set, but server.public_url is not" in w for w in warnings)

    relay = RelayProcess(path, port, tmp_path / "relay.log")
    try:
        await relay.start()
        logged = relay.log()
    finally:
        await relay.ensure_dead()
    for warning in warnings:
        assert warning in logged, (warning, logged)
