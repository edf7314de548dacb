"""Relay instances as real processes under load, and what at-least-once (DESIGN §5) and leases
(§8) promise when one of them is killed, a receiver is down, or the database restarts.

Every test runs the same shape: a *provider* process (a relay serving only its sandbox, see
``harness.provider_config``: it outlives a killed relay, so its request log holds every poll),
relay processes (``python -m relay serve``) that all poll it, one account with one
subscription, and tasks registered through the relays' API round-robin, each with a callback.
A destination with no filter receives the terminal events only, so each task's terminal event
is due twice: to the callback receiver and to the subscription receiver. Every assertion is
made on what left the processes, never on their internals:

- **polls**: the provider logs every request; a task's ``poll_count`` (in the database) counts
  the polls whose answer was saved. A poll made twice, whether two instances polled the same
  due task or one instance's answer was lost, shows as more provider requests for a task than
  its ``poll_count`` (a poll whose save loses a race re-reads and polls again, uncounted).
- **deliveries**: a delivery is one event to one destination; the receivers record every
  request, by ``webhook-id`` (the event id) and receiver (the destination).
- **leases**: a :class:`LeaseWatch` samples the lease columns every 0.1 s. That names the
  holder of each claimed poll (the instance's store) and the owner of each claimed delivery
  (the instance's delivery engine); after a kill, a holder that never claims again is the dead
  instance's, and the rows it still held are the work it orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from standardwebhooks import Webhook

from tests.e2e.harness import (
    Account,
    Receiver,
    RelayProcess,
    Reply,
    api_client,
    ark_input,
    create_account,
    free_port,
    postgres_schema,
    provider_config,
    provider_requests,
    relay_config,
    sandbox_provider,
    write_config,
)

TERMINAL = frozenset({"task.succeeded", "task.failed", "task.expired", "task.cancelled"})
TASKS_PATH = "/sandbox/ark/api/v3/contents/generations/tasks"

QUEUED, RUNNING = 0.5, 1.5
"""Sandbox phases: a task ends 2 s after it is created ([slow] ones 5x later running)."""
POLL_LEASE = 3.0
DELIVERY_TIMEOUT = 2.0
DELIVERY_LEASE = 4.0
"""Short leases, so a dead instance's work is taken over within seconds (the delivery lease
must be at least twice the attempt timeout)."""
MAX_IN_FLIGHT = 64
"""Each instance's delivery slots (``delivery.max_in_flight``)."""
PROVIDER_CONCURRENCY = 8
"""Each instance's requests in flight to the provider at once (``max_concurrency``)."""
PATIENT_SCHEDULE = [0.5] * 60
"""Retries every half second for half a minute: nothing runs out of attempts in a test."""
RECEIVER_DELAY = 0.1
"""How long the receivers take to answer: deliveries are in flight at any moment of the load,
so a kill or an outage finds some."""

pytestmark = [
    pytest.mark.slow,
    # Run after the parallel phase, one after the other (scripts/test): each keeps both cores
    # busy with its relay processes, and its proofs (leases of a few seconds) assume the relays
    # keep up, which they cannot while four other workers load the machine.
    pytest.mark.alone,
    pytest.mark.xdist_group("instances"),
]


# --- the processes -------------------------------------------------------------------------


def instance_config(
    tmp_path: Path, port: int, database_url: str, provider_url: str
) -> dict[str, Any]:
    config = relay_config(
        tmp_path,
        port,
        retry_schedule=PATIENT_SCHEDULE,
        polling={"tick_seconds": 0.5, "lease_seconds": POLL_LEASE},
        delivery={
            "tick_seconds": 0.5,
            "timeout": DELIVERY_TIMEOUT,
            "lease_seconds": DELIVERY_LEASE,
            "max_in_flight": MAX_IN_FLIGHT,
        },
        sandbox={"enabled": False},
        providers={
            "sandbox": sandbox_provider(
                provider_url, min_interval=0.25, max_interval=1.0, expected_duration=2.0
            )
            | {"max_concurrency": PROVIDER_CONCURRENCY}
        },
    )
    return config | {"database_url": database_url}


@dataclass
class Fleet:
    """The provider, the relay instances, one account with a subscription, two receivers."""

    tmp_path: Path
    database_url: str
    provider: RelayProcess
    relays: list[RelayProcess]
    configs: list[Path]
    account: Account
    callbacks: Receiver
    subscribers: Receiver
    subscription_secret: str = ""
    spare: list[RelayProcess] = field(default_factory=list)
    """Processes started later on an earlier instance's config (a restart)."""

    @property
    def processes(self) -> list[RelayProcess]:
        return [self.provider, *self.relays, *self.spare]

    def client(self, relay: RelayProcess, **kwargs: Any) -> httpx.AsyncClient:
        return api_client(
            relay.url, headers={"Authorization": f"Bearer {self.account.api_key}"}, **kwargs
        )

    async def restart(self, index: int) -> RelayProcess:
        """A new process on instance ``index``'s config (its port, its database)."""
        old = self.relays[index]
        new = RelayProcess(
            self.configs[index], old.port, self.tmp_path / f"relay{index}-{len(self.spare) + 2}.log"
        )
        self.spare.append(new)
        return await new.start()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in self.processes)


