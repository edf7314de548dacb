"""The contract of the paths the static named queries took over, run once per backend with no
backend branches: the event feed by delivery status (both orders, every page, with the other
filters), the task listing by each filter, single-field subscription updates, redelivery to one
destination, and replays with the counts that announce them.

The feed and replay tests share one seeded history (``seed_world``) and check every answer
against a plain-Python model of what was seeded; a few hand-written expectations check that
model too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import pytest

from relay.models import (
    TERMINAL_EVENT_TYPES,
    Account,
    Delivery,
    DeliveryStatus,
    DueDelivery,
    Event,
    EventType,
    Subscription,
    SubscriptionStatus,
    Task,
    TaskStatus,
)
from relay.store.interface import Store
from relay.store.values import (
    SUBSCRIPTION_FIELDS,
    AttemptRecord,
    EventQuery,
    Order,
    ReplayQuery,
    TaskQuery,
)
from relay.transitions import wants
from tests.store.factories import (
    HOOK_KEY,
    HOOK_URL,
    NOW,
    advance,
    at,
    attempt,
    current,
    event_id,
    register,
)
from tests.store.test_subscriptions import SUB_URL, subscribed

Q, R, S, F = (
    EventType.TASK_QUEUED,
    EventType.TASK_RUNNING,
    EventType.TASK_SUCCEEDED,
    EventType.TASK_FAILED,
)
PENDING, SUCCEEDED, FAILED, STOPPED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SUCCEEDED,
    DeliveryStatus.FAILED,
    DeliveryStatus.STOPPED,
)
TASK_TYPES = frozenset({Q, R, S, F})
ORDERS: list[Order] = ["asc", "desc"]


# --- paging ----------------------------------------------------------------------------------


def chunks(items: Sequence[str], limit: int) -> list[list[str]]:
    """The pages a listing of ``items`` must come in: full pages, then the rest; one empty
    page when nothing matches."""
    return [list(items[i : i + limit]) for i in range(0, len(items), limit)] or [[]]


async def event_pages(store: Store, account: Account, query: EventQuery) -> list[list[str]]:
    """The ids of every page of the feed, following ``next_after`` until it is None."""
    pages: list[list[str]] = []
    after = None
    while len(pages) < 100:
        page = await store.list_events(account.id, replace(query, after=after))
        pages.append([e.id for e in page.items])
        if page.next_after is None:
            return pages
        after = page.next_after
    raise AssertionError(f"pagination does not end: {pages}")


async def task_pages(store: Store, account: Account, query: TaskQuery) -> list[list[Task]]:
    pages: list[list[Task]] = []
    after = None
    while len(pages) < 100:
        page = await store.list_tasks(account.id, replace(query, after=after))
        pages.append(page.items)
        if page.next_after is None:
            return pages
        after = page.next_after
    raise AssertionError(f"pagination does not end: {pages}")


# --- a seeded history: events, their deliveries and what became of them ----------------------

CB, SUB, SUB_T = "callback", "sub", "sub_t"
"""Destinations by role: a task's callback (its filter takes every task type), a subscription
taking every task type, and one without a filter (the terminal types), which was disabled
and enabled again (its pending deliveries were stopped)."""

Outcome = Literal["ok", "fail", "retry", "wait", "stop"]
"""ok: 200; fail: given up; retry: an attempt failed, the next is due later; wait: claimed,
still in flight; stop: left pending until its subscription was disabled."""

OUTCOME_STATUS: dict[Outcome, DeliveryStatus] = {
    "ok": SUCCEEDED,
    "fail": FAILED,
    "retry": PENDING,
    "wait": PENDING,
    "stop": STOPPED,
}


@dataclass(frozen=True, slots=True)
class Step:
    minute: int
    account: Literal["alice", "bob"]
    task: str
    type: EventType
    outcomes: Mapping[str, Outcome]

    @property
    def label(self) -> str:
        return f"{self.task}.{self.type.value.removeprefix('task.')}"


SUBSCRIBED_AT = 1
"""The subscriptions exist from this minute on: earlier events went to none."""
CALLBACKS = frozenset({"t1", "t2", "t4", "b1"})
"""The tasks registered with a callback (t0 and t3 have none)."""
STEPS = (
    Step(0, "alice", "t0", Q, {}),
    Step(1, "alice", "t1", Q, {CB: "fail", SUB: "ok"}),
    Step(2, "bob", "b1", Q, {CB: "fail"}),
    Step(3, "alice", "t2", Q, {CB: "ok", SUB: "ok"}),
    Step(4, "alice", "t1", R, {CB: "fail", SUB: "fail"}),
    Step(5, "alice", "t3", Q, {SUB: "fail"}),
    Step(6, "bob", "b1", R, {CB: "fail"}),
    Step(7, "alice", "t2", R, {CB: "wait", SUB: "ok"}),
    Step(8, "alice", "t1", S, {CB: "ok", SUB: "fail", SUB_T: "stop"}),
    Step(9, "alice", "t3", R, {SUB: "wait"}),
    Step(10, "alice", "t2", F, {CB: "fail", SUB: "retry", SUB_T: "fail"}),
    Step(11, "bob", "b1", S, {CB: "fail"}),
    Step(12, "alice", "t3", S, {SUB: "fail", SUB_T: "ok"}),
    Step(13, "alice", "t4", Q, {CB: "fail", SUB: "fail"}),
    Step(14, "alice", "t4", F, {CB: "retry", SUB: "ok", SUB_T: "stop"}),
)
TEST_EVENT_AT = 15
"""Alice's relay.test event to SUB (no task), whose delivery failed."""
REDELIVERIES: tuple[tuple[str, str, Outcome], ...] = (
    ("t1.running", SUB, "ok"),  # failed, then succeeded: not a failure to replay any more
    ("t3.succeeded", SUB, "fail"),  # failed twice: listed and replayed once
    ("t2.queued", CB, "wait"),
)
STATUS_OF = {R: TaskStatus.RUNNING, S: TaskStatus.SUCCEEDED, F: TaskStatus.FAILED}


