"""The relay harness of the end-to-end and API tests: a real relay (the real app in-process, or
``relay serve`` as a subprocess), real receivers, real sockets on 127.0.0.1 and a real SQLite
file.

Nothing here reaches into the relay's internals: the tests see it exactly as a user does, through
its HTTP API, its CLI and the webhooks it sends. The relay runs in one of three ways:

- :class:`InProcessRelay`: ``create_app(settings)`` with its lifespan in the test's event loop,
  the test's requests going through ``httpx.ASGITransport`` (the API tests, ``tests/api``);
- :class:`RelayServer`: the same app under uvicorn on a loopback port, the test's requests
  over real HTTP (the end-to-end tests);
- :class:`RelayProcess`: ``python -m relay serve`` as a real process (crashes, signals,
  several instances, logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx
import psycopg
import pytest
import uvicorn
import yaml
from aiohttp import web
from click.testing import CliRunner
from psycopg import sql
from starlette.applications import Starlette

from relay import cli
from relay.app import create_app
from relay.clock import Clock
from relay.config.settings import Settings
from tests.store.conftest import _unavailable

T = TypeVar("T")

HOST = "127.0.0.1"
MODEL = "doubao-seedance-2-0-fast-260128"
ARK_TASKS = "/sandbox/ark/api/v3/contents/generations/tasks"
FAST_SCHEDULE = [0.2, 0.3, 0.4]
"""The compressed retry schedule of most tests: 4 attempts within about a second."""

TASK_FIELDS = frozenset(
    {
        "id",
        "provider",
        "provider_task_id",
        "model",
        "status",
        "progress",
        "video_url",
        "video_url_expires_at",
        "last_frame_url",
        "provider_video_url",
        "provider_video_url_expires_at",
        "output",
        "cost",
        "route",
        "submissions",
        "error",
        "usage",
        "resolution",
        "ratio",
        "duration",
        "fps",
        "seed",
        "reference",
        "metadata",
        "created_at",
        "updated_at",
        "completed_at",
    }
)
"""Every ``data`` field of DESIGN §3: fields a provider does not report are null, never missing."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def ark_input(prompt: str = "a cat") -> dict[str, Any]:
    """An Ark-native create body, as a caller hands it to ``POST /v1/tasks``."""
    return {"model": MODEL, "content": [{"type": "text", "text": prompt}]}


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until it returns something truthy; fail the test after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)


# --- configuration ---------------------------------------------------------------------------