@contextlib.asynccontextmanager
async def fleet(
    tmp_path: Path, database_url: str, instances: int, *, callback_port: int | None = None
) -> AsyncIterator[Fleet]:
    """Start everything (the callback receiver only if ``callback_port`` is None: a test
    that names the port starts it later); on the way out stop every process, whatever
    happened."""
    provider_port = free_port()
    provider = RelayProcess(
        write_config(
            tmp_path,
            provider_config(
                tmp_path, provider_port, queued_seconds=QUEUED, running_seconds=RUNNING
            ),
            "provider.yaml",
        ),
        provider_port,
        tmp_path / "provider.log",
    )
    relays, configs = [], []
    for i in range(instances):
        port = free_port()
        configs.append(
            write_config(
                tmp_path,
                instance_config(tmp_path, port, database_url, provider.url),
                f"relay{i}.yaml",
            )
        )
        relays.append(RelayProcess(configs[-1], port, tmp_path / f"relay{i}-1.log"))
    reply = Reply(delay=RECEIVER_DELAY)
    callbacks, subscribers = Receiver(default=reply, port=callback_port), Receiver(default=reply)
    f = Fleet(
        tmp_path,
        database_url,
        provider,
        relays,
        configs,
        await create_account(configs[0], "fleet"),
        callbacks,
        subscribers,
    )
    try:
        await subscribers.start()
        if callback_port is None:
            await callbacks.start()
        await asyncio.gather(provider.start(), *(r.start(within=30) for r in relays))
        async with f.client(relays[0]) as client:
            response = await client.post("/v1/subscriptions", json={"url": subscribers.url})
            assert response.status_code == 201, response.text
            f.subscription_secret = response.json()["secret"]
        yield f
    finally:
        for process in f.processes:
            await process.ensure_dead()
        await callbacks.stop()
        await subscribers.stop()


def prompt(i: int, *, tail: bool) -> str:
    """One task in ten fails; with ``tail``, one in twenty runs five times longer (still
    running when the others are done, as across a crash)."""
    if i % 10 == 9:
        return f"task {i} [fail]"
    if tail and i % 20 == 3:
        return f"task {i} [slow]"
    return f"task {i}"