@dataclass(frozen=True, slots=True)
class Seeded:
    label: str
    id: str
    type: EventType
    task_id: str | None
    created_at: datetime
    statuses: dict[str, list[DeliveryStatus]]
    """Destination role -> the statuses of the event's deliveries to it."""

    def has(self, status: DeliveryStatus) -> bool:
        return any(status in statuses for statuses in self.statuses.values())


@dataclass(frozen=True, slots=True)
class World:
    events: list[Seeded]
    """Alice's events, in the order they were written."""
    bob_events: list[str]
    tasks: dict[str, str]
    """Task name -> id."""
    subs: dict[str, Subscription]
    """SUB and SUB_T."""

    def labels(self, ids: Sequence[str]) -> list[str]:
        by_id = {e.id: e.label for e in self.events}
        return [by_id.get(i, f"not alice's: {i}") for i in ids]

    def select(
        self,
        *,
        delivery_status: DeliveryStatus | None = None,
        type: EventType | None = None,
        task: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """The labels of alice's events that match, oldest first."""
        task_id = None if task is None else self.tasks.get(task, task)
        return [
            e.label
            for e in self.events
            if (delivery_status is None or e.has(delivery_status))
            and (type is None or e.type is type)
            and (task_id is None or e.task_id == task_id)
            and (since is None or e.created_at >= since)
            and (until is None or e.created_at < until)
        ]


def record(due: DueDelivery, outcome: Outcome, when: datetime) -> AttemptRecord:
    if outcome == "ok":
        return attempt(due, when, 200, status=SUCCEEDED)
    if outcome == "fail":
        return attempt(due, when, 500, status=FAILED)
    assert outcome == "retry"
    return attempt(due, when, 503, status=PENDING, next_attempt_at=at(hours=5))


async def seed_world(store: Store, alice: Account, bob: Account) -> World:
    """``STEPS``, then the test event, the stop of SUB_T and ``REDELIVERIES``; checked against
    what ``event_deliveries`` reads back before it is returned."""
    accounts = {"alice": alice, "bob": bob}
    tasks: dict[str, Task] = {}
    callbacks: dict[str, str] = {}
    subs: dict[str, Subscription] = {}
    written: list[tuple[Step, Event]] = []
    for step in STEPS:
        if not subs and step.minute >= SUBSCRIBED_AT:
            subs[SUB] = await subscribed(store, alice, event_types=TASK_TYPES)
            subs[SUB_T] = await subscribed(store, alice, url="https://hooks.example.net/t")
        when = at(minutes=step.minute)
        if step.type is Q:
            reg = await register(
                store,
                accounts[step.account],
                events=TASK_TYPES,
                callback_url=HOOK_URL if step.task in CALLBACKS else None,
                created_at=when,
                next_poll_at=None,
            )
            tasks[step.task] = reg.task
            if reg.destination is not None:
                callbacks[step.task] = reg.destination.id
            event = reg.event
        else:
            task = await current(store, tasks[step.task])
            event = await advance(store, task, STATUS_OF[step.type], when)
        written.append((step, event))

    roles = {subs[SUB].id: SUB, subs[SUB_T].id: SUB_T, HOOK_KEY: CB}
    planned = {(e.id, role): o for step, e in written for role, o in step.outcomes.items()}
    claimed = await store.claim_due_deliveries(at(minutes=20), 1000, 3600, "w1")
    by_role = {(d.event_id, roles[d.destination_key]): d for d in claimed}
    assert len(by_role) == len(claimed)
    assert set(by_role) == set(planned)
    await store.record_attempts(
        [
            record(by_role[key], outcome, at(minutes=20))
            for key, outcome in planned.items()
            if outcome in ("ok", "fail", "retry")
        ],
        "w1",
    )

    test_event = Event(
        id=event_id(),
        account_id=alice.id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=at(minutes=TEST_EVENT_AT),
        body='{"type":"relay.test"}',
    )
    test_due = await store.insert_test_delivery(
        test_event, subs[SUB].id, "api", at(minutes=20), 3600
    )
    assert test_due is not None
    await store.record_attempts([record(test_due, "fail", at(minutes=20))], "api")

    assert await store.disable_subscription(alice.id, subs[SUB_T].id, "paused", at(minutes=22))
    assert await store.enable_subscription(alice.id, subs[SUB_T].id, at(minutes=23))

    by_label = {step.label: (step, e) for step, e in written}
    again: dict[tuple[str, str], Outcome] = {}
    for label, role, outcome in REDELIVERIES:
        step, e = by_label[label]
        target = callbacks[step.task] if role == CB else subs[role].id
        [made] = await store.redeliver(alice.id, e.id, target, at(minutes=24))
        assert made.destination_id == target
        again[(e.id, role)] = outcome
    claimed = await store.claim_due_deliveries(at(minutes=24), 1000, 3600, "w2")
    by_role = {(d.event_id, roles[d.destination_key]): d for d in claimed}
    assert set(by_role) == set(again)
    await store.record_attempts(
        [
            record(by_role[key], outcome, at(minutes=24))
            for key, outcome in again.items()
            if outcome in ("ok", "fail", "retry")
        ],
        "w2",
    )

    events = []
    for step, e in written:
        if step.account != "alice":
            continue
        statuses: dict[str, list[DeliveryStatus]] = {}
        for role, outcome in step.outcomes.items():
            statuses[role] = [OUTCOME_STATUS[outcome]]
            if (e.id, role) in again:
                statuses[role].append(OUTCOME_STATUS[again[(e.id, role)]])
        events.append(Seeded(step.label, e.id, e.type, e.task_id, e.created_at, statuses))
    events.append(
        Seeded("test", test_event.id, test_event.type, None, test_event.created_at, {SUB: [FAILED]})
    )
    world = World(
        events=events,
        bob_events=[e.id for step, e in written if step.account == "bob"],
        tasks={name: task.id for name, task in tasks.items()},
        subs=subs,
    )

    # The seed is what the model says.
    role_of = {subs[SUB].id: SUB, subs[SUB_T].id: SUB_T}
    for seeded in world.events:
        views = await store.event_deliveries(alice.id, seeded.id)
        got = sorted((role_of.get(v.delivery.destination_id, CB), v.delivery.status) for v in views)
        assert got == sorted((r, s) for r, ss in seeded.statuses.items() for s in ss), seeded.label
    return world


# --- 1. the event feed by delivery status ----------------------------------------------------

WINDOWS: list[tuple[datetime | None, datetime | None]] = [
    (None, None),
    (at(minutes=4), at(minutes=12)),  # since is inclusive, until exclusive: both on an event
    (at(minutes=8), None),
    (None, at(minutes=8)),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "delivery_status",
    [FAILED, SUCCEEDED, PENDING, STOPPED, None],
    ids=["failed", "succeeded", "pending", "stopped", "any"],
)
async def test_the_feed_pages_through_every_combination_of_filters(
    store: Store,
    alice: Account,
    bob: Account,
    order: Order,
    delivery_status: DeliveryStatus | None,
) -> None:
    world = await seed_world(store, alice, bob)
    several_pages = 0
    for type_, task, (since, until), limit in itertools.product(
        [None, Q, S], [None, "t1", "t3", "task_unknown"], WINDOWS, [1, 2, 3]
    ):
        expected = world.select(
            delivery_status=delivery_status, type=type_, task=task, since=since, until=until
        )
        if order == "desc":
            expected.reverse()
        query = EventQuery(
            type=type_,
            task_id=None if task is None else world.tasks.get(task, task),
            since=since,
            until=until,
            delivery_status=delivery_status,
            limit=limit,
            order=order,
        )
        pages = [world.labels(page) for page in await event_pages(store, alice, query)]
        assert pages == chunks(expected, limit), query
        several_pages += len(pages) > 1
    assert several_pages >= 2  # the combinations do page


async def test_failed_events_by_page_and_filter(store: Store, alice: Account, bob: Account) -> None:
    world = await seed_world(store, alice, bob)

    async def pages(**query: Any) -> list[list[str]]:
        if "task" in query:
            query["task_id"] = world.tasks[query.pop("task")]
        found = await event_pages(store, alice, EventQuery(delivery_status=FAILED, **query))
        return [world.labels(page) for page in found]

    # Bob's failures are his; an event with two failed deliveries comes once.
    assert await pages(limit=3) == [
        ["test", "t4.queued", "t3.succeeded"],
        ["t2.failed", "t1.succeeded", "t3.queued"],
        ["t1.running", "t1.queued"],
    ]
    assert await pages(limit=3, order="asc") == [
        ["t1.queued", "t1.running", "t3.queued"],
        ["t1.succeeded", "t2.failed", "t3.succeeded"],
        ["t4.queued", "test"],
    ]
    assert await pages(limit=2, order="asc", task="t1") == [
        ["t1.queued", "t1.running"],
        ["t1.succeeded"],
    ]
    assert await pages(limit=1, task="t3") == [["t3.succeeded"], ["t3.queued"]]
    assert await pages(limit=1, type=Q, since=at(minutes=1), until=at(minutes=13)) == [
        ["t3.queued"],
        ["t1.queued"],
    ]
    assert await pages(limit=2, order="asc", task="t2", type=F, since=at(minutes=10)) == [
        ["t2.failed"]
    ]
    assert await pages(limit=2, type=R, since=at(minutes=5)) == [[]]
    assert await pages(limit=2, task="t0") == [[]]  # no delivery at all
    assert await event_pages(store, bob, EventQuery(delivery_status=FAILED, limit=2)) == [
        world.bob_events[::-1][:2],
        world.bob_events[::-1][2:],
    ]


async def test_the_feed_by_the_other_delivery_statuses(
    store: Store, alice: Account, bob: Account
) -> None:
    world = await seed_world(store, alice, bob)

    async def listed(status: DeliveryStatus, order: Order, **query: Any) -> list[str]:
        found = await event_pages(
            store, alice, EventQuery(delivery_status=status, order=order, limit=2, **query)
        )
        return [label for page in found for label in world.labels(page)]

    assert await listed(STOPPED, "desc") == ["t4.failed", "t1.succeeded"]
    assert await listed(PENDING, "asc") == [
        "t2.queued",  # redelivered, in flight
        "t2.running",
        "t3.running",
        "t2.failed",  # a retry is due later
        "t4.failed",
    ]
    assert await listed(PENDING, "desc", until=at(minutes=10)) == [
        "t3.running",
        "t2.running",
        "t2.queued",
    ]
    assert await listed(SUCCEEDED, "asc", task_id=world.tasks["t3"]) == ["t3.succeeded"]
    assert await listed(SUCCEEDED, "desc", type=R) == ["t2.running", "t1.running"]


# --- 2. the task listing by each filter ------------------------------------------------------

PROVIDERS = ("sandbox", "apiyi", "naci")
STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED)
REFERENCES = ("order-1", None, "order-2", "order-1", None)


