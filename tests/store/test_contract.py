"""The storage contract (``relay.store.interface.Store``), run unchanged against every backend
of ``conftest.BACKENDS``. Times are explicit (``NOW`` and offsets from it); nothing sleeps.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from relay.errors import DuplicateTask
from relay.models import (
    Account,
    DeliveryStatus,
    DueDelivery,
    ErrorCode,
    EventType,
    Look,
    TaskError,
    TaskStatus,
)
from relay.provider_answers import ProviderTask
from relay.store import open_store
from relay.store.interface import ClaimLimits, Store
from relay.store.values import EventQuery, Order, TaskQuery
from relay.transitions import apply_answer, registered
from tests.store.factories import (
    HOOK_KEY,
    HOOK_URL,
    NOW,
    OWNER,
    advance,
    answer_change,
    at,
    attempt,
    callback_for,
    current,
    event_id,
    listed_events,
    make_account,
    new_task,
    only_delivery,
    pending,
    register,
    seed_events,
    state,
    walk,
)

Q, R, S = EventType.TASK_QUEUED, EventType.TASK_RUNNING, EventType.TASK_SUCCEEDED
PENDING, SUCCEEDED = DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED


# --- lifecycle -------------------------------------------------------------------------------


async def test_migrations_apply_once_and_the_secret_key_is_kept(database_url: str) -> None:
    first = open_store(database_url)
    applied = await first.migrate()
    assert applied[0] == 1
    assert applied == sorted(set(applied))
    assert await first.migrate() == []
    await first.ping()
    key = await first.secret_key()
    assert len(key) >= 32
    assert await first.secret_key() == key
    await make_account(first, "alice")
    await first.close()

    reopened = open_store(database_url)
    assert await reopened.migrate() == []
    assert await reopened.secret_key() == key
    assert await reopened.callback_secret("acc_alice") == "whsec_alice"
    await reopened.close()


# --- accounts --------------------------------------------------------------------------------


async def test_accounts_by_key_hash_and_callback_secret(
    store: Store, alice: Account, bob: Account
) -> None:
    assert await store.account_by_key_hash("hash-alice", NOW) == alice
    assert await store.account_by_key_hash("hash-bob", NOW) == bob
    assert await store.account_by_key_hash("hash-nobody", NOW) is None
    assert await store.callback_secret(alice.id) == "whsec_alice"
    assert await store.callback_secret(bob.id) == "whsec_bob"
    assert await store.callback_secret("acc_nobody") is None


# --- tasks: create ---------------------------------------------------------------------------


async def test_created_task_reads_back_field_for_field(store: Store, alice: Account) -> None:
    task = new_task(
        alice,
        created_at=NOW + timedelta(microseconds=123456),
        status=TaskStatus.RUNNING,
        reference="order-1234",
        model="doubao-seedance-2-0-fast-260128",
        progress=40,
        video_url="https://cdn.example.com/v.mp4",
        video_url_expires_at=at(hours=24),
        last_frame_url="https://cdn.example.com/f.png",
        error=TaskError(ErrorCode.TIMEOUT, "slow", retryable=True, provider_code="E42"),
        usage={"completion_tokens": 108900, "total_tokens": 108900},
        resolution="720p",
        ratio="16:9",
        duration=5,
        fps=24,
        seed=97151,
        metadata={"projectId": "proj_1001", "tags": ["a", "é"], "n": {"x": None}},
        callback_events=frozenset({R, S}),
        completed_at=at(minutes=3),
        poll_count=4,
        not_found_count=1,
        looks=(
            Look(at(minutes=1, microseconds=250), "poll", "answered", "running", 40),
            Look(at(minutes=2), "push", "timeout"),
        ),
    )
    change = registered(task, task.created_at, event_id)
    await store.create_task(change, None)
    assert change.task.sequence == 1
    assert await store.get_task(alice.id, task.id) == change.task


async def test_create_task_writes_the_task_and_its_registered_event(
    store: Store, alice: Account, bob: Account
) -> None:
    reg = await register(store, alice)
    assert (reg.event.type, reg.event.task_id, reg.event.sequence) == (Q, reg.task.id, 1)
    assert await store.get_task(alice.id, reg.task.id) == reg.task
    assert await store.get_task(bob.id, reg.task.id) is None
    assert await store.get_task(alice.id, "task_unknown") is None
    assert await store.get_event(alice.id, reg.event.id) == reg.event
    assert (await store.list_events(alice.id, EventQuery())).items == [reg.event]


@pytest.mark.parametrize(
    ("events", "delivered"),
    [(None, False), ({Q}, True), ({R}, False), ({Q, S}, True)],
    ids=["default-terminal-only", "queued", "running-only", "queued-and-succeeded"],
)
async def test_registration_is_delivered_only_when_the_filter_wants_it(
    store: Store, alice: Account, events: set[EventType] | None, delivered: bool
) -> None:
    reg = await register(store, alice, events=events)
    assert reg.destination is not None
    views = await store.event_deliveries(alice.id, reg.event.id)
    assert len(views) == int(delivered)
    for view in views:
        d = view.delivery
        assert d.id.startswith("dlv_")
        assert (d.account_id, d.event_id, d.destination_id, d.url) == (
            alice.id,
            reg.event.id,
            reg.destination.id,
            HOOK_URL,
        )
        assert (d.status, d.attempt_count, d.next_attempt_at, d.created_at) == (
            PENDING,
            0,
            NOW,
            NOW,
        )
        assert view.attempts == []


async def test_duplicate_provider_task_names_the_existing_task(
    store: Store, alice: Account
) -> None:
    first = await register(store, alice, provider="apiyi", provider_task_id="cgt-1")
    again = new_task(alice, provider="apiyi", provider_task_id="cgt-1", created_at=at(minutes=1))
    with pytest.raises(DuplicateTask) as raised:
        await store.create_task(
            registered(again, at(minutes=1), event_id), callback_for(again, {Q})
        )
    assert raised.value.existing_id == first.task.id
    assert await store.get_task(alice.id, again.id) is None
    assert (await store.list_events(alice.id, EventQuery())).items == [first.event]
    assert await store.claim_due_deliveries(at(days=1), 10, 30, "w1") == []


async def test_concurrent_duplicates_let_exactly_one_in(store: Store, alice: Account) -> None:
    tasks = [new_task(alice, provider_task_id="cgt-1") for _ in range(2)]
    results = await asyncio.gather(
        *(store.create_task(registered(t, NOW, event_id), callback_for(t, {Q})) for t in tasks),
        return_exceptions=True,
    )
    [winner] = [t for t, r in zip(tasks, results, strict=True) if r is None]
    [lost] = [r for r in results if r is not None]
    assert isinstance(lost, DuplicateTask)
    assert lost.existing_id == winner.id
    assert len((await store.list_tasks(alice.id, TaskQuery())).items) == 1
    assert len(await store.claim_due_deliveries(NOW, 10, 30, "w1")) == 1


async def test_the_same_provider_task_in_another_provider_is_not_a_duplicate(
    store: Store, alice: Account
) -> None:
    regs = [
        await register(store, alice, provider="apiyi", provider_task_id="cgt-1"),
        await register(store, alice, provider="naci", provider_task_id="cgt-1"),
        # Tasks the relay submits itself have no provider id yet: never duplicates.
        await register(store, alice, provider="naci", provider_task_id=None),
        await register(store, alice, provider="naci", provider_task_id=None),
    ]
    for reg in regs:
        assert await store.get_task(reg.task.account_id, reg.task.id) == reg.task


async def test_another_account_cannot_track_a_provider_task_already_tracked(
    store: Store, alice: Account, bob: Account
) -> None:
    # Provider accounts are the operator's, shared by every relay account: tracking another
    # account's provider task id would hand over its video. Nothing of alice's is named.
    mine = await register(store, alice, provider="apiyi", provider_task_id="cgt-1")
    with pytest.raises(DuplicateTask) as refused:
        await register(store, bob, provider="apiyi", provider_task_id="cgt-1")
    assert refused.value.existing_id is None
    page = await store.list_tasks(bob.id, TaskQuery())
    assert page.items == []
    assert await store.get_task(alice.id, mine.task.id) == mine.task


# --- tasks: save and read --------------------------------------------------------------------


async def test_save_at_the_expected_version_writes_and_bumps_it(
    store: Store, alice: Account
) -> None:
    reg = await register(store, alice)
    change = apply_answer(
        reg.task, ProviderTask("cgt-1", TaskStatus.RUNNING, progress=10), at(minutes=1), event_id
    )
    assert await store.save_task(change, 0) is True
    assert await store.get_task(alice.id, reg.task.id) == replace(change.task, version=1)
    page = await store.list_events(alice.id, EventQuery(order="asc"))
    assert [(e.type, e.sequence) for e in page.items] == [(Q, 1), (R, 2)]


async def test_save_at_a_stale_version_writes_nothing(store: Store, alice: Account) -> None:
    reg = await register(store, alice, events={R, S})
    first = answer_change(reg.task, TaskStatus.RUNNING, at(minutes=1))
    assert await store.save_task(first, 0) is True
    late = answer_change(reg.task, TaskStatus.SUCCEEDED, at(minutes=2))
    assert await store.save_task(late, 0) is False
    assert await store.get_task(alice.id, reg.task.id) == replace(first.task, version=1)
    page = await store.list_events(alice.id, EventQuery(order="asc"))
    assert [e.id for e in page.items] == [reg.event.id, first.events[0].id]
    due = await store.claim_due_deliveries(at(days=1), 10, 30, "w1")
    assert [d.event_id for d in due] == [first.events[0].id]


async def test_concurrent_saves_at_one_version_let_exactly_one_win(
    store: Store, alice: Account
) -> None:
    reg = await register(store, alice)
    push = answer_change(reg.task, TaskStatus.SUCCEEDED, at(seconds=1))
    poll = answer_change(reg.task, TaskStatus.FAILED, at(seconds=1))
    results = await asyncio.gather(store.save_task(push, 0), store.save_task(poll, 0))
    assert sorted(results) == [False, True]
    winner = push if results[0] else poll
    assert await current(store, reg.task) == replace(winner.task, version=1)
    page = await store.list_events(alice.id, EventQuery(order="asc"))
    assert [e.id for e in page.items] == [reg.event.id, winner.events[0].id]


async def test_a_terminal_change_is_delivered_to_the_callback(store: Store, alice: Account) -> None:
    reg = await register(store, alice)
    assert reg.destination is not None
    event = await advance(store, reg.task, TaskStatus.SUCCEEDED, at(minutes=3))
    stored = await current(store, reg.task)
    assert (stored.status, stored.next_poll_at, stored.version) == (TaskStatus.SUCCEEDED, None, 1)
    view = await only_delivery(store, alice, event.id)
    assert view.delivery.destination_id == reg.destination.id
    assert state(view) == (PENDING, 0, at(minutes=3))
    [due] = await store.claim_due_deliveries(at(minutes=3), 10, 30, "w1")
    assert (due.id, due.event_id, due.body) == (view.delivery.id, event.id, event.body)


# --- tasks: list -----------------------------------------------------------------------------


async def test_list_tasks_filters(store: Store, alice: Account, bob: Account) -> None:
    specs = [
        ("sandbox", TaskStatus.QUEUED, "order-1"),
        ("apiyi", TaskStatus.QUEUED, "order-2"),
        ("sandbox", TaskStatus.RUNNING, "order-1"),
        ("apiyi", TaskStatus.RUNNING, None),
    ]
    t = [
        (
            await register(
                store, alice, provider=p, status=s, reference=r, created_at=at(minutes=i)
            )
        ).task.id
        for i, (p, s, r) in enumerate(specs)
    ]
    await register(store, bob, provider="sandbox", reference="order-1")

    async def listed(**filters: Any) -> list[str]:
        page = await store.list_tasks(alice.id, TaskQuery(**filters))
        assert page.next_after is None
        return [task.id for task in page.items]

    assert await listed() == [t[3], t[2], t[1], t[0]]
    assert await listed(status=TaskStatus.QUEUED) == [t[1], t[0]]
    assert await listed(status=TaskStatus.SUCCEEDED) == []
    assert await listed(provider="apiyi") == [t[3], t[1]]
    assert await listed(reference="order-1") == [t[2], t[0]]
    assert await listed(reference="order-1", status=TaskStatus.QUEUED, provider="sandbox") == [t[0]]
    assert await listed(order="asc", provider="sandbox") == [t[0], t[2]]


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_list_tasks_pages_through_every_task_once(
    store: Store, alice: Account, bob: Account, order: Order
) -> None:
    mine = []
    for i in range(7):
        mine.append((await register(store, alice, created_at=at(minutes=i))).task.id)
        await register(store, bob, created_at=at(minutes=i, seconds=30))
    expected = mine[::-1] if order == "desc" else mine

    pages = await walk(
        lambda after: store.list_tasks(alice.id, TaskQuery(limit=3, after=after, order=order))
    )
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == expected

    whole = await store.list_tasks(alice.id, TaskQuery(limit=7, order=order))
    assert ([task.id for task in whole.items], whole.next_after) == (expected, None)


# --- polls -----------------------------------------------------------------------------------


async def test_claim_due_polls_takes_due_tasks_most_overdue_first(
    store: Store, alice: Account
) -> None:
    t = [(await register(store, alice, next_poll_at=at(seconds=s))).task for s in (-10, -20, 0, 1)]
    first = await store.claim_due_polls(NOW, {"sandbox": 2}, 30, OWNER)
    assert {task.id: task for task in first} == {t[0].id: t[0], t[1].id: t[1]}
    assert [task.id for task in await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER)] == [
        t[2].id
    ]
    assert await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER) == []


async def test_concurrent_poll_claims_never_share_a_task(store: Store, alice: Account) -> None:
    tasks = {(await register(store, alice)).task.id for _ in range(5)}
    claims = await asyncio.gather(
        *(store.claim_due_polls(NOW, {"sandbox": 2}, 30, OWNER) for _ in range(3))
    )
    claimed = [task.id for claim in claims for task in claim]
    assert sorted(claimed) == sorted(tasks)


async def test_a_claimed_poll_waits_for_its_lease(store: Store, alice: Account) -> None:
    task = (await register(store, alice)).task
    assert await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER) == [task]
    assert await store.claim_due_polls(at(seconds=1), {"sandbox": 10}, 30, OWNER) == []
    assert await store.claim_due_polls(at(seconds=29), {"sandbox": 10}, 30, OWNER) == []
    [again] = await store.claim_due_polls(at(seconds=31), {"sandbox": 10}, 30, OWNER)
    # Due again at the lease's end, where the claim had moved its next poll.
    assert (again.id, again.version, again.next_poll_at) == (task.id, 0, at(seconds=30))


async def test_poll_claims_take_each_provider_s_due_tasks_up_to_its_limit(
    store: Store, alice: Account
) -> None:
    a = [
        (await register(store, alice, provider="a", next_poll_at=at(seconds=-s))).task
        for s in (1, 2, 3)
    ]
    b = [
        (await register(store, alice, provider="b", next_poll_at=at(seconds=-s))).task
        for s in (1, 2)
    ]
    await register(store, alice, provider="c")
    claimed = await store.claim_due_polls(NOW, {"a": 2, "b": 5}, 30, OWNER)
    assert sorted(t.id for t in claimed) == sorted([a[2].id, a[1].id, b[0].id, b[1].id])
    assert [t.id for t in claimed if t.provider == "a"] == [a[2].id, a[1].id]  # most overdue first
    assert claimed[0] == a[2]  # as it was before the claim
    assert [t.id for t in await store.claim_due_polls(NOW, {"a": 5}, 30, OWNER)] == [a[0].id]
    assert await store.polled_providers() == {"a", "b", "c"}


async def test_leased_polls_leave_the_due_order_until_released(
    store: Store, alice: Account
) -> None:
    leased = (await register(store, alice, next_poll_at=at(seconds=-5))).task
    [claimed] = await store.claim_due_polls(NOW, {"sandbox": 1}, 30, OWNER)
    assert claimed.id == leased.id
    later = (await register(store, alice, next_poll_at=at(seconds=-1))).task
    # The leased task is not due: a claim of one takes the next, it steps over nothing.
    assert await store.claim_due_polls(NOW, {"sandbox": 1}, 30, OWNER) == [later]
    assert await store.next_poll_at(NOW) == at(seconds=30)
    await store.release_leases(at(seconds=2))  # at start-up: released polls are due at once
    again = await store.claim_due_polls(at(seconds=2), {"sandbox": 5}, 30, OWNER)
    assert {(t.id, t.next_poll_at) for t in again} == {
        (leased.id, at(seconds=2)),
        (later.id, at(seconds=2)),
    }


async def test_release_polls_makes_the_owner_s_unsaved_claims_due_at_once(
    store: Store, alice: Account
) -> None:
    mine, saved, theirs = [(await register(store, alice)).task for _ in range(3)]
    await store.claim_due_polls(NOW, {"sandbox": 2}, 30, OWNER)
    [their_claim] = await store.claim_due_polls(NOW, {"sandbox": 1}, 30, "relay_other")
    assert their_claim.id == theirs.id
    polled = replace(saved, next_poll_at=at(seconds=20), poll_count=1, updated_at=at(seconds=1))
    assert await store.save_task(answer_change(polled, TaskStatus.QUEUED, at(seconds=1)), 0)

    await store.release_polls([mine.id, saved.id, theirs.id], OWNER, at(seconds=2))

    again = await store.claim_due_polls(at(seconds=2), {"sandbox": 10}, 30, OWNER)
    assert [t.id for t in again] == [mine.id]  # the saved poll and the other's claim stand
    assert again[0].next_poll_at == at(seconds=2)


async def test_polled_providers_leave_out_finished_tasks(store: Store, alice: Account) -> None:
    assert await store.polled_providers() == set()
    reg = await register(store, alice, provider="gone")
    await register(store, alice, provider="here")
    await advance(store, reg.task, TaskStatus.SUCCEEDED, at(minutes=1))
    assert await store.polled_providers() == {"here"}


async def test_save_tasks_writes_each_change_fenced_by_its_version(
    store: Store, alice: Account
) -> None:
    first = await register(store, alice, events={EventType.TASK_RUNNING})
    second = (await register(store, alice)).task
    running = answer_change(first.task, TaskStatus.RUNNING, at(seconds=1))
    stale = answer_change(second, TaskStatus.RUNNING, at(seconds=1))
    assert await store.save_tasks([(running, 0), (stale, 1)]) == [True, False]
    assert (await current(store, first.task)).status is TaskStatus.RUNNING
    assert (await current(store, second)).status is TaskStatus.QUEUED
    # The saved change's event and its delivery were written with it.
    [event] = running.events
    [view] = await store.event_deliveries(alice.id, event.id)
    assert view.delivery.event_id == event.id


async def test_save_task_releases_the_poll_lease(store: Store, alice: Account) -> None:
    task = (await register(store, alice)).task
    [claimed] = await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER)
    polled = replace(claimed, next_poll_at=at(seconds=2), poll_count=1, updated_at=at(seconds=1))
    assert await store.save_task(answer_change(polled, TaskStatus.QUEUED, at(seconds=1)), 0)
    assert await store.claim_due_polls(at(seconds=1), {"sandbox": 10}, 30, OWNER) == []
    [again] = await store.claim_due_polls(at(seconds=2), {"sandbox": 10}, 30, OWNER)
    assert (again.id, again.poll_count, again.version) == (task.id, 1, 1)


async def test_next_poll_at_is_the_earliest_after_a_time(store: Store, alice: Account) -> None:
    assert await store.next_poll_at(NOW) is None
    for minutes in (5, 1, 3):
        await register(store, alice, next_poll_at=at(minutes=minutes))
    assert await store.next_poll_at(NOW) == at(minutes=1)
    # What is due already is the claim's business: the next poll after a time is later.
    assert await store.next_poll_at(at(minutes=1)) == at(minutes=3)


async def test_terminal_tasks_are_never_polled(store: Store, alice: Account) -> None:
    reg = await register(store, alice)
    await advance(store, reg.task, TaskStatus.SUCCEEDED, at(minutes=1))
    await register(store, alice, status=TaskStatus.FAILED, next_poll_at=None)
    assert await store.next_poll_at(NOW) is None
    assert await store.claim_due_polls(at(days=30), {"sandbox": 10}, 30, OWNER) == []


# --- events ----------------------------------------------------------------------------------


async def test_list_events_filters_by_type_and_task(
    store: Store, alice: Account, bob: Account
) -> None:
    e = await seed_events(store, alice, bob)
    first = await store.get_event(alice.id, e[0])
    assert first is not None
    assert await listed_events(store, alice) == e[::-1]
    assert await listed_events(store, alice, type=Q) == [e[1], e[0]]
    assert await listed_events(store, alice, type=EventType.TASK_EXPIRED) == []
    assert await listed_events(store, alice, task_id=first.task_id) == [e[3], e[2], e[0]]
    assert await listed_events(store, alice, task_id=first.task_id, type=S) == [e[3]]
    assert await listed_events(store, alice, task_id="task_unknown") == []
    assert len(await listed_events(store, bob)) == 2


async def test_list_events_filters_by_time(store: Store, alice: Account, bob: Account) -> None:
    e = await seed_events(store, alice, bob)
    assert await listed_events(store, alice, since=at(seconds=150)) == [e[4], e[3]]
    assert await listed_events(store, alice, until=at(seconds=90)) == [e[1], e[0]]
    assert await listed_events(
        store, alice, since=at(seconds=90), until=at(seconds=210), order="asc"
    ) == [e[2], e[3]]


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_list_events_pages(store: Store, alice: Account, bob: Account, order: Order) -> None:
    e = await seed_events(store, alice, bob)
    pages = await walk(
        lambda after: store.list_events(alice.id, EventQuery(limit=2, after=after, order=order))
    )
    assert pages == (
        [[e[4], e[3]], [e[2], e[1]], [e[0]]]
        if order == "desc"
        else [[e[0], e[1]], [e[2], e[3]], [e[4]]]
    )


async def test_events_are_invisible_to_other_accounts(
    store: Store, alice: Account, bob: Account
) -> None:
    reg = await pending(store, alice)
    assert await store.get_event(alice.id, reg.event.id) == reg.event
    assert await store.get_event(alice.id, "evt_unknown") is None
    assert await store.get_event(bob.id, reg.event.id) is None
    assert (await store.list_events(bob.id, EventQuery())).items == []
    assert await store.event_deliveries(bob.id, reg.event.id) == []
    assert await store.redeliver(bob.id, reg.event.id, None, NOW) == []
    assert len(await store.event_deliveries(alice.id, reg.event.id)) == 1


# --- deliveries: claim -----------------------------------------------------------------------


async def test_claim_due_deliveries_respects_limit_and_due_time(
    store: Store, alice: Account
) -> None:
    regs = [await pending(store, alice, at(seconds=s)) for s in (2, 0, 1, 60)]
    first = await store.claim_due_deliveries(at(seconds=10), 2, 300, "w1")
    assert sorted(d.event_id for d in first) == sorted([regs[1].event.id, regs[2].event.id])
    [rest] = await store.claim_due_deliveries(at(seconds=10), 10, 300, "w1")
    assert rest.event_id == regs[0].event.id
    assert await store.claim_due_deliveries(at(seconds=59), 10, 300, "w1") == []
    [late] = await store.claim_due_deliveries(at(seconds=60), 10, 300, "w1")
    assert late.event_id == regs[3].event.id


async def test_concurrent_delivery_claims_never_share_a_delivery(
    store: Store, alice: Account
) -> None:
    events = {(await pending(store, alice)).event.id for _ in range(5)}
    claims = await asyncio.gather(
        *(store.claim_due_deliveries(NOW, 2, 30, f"w{i}") for i in range(3))
    )
    claimed = [due.event_id for claim in claims for due in claim]
    assert sorted(claimed) == sorted(events)


async def test_a_claimed_delivery_carries_what_sending_needs_and_is_leased(
    store: Store, alice: Account
) -> None:
    reg = await pending(store, alice)
    view = await only_delivery(store, alice, reg.event.id)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    assert due == DueDelivery(
        pk=due.pk,
        id=view.delivery.id,
        event_id=reg.event.id,
        destination_key=HOOK_KEY,
        url=HOOK_URL,
        body=reg.event.body,
        secrets=("whsec_alice",),
        attempt_count=0,
        account_id=alice.id,
        task_id=reg.task.id,
        url_expires_at=None,
    )
    assert await store.claim_due_deliveries(at(seconds=1), 10, 30, "w2") == []
    assert await store.claim_due_deliveries(at(seconds=29), 10, 30, "w2") == []
    assert await store.claim_due_deliveries(at(seconds=31), 10, 30, "w2") == [due]


async def test_a_success_event_keeps_when_its_video_url_expires(
    store: Store, alice: Account
) -> None:
    reg = await register(store, alice, events={EventType.TASK_SUCCEEDED}, next_poll_at=None)
    event = await advance(store, reg.task, TaskStatus.SUCCEEDED, at(seconds=5))
    assert event.url_expires_at == at(seconds=5, hours=24)
    assert await store.get_event(alice.id, event.id) == event
    [due] = await store.claim_due_deliveries(at(seconds=6), 10, 30, "w1")
    assert (due.event_id, due.url_expires_at) == (event.id, at(seconds=5, hours=24))


async def test_claim_leaves_room_per_destination(store: Store, alice: Account) -> None:
    a = [await pending(store, alice, at(seconds=s), key="https://a.example") for s in (0, 1, 2)]
    b = await pending(store, alice, at(seconds=3), key="https://b.example")
    # a.example already has one delivery in flight and may have two: one more of its three
    # is claimed, and b.example's, although it is the latest due, is not crowded out.
    due = await store.claim_due_deliveries(
        at(seconds=10),
        10,
        30,
        "w1",
        limits=ClaimLimits(per_destination=2, destination_room={"https://a.example": 1}),
    )
    assert [(d.event_id, d.destination_key) for d in due] == [
        (a[0].event.id, "https://a.example"),
        (b.event.id, "https://b.example"),
    ]
    # A destination at its cap gets nothing.
    assert (
        await store.claim_due_deliveries(
            at(seconds=10),
            10,
            30,
            "w1",
            limits=ClaimLimits(per_destination=2, destination_room={"https://a.example": 0}),
        )
        == []
    )
    # Without a cap, the rest of a.example's backlog comes, the longest due first.
    rest = await store.claim_due_deliveries(at(seconds=10), 10, 30, "w1")
    assert [d.event_id for d in rest] == [a[1].event.id, a[2].event.id]


# --- deliveries: attempts and leases ---------------------------------------------------------


async def test_a_successful_attempt_finishes_the_delivery(store: Store, alice: Account) -> None:
    reg = await pending(store, alice)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    record = attempt(due, at(seconds=1), 200, status=SUCCEEDED, snippet="ok")
    await store.record_attempts([record], "w1")
    view = await only_delivery(store, alice, reg.event.id)
    assert state(view) == (SUCCEEDED, 1, None)
    assert view.attempts == [record.attempt]  # status code, latency, outcome and snippet
    assert await store.claim_due_deliveries(at(days=1), 10, 30, "w1") == []
    assert await store.next_delivery_at(NOW) is None


async def test_a_retry_keeps_the_delivery_pending_until_its_time(
    store: Store, alice: Account
) -> None:
    reg = await pending(store, alice)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    record = attempt(due, NOW, 503, status=PENDING, next_attempt_at=at(seconds=5), snippet="busy")
    await store.record_attempts([record], "w1")
    view = await only_delivery(store, alice, reg.event.id)
    assert state(view) == (PENDING, 1, at(seconds=5))
    assert view.attempts == [record.attempt]
    assert await store.claim_due_deliveries(at(seconds=4), 10, 30, "w2") == []
    assert await store.claim_due_deliveries(at(seconds=5), 10, 30, "w2") == [
        replace(due, attempt_count=1)
    ]


async def test_one_call_records_attempts_of_several_deliveries(
    store: Store, alice: Account
) -> None:
    a, b = await pending(store, alice), await pending(store, alice, key="https://b.example")
    claimed = {due.event_id: due for due in await store.claim_due_deliveries(NOW, 10, 30, "w1")}
    await store.record_attempts(
        [
            attempt(claimed[a.event.id], NOW, 200, status=SUCCEEDED),
            attempt(claimed[b.event.id], NOW, 500, status=PENDING, next_attempt_at=at(minutes=5)),
        ],
        "w1",
    )
    assert state(await only_delivery(store, alice, a.event.id)) == (SUCCEEDED, 1, None)
    assert state(await only_delivery(store, alice, b.event.id)) == (PENDING, 1, at(minutes=5))


async def test_a_record_from_a_non_owner_does_not_change_the_delivery(
    store: Store, alice: Account
) -> None:
    reg = await pending(store, alice)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    await store.record_attempts([attempt(due, NOW, 200, status=SUCCEEDED)], "w2")
    assert state(await only_delivery(store, alice, reg.event.id)) == (PENDING, 0, NOW)
    assert await store.claim_due_deliveries(at(seconds=1), 10, 30, "w3") == []
    await store.record_attempts([attempt(due, NOW, 200, status=SUCCEEDED)], "w1")
    assert state(await only_delivery(store, alice, reg.event.id)) == (SUCCEEDED, 1, None)


async def test_a_record_from_a_non_owner_leaves_no_attempt(store: Store, alice: Account) -> None:
    """Only the lease owner writes a delivery's history: a stale worker's attempt must not
    be half-applied (an attempt row without its delivery update), or the history shows two
    attempts numbered 1 for a delivery whose ``attempt_count`` is 1."""
    reg = await pending(store, alice)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    await store.record_attempts(
        [attempt(due, NOW, 503, status=PENDING, next_attempt_at=at(seconds=5))], "w2"
    )
    assert (await only_delivery(store, alice, reg.event.id)).attempts == []
    record = attempt(due, NOW, 200, status=SUCCEEDED)
    await store.record_attempts([record], "w1")
    assert (await only_delivery(store, alice, reg.event.id)).attempts == [record.attempt]


async def test_a_late_record_of_an_expired_lease_counts_once(store: Store, alice: Account) -> None:
    """The same owner claims a delivery again after its lease ran out while the first attempt
    was still under way: both attempts are number 1, and only the first record counts (it
    must not add a second "attempt 1", nor clear the second claim's lease)."""
    reg = await pending(store, alice)
    [first] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    [second] = await store.claim_due_deliveries(at(seconds=31), 10, 30, "w1")
    assert (first.id, first.attempt_count) == (second.id, second.attempt_count)
    late = attempt(first, NOW, 500, status=PENDING, next_attempt_at=at(minutes=5))
    await store.record_attempts([late], "w1")
    again = attempt(second, at(seconds=31), 200, status=SUCCEEDED)
    await store.record_attempts([again], "w1")
    view = await only_delivery(store, alice, reg.event.id)
    assert view.attempts == [late.attempt]
    assert state(view) == (PENDING, 1, at(minutes=5))


async def test_release_leases_frees_deliveries_and_polls(store: Store, alice: Account) -> None:
    reg = await register(store, alice, events={Q})
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    assert await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER) == [reg.task]
    await store.release_leases(NOW)
    assert await store.claim_due_deliveries(NOW, 10, 30, "w2") == [due]
    assert await store.claim_due_polls(NOW, {"sandbox": 10}, 30, OWNER) == [reg.task]


