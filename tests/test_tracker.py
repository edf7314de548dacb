"""The tracker end to end: a real SQLite store, the real sandbox (Ark dialect) over httpx, and
a fake clock that only the test moves. Polling uses ``jitter=0`` so every poll time is exact.

With ``PollPolicy(min 5, max 60, E 120)`` a task younger than 18 s is polled every 5 s, and the
sandbox (queued 2 s, running 6 s) answers ``queued`` before T0+2, ``running`` until T0+8 and
``succeeded`` from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from relay.adapters.ark import ArkDialect
from relay.errors import BadRequest, Conflict, NotFound
from relay.models import (
    Account,
    DeliveryStatus,
    ErrorCode,
    Event,
    EventType,
    FaultKind,
    Task,
    TaskError,
    TaskStatus,
)
from relay.policy import PollPolicy
from relay.providers import ProviderClient
from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import SandboxSettings
from relay.store import open_store
from relay.store.interface import EventQuery, Store, TaskQuery
from relay.tracker import ProviderPlan, ProviderRejected, Registration, Tracker
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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        status = self.scripted.pop(0) if self.scripted else self.failing
        if status is not None:
            error = ({"code": "ResourceNotFound", "message": "The specified task was not found."}
                     if status == 404 else
                     {"code": "ServiceUnavailable", "message": "try later"})
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
        tracker = Tracker(store=self.store, providers={"sandbox": plan}, clock=self.clock,
                          rng=random.Random(2), on_events=self.on_events)
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
        page = await self.store.list_events(self.account.id,
                                            EventQuery(task_id=task.id, order="asc"))
        return page.items

    async def history(self, task: Task) -> list[tuple[EventType, int]]:
        return [(e.type, e.sequence) for e in await self.events(task)]

    async def sandbox_task(self) -> str:
        """A task created at the sandbox directly, as a caller would before registering it."""
        response = await self.http.post(f"{TASKS_PATH}", json=create_body(),
                                        headers={"authorization": "Bearer sk-caller"})
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
        name="sandbox", dialect=ArkDialect(), base_url="http://sandbox/ark/api/v3",
        api_key="sk-sandbox", headers={}, timeout=5.0, max_concurrency=4, http=http,
        clock=clock, rng=random.Random(1))
    on_events = Counter()
    plan = ProviderPlan(client=client, poll=POLL, max_age=3600)
    tracker = Tracker(store=store, providers={"sandbox": plan}, clock=clock,
                      rng=random.Random(2), on_events=on_events)
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
    signature = hmac.new(b"seedance-relay-sandbox", f"{name}\n{date}\n86400".encode(),
                         hashlib.sha256).hexdigest()
    return (f"http://sandbox/files/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
            f"&X-Tos-Expires=86400&X-Tos-Signature={signature}")


# --- registration -----------------------------------------------------------------------------


async def test_register_by_input_submits_and_queues(env: Env) -> None:
    task = await env.register(input=create_body(), reference="order-1234",
                              metadata={"projectId": "proj_1001"})
    assert task.id.startswith("task_")
    assert task.provider_task_id is not None
    assert ID_RE.fullmatch(task.provider_task_id)
    assert task == Task(
        id=task.id, account_id="acc_fox", provider="sandbox",
        provider_task_id=task.provider_task_id, status=TaskStatus.QUEUED, created_at=T0,
        updated_at=T0, sequence=1, version=0, reference="order-1234",
        metadata={"projectId": "proj_1001"}, next_poll_at=at(5),
    )
    assert await env.stored(task) == task
    assert env.recorder.requests == [POST]

    [event] = await env.events(task)
    assert (event.type, event.sequence, event.created_at, event.task_id) == (
        EventType.TASK_QUEUED, 1, T0, task.id)
    assert json.loads(event.body) == {
        "id": event.id, "type": "task.queued", "timestamp": "2026-06-06T16:00:00Z",
        "sequence": 1, "data": task.to_json(),
    }
    assert env.on_events.calls == 1


async def test_register_by_provider_task_id_polls_at_once(env: Env) -> None:
    ptid = await env.sandbox_task()
    task = await env.register(provider_task_id=ptid)
    assert (task.status, task.provider_task_id, task.sequence, task.next_poll_at) == (
        TaskStatus.QUEUED, ptid, 1, T0)

    stored = await env.stored(task)
    assert stored == Task(
        id=task.id, account_id="acc_fox", provider="sandbox", provider_task_id=ptid,
        status=TaskStatus.QUEUED, created_at=T0, updated_at=T0, sequence=1, version=1,
        model=MODEL, resolution="720p", ratio="16:9", duration=5, fps=24, seed=SEED,
        next_poll_at=at(5), poll_count=1,
    )
    assert env.recorder.requests == [POST, get(ptid)]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1)]
    assert env.on_events.calls == 1


async def test_register_a_finished_task_goes_straight_to_succeeded(env: Env) -> None:
    ptid = await env.sandbox_task()
    env.clock.advance(30)
    task = await env.register(provider_task_id=ptid)
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1),
                                       (EventType.TASK_SUCCEEDED, 2)]
    stored = await env.stored(task)
    assert (stored.status, stored.progress, stored.completed_at, stored.next_poll_at) == (
        TaskStatus.SUCCEEDED, 100, at(30), None)
    assert stored.video_url == sandbox_video_url(ptid, at(8))


async def test_unknown_provider_is_a_bad_request(env: Env) -> None:
    for reg in (Registration(provider="nope", provider_task_id="cgt-1"),
                Registration(provider="nope", input=create_body())):
        with pytest.raises(BadRequest) as caught:
            await env.tracker.register(env.account, reg)
        assert (caught.value.code, caught.value.status_code) == ("unknown_provider", 400)
    assert env.recorder.requests == []
    assert (await env.store.list_tasks(env.account.id, TaskQuery())).items == []


async def test_duplicate_registration_is_a_conflict(env: Env) -> None:
    ptid = await env.sandbox_task()
    first = await env.register(provider_task_id=ptid)
    with pytest.raises(Conflict) as caught:
        await env.tracker.register(env.account, Registration(provider="sandbox",
                                                             provider_task_id=ptid))
    assert (caught.value.code, caught.value.status_code) == ("task_exists", 409)
    assert first.id in caught.value.message
    tasks = (await env.store.list_tasks(env.account.id, TaskQuery())).items
    assert [t.id for t in tasks] == [first.id]
    assert await env.history(first) == [(EventType.TASK_QUEUED, 1)]


async def test_input_the_provider_refuses_registers_nothing(env: Env) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await env.tracker.register(env.account, Registration(
            provider="sandbox", input={"model": MODEL, "content": []}))
    fault = caught.value.fault
    assert (fault.kind, fault.retryable, fault.status_code, fault.provider_code) == (
        FaultKind.INVALID_REQUEST, False, 400, "MissingParameter")
    assert (await env.store.list_tasks(env.account.id, TaskQuery())).items == []
    assert env.client.health().consecutive_faults == 0
    assert env.on_events.calls == 0


# --- polling ----------------------------------------------------------------------------------


async def test_polls_move_the_task_to_succeeded(env: Env) -> None:
    task = await env.register(input=create_body(), reference="order-1234")
    ptid = task.provider_task_id
    assert ptid is not None

    await env.step(5)  # T0+5: running
    running = await env.stored(task)
    assert (running.status, running.sequence, running.version, running.updated_at,
            running.next_poll_at, running.poll_count, running.completed_at) == (
        TaskStatus.RUNNING, 2, 1, at(5), at(10), 1, None)
    assert (running.model, running.resolution, running.ratio, running.duration, running.fps,
            running.seed, running.usage, running.video_url) == (
        MODEL, "720p", "16:9", 5, 24, SEED, None, None)
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_RUNNING, 2)]

    await env.step(5)  # T0+10: finished at T0+8
    done = await env.stored(task)
    tokens = 108900  # (5 s x 24 fps + 1) frames of 1280x720 / 1024
    assert done == Task(
        id=task.id, account_id="acc_fox", provider="sandbox", provider_task_id=ptid,
        status=TaskStatus.SUCCEEDED, created_at=T0, updated_at=at(10), sequence=3, version=2,
        model=MODEL, progress=100, video_url=sandbox_video_url(ptid, at(8)),
        video_url_expires_at=at(8) + timedelta(hours=24), last_frame_url=None, error=None,
        usage={"completion_tokens": tokens, "total_tokens": tokens}, resolution="720p",
        ratio="16:9", duration=5, fps=24, seed=SEED, reference="order-1234",
        completed_at=at(10), next_poll_at=None, poll_count=2,
    )
    events = await env.events(task)
    assert [(e.type, e.sequence, e.created_at) for e in events] == [
        (EventType.TASK_QUEUED, 1, T0), (EventType.TASK_RUNNING, 2, at(5)),
        (EventType.TASK_SUCCEEDED, 3, at(10))]
    bodies = [json.loads(e.body) for e in events]
    assert [b["data"]["status"] for b in bodies] == ["queued", "running", "succeeded"]
    assert [b["sequence"] for b in bodies] == [1, 2, 3]
    assert bodies[2]["data"] == done.to_json()
    assert bodies[2]["data"]["video_url_expires_at"] == "2026-06-07T16:00:08Z"
    assert env.recorder.requests == [POST, get(ptid), get(ptid)]
    assert env.on_events.calls == 3

    # The URL the relay reports is one a receiver can actually download.
    video = await env.http.get(done.video_url or "")
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")


async def test_a_poll_with_no_news_reschedules_without_an_event(env: Env) -> None:
    task = await env.register(input=create_body("[slow] a fox in the snow"))
    await env.step(5)
    await env.step(5)  # still running: the slow task runs until T0+32
    stored = await env.stored(task)
    assert (stored.status, stored.sequence, stored.poll_count, stored.updated_at,
            stored.next_poll_at) == (TaskStatus.RUNNING, 2, 2, at(5), at(15))
    assert env.on_events.calls == 2


async def test_a_poll_before_it_is_due_does_nothing(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(4.9)
    assert env.recorder.requests == [POST]
    assert await env.stored(task) == task


async def test_a_terminal_task_is_never_polled_again(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(5)
    await env.step(5)
    done = await env.stored(task)
    assert done.status is TaskStatus.SUCCEEDED
    requests = list(env.recorder.requests)

    await env.step(3600)
    await env.step(86400)
    assert await env.tracker.refresh(env.account.id, task.id) == done
    assert env.recorder.requests == requests
    assert await env.stored(task) == done
    assert len(await env.events(task)) == 3


async def test_a_task_past_its_maximum_age_expires(env: Env) -> None:
    tracker = env.tracker_with(max_age=20)
    task = await env.register(tracker, input=create_body("[slow] a fox in the snow"))
    await env.step(5, tracker)
    assert (await env.stored(task)).status is TaskStatus.RUNNING

    await env.step(16, tracker)  # T0+21, the sandbox still says running until T0+32
    expired = await env.stored(task)
    assert (expired.status, expired.error, expired.completed_at, expired.updated_at,
            expired.next_poll_at, expired.video_url) == (
        TaskStatus.EXPIRED, TaskError(ErrorCode.EXPIRED, "the task did not finish within 20 s"),
        at(21), at(21), None, None)
    events = await env.events(task)
    assert [(e.type, e.sequence) for e in events] == [
        (EventType.TASK_QUEUED, 1), (EventType.TASK_RUNNING, 2), (EventType.TASK_EXPIRED, 3)]
    assert json.loads(events[-1].body)["data"]["error"] == {
        "code": "expired", "message": "the task did not finish within 20 s",
        "retryable": False, "provider_code": None}

    requests = list(env.recorder.requests)
    await env.step(60, tracker)
    assert env.recorder.requests == requests
    assert await env.stored(task) == expired


async def test_a_task_past_its_maximum_age_is_not_expired_while_its_provider_is_backed_off(
    env: Env,
) -> None:
    # The task finishes at the provider while the relay backs the provider off, and its
    # maximum age passes meanwhile: it must end succeeded (one real look), not expired.
    tracker = env.tracker_with(max_age=9)
    task = await env.register(tracker, input=create_body())
    env.recorder.failing = 503
    await env.step(5, tracker)  # T0+5: a fault; back-off for ~2 s
    await env.step(5, tracker)  # T0+10: past max age, the provider fails again
    backed_off = await env.stored(task)
    assert backed_off.status is TaskStatus.QUEUED  # a fault is never a verdict
    backoff = env.client.backoff_until()
    assert backoff is not None
    env.clock.current = backoff - timedelta(seconds=0.5)
    await tracker.refresh(env.account.id, task.id)  # backed off: not asked, not expired
    assert (await env.stored(task)).status is TaskStatus.QUEUED

    env.recorder.failing = None
    env.clock.current = backoff
    await tracker.poll_due()
    await tracker.drain()
    assert (await env.stored(task)).status is TaskStatus.SUCCEEDED


async def test_a_task_the_provider_keeps_failing_on_expires_at_twice_its_maximum_age(
    env: Env,
) -> None:
    tracker = env.tracker_with(max_age=9)
    task = await env.register(tracker, input=create_body())
    env.recorder.failing = 503
    await env.step(12, tracker)  # T0+12: past 9 s, but a fault is no answer: no verdict
    assert (await env.stored(task)).status is TaskStatus.QUEUED
    await env.step(7, tracker)  # T0+19: past twice the maximum age, still only faults
    expired = await env.stored(task)
    assert (expired.status, expired.error) == (
        TaskStatus.EXPIRED, TaskError(ErrorCode.EXPIRED, "the task did not finish within 9 s"))


async def test_an_unknown_provider_task_fails_after_three_not_found(env: Env) -> None:
    task = await env.register(provider_task_id=BOGUS_ID)
    first = await env.stored(task)
    assert (first.status, first.not_found_count, first.poll_count, first.next_poll_at) == (
        TaskStatus.QUEUED, 1, 1, at(5))

    await env.step(5)
    second = await env.stored(task)
    assert (second.status, second.not_found_count, second.next_poll_at) == (
        TaskStatus.QUEUED, 2, at(10))
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1)]

    await env.step(5)
    failed = await env.stored(task)
    assert (failed.status, failed.not_found_count, failed.poll_count, failed.completed_at,
            failed.next_poll_at) == (TaskStatus.FAILED, 3, 3, at(10), None)
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable, failed.error.provider_code) == (
        ErrorCode.NOT_FOUND, False, "ResourceNotFound")
    assert failed.error.message.startswith(
        "the provider does not know this task: provider answered HTTP 404 [ResourceNotFound]")
    events = await env.events(task)
    assert [(e.type, e.sequence) for e in events] == [(EventType.TASK_QUEUED, 1),
                                                      (EventType.TASK_FAILED, 2)]
    assert json.loads(events[-1].body)["data"]["error"]["code"] == "task_not_found"
    assert env.recorder.requests == [get(BOGUS_ID)] * 3
    # "No such task" is an answer about the task, not a provider fault.
    assert env.client.health().consecutive_faults == 0

    await env.step(60)
    assert env.recorder.requests == [get(BOGUS_ID)] * 3


async def test_not_found_count_resets_when_the_task_shows_up(env: Env) -> None:
    ptid = await env.sandbox_task()
    env.recorder.scripted = [404, 404]  # a gateway replica that has not seen the task yet
    task = await env.register(provider_task_id=ptid)
    await env.step(5)
    assert (await env.stored(task)).not_found_count == 2
    await env.step(5)  # T0+10: the real answer, succeeded
    stored = await env.stored(task)
    assert (stored.status, stored.not_found_count, stored.poll_count) == (
        TaskStatus.SUCCEEDED, 0, 3)
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1),
                                       (EventType.TASK_SUCCEEDED, 2)]


async def test_a_provider_outage_backs_off_and_never_fails_the_task(env: Env) -> None:
    task = await env.register(input=create_body())
    env.recorder.failing = 503

    await env.step(5)
    health = env.client.health()
    assert (health.consecutive_faults, health.last_fault, health.last_fault_at) == (
        1, "unavailable: provider answered HTTP 503 [ServiceUnavailable]: try later", at(5))
    assert health.backoff_until is not None
    assert at(5 + 1.6) <= health.backoff_until <= at(5 + 2.4)  # 2 s ± 20 %
    assert health.to_json()["healthy"] is False
    first = await env.stored(task)
    assert (first.status, first.sequence, first.poll_count, first.next_poll_at) == (
        TaskStatus.QUEUED, 1, 1, at(10))

    await env.step(5)
    await env.step(5)  # T0+15: the third fault in a row
    health = env.client.health()
    assert health.consecutive_faults == 3
    assert health.backoff_until is not None
    assert at(15 + 6.4) <= health.backoff_until <= at(15 + 9.6)  # 8 s ± 20 %
    third = await env.stored(task)
    assert (third.status, third.sequence, third.poll_count) == (TaskStatus.QUEUED, 1, 3)
    # The regular poll would be at T0+20; the back-off pushes it later.
    assert third.next_poll_at == health.backoff_until

    # While backed off, even a refresh leaves the provider alone.
    requests = len(env.recorder.requests)
    refreshed = await env.tracker.refresh(env.account.id, task.id)
    assert len(env.recorder.requests) == requests
    assert (refreshed.status, refreshed.next_poll_at) == (TaskStatus.QUEUED,
                                                          health.backoff_until)
    assert env.recorder.requests == [POST] + [get(task.provider_task_id or "")] * 3

    env.recorder.failing = None
    env.clock.current = health.backoff_until
    await env.tracker.poll_due()
    await env.tracker.drain()
    done = await env.stored(task)
    assert done.status is TaskStatus.SUCCEEDED
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1),
                                       (EventType.TASK_SUCCEEDED, 2)]
    recovered = env.client.health()
    assert (recovered.consecutive_faults, recovered.backoff_until) == (0, None)
    assert env.on_events.calls == 2


async def test_refresh_polls_now(env: Env) -> None:
    task = await env.register(input=create_body())
    env.clock.advance(3)  # the next scheduled poll is at T0+5; the sandbox runs from T0+2
    refreshed = await env.tracker.refresh(env.account.id, task.id)
    assert (refreshed.status, refreshed.sequence, refreshed.version, refreshed.poll_count,
            refreshed.updated_at, refreshed.next_poll_at) == (
        TaskStatus.RUNNING, 2, 1, 1, at(3), at(8))
    assert await env.stored(task) == refreshed
    assert env.recorder.requests == [POST, get(task.provider_task_id or "")]
    assert await env.history(task) == [(EventType.TASK_QUEUED, 1), (EventType.TASK_RUNNING, 2)]
    assert env.on_events.calls == 2


async def test_refresh_of_an_unknown_or_foreign_task_is_not_found(env: Env) -> None:
    task = await env.register(input=create_body())
    with pytest.raises(NotFound):
        await env.tracker.refresh(env.account.id, "task_missing")
    other = Account(id="acc_other", name="other", created_at=T0)
    await env.store.create_account(other, "hash-other", "whsec_b3RoZXI=")
    with pytest.raises(NotFound):
        await env.tracker.refresh(other.id, task.id)
    assert env.recorder.requests == [POST]


async def test_drain_leaves_no_wakeup_behind(env: Env) -> None:
    """After ``drain()`` (what shutdown awaits before closing the store) the tracker must
    start no more work by itself. A poll due 0.2 s after registration arms a wake-up timer
    in the ``poll_due`` that ``drain()`` waits for; that timer must not survive it."""
    quick = PollPolicy(min_interval=0.2, max_interval=1, expected_duration=2, jitter=0)
    plan = ProviderPlan(client=env.client, poll=quick, max_age=3600)
    tracker = Tracker(store=env.store, providers={"sandbox": plan}, clock=env.clock,
                      rng=random.Random(2), on_events=env.on_events)
    env.trackers.append(tracker)
    task = await env.register(tracker, input=create_body())
    assert task.next_poll_at == at(0.2)

    env.clock.advance(1)  # the task is due now, but nobody calls poll_due
    await asyncio.sleep(0.5)
    assert env.recorder.requests == [POST]


# --- callbacks ----------------------------------------------------------------------------------


async def deliveries_by_type(env: Env, task: Task) -> dict[EventType, list[Any]]:
    return {e.type: await env.store.event_deliveries(env.account.id, e.id)
            for e in await env.events(task)}


async def test_a_callback_gets_terminal_events_only_by_default(env: Env) -> None:
    task = await env.register(input=create_body(), callback_url=HOOK)
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert list(found) == [EventType.TASK_QUEUED, EventType.TASK_RUNNING,
                           EventType.TASK_SUCCEEDED]
    assert found[EventType.TASK_QUEUED] == []
    assert found[EventType.TASK_RUNNING] == []
    [view] = found[EventType.TASK_SUCCEEDED]
    succeeded = (await env.events(task))[-1]
    d = view.delivery
    assert (d.account_id, d.event_id, d.url, d.status, d.attempt_count, d.next_attempt_at,
            d.created_at) == (
        "acc_fox", succeeded.id, HOOK, DeliveryStatus.PENDING, 0, at(10), at(10))
    assert d.id.startswith("dlv_")
    assert view.attempts == []


async def test_a_callback_with_a_filter_gets_exactly_those_events(env: Env) -> None:
    task = await env.register(
        input=create_body(), callback_url=HOOK,
        callback_events=frozenset({EventType.TASK_QUEUED, EventType.TASK_RUNNING}))
    assert task.callback_events == frozenset({EventType.TASK_QUEUED, EventType.TASK_RUNNING})
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert {t: len(v) for t, v in found.items()} == {
        EventType.TASK_QUEUED: 1, EventType.TASK_RUNNING: 1, EventType.TASK_SUCCEEDED: 0}
    assert found[EventType.TASK_QUEUED][0].delivery.next_attempt_at == T0
    assert found[EventType.TASK_RUNNING][0].delivery.next_attempt_at == at(5)


async def test_no_callback_no_deliveries(env: Env) -> None:
    task = await env.register(input=create_body())
    await env.step(5)
    await env.step(5)
    found = await deliveries_by_type(env, task)
    assert found == {EventType.TASK_QUEUED: [], EventType.TASK_RUNNING: [],
                     EventType.TASK_SUCCEEDED: []}