@pytest.mark.parametrize("order", ORDERS)
async def test_tasks_page_through_every_combination_of_filters(
    store: Store, alice: Account, bob: Account, order: Order
) -> None:
    mine: list[Task] = []
    for i in range(13):
        attrs: dict[str, Any] = {
            "provider": PROVIDERS[i % 3],
            "status": STATUSES[i % 4],
            "reference": REFERENCES[i % 5],
            "next_poll_at": None,
        }
        mine.append((await register(store, alice, created_at=at(minutes=i), **attrs)).task)
        # Bob's look the same, in between.
        await register(store, bob, created_at=at(minutes=i, seconds=30), **attrs)
    several_pages = 0
    for status, provider, reference, limit in itertools.product(
        [None, *STATUSES],
        [None, *PROVIDERS, "unknown"],
        [None, "order-1", "order-2", "order-3"],
        [1, 2, 5],
    ):
        expected = [
            t
            for t in mine
            if status in (None, t.status)
            and provider in (None, t.provider)
            and reference in (None, t.reference)
        ]
        if order == "desc":
            expected.reverse()
        query = TaskQuery(
            status=status, provider=provider, reference=reference, limit=limit, order=order
        )
        pages = await task_pages(store, alice, query)
        assert [[t.id for t in page] for page in pages] == chunks(
            [t.id for t in expected], limit
        ), query
        several_pages += len(pages) > 1
    assert several_pages >= 20
    # A page holds the tasks themselves, field for field.
    assert [t for page in await task_pages(store, alice, TaskQuery(order=order)) for t in page] == (
        mine[::-1] if order == "desc" else mine
    )