async def test_next_delivery_at_is_the_earliest_pending(store: Store, alice: Account) -> None:
    assert await store.next_delivery_at(NOW) is None
    await register(store, alice, created_at=at(seconds=30))  # no delivery: default filter
    await pending(store, alice, at(minutes=2))
    await pending(store, alice, at(minutes=1))
    assert await store.next_delivery_at(NOW) == at(minutes=1)
    assert await store.next_delivery_at(at(minutes=1)) == at(minutes=2)
    [due] = await store.claim_due_deliveries(at(minutes=1), 10, 30, "w1")
    await store.record_attempts([attempt(due, at(minutes=1), 204, status=SUCCEEDED)], "w1")
    assert await store.next_delivery_at(NOW) == at(minutes=2)


# --- redeliver and delivery history ----------------------------------------------------------


async def test_redeliver_to_all_destinations_or_one(store: Store, alice: Account) -> None:
    reg = await pending(store, alice)
    assert reg.destination is not None
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    await store.record_attempts([attempt(due, NOW, 200, status=SUCCEEDED)], "w1")

    to_all = await store.redeliver(alice.id, reg.event.id, None, at(hours=1))
    to_one = await store.redeliver(alice.id, reg.event.id, reg.destination.id, at(hours=2))
    assert await store.redeliver(alice.id, reg.event.id, "dst_unknown", at(hours=2)) == []
    assert await store.redeliver(alice.id, "evt_unknown", None, at(hours=2)) == []
    for made, when in ((to_all, at(hours=1)), (to_one, at(hours=2))):
        assert [
            (
                d.account_id,
                d.event_id,
                d.destination_id,
                d.url,
                d.status,
                d.attempt_count,
                d.next_attempt_at,
            )
            for d in made
        ] == [(alice.id, reg.event.id, reg.destination.id, HOOK_URL, PENDING, 0, when)]
    views = await store.event_deliveries(alice.id, reg.event.id)
    assert [(v.delivery.id, v.delivery.status) for v in views] == [
        (due.id, SUCCEEDED),
        (to_all[0].id, PENDING),
        (to_one[0].id, PENDING),
    ]
    assert views[1].delivery == to_all[0]

    [again] = await store.claim_due_deliveries(at(hours=1), 10, 30, "w1")
    assert (again.id, again.event_id, again.body, again.attempt_count) == (
        to_all[0].id,
        reg.event.id,
        reg.event.body,
        0,
    )


async def test_event_deliveries_list_attempts_in_order(store: Store, alice: Account) -> None:
    reg = await pending(store, alice)
    [due] = await store.claim_due_deliveries(NOW, 10, 30, "w1")
    first = attempt(due, NOW, None, status=PENDING, next_attempt_at=at(seconds=5), error="timeout")
    await store.record_attempts([first], "w1")
    [due] = await store.claim_due_deliveries(at(seconds=5), 10, 30, "w1")
    second = attempt(due, at(seconds=5), 200, status=SUCCEEDED, snippet="ok")
    await store.record_attempts([second], "w1")
    [later] = await store.redeliver(alice.id, reg.event.id, None, at(hours=1))

    views = await store.event_deliveries(alice.id, reg.event.id)
    assert [v.delivery.id for v in views] == [due.id, later.id]
    assert views[0].attempts == [first.attempt, second.attempt]
    assert (views[0].delivery.status, views[0].delivery.attempt_count) == (SUCCEEDED, 2)
    assert views[1].attempts == []