async def submit(
    f: Fleet,
    n: int,
    *,
    to: Sequence[RelayProcess] | None = None,
    first: int = 0,
    tail: bool = True,
    concurrency: int = 48,
) -> list[str]:
    """Register tasks ``first`` .. ``first + n - 1`` (see :func:`prompt`) through the API of
    ``to`` (default: every relay), round-robin, ``concurrency`` at a time; their ids."""
    relays = list(to or f.relays)
    # A connection idle as long as the server's keep-alive (uvicorn: 5 s, httpx's default
    # expiry too) may be closed by the server just as a POST goes out on it: a ReadError
    # nobody may retry. Idle connections are dropped well before that.
    limits = httpx.Limits(max_connections=concurrency, keepalive_expiry=1.0)
    clients = [f.client(r, limits=limits) for r in relays]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            response = await clients[i % len(clients)].post(
                "/v1/tasks",
                json={
                    "provider": "sandbox",
                    "input": ark_input(prompt(i, tail=tail)),
                    "callback_url": f.callbacks.url,
                    "reference": f"load-{i}",
                },
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    try:
        return list(await asyncio.gather(*(one(i) for i in range(first, first + n))))
    finally:
        for client in clients:
            await client.aclose()


# --- the database, read from outside -------------------------------------------------------


class Database:
    """Read-only queries on the relays' database (PostgreSQL or the SQLite file); reconnects
    after the server restarted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.sqlite:
            with contextlib.closing(
                sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=10)
            ) as conn:
                return list(conn.execute(query).fetchall())
        try:
            if self._conn is None:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=2
                )
            cur = await self._conn.execute(query)
            return await cur.fetchall()
        except psycopg.OperationalError:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    @property
    def poll_count(self) -> str:
        return (
            "json_extract(data, '$.poll_count')"
            if self.sqlite
            else "(data::json->>'poll_count')::int"
        )

    @property
    def poll_holder(self) -> str:
        return "'the instance'" if self.sqlite else "poll_lease_holder"


@dataclass(frozen=True)
class Lease:
    kind: str
    """``poll`` (a task) or ``delivery``."""
    id: str
    holder: str
    until: float


@dataclass
class LeaseWatch:
    """Samples every lease held, every ``interval`` seconds, while running."""

    db: Database
    interval: float = 0.1
    samples: list[tuple[float, list[Lease]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def sample(self) -> list[Lease]:
        at = time.time()
        polls = await self.db.rows(
            f"SELECT id, {self.db.poll_holder}, poll_lease_until "
            "FROM tasks WHERE poll_lease_until IS NOT NULL"
        )
        deliveries = await self.db.rows(
            "SELECT id, lease_owner, lease_until FROM deliveries WHERE lease_until IS NOT NULL"
        )
        leases = [Lease("poll", *row) for row in polls] + [
            Lease("delivery", *row) for row in deliveries
        ]
        self.samples.append((at, leases))
        return leases

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psycopg.Error, sqlite3.Error):  # the database is away
                await self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def holders(
        self, kind: str, *, since: float = 0.0, claimed_after: float | None = None
    ) -> set[str]:
        """Who held leases of ``kind`` in samples from ``since`` on, only counting leases
        taken after ``claimed_after`` (a lease's ``until`` is its claim time + its length)."""
        length = POLL_LEASE if kind == "poll" else DELIVERY_LEASE
        return {
            lease.holder
            for at, leases in self.samples
            if at >= since
            for lease in leases
            if lease.kind == kind
            and (claimed_after is None or lease.until > claimed_after + length)
        }

    def held(self, kind: str, holders: set[str], *, since: float) -> set[str]:
        """The rows of ``kind`` leased by one of ``holders`` in samples from ``since`` on."""
        return {
            lease.id
            for at, leases in self.samples
            if at >= since
            for lease in leases
            if lease.kind == kind and lease.holder in holders
        }


@dataclass(frozen=True)
class Moment:
    """One instant on both clocks: the receivers' (monotonic) and the database's and the
    provider's (unix time)."""

    wall: float
    mono: float

    @classmethod
    def now(cls) -> Moment:
        return cls(time.time(), time.monotonic())


KINDS = ("poll", "delivery")


def leases_of_the_stopped(watch: LeaseWatch, instances: int, since: float) -> dict[str, set[str]]:
    """The rows leased, in samples from ``since`` on, by the one instance that claims nothing
    after ``since`` (it was stopped or killed then), by kind. An instance is known by the
    holder of its leases; it is told apart once all ``instances`` holders were seen and all
    but one of them claimed after ``since`` (until then: nothing, for that kind)."""
    held: dict[str, set[str]] = {}
    for kind in KINDS:
        known = watch.holders(kind)
        live = watch.holders(kind, claimed_after=since)
        stopped = known - live
        held[kind] = (
            watch.held(kind, stopped, since=since)
            if len(known) == instances and len(stopped) == 1
            else set()
        )
    return held


async def kill_holding_work(
    victim: RelayProcess, watch: LeaseWatch, instances: int
) -> tuple[Moment, Moment]:
    """Kill ``victim`` while it holds leases, i.e. with work claimed and not finished: stop
    it (SIGSTOP), and once the lease watch shows it holding some, SIGKILL it; if it holds
    none within a second, let it run a moment (SIGCONT) and try again. When it was stopped,
    and when it was dead."""
    for _ in range(20):
        os.kill(victim.pid, signal.SIGSTOP)
        stopped = Moment.now()
        for _ in range(10):
            await asyncio.sleep(watch.interval)
            if any(leases_of_the_stopped(watch, instances, stopped.wall).values()):
                assert await victim.kill(signal.SIGKILL) == -signal.SIGKILL
                return stopped, Moment.now()
        os.kill(victim.pid, signal.SIGCONT)
        await asyncio.sleep(0.3)
    pytest.fail(f"the relay on {victim.url} never held a lease when stopped")


@dataclass(frozen=True)
class Outcome:
    """The database after the run, and the provider's request log."""

    tasks: dict[str, tuple[str, str, int]]
    """Task id -> (provider task id, status, poll_count)."""
    events: dict[str, tuple[str, str]]
    """Event id -> (task id, type)."""
    deliveries: dict[tuple[str, str], tuple[str, str, int]]
    """(event id, destination kind) -> (delivery id, status, attempt_count)."""
    attempts: dict[str, list[tuple[int, str]]]
    """Delivery id -> its attempts' (number, outcome) in the order they were written."""
    polls: dict[str, list[float]]
    """Provider task id -> when the provider got each GET for it (unix seconds)."""
    creates: int


async def outcome(db: Database, provider_url: str) -> Outcome:
    tasks = {
        r[0]: (r[1], r[2], int(r[3]))
        for r in await db.rows(f"SELECT id, provider_task_id, status, {db.poll_count} FROM tasks")
    }
    events = {r[0]: (r[1], r[2]) for r in await db.rows("SELECT id, task_id, type FROM events")}
    deliveries = {
        (r[1], r[2]): (r[0], r[3], r[4])
        for r in await db.rows(
            "SELECT d.id, e.id, dst.kind, d.status, d.attempt_count FROM deliveries AS d "
            "JOIN events AS e ON e.pk = d.event_pk JOIN destinations AS dst "
            "ON dst.id = d.destination_id"
        )
    }
    attempts: dict[str, list[tuple[int, str]]] = {}
    for delivery_id, number, label in await db.rows(
        "SELECT d.id, a.number, a.outcome FROM attempts AS a JOIN deliveries AS d "
        "ON d.pk = a.delivery_pk ORDER BY a.pk"
    ):
        attempts.setdefault(delivery_id, []).append((number, label))
    requests = await provider_requests(provider_url)
    assert len(requests) < 10_000, "the provider's request log overflowed: use fewer tasks"
    polls: dict[str, list[float]] = {}
    for r in requests:
        if r["method"] == "GET" and r["path"].startswith(TASKS_PATH + "/"):
            polls.setdefault(r["path"].rsplit("/", 1)[1], []).append(
                datetime.fromisoformat(r["time"]).timestamp()
            )
    creates = sum(1 for r in requests if r["method"] == "POST" and r["path"] == TASKS_PATH)
    return Outcome(tasks, events, deliveries, attempts, polls, creates)


# --- waiting and proving -----------------------------------------------------------------


async def until_true(
    probe: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    f: Fleet,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}\n{f.logs()}")
        await asyncio.sleep(interval)


async def everything_delivered(f: Fleet, db: Database, tasks: int, *, within: float) -> None:
    """Wait until every task has ended and each terminal event is recorded delivered to both
    of its destinations (so it has arrived), then make sure nothing more is on its way."""

    async def done() -> bool:
        [(ended, delivered)] = await db.rows(
            "SELECT (SELECT count(*) FROM tasks WHERE status IN ('succeeded', 'failed', "
            "'expired', 'cancelled')), (SELECT count(*) FROM deliveries "
            "WHERE status = 'succeeded')"
        )
        return int(ended) == tasks and int(delivered) == 2 * tasks

    await until_true(done, within=within, what=f"{tasks} tasks ended and delivered twice", f=f)
    before = len(f.callbacks.requests) + len(f.subscribers.requests)
    await asyncio.sleep(0.5)
    assert len(f.callbacks.requests) + len(f.subscribers.requests) == before, (
        "requests arrived after every delivery was recorded"
    )


@dataclass(frozen=True)
class Allowed:
    """What may happen twice, and when (everything else must happen exactly once).

    A poll or a delivery is made twice only when the instance that made it could not record
    it: it was killed, or its database was down. Its lease then keeps the work claimed until
    it expires (or, on SQLite, until the restart releases it), and it is made again."""

    extra_polls: set[str] | None = None
    """Tasks whose poll may have been made twice (None: any)."""
    duplicates: set[str] | None = None
    """Deliveries that may have arrived twice (None: any)."""
    window: tuple[Moment, Moment] | None = None
    """When the unrecorded first poll or first copy must have arrived: the attempts in flight
    when the instance died (or its database went away)."""
    resent_after: float = 0.0
    """(monotonic) No second copy arrives before this."""
    lease_gap: bool = False
    """The second copy waited for the first one's lease to expire (PostgreSQL)."""


@dataclass
class Report:
    extra_polls: dict[str, int]
    """Task id -> provider requests beyond the polls saved."""
    duplicates: dict[str, list[float]]
    """Delivery id -> the (monotonic) arrival times of its copies."""


def prove(
    f: Fleet,
    o: Outcome,
    task_ids: Sequence[str],
    allowed: Allowed = Allowed(extra_polls=set(), duplicates=set()),
) -> Report:
    """Every task ended with one terminal event; that event arrived, verified, at both of its
    destinations, once, or twice only where ``allowed``; every poll was made once (or one more
    time where ``allowed``); attempts are numbered without gaps and end delivered.

    By default nothing is allowed twice."""
    assert set(o.tasks) == set(task_ids), "every registered task, no other"
    assert o.creates == len(task_ids), "one create request per registered task"
    statuses = Counter(status for _, status, _ in o.tasks.values())
    assert statuses == {
        "succeeded": len(task_ids) - len(task_ids) // 10,
        "failed": len(task_ids) // 10,
    }, statuses

    terminal = {e: t for e, (t, kind) in o.events.items() if kind in TERMINAL}
    assert sorted(terminal.values()) == sorted(task_ids), "one terminal event per task"
    for event_id, task_id in terminal.items():
        assert o.events[event_id][1] == f"task.{o.tasks[task_id][1]}"

    # The relay's own record: two deliveries per terminal event (none for the others), each
    # succeeded, with attempts 1..n, every one but the last a retry.
    assert {e for e, _ in o.deliveries} == set(terminal)
    assert len(o.deliveries) == 2 * len(terminal)
    for (event_id, kind), (delivery_id, status, count) in o.deliveries.items():
        attempts = o.attempts.get(delivery_id, [])
        assert status == "succeeded", (event_id, kind, status, attempts)
        assert [n for n, _ in attempts] == list(range(1, count + 1)), (delivery_id, attempts)
        assert [label for _, label in attempts] == ["retry"] * (count - 1) + ["delivered"]

    # What the receivers got: every terminal event, signed, nothing else.
    duplicates: dict[str, list[float]] = {}
    for receiver, kind, secret in (
        (f.callbacks, "callback", f.account.secret),
        (f.subscribers, "subscription", f.subscription_secret),
    ):
        hook = Webhook(secret)
        copies: dict[str, list[float]] = {}
        for request in receiver.requests:
            payload = hook.verify(request.body, request.headers)
            assert payload["id"] == request.webhook_id
            copies.setdefault(request.webhook_id, []).append(request.at)
        assert set(copies) == set(terminal), f"{kind}: every terminal event arrives, no other"
        for event_id, times in copies.items():
            if len(times) > 1:
                duplicates[o.deliveries[event_id, kind][0]] = times
    if allowed.duplicates is not None:
        unexplained = set(duplicates) - allowed.duplicates
        assert not unexplained, f"deliveries made twice without a lost lease: {unexplained}"
    for delivery_id, times in duplicates.items():
        first, second, *more = times
        assert not more, f"{delivery_id} arrived {len(times)} times"
        if allowed.window is not None:
            start, end = allowed.window
            assert start.mono <= first <= end.mono, (
                delivery_id,
                times,
                allowed.window,
                o.attempts.get(delivery_id),
            )
        assert second >= allowed.resent_after, (delivery_id, times, allowed.resent_after)
        if allowed.lease_gap:
            # Sent right after its claim, sent again once that claim's lease ran out.
            assert second - first >= DELIVERY_LEASE - DELIVERY_TIMEOUT, (delivery_id, times)

    # Polls: as many provider requests per task as polls saved, except one more for a task
    # whose poll was made by an instance that could not save its answer.
    extra = {}
    for task_id, (provider_task_id, _, saved) in o.tasks.items():
        made = len(o.polls.get(provider_task_id, []))
        assert made >= saved, (task_id, made, saved)
        if made > saved:
            extra[task_id] = made - saved
    if allowed.extra_polls is not None:
        unexplained = set(extra) - allowed.extra_polls
        assert not unexplained, (
            f"polls made twice without a lost lease: { {t: extra[t] for t in unexplained} }"
        )
    assert set(extra.values()) <= {1}, {
        task_id: (n, "polled at", o.polls[o.tasks[task_id][0]])
        for task_id, n in extra.items()
        if n > 1
    }
    if allowed.window is not None:
        start, end = allowed.window
        for task_id in extra:
            times = o.polls[o.tasks[task_id][0]]
            assert any(start.wall <= t <= end.wall for t in times), (task_id, times)
    return Report(extra, duplicates)


LOGGED_LEVELS = ('"level": "warning"', '"level": "error"', " WARNING ", " ERROR ")


@contextlib.contextmanager
def logs_on_failure(f: Fleet) -> Iterator[None]:
    """A failed proof says what the relays logged (their warnings and errors, no
    tracebacks): which of their writes the database refused, and when."""
    try:
        yield
    except AssertionError as exc:
        said = [
            f"{relay.url}: {line}"
            for relay in f.relays
            for line in relay.log().splitlines()
            # A process logs JSON lines (not a terminal), or text ones.
            if any(level in line for level in LOGGED_LEVELS)
        ]
        raise AssertionError(
            f"{exc}\n--- the relays' warnings and errors:\n" + "\n".join(said[-200:])
        ) from exc


def assert_clean(process: RelayProcess, *expected: str) -> None:
    """No error in the log, except tracebacks whose last line names one of ``expected``."""
    lines = process.log().splitlines()
    assert not [line for line in lines if "delivery task crashed" in line], process.log()
    if not expected:
        assert not [line for line in lines if "Traceback" in line or " ERROR " in line], (
            process.log()[-4000:]
        )
        return
    # The line after each traceback's frames is its exception.
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            last = next((x for x in lines[i + 1 :] if not x.startswith((" ", "Traceback"))), "")
            assert any(e in last for e in expected), f"unexpected: {last}\n{process.log()}"


# --- 1. three instances, one database ------------------------------------------------------


@pytest.mark.postgres
async def test_three_instances_deliver_every_terminal_event_once(tmp_path: Path) -> None:
    """1,000 tasks on three relay processes sharing one PostgreSQL database: every task ends,
    its terminal event arrives at both destinations exactly once (nothing is in flight at a
    crash here, so at-least-once must come out as exactly once), each poll is made once (the
    provider served as many requests per task as polls were saved), and each delivery has
    exactly one attempt. The lease watch shows the three instances all polled and all
    delivered: the work was shared, not done by one while the others idled."""
    tasks = 1000
    async with postgres_schema() as url, fleet(tmp_path, url, 3) as f:
        db = Database(url)
        watch = LeaseWatch(db)
        watch.start()
        try:
            task_ids = await submit(f, tasks, tail=False)
            await everything_delivered(f, db, tasks, within=40)
            await watch.stop()
            o = await outcome(db, f.provider.url)
        finally:
            await watch.stop()
            await db.close()
        prove(f, o, task_ids)
        assert {len(a) for a in o.attempts.values()} == {1}, "one attempt per delivery"
        assert len(watch.holders("poll")) == 3, "all three instances polled"
        assert len(watch.holders("delivery")) == 3, "all three instances delivered"
        for relay in f.relays:
            assert_clean(relay)


# --- 2. one of three killed ----------------------------------------------------------------


@pytest.mark.postgres
async def test_a_killed_instance_s_work_is_finished_by_the_others(tmp_path: Path) -> None:
    """Three instances on PostgreSQL; 300 tasks go in through all three, then one of them is
    killed with SIGKILL while it holds work (:func:`kill_holding_work`) and 300 more go in
    through the other two. Everything ends and arrives, and the only work done twice is what
    the dead instance held:

    - its orphans are the rows it still held leases on once stopped (the lease watch names
      its holder: the one that never claims again);
    - a delivery arrives twice only if it was its orphan, the first copy arrived at most a
      lease before it stopped and before it died, and the second one no sooner than a lease
      minus an attempt timeout after the first (a survivor sent it once the lease expired);
    - a task is polled once more than its saved polls only if it was its orphan, and the
      unsaved request reached the provider at most a poll lease before it stopped.
    """
    first, second = 300, 300
    async with postgres_schema() as url, fleet(tmp_path, url, 3) as f:
        db = Database(url)
        watch = LeaseWatch(db)
        watch.start()
        victim, survivors = f.relays[2], f.relays[:2]
        more: asyncio.Future[list[str]] | None = None
        try:
            task_ids = await submit(f, first)
            assert arrived(f) < 2 * first, "the kill comes while work is in flight"
            # The survivors stay busy meanwhile: their claims are what tells them apart.
            more = asyncio.ensure_future(submit(f, second, to=survivors, first=first))
            stopped, dead = await kill_holding_work(victim, watch, 3)
            task_ids += await more
            await everything_delivered(f, db, first + second, within=45)
            await watch.stop()
            o = await outcome(db, f.provider.url)
        finally:
            if more is not None and not more.done():
                more.cancel()
            await watch.stop()
            await db.close()

        orphans = leases_of_the_stopped(watch, 3, stopped.wall)
        assert orphans["poll"] or orphans["delivery"]
        report = prove(
            f,
            o,
            task_ids,
            Allowed(
                extra_polls=orphans["poll"],
                duplicates=orphans["delivery"],
                window=(
                    Moment(stopped.wall - POLL_LEASE, stopped.mono - DELIVERY_LEASE),
                    Moment(dead.wall + 0.5, dead.mono + 0.5),
                ),
                resent_after=stopped.mono,
                lease_gap=True,
            ),
        )
        print(
            f"orphaned: {len(orphans['poll'])} polls, {len(orphans['delivery'])} deliveries; "
            f"made twice: {len(report.extra_polls)} polls, {len(report.duplicates)} "
            "deliveries"
        )
        for relay in survivors:
            assert_clean(relay)


def arrived(f: Fleet) -> int:
    return len(f.callbacks.requests) + len(f.subscribers.requests)


# --- 3. SQLite: one instance, killed and restarted ------------------------------------------


async def test_sqlite_instance_killed_and_restarted_loses_nothing(tmp_path: Path) -> None:
    """The same crash on SQLite, where one instance serves: 300 tasks, SIGKILL while the relay
    holds work, a new process on the same file, 300 more tasks. Everything ends and arrives.
    What the dead process held is read from the file between the kill and the restart
    (nothing else writes it then): only those deliveries arrive twice (the first copy before
    the kill, the second after the restart, which releases a predecessor's leases at once),
    and only those tasks are polled once more than their saved polls.

    ``test_crash.py`` proves the qualitative part with 20 tasks, allowing a duplicate for any
    event that arrived before the kill; this bounds duplicates by the leases actually held,
    under load, and proves the polls as well."""
    first, second = 300, 300
    async with fleet(tmp_path, f"sqlite:///{tmp_path / 'relay.db'}", 1) as f:
        db = Database(f.database_url)
        watch = LeaseWatch(db)
        watch.start()
        try:
            task_ids = await submit(f, first)
            assert arrived(f) < 2 * first, "the kill comes while work is in flight"
            stopped, dead = await kill_holding_work(f.relays[0], watch, 1)
            await watch.stop()
            # Nothing writes the file now: what is leased is what the dead process held.
            held = await watch.sample()
            restarting = Moment.now()
            restarted = await f.restart(0)
            task_ids += await submit(f, second, to=[restarted], first=first)
            await everything_delivered(f, db, first + second, within=45)
            o = await outcome(db, f.provider.url)
        finally:
            await watch.stop()
            await db.close()
    orphans = {kind: {lease.id for lease in held if lease.kind == kind} for kind in KINDS}
    assert orphans == leases_of_the_stopped(watch, 1, stopped.wall)
    report = prove(
        f,
        o,
        task_ids,
        Allowed(
            extra_polls=orphans["poll"],
            duplicates=orphans["delivery"],
            window=(
                Moment(stopped.wall - POLL_LEASE, stopped.mono - DELIVERY_LEASE),
                Moment(dead.wall + 0.5, dead.mono + 0.5),
            ),
            resent_after=restarting.mono,
        ),
    )
    print(
        f"orphaned: {len(orphans['poll'])} polls, {len(orphans['delivery'])} deliveries; "
        f"made twice: {len(report.extra_polls)} polls, {len(report.duplicates)} deliveries"
    )
    assert_clean(f.spare[0])


# --- 4. a receiver down, then back ----------------------------------------------------------


@pytest.mark.postgres
async def test_a_receiver_down_then_back_gets_everything_once(tmp_path: Path) -> None:
    """Three instances on PostgreSQL, and the callback receiver is down (nothing listens on
    its port) while 300 tasks end: every callback delivery fails, is retried on the compressed
    schedule by whichever instance claims it, and arrives once the receiver is back, exactly
    once (a refused connection delivers nothing, so there is nothing to duplicate). Meanwhile
    the subscription receiver gets everything at once: one dead receiver holds up no other.
    The attempts stay numbered 1..n without gaps although the lease watch shows retries of
    one delivery made by different instances."""
    tasks = 300
    port = free_port()
    async with postgres_schema() as url, fleet(tmp_path, url, 3, callback_port=port) as f:
        db = Database(url)
        watch = LeaseWatch(db)
        watch.start()
        try:
            task_ids = await submit(f, tasks, tail=False)

            async def refused_twice_while_the_other_got_all() -> bool:
                [(n, least)] = await db.rows(
                    "SELECT count(*), min(d.attempt_count) FROM deliveries AS d "
                    "JOIN destinations AS dst ON dst.id = d.destination_id "
                    "WHERE dst.kind = 'callback'"
                )
                return (
                    int(n) == tasks
                    and int(least) >= 2
                    and len({r.webhook_id for r in f.subscribers.requests}) == tasks
                )

            await until_true(
                refused_twice_while_the_other_got_all,
                within=30,
                f=f,
                what="every callback refused twice, every subscription delivery",
            )
            assert not f.callbacks.requests
            back = Moment.now()
            await f.callbacks.start()
            await everything_delivered(f, db, tasks, within=30)
            await watch.stop()
            o = await outcome(db, f.provider.url)
        finally:
            await watch.stop()
            await db.close()
    prove(f, o, task_ids)
    assert all(r.at >= back.mono for r in f.callbacks.requests)
    for (_, kind), (delivery_id, _, count) in o.deliveries.items():
        assert count >= 3 if kind == "callback" else count == 1, (kind, delivery_id, count)
    owners: dict[str, set[str]] = {}
    for _, leases in watch.samples:
        for lease in leases:
            if lease.kind == "delivery":
                owners.setdefault(lease.id, set()).add(lease.holder)
    assert any(len(o) > 1 for o in owners.values()), "retries moved between instances"
    for relay in f.relays:
        assert_clean(relay)


# --- 5. the database restarted under load ----------------------------------------------------


def restart_command(url: str) -> list[str]:
    """How to restart the PostgreSQL server at ``url``: ``RELAY_TEST_POSTGRES_RESTART`` (a
    shell command), else ``pg_ctlcluster`` for the local Debian cluster on the URL's port."""
    command = os.environ.get("RELAY_TEST_POSTGRES_RESTART")
    if command:
        return shlex.split(command)
    where = "set RELAY_TEST_POSTGRES_RESTART to a command that restarts it"
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        pytest.skip(f"cannot restart PostgreSQL: no pg_ctlcluster here; {where}")
    params = conninfo_to_dict(url)
    if params.get("host", "localhost") not in ("localhost", "127.0.0.1", "::1"):
        pytest.skip(f"cannot restart PostgreSQL: it is not on this machine; {where}")
    port = str(params.get("port", "5432"))
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    ours = [line.split()[:2] for line in listed if line.split()[2:3] == [port]]
    if not ours:
        pytest.skip(f"cannot restart PostgreSQL: no local cluster on port {port}; {where}")
    if os.geteuid() != 0:
        pytest.skip(f"cannot restart PostgreSQL: pg_ctlcluster needs root here; {where}")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", *ours[0], "restart"]


async def server_started_at(url: str) -> datetime:
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
        cur = await conn.execute("SELECT pg_postmaster_start_time()")
        row = await cur.fetchone()
        assert row is not None
        started: datetime = row[0]
        return started


async def restart_database(command: list[str], url: str) -> None:
    """Run ``command``, then wait until a new server answers. Whatever happens, the server is
    running again afterwards (or the test says loudly that it is not)."""
    before = await server_started_at(url)
    try:
        code, out = await run(command)
        assert code == 0, f"{shlex.join(command)} failed: {out}"
    finally:
        after = await server_up(url, within=60)
        if after is None and command[-1] == "restart":
            await run([*command[:-1], "start"])
            after = await server_up(url, within=60)
        assert after is not None, "PostgreSQL is down after the restart: other tests will fail"
    assert after > before, "the database server did not restart"


RESTART_TIMEOUT = 150.0


async def run(command: list[str]) -> tuple[int | None, str]:
    """Run ``command``; its exit code and output. The timeout is generous: a fast shutdown
    sometimes waits out the server's ``authentication_timeout`` (a minute) for a connection
    that has not finished its start-up, so ``pg_ctlcluster restart`` can take 60 s or more."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=RESTART_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace")


async def server_up(url: str, *, within: float) -> datetime | None:
    deadline = time.monotonic() + within
    while True:
        try:
            return await server_started_at(url)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)


@pytest.mark.postgres(exclusive=True)  # it restarts the server
@pytest.mark.alone  # timing proofs under a server restart want the machine to itself
async def test_a_database_restart_under_load_loses_nothing(tmp_path: Path) -> None:
    """Three instances on PostgreSQL; 400 tasks go in, and the database server is restarted
    while they run and deliver. The relays reconnect by themselves (their wake-up listeners
    too): 200 more tasks go in after it, everything ends and arrives, and every instance is
    still running and ready.

    Work is done twice only where an instance could not record it because the database went
    away: the first copy of a duplicate arrived, and the unsaved request of a poll made twice
    reached the provider, between a lease before the restart began and one second after the
    server was back; the second copy came no sooner than a lease minus an attempt timeout
    after the first. The logs hold no error but the database's."""
    first, second = 400, 200
    async with postgres_schema() as url:
        command = restart_command(url)
        async with fleet(tmp_path, url, 3) as f:
            db = Database(url)
            try:
                task_ids = await submit(f, first)
                assert arrived(f) < 2 * first, "the restart comes while work is in flight"
                down = Moment.now()
                await restart_database(command, url)
                back = Moment.now()
                task_ids += await submit(f, second, first=first)
                await everything_delivered(f, db, first + second, within=45)
                o = await outcome(db, f.provider.url)
            finally:
                await db.close()
            for relay in f.relays:
                assert relay.proc is not None
                assert relay.proc.returncode is None, relay.log()
                async with api_client(relay.url) as client:
                    ready = await client.get("/readyz")
                    assert ready.status_code == 200, ready.text
    with logs_on_failure(f):
        report = prove(
            f,
            o,
            task_ids,
            Allowed(
                window=(
                    Moment(down.wall - POLL_LEASE, down.mono - DELIVERY_LEASE),
                    Moment(back.wall + 1, back.mono + 1),
                ),
                resent_after=down.mono,
                lease_gap=True,
            ),
        )
    print(
        f"restart took {back.mono - down.mono:.1f} s; made twice: "
        f"{len(report.extra_polls)} polls, {len(report.duplicates)} deliveries"
    )
    for relay in f.relays:
        assert_clean(relay, "relay.errors.StoreError", "psycopg.")
        assert "wake-up listener is listening again" in relay.log(), relay.log()