@pytest.mark.parametrize("order", ORDERS)
async def test_each_task_filter_alone_pages(
    store: Store, alice: Account, bob: Account, order: Order
) -> None:
    names: dict[str, str] = {}
    for i, (name, provider, status, reference) in enumerate(
        [
            ("a", "sandbox", TaskStatus.QUEUED, "order-1"),
            ("b", "apiyi", TaskStatus.RUNNING, None),
            ("c", "sandbox", TaskStatus.RUNNING, "order-1"),
            ("d", "apiyi", TaskStatus.QUEUED, "order-2"),
            ("e", "sandbox", TaskStatus.RUNNING, "order-1"),
            ("f", "naci", TaskStatus.RUNNING, "order-1"),
            ("g", "sandbox", TaskStatus.SUCCEEDED, None),
        ]
    ):
        reg = await register(
            store,
            alice,
            provider=provider,
            status=status,
            reference=reference,
            created_at=at(minutes=i),
            next_poll_at=None,
        )
        names[reg.task.id] = name
        await register(store, bob, provider=provider, status=status, reference=reference)

    async def pages(**query: Any) -> list[str]:
        found = await task_pages(store, alice, TaskQuery(limit=2, order=order, **query))
        return ["".join(names[t.id] for t in page) for page in found]

    def ordered(*pages: str) -> list[str]:
        """Pages as written oldest first; newest first they run the other way."""
        if order == "asc":
            return list(pages)
        return ["".join(page) for page in chunks("".join(pages)[::-1], 2)]

    assert await pages(status=TaskStatus.RUNNING) == ordered("bc", "ef")
    assert await pages(provider="sandbox") == ordered("ac", "eg")
    assert await pages(reference="order-1") == ordered("ac", "ef")
    assert await pages(status=TaskStatus.QUEUED) == ordered("ad")
    assert await pages(provider="naci") == ordered("f")
    assert await pages(reference="order-2") == ordered("d")
    assert await pages(status=TaskStatus.RUNNING, provider="sandbox", reference="order-1") == (
        ordered("ce")
    )
    assert await pages(status=TaskStatus.FAILED) == [""]


# --- 3. update_subscription, one field at a time ---------------------------------------------

NEW_VALUES: dict[str, tuple[Any, Any]] = {
    "url": ("https://hooks.example.org/moved", "https://hooks.example.org/moved"),
    "event_types": (frozenset({F}), frozenset({F})),
    "description": ("renamed", "renamed"),
    "headers": (
        {"X-Other": "o", "Authorization": "Bearer 2"},
        (("Authorization", "Bearer 2"), ("X-Other", "o")),
    ),
    "rate_limit": (0.5, 0.5),
}
"""Field -> (what update_subscription is given, what reads back)."""

CLEARED: list[tuple[str, Any, Any]] = [
    ("description", None, None),
    ("rate_limit", None, None),
    ("headers", None, ()),
    ("headers", {}, ()),
    ("event_types", None, None),
]


def test_every_subscription_field_has_a_single_field_update_test() -> None:
    assert set(NEW_VALUES) == SUBSCRIPTION_FIELDS
    assert {f for f, _, _ in CLEARED} | {"url"} == SUBSCRIPTION_FIELDS


@dataclass(frozen=True, slots=True)
class Lived:
    """A subscription with every field set and a history: a succeeded delivery, a pending
    retry (due at minute 5), health from both, and a rotated secret."""

    sub: Subscription
    other: Subscription
    """Another of the account's subscriptions, never updated."""
    delivered: str
    retrying: str