def relay_config(
    tmp_path: Path,
    port: int,
    *,
    retry_schedule: Sequence[float] = FAST_SCHEDULE,
    log_level: str = "warning",
    **sections: Any,
) -> dict[str, Any]:
    """Fast settings: sandbox tasks finish in 0.6 s, ticks every 0.2 s, retries within 1 s."""
    config: dict[str, Any] = {
        "server": {"host": HOST, "port": port},
        "database_url": f"sqlite:///{tmp_path / 'relay.db'}",
        "log_level": log_level,
        "limits": {"max_body_bytes": 65536},
        # Receivers listen on 127.0.0.1, which the default network policy refuses.
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "polling": {"tick_seconds": 0.2},
        "delivery": {
            "tick_seconds": 0.2,
            "retry_schedule": list(retry_schedule),
            "jitter": 0,
            "timeout": 3,
        },
        "sandbox": {"enabled": True, "queued_seconds": 0.2, "running_seconds": 0.4},
        "providers": {
            "sandbox": {
                "dialect": "ark",
                "base_url": None,
                "path_prefix": "/sandbox/ark/api/v3",
                "api_key": "sandbox",
                # Every transition observed: the tests follow each task through all its events.
                "poll": {
                    "min_interval": 0.1,
                    "max_interval": 0.5,
                    "expected_duration": 0.6,
                    "learn": False,
                },
            }
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def write_config(tmp_path: Path, config: Mapping[str, Any], name: str = "relay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return path


# --- accounts, the way a user makes them -------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    api_key: str
    secret: str


_ACCOUNT_LINE = re.compile(r"^account:\s+(\S+) \((.*)\)$", re.MULTILINE)
_KEY_LINE = re.compile(r"^api key:\s+(\S+)$", re.MULTILINE)
_SECRET_LINE = re.compile(r"^callback secret:\s+(\S+)$", re.MULTILINE)


async def create_account(config_path: Path, name: str) -> Account:
    """``relay accounts create NAME --config ...`` in a real process; parses what it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "accounts",
        "create",
        name,
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, f"relay accounts create failed:\n{stdout}\n{stderr}"
    return _printed_account(name, stdout, stderr)


async def create_account_in_process(config_path: Path, name: str) -> Account:
    """The same ``relay accounts create NAME --config ...`` command, run in this process by
    click's test runner, in a thread (the command runs an event loop of its own): the same
    code and output, without a new interpreter's start-up (a third of a second of CPU, for
    each of the many accounts the tests make). What the relays running in this process use;
    :func:`create_account` keeps the real command line covered."""

    def run() -> tuple[int, str, str]:
        result = CliRunner().invoke(
            cli.main, ["accounts", "create", name, "--config", str(config_path)]
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    code, stdout, stderr = await asyncio.wait_for(asyncio.to_thread(run), timeout=20)
    assert code == 0, f"relay accounts create failed:\n{stdout}\n{stderr}"
    return _printed_account(name, stdout, stderr)


def _printed_account(name: str, stdout: str, stderr: str) -> Account:
    account, key, secret = (
        _ACCOUNT_LINE.search(stdout),
        _KEY_LINE.search(stdout),
        _SECRET_LINE.search(stdout),
    )
    assert account, f"no account line in:\n{stdout}"
    assert key, f"no api key line in:\n{stdout}"
    assert secret, f"no callback secret line in:\n{stdout}"
    assert account.group(2) == name
    assert account.group(1).startswith("acct_")
    assert key.group(1).startswith("rk_")
    assert secret.group(1).startswith("whsec_")
    assert "only a hash" in stderr
    return Account(id=account.group(1), name=name, api_key=key.group(1), secret=secret.group(1))


# --- the receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = "ok"
    delay: float = 0.0
    drip: bool = False
    """Send the status and headers, then one byte every 50 ms until the client hangs up."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names, as a receiver's framework hands them over."""
    body: bytes
    at: float
    """``time.monotonic()`` on arrival."""

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> int:
        return int(self.headers["webhook-timestamp"])

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers from a script:
    the replies in ``script`` one per request, in order, then ``default`` forever."""

    def __init__(
        self,
        script: Iterable[int | Reply] = (),
        default: int | Reply = 200,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self._script = [r if isinstance(r, Reply) else Reply(r) for r in script]
        self.default = default if isinstance(default, Reply) else Reply(default)
        self.in_flight = 0
        self.max_in_flight = 0
        """The most requests this receiver was answering at once."""
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def script(self, *replies: int | Reply) -> None:
        self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.requests.append(
                Received(
                    method=request.method,
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
            )
            reply = self._script.pop(0) if self._script else self.default
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.drip:
                return await self._drip(request, reply)
            return web.Response(status=reply.status, text=reply.body, headers=dict(reply.headers))
        finally:
            self.in_flight -= 1

    async def _drip(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers=dict(reply.headers))
        await response.prepare(request)
        deadline = time.monotonic() + 30
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline:
                await response.write(b"x")
                await asyncio.sleep(0.05)
        return response

    def with_id(self, webhook_id: str) -> list[Received]:
        return [r for r in self.requests if r.headers.get("webhook-id") == webhook_id]

    async def wait_for(self, n: int, within: float = 10.0) -> list[Received]:
        """The first ``n`` requests, once they have arrived; fails the test on timeout."""
        deadline = time.monotonic() + within
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                got = [(r.method, r.path, r.headers.get("webhook-id")) for r in self.requests]
                pytest.fail(
                    f"receiver on port {self.port} got {len(self.requests)} of {n} "
                    f"expected requests within {within:g} s: {got}"
                )
            await asyncio.sleep(0.02)
        return self.requests[:n]

    async def quiet_for(self, seconds: float) -> None:
        """Assert that nothing more arrives during ``seconds`` (a deliberate wait: proving an
        absence takes time)."""
        before = len(self.requests)
        await asyncio.sleep(seconds)
        extra = self.requests[before:]
        assert not extra, f"unexpected requests: {[(r.path, r.headers) for r in extra]}"


# --- the relay -----------------------------------------------------------------------------


class RelayServer:
    """``create_app(settings)`` under an in-process ``uvicorn.Server`` in the test's loop."""

    def __init__(
        self, config: Mapping[str, Any], config_path: Path, *, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        """The relay's clock (None: the system's); a test's ``FakeClock`` moves it."""
        self.settings = Settings.from_mapping(dict(config), env={})
        self.port = self.settings.server.port
        self._app: Starlette | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def app(self) -> Starlette:
        assert self._app is not None, "the relay is not started"
        return self._app

    async def start(self, within: float = 10.0) -> RelayServer:
        self._app = create_app(self.settings, clock=self.clock)
        config = uvicorn.Config(
            self._app,
            host=HOST,
            port=self.port,
            lifespan="on",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.ensure_future(self._server.serve())
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def healthy() -> bool:
                assert self._task is not None
                if self._task.done():
                    self._task.result()  # raises what killed the startup
                    pytest.fail("the relay stopped during startup")
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, within=within, what=f"the relay on {self.url}")
        return self

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await asyncio.wait_for(self._task, timeout=15)
        self._server = self._task = None

    async def account(self, name: str) -> Account:
        return await create_account_in_process(self.config_path, name)

    def client(
        self, account: Account | None = None, *, headers: Mapping[str, str] | None = None
    ) -> httpx.AsyncClient:
        auth = {"Authorization": f"Bearer {account.api_key}"} if account else {}
        return api_client(self.url, headers={**auth, **(headers or {})})


class InProcessRelay(RelayServer):
    """The same app, its lifespan running in the test's event loop, and the test's requests
    sent to it through ``httpx.ASGITransport``: no socket, no HTTP parsing, no server to
    start and stop around each test. Its URLs (``url``, links it makes) stay the loopback
    address in its settings.

    With ``listen`` (the default) it is also served on that loopback port, for the requests
    the relay makes to itself: its built-in sandbox provider (creating and polling tasks, the
    files it serves) and the sandbox's pushes to the relay's inbound webhook. Without, nothing
    listens: for tests that register no sandbox task. Deliveries leave over loopback to the
    test's receivers either way, sent by the relay's own delivery engine."""

    def __init__(
        self,
        config: Mapping[str, Any],
        config_path: Path,
        *,
        listen: bool = True,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, config_path, clock=clock)
        self.listen = listen
        self._lifespan: contextlib.AsyncExitStack | None = None

    async def start(self, within: float = 10.0) -> InProcessRelay:
        if self.listen:
            await super().start(within)
            return self
        self._app = create_app(self.settings, clock=self.clock)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._app.router.lifespan_context(self._app))
            self._lifespan = stack.pop_all()
        return self

    async def stop(self) -> None:
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await asyncio.wait_for(lifespan.aclose(), timeout=15)
        await super().stop()

    def client(
        self,
        account: Account | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        address: str = HOST,
    ) -> httpx.AsyncClient:
        """A client whose requests come from ``address`` (the ASGI scope's client)."""
        auth = {"Authorization": f"Bearer {account.api_key}"} if account else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(address, 50000)),
            base_url=self.url,
            timeout=10,
            trust_env=False,
            headers={**auth, **(headers or {})},
        )


