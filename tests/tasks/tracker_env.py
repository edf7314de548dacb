"""The tracker's test set-up, shared by ``test_tracker`` and ``test_tracker_actions``: a real
SQLite store, the real sandbox (Ark dialect) over httpx, and a fake clock that only the test
moves. Polling uses ``jitter=0`` so every poll time is exact.

With ``PollPolicy(min 5, max 60, E 120)`` a task younger than 18 s is polled every 5 s, and the
sandbox (queued 2 s, running 6 s) answers ``queued`` before T0+2, ``running`` until T0+8 and
``succeeded`` from then on.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from relay.adapters.ark import ArkDialect
from relay.models import (
    Account,
    Event,
    EventType,
    Task,
)
from relay.polling.schedule import PollPolicy
from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import SandboxSettings
from relay.store import open_store
from relay.store.interface import Store
from relay.store.values import EventQuery
from relay.tasks.providers import ProviderClient
from relay.tasks.registration import ProviderPlan, Registration
from relay.tasks.tracker import Tracker
from tests.clock import FakeClock

T0 = datetime(2026, 6, 6, 16, 0, 0, tzinfo=UTC)
MODEL = "doubao-seedance-2-0-fast-260128"
SEED = 97151
TASKS_PATH = "/ark/api/v3/contents/generations/tasks"
ID_RE = re.compile(r"cgt-\d{14}-[a-z2-7]{40}")
# Well-formed (the sandbox's id shape) but its checksum is wrong: the sandbox answers 404.
BOGUS_ID = "cgt-20260607000000-" + "a" * 40
HOOK = "https://hooks.example.com/relay/fox"
POLL = PollPolicy(min_interval=5, max_interval=60, expected_duration=120, jitter=0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def create_body(prompt: str = "A red fox trotting through fresh snow, cinematic") -> dict[str, Any]:
    return {"model": MODEL, "content": [{"type": "text", "text": prompt}], "seed": SEED}


class Recorder(httpx.AsyncBaseTransport):
    """Wraps the sandbox transport: records every request and can answer in its place."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str]] = []
        self.failing: int | None = None
        """While set, every request gets this status with an Ark error body."""
        self.scripted: list[int] = []
        """Statuses to answer, one per request, before passing through again."""
        self.lose = 0
        """Requests to pass to the sandbox whose answers are then lost (a read timeout):
        the provider did the work, the relay never hears of it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if self.lose:
            self.lose -= 1
            response = await self.inner.handle_async_request(request)
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        status = self.scripted.pop(0) if self.scripted else self.failing
        if status is not None:
            error = (
                {"code": "ResourceNotFound", "message": "The specified task was not found."}
                if status == 404
                else {"code": "ServiceUnavailable", "message": "try later"}
            )
            return httpx.Response(status, json={"error": error})
        return await self.inner.handle_async_request(request)


@dataclass
class Counter:
    calls: int = 0

    def __call__(self) -> None:
        self.calls += 1


@dataclass
class Env:
    clock: FakeClock
    store: Store
    http: httpx.AsyncClient
    recorder: Recorder
    account: Account
    client: ProviderClient
    tracker: Tracker
    on_events: Counter
    trackers: list[Tracker] = field(default_factory=list)

    def tracker_with(self, *, max_age: float) -> Tracker:
        """Another tracker on the same store and provider, with its own maximum age."""
        plan = ProviderPlan(client=self.client, poll=POLL, max_age=max_age)
        tracker = Tracker(
            owner="relay_test",
            store=self.store,
            providers={"sandbox": plan},
            clock=self.clock,
            rng=random.Random(2),
            on_events=self.on_events,
        )
        self.trackers.append(tracker)
        return tracker

    async def register(self, tracker: Tracker | None = None, **fields: Any) -> Task:
        tracker = tracker or self.tracker
        task = await tracker.register(self.account, Registration(provider="sandbox", **fields))
        await tracker.drain()
        return task

    async def step(self, seconds: float, tracker: Tracker | None = None) -> None:
        """Move the clock, poll what is due, and wait for those polls to finish."""
        tracker = tracker or self.tracker
        self.clock.advance(seconds)
        await tracker.poll_due()
        await tracker.drain()

    async def stored(self, task: Task) -> Task:
        current = await self.store.get_task(self.account.id, task.id)
        assert current is not None
        return current

    async def events(self, task: Task) -> list[Event]:
        page = await self.store.list_events(
            self.account.id, EventQuery(task_id=task.id, order="asc")
        )
        return page.items

    async def history(self, task: Task) -> list[tuple[EventType, int]]:
        return [(e.type, e.sequence) for e in await self.events(task)]

    async def sandbox_task(self) -> str:
        """A task created at the sandbox directly, as a caller would before registering it."""
        response = await self.http.post(
            f"{TASKS_PATH}", json=create_body(), headers={"authorization": "Bearer sk-caller"}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock(T0)
    store = open_store(f"sqlite:///{tmp_path}/r.db")
    await store.migrate()
    account = Account(id="acc_fox", name="fox", created_at=T0)
    await store.create_account(account, "hash-fox", "whsec_Zm94Zm94Zm94Zm94Zm94Zm94Zm94Zm94")
    app = sandbox_app(SandboxSettings(queued_seconds=2, running_seconds=6), clock)
    recorder = Recorder(httpx.ASGITransport(app=app))
    http = httpx.AsyncClient(transport=recorder, base_url="http://sandbox")
    client = ProviderClient(
        name="sandbox",
        dialect=ArkDialect(),
        base_url="http://sandbox/ark/api/v3",
        api_key="sk-sandbox",
        headers={},
        timeout=5.0,
        max_concurrency=4,
        transport=recorder,
        clock=clock,
        rng=random.Random(1),
    )
    on_events = Counter()
    plan = ProviderPlan(client=client, poll=POLL, max_age=3600)
    tracker = Tracker(
        owner="relay_test",
        store=store,
        providers={"sandbox": plan},
        clock=clock,
        rng=random.Random(2),
        on_events=on_events,
    )
    e = Env(clock, store, http, recorder, account, client, tracker, on_events)
    e.trackers.append(tracker)
    try:
        yield e
    finally:
        for t in e.trackers:
            t.stop()
            await t.drain()
        await http.aclose()
        await store.close()


def get(ptid: str) -> tuple[str, str]:
    return ("GET", f"{TASKS_PATH}/{ptid}")


POST = ("POST", TASKS_PATH)


def sandbox_video_url(ptid: str, signed_at: datetime) -> str:
    """The sandbox's signed file URL, recomputed independently of the code under test."""
    name, date = f"{ptid}.mp4", signed_at.strftime("%Y%m%dT%H%M%SZ")
    signature = hmac.new(
        b"seedance-relay-sandbox", f"{name}\n{date}\n86400".encode(), hashlib.sha256
    ).hexdigest()
    return (
        f"http://sandbox/files/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
        f"&X-Tos-Expires=86400&X-Tos-Signature={signature}"
    )