async def lived_subscription(store: Store, alice: Account) -> Lived:
    sub = await subscribed(
        store,
        alice,
        event_types=frozenset({Q, S}),
        description="Zapier",
        headers=(("Authorization", "Bearer z"),),
        rate_limit=3.0,
    )
    other = await subscribed(
        store,
        alice,
        url="https://other.example/hook",
        event_types=frozenset({F}),
        description="other",
        headers=(("X-Other", "1"),),
        rate_limit=1.0,
    )
    ok = await register(store, alice, callback_url=None, next_poll_at=None)
    retry = await register(store, alice, callback_url=None, created_at=at(seconds=1))
    due = {d.event_id: d for d in await store.claim_due_deliveries(at(seconds=1), 10, 30, "w1")}
    await store.record_attempts([record(due[ok.event.id], "ok", at(seconds=2))], "w1")
    await store.record_attempts(
        [
            attempt(
                due[retry.event.id],
                at(seconds=3),
                503,
                status=PENDING,
                next_attempt_at=at(minutes=5),
            )
        ],
        "w1",
    )
    await store.rotate_subscription_secret(
        alice.id, sub.id, "whsec_rotated", at(days=1), at(seconds=4)
    )
    stored = await store.get_subscription(alice.id, sub.id)
    assert stored is not None
    assert (stored.last_success_at, stored.failing_since, stored.previous_secret_until) == (
        at(seconds=2),
        at(seconds=3),
        at(days=1),
    )
    return Lived(stored, other, ok.event.id, retry.event.id)


async def check_updated(
    store: Store, alice: Account, lived: Lived, changes: dict[str, Any], expected: Subscription
) -> None:
    """``changes`` made ``expected`` of ``lived.sub``, and nothing else changed: not the other
    subscription, not the secrets; the pending retry goes by the subscription as it is now,
    the delivery already made keeps its url, and new events fan out by its filter."""
    when = expected.updated_at
    assert await store.update_subscription(alice.id, lived.sub.id, changes, when) == expected
    assert await store.get_subscription(alice.id, lived.sub.id) == expected
    assert await store.get_subscription(alice.id, lived.other.id) == lived.other
    [due] = await store.claim_due_deliveries(at(minutes=5), 10, 30, "w2")
    assert (due.event_id, due.destination_key, due.url, due.headers, due.rate_limit) == (
        lived.retrying,
        lived.sub.id,
        expected.url,
        expected.headers,
        expected.rate_limit,
    )
    assert due.secrets == ("whsec_rotated", f"whsec_{lived.sub.id}")
    [done] = await store.event_deliveries(alice.id, lived.delivered)
    assert (done.delivery.url, done.delivery.status) == (SUB_URL, SUCCEEDED)
    reg = await register(store, alice, callback_url=None, created_at=at(minutes=6))
    finished = await advance(store, reg.task, TaskStatus.SUCCEEDED, at(minutes=7))
    sent = [
        (e.type, v.delivery.destination_id, v.delivery.url)
        for e in (reg.event, finished)
        for v in await store.event_deliveries(alice.id, e.id)
    ]
    assert sent == [
        (t, lived.sub.id, expected.url) for t in (Q, S) if wants(expected.event_types, t)
    ]


@pytest.mark.parametrize("field", sorted(NEW_VALUES))
async def test_changing_one_field_changes_only_it(store: Store, alice: Account, field: str) -> None:
    lived = await lived_subscription(store, alice)
    given, stored_as = NEW_VALUES[field]
    expected = replace(lived.sub, updated_at=at(seconds=10), **{field: stored_as})
    await check_updated(store, alice, lived, {field: given}, expected)


@pytest.mark.parametrize(
    ("field", "given", "stored_as"),
    CLEARED,
    ids=[f"{f}={g!r}" for f, g, _ in CLEARED],
)
async def test_clearing_one_field_clears_only_it(
    store: Store, alice: Account, field: str, given: Any, stored_as: Any
) -> None:
    lived = await lived_subscription(store, alice)
    expected = replace(lived.sub, updated_at=at(seconds=10), **{field: stored_as})
    await check_updated(store, alice, lived, {field: given}, expected)


async def test_description_and_rate_limit_change_and_clear_one_after_the_other(
    store: Store, alice: Account
) -> None:
    lived = await lived_subscription(store, alice)
    expected = lived.sub
    changes: list[dict[str, Any]] = [
        {"description": "first"},
        {"rate_limit": 7.5},
        {"description": None},
        {"rate_limit": 2.0},
        {"rate_limit": None},
        {"description": "back"},
    ]
    for second, change in enumerate(changes, start=10):
        expected = replace(expected, updated_at=at(seconds=second), **change)
        got = await store.update_subscription(alice.id, lived.sub.id, change, at(seconds=second))
        assert got == expected, change
        assert await store.get_subscription(alice.id, lived.sub.id) == expected
    assert (expected.description, expected.rate_limit) == ("back", None)
    assert expected.headers == lived.sub.headers
    assert await store.get_subscription(alice.id, lived.other.id) == lived.other