def api_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """A client of a relay's API: 10 s timeouts unless ``timeout`` says otherwise."""
    return httpx.AsyncClient(base_url=base_url, **{"timeout": 10, "trust_env": False, **kwargs})


class RelayProcess:
    """``python -m relay serve --config ...`` as a real process, logging to a file."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, within: float = 15.0) -> RelayProcess:
        log = self._open_log()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relay",
                "serve",
                "--config",
                str(self.config_path),
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()  # the child has its own descriptor
        async with api_client(self.url) as client:

            async def healthy() -> bool:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    pytest.fail(f"relay exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, within=within, what=f"the relay process on {self.url}")
        return self

    def _open_log(self) -> BinaryIO:
        return open(self.log_path, "ab")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def kill(self, sig: int) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        return await asyncio.wait_for(self.proc.wait(), timeout=15)

    async def ensure_dead(self) -> None:
        """Cleanup: never leave a relay behind, whatever the test did."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


# --- several processes: a shared provider, a shared PostgreSQL database --------------------


def provider_config(
    tmp_path: Path, port: int, *, queued_seconds: float, running_seconds: float
) -> dict[str, Any]:
    """A relay process used only as the sandbox *provider* of other relays (on its own SQLite
    file, tracking nothing). Unlike each relay's own sandbox it outlives a relay that is
    killed, so its request log (:func:`provider_requests`) holds every poll of every relay."""
    return relay_config(
        tmp_path,
        port,
        polling={"tick_seconds": 5},
        delivery={"tick_seconds": 5},
        sandbox={"queued_seconds": queued_seconds, "running_seconds": running_seconds},
    ) | {"database_url": f"sqlite:///{tmp_path / 'provider.db'}"}


def sandbox_provider(base_url: str, **poll: float) -> dict[str, Any]:
    """A ``providers.sandbox`` entry that talks to the Ark sandbox served at ``base_url``."""
    return {
        "dialect": "ark",
        "base_url": base_url,
        "path_prefix": "/sandbox/ark/api/v3",
        "api_key": "sandbox",
        "poll": dict(poll),
    }


async def provider_requests(base_url: str) -> list[dict[str, Any]]:
    """The provider API requests the sandbox served at ``base_url`` has logged, oldest first
    (``GET /sandbox/_control/requests``; it keeps the last 10,000)."""
    async with api_client(base_url) as client:
        response = await client.get("/sandbox/_control/requests")
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["data"]
        return records


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """The URL of a fresh, empty schema in the database ``RELAY_TEST_POSTGRES_URL`` names,
    dropped afterwards: what ``tests/store/conftest.py`` gives each contract test, here for
    relay *processes* to share (they all get the same URL). Skips without PostgreSQL, fails
    under ``CI=true``. Creating and dropping each open their own connection, so a test may
    restart the database server in between."""
    base = os.environ.get("RELAY_TEST_POSTGRES_URL")
    if not base:
        _unavailable(
            "RELAY_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    schema = f"relay_test_{os.urandom(8).hex()}"
    try:
        async with await psycopg.AsyncConnection.connect(
            base, autocommit=True, connect_timeout=5
        ) as admin:
            await admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to RELAY_TEST_POSTGRES_URL ({base}): {exc}")
    try:
        yield (
            f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
            f"&application_name={schema}"
        )
    finally:
        async with await psycopg.AsyncConnection.connect(
            base, autocommit=True, connect_timeout=5
        ) as admin:
            await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