async def test_a_new_url_takes_the_pending_deliveries_with_it(
    store: Store, alice: Account, bob: Account
) -> None:
    """Pending deliveries to it (due, retrying later, or in flight) go to the new url; what
    succeeded, failed or was stopped keeps the url it was sent to; other destinations of the
    same events keep theirs; redeliveries and replays go to the new url."""
    moved = "https://hooks.example.org/moved"
    sub = await subscribed(store, alice, event_types=TASK_TYPES)
    other = await subscribed(
        store, alice, url="https://other.example/hook", event_types=frozenset({Q})
    )
    # A disabled period stops a pending delivery; it stays stopped, at the old url.
    stopped = await register(store, alice, callback_url=None, created_at=NOW)
    assert await store.disable_subscription(alice.id, sub.id, "paused", NOW)
    assert await store.enable_subscription(alice.id, sub.id, NOW)
    regs = {
        name: await register(store, alice, events={Q}, created_at=at(seconds=i), next_poll_at=None)
        for i, name in enumerate(["ok", "fail", "retry", "flight", "due"])
    }
    ids = {name: reg.event.id for name, reg in regs.items()}
    claimed = await store.claim_due_deliveries(at(seconds=3), 100, 3600, "w1")
    to_sub = {d.event_id: d for d in claimed if d.destination_key == sub.id}
    assert set(to_sub) == {ids["ok"], ids["fail"], ids["retry"], ids["flight"]}
    await store.record_attempts(
        [
            record(to_sub[ids["ok"]], "ok", at(seconds=4)),
            record(to_sub[ids["fail"]], "fail", at(seconds=4)),
            record(to_sub[ids["retry"]], "retry", at(seconds=4)),
        ],
        "w1",
    )
    ids["stopped"] = stopped.event.id

    # Another account cannot move it, nor its deliveries (checked below).
    before = await store.get_subscription(alice.id, sub.id)
    assert before is not None
    assert await store.update_subscription(bob.id, sub.id, {"url": moved}, at(seconds=8)) is None
    assert await store.get_subscription(alice.id, sub.id) == before

    updated = await store.update_subscription(alice.id, sub.id, {"url": moved}, at(seconds=9))
    assert updated == replace(before, url=moved, updated_at=at(seconds=9))

    async def urls(event: str) -> dict[str, list[tuple[DeliveryStatus, str]]]:
        found: dict[str, list[tuple[DeliveryStatus, str]]] = {}
        for v in await store.event_deliveries(alice.id, event):
            role = {sub.id: "sub", other.id: "other"}.get(v.delivery.destination_id, "callback")
            found.setdefault(role, []).append((v.delivery.status, v.delivery.url))
        return found

    callback_and_other = {
        "callback": [(PENDING, HOOK_URL)],
        "other": [(PENDING, "https://other.example/hook")],
    }
    assert await urls(ids["ok"]) == {"sub": [(SUCCEEDED, SUB_URL)], **callback_and_other}
    assert await urls(ids["fail"]) == {"sub": [(FAILED, SUB_URL)], **callback_and_other}
    assert await urls(ids["retry"]) == {"sub": [(PENDING, moved)], **callback_and_other}
    assert await urls(ids["flight"]) == {"sub": [(PENDING, moved)], **callback_and_other}
    assert await urls(ids["due"]) == {"sub": [(PENDING, moved)], **callback_and_other}
    assert await urls(ids["stopped"]) == {
        "sub": [(STOPPED, SUB_URL)],
        "other": [(PENDING, "https://other.example/hook")],
    }

    [again] = await store.redeliver(alice.id, ids["fail"], sub.id, at(seconds=10))
    assert (again.url, again.destination_id) == (moved, sub.id)
    assert await store.replay(
        alice.id, sub.id, ReplayQuery(only_failed=True), at(seconds=11), after=None, limit=10
    ) == (2, None)  # the failed and the stopped one
    replayed = [
        v.delivery
        for e in (ids["fail"], ids["stopped"])
        for v in await store.event_deliveries(alice.id, e)
        if v.delivery.created_at == at(seconds=11)
    ]
    assert [(d.destination_id, d.url) for d in replayed] == [(sub.id, moved), (sub.id, moved)]
    # The claim sends the pending ones to the new url (the in-flight one once its lease ends).
    due = await store.claim_due_deliveries(at(hours=2), 100, 30, "w2")
    assert {d.url for d in due if d.destination_key == sub.id} == {moved}


async def test_updating_a_disabled_subscription_keeps_it_disabled(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, description="d")
    disabled = await store.disable_subscription(alice.id, sub.id, "paused", at(seconds=1))
    assert disabled is not None
    changed = await store.update_subscription(alice.id, sub.id, {"rate_limit": 4.0}, at(seconds=2))
    assert changed == replace(disabled, rate_limit=4.0, updated_at=at(seconds=2))
    assert changed is not None
    assert (changed.status, changed.disabled_reason, changed.disabled_at) == (
        SubscriptionStatus.DISABLED,
        "paused",
        at(seconds=1),
    )
    assert await store.delete_subscription(alice.id, sub.id, at(seconds=3))
    assert await store.update_subscription(alice.id, sub.id, {"url": "x"}, at(seconds=4)) is None
    with pytest.raises(ValueError, match="status"):
        await store.update_subscription(alice.id, sub.id, {"status": "active"}, at(seconds=5))


# --- 4. redelivery to one destination --------------------------------------------------------


def made(deliveries: Sequence[Delivery]) -> list[tuple[str, str, DeliveryStatus, datetime | None]]:
    return sorted((d.destination_id, d.url, d.status, d.next_attempt_at) for d in deliveries)


async def history(store: Store, account: Account, event: str) -> Counter[tuple[str, datetime]]:
    """How many deliveries the event has, by destination and creation time."""
    return Counter(
        (v.delivery.destination_id, v.delivery.created_at)
        for v in await store.event_deliveries(account.id, event)
    )


async def test_redeliver_to_the_callback_or_the_subscription_of_an_event(
    store: Store, alice: Account
) -> None:
    sub = await subscribed(store, alice, event_types=frozenset({Q}))
    reg = await register(store, alice, events={Q}, next_poll_at=None)
    assert reg.destination is not None
    cb = reg.destination.id
    assert await history(store, alice, reg.event.id) == {(cb, NOW): 1, (sub.id, NOW): 1}

    to_cb = await store.redeliver(alice.id, reg.event.id, cb, at(minutes=1))
    assert made(to_cb) == [(cb, HOOK_URL, PENDING, at(minutes=1))]
    to_sub = await store.redeliver(alice.id, reg.event.id, sub.id, at(minutes=2))
    assert made(to_sub) == [(sub.id, SUB_URL, PENDING, at(minutes=2))]
    to_all = await store.redeliver(alice.id, reg.event.id, None, at(minutes=3))
    assert made(to_all) == sorted(
        [(cb, HOOK_URL, PENDING, at(minutes=3)), (sub.id, SUB_URL, PENDING, at(minutes=3))]
    )
    assert await history(store, alice, reg.event.id) == {
        (cb, NOW): 1,
        (sub.id, NOW): 1,
        (cb, at(minutes=1)): 1,
        (sub.id, at(minutes=2)): 1,
        (cb, at(minutes=3)): 1,
        (sub.id, at(minutes=3)): 1,
    }
    # Each is sent where and as its destination says.
    due = await store.claim_due_deliveries(at(minutes=3), 10, 30, "w1")
    new = {d.id: d.destination_id for d in [*to_cb, *to_sub, *to_all]}
    assert sorted((new[d.id], d.destination_key, d.url) for d in due if d.id in new) == sorted(
        [
            (cb, HOOK_KEY, HOOK_URL),
            (sub.id, sub.id, SUB_URL),
            (cb, HOOK_KEY, HOOK_URL),
            (sub.id, sub.id, SUB_URL),
        ]
    )


async def test_redeliver_to_one_of_several_subscriptions(
    store: Store, alice: Account, bob: Account
) -> None:
    a = await subscribed(store, alice, event_types=TASK_TYPES)
    b = await subscribed(store, alice, event_types=TASK_TYPES, url="https://b.example/hook")
    c = await subscribed(store, alice, event_types=TASK_TYPES, url="https://c.example/hook")
    reg = await register(store, alice, callback_url=None, next_poll_at=None)
    event = reg.event.id
    late = await subscribed(store, alice, event_types=TASK_TYPES)  # never got the event
    bobs = await subscribed(store, bob, event_types=TASK_TYPES)

    only_b = await store.redeliver(alice.id, event, b.id, at(minutes=1))
    assert made(only_b) == [(b.id, b.url, PENDING, at(minutes=1))]
    assert await store.redeliver(alice.id, event, late.id, at(minutes=1)) == []
    assert await store.redeliver(alice.id, event, bobs.id, at(minutes=1)) == []
    assert await store.redeliver(bob.id, event, b.id, at(minutes=1)) == []

    # A disabled subscription gets none, asked for or not; nor does a deleted one.
    assert await store.disable_subscription(alice.id, a.id, "paused", at(minutes=2))
    assert await store.delete_subscription(alice.id, c.id, at(minutes=2))
    assert await store.redeliver(alice.id, event, a.id, at(minutes=3)) == []
    assert await store.redeliver(alice.id, event, c.id, at(minutes=3)) == []
    assert made(await store.redeliver(alice.id, event, None, at(minutes=3))) == [
        (b.id, b.url, PENDING, at(minutes=3))
    ]
    # Enabled again, it is one of all.
    assert await store.enable_subscription(alice.id, a.id, at(minutes=4))
    assert made(await store.redeliver(alice.id, event, None, at(minutes=5))) == sorted(
        [(a.id, a.url, PENDING, at(minutes=5)), (b.id, b.url, PENDING, at(minutes=5))]
    )
    assert await history(store, alice, event) == {
        (a.id, NOW): 1,
        (b.id, NOW): 1,
        (c.id, NOW): 1,
        (b.id, at(minutes=1)): 1,
        (b.id, at(minutes=3)): 1,
        (a.id, at(minutes=5)): 1,
        (b.id, at(minutes=5)): 1,
    }
    statuses = Counter(
        (v.delivery.destination_id, v.delivery.status)
        for v in await store.event_deliveries(alice.id, event)
    )
    assert statuses == {
        (a.id, STOPPED): 1,
        (c.id, STOPPED): 1,
        (a.id, PENDING): 1,
        (b.id, PENDING): 4,
    }


# --- 5. replay and count_replay ----------------------------------------------------------------


def replayable(
    world: World, target: str, query: ReplayQuery, wanted: frozenset[EventType]
) -> list[str]:
    """The labels replay must send, oldest first: task events of the types the subscription
    takes, created in [since, until); with only_failed, those whose deliveries to it failed or
    were stopped and none succeeded."""
    found = []
    for label in world.select(since=query.since, until=query.until):
        e = next(e for e in world.events if e.label == label)
        statuses = e.statuses.get(target, [])
        if e.task_id is None or e.type not in wanted:
            continue
        if query.only_failed and (SUCCEEDED in statuses or not ({FAILED, STOPPED} & set(statuses))):
            continue
        found.append(label)
    return found


@pytest.mark.parametrize("only_failed", [False, True], ids=["all", "only-failed"])
@pytest.mark.parametrize("target", [SUB, SUB_T])
async def test_replay_pages_agree_with_count_replay(
    store: Store, alice: Account, bob: Account, target: str, only_failed: bool
) -> None:
    world = await seed_world(store, alice, bob)
    sub = world.subs[target]
    wanted = TASK_TYPES if target == SUB else TERMINAL_EVENT_TYPES
    for run, ((since, until), limit) in enumerate(
        itertools.product(WINDOWS, [1, 2, 3, 100]), start=1
    ):
        query = ReplayQuery(since=since, until=until, only_failed=only_failed)
        expected = replayable(world, target, query, wanted)
        assert await store.count_replay(alice.id, sub.id, query) == len(expected), query
        # Each batch at its own time, to tell the batches apart afterwards.
        counts: list[int] = []
        after = None
        while not counts or after is not None:
            assert len(counts) < 50
            count, after = await store.replay(
                alice.id,
                sub.id,
                query,
                at(hours=run, seconds=len(counts)),
                after=after,
                limit=limit,
            )
            counts.append(count)
        batches: list[list[str]] = [[] for _ in counts]
        for e in world.events:
            for v in await store.event_deliveries(alice.id, e.id):
                d = v.delivery
                if d.destination_id == sub.id and at(hours=run) <= d.created_at < at(hours=run + 1):
                    batches[int((d.created_at - at(hours=run)).total_seconds())].append(e.label)
                    assert (d.status, d.url) == (PENDING, sub.url)
        assert counts == [len(batch) for batch in batches], (query, limit)
        pages = chunks(expected, limit)
        if len(batches) == len(pages) + 1 and expected and len(expected) % limit == 0:
            # A last full batch cannot know it was the last: an empty one says so.
            assert batches[-1] == []
            batches.pop()
        assert batches == pages, (query, limit)
        # What was sent again does not change what a replay would send.
        assert await store.count_replay(alice.id, sub.id, query) == len(expected), query
    for bobs in world.bob_events:
        assert all(
            v.delivery.destination_id != sub.id for v in await store.event_deliveries(bob.id, bobs)
        )


async def test_replay_hand_checked(store: Store, alice: Account, bob: Account) -> None:
    """The model of the test above, against a few answers written out."""
    world = await seed_world(store, alice, bob)
    sub, sub_t = world.subs[SUB], world.subs[SUB_T]
    every = ReplayQuery()
    failed = ReplayQuery(only_failed=True)
    assert replayable(world, SUB, failed, TASK_TYPES) == [
        "t3.queued",
        "t1.succeeded",
        "t3.succeeded",
        "t4.queued",
    ]
    assert replayable(world, SUB_T, failed, TERMINAL_EVENT_TYPES) == [
        "t1.succeeded",
        "t2.failed",
        "t4.failed",
    ]
    assert replayable(world, SUB_T, every, TERMINAL_EVENT_TYPES) == [
        "t1.succeeded",
        "t2.failed",
        "t3.succeeded",
        "t4.failed",
    ]
    window = ReplayQuery(since=at(minutes=5), until=at(minutes=13), only_failed=True)
    assert await store.count_replay(alice.id, sub.id, window) == 3
    assert await store.count_replay(alice.id, sub.id, failed) == 4
    assert await store.count_replay(alice.id, sub.id, every) == 12  # t0 included, not the test
    assert await store.count_replay(alice.id, sub_t.id, failed) == 3
    # Not another account's, nor a disabled one's.
    assert await store.count_replay(bob.id, sub.id, every) == 0
    assert await store.replay(bob.id, sub.id, every, at(hours=1), after=None, limit=5) == (0, None)
    assert await store.disable_subscription(alice.id, sub_t.id, "paused", at(hours=1))
    assert await store.count_replay(alice.id, sub_t.id, every) == 0
    assert await store.replay(alice.id, sub_t.id, every, at(hours=1), after=None, limit=5) == (
        0,
        None,
    )


async def test_a_test_event_is_never_replayed(store: Store, alice: Account) -> None:
    """A ``relay.test`` event was one subscription's check, never anyone's to replay, even
    by a subscription whose filter admits the type and whose test delivery failed."""
    sub = await subscribed(store, alice, event_types=frozenset(EventType))
    task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
    test_event = Event(
        id="evt_test",
        account_id=alice.id,
        task_id=None,
        type=EventType.RELAY_TEST,
        sequence=0,
        created_at=at(seconds=1),
        body="{}",
    )
    due = await store.insert_test_delivery(test_event, sub.id, "api", at(seconds=1), 30)
    assert due is not None
    await store.record_attempts(
        [attempt(due, at(seconds=2), 500, status=DeliveryStatus.FAILED)], "api"
    )
    everything, failed = ReplayQuery(), ReplayQuery(only_failed=True)
    assert await store.count_replay(alice.id, sub.id, everything) == 1
    assert await store.count_replay(alice.id, sub.id, failed) == 0
    assert await store.replay(
        alice.id, sub.id, everything, at(minutes=1), after=None, limit=10
    ) == (
        1,
        None,
    )
    assert await store.replay(alice.id, sub.id, failed, at(minutes=2), after=None, limit=10) == (
        0,
        None,
    )
    assert [v.delivery.status for v in await store.event_deliveries(alice.id, "evt_test")] == [
        DeliveryStatus.FAILED
    ]
    # The task's event went to the subscription when it happened, and once more by the replay.
    [task_event] = (await store.list_events(alice.id, EventQuery(task_id=task.id))).items
    assert len(await store.event_deliveries(alice.id, task_event.id)) == 2
