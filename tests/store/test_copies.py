"""The contract for output copies (``relay.copies``, ``CopyStore``): written with their task in
the task's transaction, claimed under leases that never overlap, and the reads behind
announcements, retention, the copier's sleep and ``/metrics``. Runs on both backends; the
one PostgreSQL-only promise (a starting instance leaves the others' leases) is named so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from relay.copies.values import CopyState, CopyTry, OutputCopy, OutputKind
from relay.errors import DuplicateTask
from relay.models import Account, EventType, Task, TaskStatus
from relay.store import open_store
from relay.store.copy_codec import COPY_COLUMNS
from relay.store.interface import Store
from relay.store.named_sql import load_queries
from relay.transitions import Change, registered
from tests.store.conftest import BACKENDS
from tests.store.factories import (
    NOW,
    answer_change,
    at,
    current,
    event_id,
    make_account,
    new_id,
    new_task,
    register,
)

VIDEO, FRAME = OutputKind.VIDEO, OutputKind.LAST_FRAME
PENDING, STORED, FAILED, DELETED = (
    CopyState.PENDING,
    CopyState.STORED,
    CopyState.FAILED,
    CopyState.DELETED,
)


def copy_of(
    task: Task,
    kind: OutputKind = VIDEO,
    *,
    state: CopyState = PENDING,
    next_attempt_at: datetime | None = NOW,
    **fields: Any,
) -> OutputCopy:
    """A copy of one of ``task``'s files, pending and due at ``NOW`` unless told otherwise."""
    values: dict[str, Any] = {"created_at": NOW, "updated_at": NOW, **fields}
    return OutputCopy(
        id=new_id("out"),
        account_id=task.account_id,
        task_id=task.id,
        kind=kind,
        state=state,
        next_attempt_at=next_attempt_at if state is PENDING else None,
        **values,
    )


def stored_copy(task: Task, stored_at: datetime, size: int, **fields: Any) -> OutputCopy:
    return copy_of(
        task,
        state=STORED,
        attempts=1,
        object_key=f"{task.id}/video.mp4",
        size=size,
        sha256="ab" * 32,
        content_type="video/mp4",
        stored_at=stored_at,
        **fields,
    )


async def write(store: Store, task: Task, *copies: OutputCopy) -> Task:
    """Save ``copies`` with the task, as the copier and the tracker do (no event)."""
    now = await current(store, task)
    assert await store.save_task(Change(now, (), copies), now.version)
    return await current(store, now)


async def with_copies(store: Store, account: Account, *copies: Any) -> list[OutputCopy]:
    """A new task and its copies, one per ``copy_of`` field set given (a dict)."""
    task = (await register(store, account, callback_url=None, next_poll_at=None)).task
    made = [copy_of(task, **fields) for fields in copies]
    await write(store, task, *made)
    return made


def ids(copies: list[OutputCopy]) -> list[str]:
    return [c.id for c in copies]


@pytest_asyncio.fixture
async def other(store: Store, database_url: str) -> AsyncIterator[Store]:
    """A second store on the same (migrated) database: another instance."""
    s = open_store(database_url)
    yield s
    await s.close()


COPY_QUERIES = ["claim_due_copies", "get_copy", "task_copies", "stored_copies_before"]


@pytest.mark.parametrize(
    ("backend", "name"),
    [("sqlite", n) for n in [*COPY_QUERIES, "upsert_copy"]]
    + [("postgres", n) for n in [*COPY_QUERIES, "write_copies"]],
)
def test_the_copy_queries_list_the_columns_the_codec_reads(backend: str, name: str) -> None:
    """Each query that reads (or writes) a copy's row names ``COPY_COLUMNS`` in their order."""
    sql = load_queries(f"relay.store.{backend}")[name]
    assert " ".join(COPY_COLUMNS.split()) in " ".join(sql.split())


# --- written with their task -----------------------------------------------------------------


async def test_copies_are_written_with_the_task_that_creates_them_field_for_field(
    store: Store, alice: Account
) -> None:
    task = new_task(alice, status=TaskStatus.SUCCEEDED)
    change = registered(task, NOW, event_id)
    frame = copy_of(task, FRAME, announce_by=at(seconds=60))
    video = copy_of(
        task,
        attempts=3,
        next_attempt_at=at(seconds=30.123456),
        announce_by=at(seconds=60.5),
        object_key="acc/task/video.mp4",
        size=5 * 2**30,  # past a 32-bit integer
        sha256="0f" * 32,
        content_type="video/mp4",
        stored_at=at(seconds=12.25),
        error="HTTP 503 from cdn.example.com",
        deleted_at=at(days=30),
        deleted_reason="retention",
        tries=(CopyTry(at(seconds=1.5), "HTTP 503"), CopyTry(at(seconds=2.75))),
        created_at=at(seconds=0.5),
        updated_at=at(seconds=2.75),
    )
    await store.create_task(Change(change.task, change.events, (frame, video)), None)

    assert await store.get_copy(video.id) == video
    assert await store.get_copy(frame.id) == frame
    assert await store.get_copy("out_missing") is None
    assert await store.task_copies(task.id) == [video, frame]  # the video first
    assert await store.task_copies("task_missing") == []


async def test_a_duplicate_task_writes_no_copies(store: Store, alice: Account) -> None:
    first = new_task(alice, provider_task_id="cgt-same")
    await store.create_task(registered(first, NOW, event_id), None)
    second = new_task(alice, provider_task_id="cgt-same")
    change = registered(second, NOW, event_id)
    copy = copy_of(second)
    with pytest.raises(DuplicateTask):
        await store.create_task(Change(change.task, change.events, (copy,)), None)
    assert await store.get_copy(copy.id) is None


async def test_save_task_writes_copies_only_over_the_version_it_read(
    store: Store, alice: Account
) -> None:
    task = (await register(store, alice)).task
    succeeded = answer_change(task, TaskStatus.SUCCEEDED, at(seconds=5))
    video, frame = copy_of(succeeded.task), copy_of(succeeded.task, FRAME)
    with_copies_ = Change(succeeded.task, succeeded.events, (video, frame))

    assert not await store.save_task(with_copies_, task.version + 1)  # a stale read
    assert await store.task_copies(task.id) == []
    assert await store.get_copy(video.id) is None

    assert await store.save_task(with_copies_, task.version)
    assert await store.task_copies(task.id) == [video, frame]
    saved = await current(store, task)
    assert saved.status is TaskStatus.SUCCEEDED  # the task and its event went with them
    [event] = succeeded.events
    assert (await store.get_event(alice.id, event.id)) is not None

    # A second writer that read the same version loses whole: its copies are not written.
    late = replace(video, state=FAILED, next_attempt_at=None, error="late")
    assert not await store.save_task(Change(succeeded.task, (), (late,)), task.version)
    assert await store.get_copy(video.id) == video


async def test_writing_a_copy_again_updates_it_and_ends_its_lease(
    store: Store, alice: Account
) -> None:
    video, frame = await with_copies(store, alice, {}, {"kind": FRAME})
    assert ids(await store.claim_due_copies(NOW, 10, 30, "w1")) == sorted([video.id, frame.id])

    # The try failed: due again at once, written with the task.
    task = await store.get_task(alice.id, video.task_id)
    assert task is not None
    retried = replace(
        video,
        created_at=at(hours=1),  # not a field a write changes
        attempts=1,
        next_attempt_at=at(seconds=1),
        announce_by=at(seconds=50),
        error="HTTP 502",
        updated_at=at(seconds=1),
        tries=(CopyTry(at(seconds=1), "HTTP 502"),),
    )
    await write(store, task, retried)
    assert await store.get_copy(video.id) == replace(retried, created_at=video.created_at)
    # Its lease ended with the write (another claims it long before the lease would have
    # run out, and the old holder cannot renew it); the other copy's still holds.
    assert not await store.renew_copy(video.id, "w1", at(seconds=60))
    assert ids(await store.claim_due_copies(at(seconds=2), 10, 30, "w2")) == [video.id]

    # Every field a try changes is written.
    done = replace(
        retried,
        state=STORED,
        attempts=2,
        next_attempt_at=None,
        announce_by=None,
        object_key="k/video.mp4",
        size=1234,
        sha256="cd" * 32,
        content_type="video/mp4",
        stored_at=at(seconds=3),
        error=None,
        updated_at=at(seconds=3),
        tries=(*retried.tries, CopyTry(at(seconds=3))),
    )
    await write(store, task, done)
    assert await store.get_copy(video.id) == replace(done, created_at=video.created_at)
    gone = replace(
        done,
        state=DELETED,
        deleted_at=at(days=30),
        deleted_reason="asked by the account",
        updated_at=at(days=30),
    )
    await write(store, task, gone)
    assert await store.get_copy(video.id) == replace(gone, created_at=video.created_at)
    assert not await store.renew_copy(video.id, "w2", at(seconds=60))
    assert await store.renew_copy(frame.id, "w1", at(seconds=60))  # untouched, still held


async def test_a_write_that_records_no_try_leaves_a_copy_under_way_to_its_holder(
    store: Store, alice: Account
) -> None:
    """A sibling's try, or the announcement's deadline, rewrites a copy being copied: that
    must not free it for a second download."""
    video, frame = await with_copies(store, alice, {}, {"kind": FRAME})
    assert ids(await store.claim_due_copies(NOW, 10, 30, "w1")) == sorted([video.id, frame.id])
    task = await store.get_task(alice.id, video.task_id)
    assert task is not None
    await write(store, task, replace(video, announce_by=None, updated_at=at(seconds=1)))
    assert await store.claim_due_copies(at(seconds=2), 10, 30, "w2") == []
    assert await store.renew_copy(video.id, "w1", at(seconds=60))


# --- claims and leases -----------------------------------------------------------------------


async def test_a_claim_takes_due_pending_copies_longest_due_first(
    store: Store, alice: Account, bob: Account
) -> None:
    c3, c1 = await with_copies(
        store,
        alice,
        {"next_attempt_at": at(seconds=-3)},
        {"kind": FRAME, "next_attempt_at": at(seconds=-1)},
    )
    c2, later = await with_copies(
        store,
        bob,
        {"next_attempt_at": at(seconds=-2)},
        {"kind": FRAME, "next_attempt_at": at(seconds=5)},
    )
    task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
    # Settled copies are never due, whatever their times say.
    await write(
        store,
        task,
        stored_copy(task, at(seconds=-9), 10),
        copy_of(task, FRAME, state=FAILED, attempts=8),
    )

    first = await store.claim_due_copies(NOW, 2, 30, "w1")
    assert ids(first) == [c3.id, c2.id]
    assert first[0] == c3  # the copy as written
    assert ids(await store.claim_due_copies(NOW, 2, 30, "w1")) == [c1.id]
    assert await store.claim_due_copies(NOW, 2, 30, "w1") == []
    assert ids(await store.claim_due_copies(at(seconds=5), 10, 30, "w1")) == [later.id]


async def test_copies_due_together_are_claimed_in_id_order(store: Store, alice: Account) -> None:
    made = []
    for _ in range(4):
        made += await with_copies(store, alice, {})
    assert ids(await store.claim_due_copies(NOW, 10, 30, "w1")) == sorted(ids(made))


async def test_a_lease_holds_until_it_runs_out(store: Store, alice: Account) -> None:
    [copy] = await with_copies(store, alice, {})
    assert ids(await store.claim_due_copies(NOW, 10, 30, "w1")) == [copy.id]
    assert await store.claim_due_copies(at(seconds=29), 10, 30, "w2") == []
    assert await store.claim_due_copies(at(seconds=30), 10, 30, "w2") == []
    assert ids(await store.claim_due_copies(at(seconds=31), 10, 30, "w2")) == [copy.id]
    assert not await store.renew_copy(copy.id, "w1", at(seconds=90))  # w2's now
    assert await store.claim_due_copies(at(seconds=60), 10, 30, "w1") == []


async def test_only_the_owner_renews_a_lease_and_only_while_pending(
    store: Store, alice: Account
) -> None:
    [copy] = await with_copies(store, alice, {})
    assert not await store.renew_copy(copy.id, "w1", at(seconds=90))  # nobody's yet
    await store.claim_due_copies(NOW, 10, 30, "w1")
    assert not await store.renew_copy(copy.id, "w2", at(seconds=90))
    assert not await store.renew_copy("out_missing", "w1", at(seconds=90))
    assert await store.renew_copy(copy.id, "w1", at(seconds=90))
    assert await store.claim_due_copies(at(seconds=60), 10, 30, "w2") == []  # renewed
    assert ids(await store.claim_due_copies(at(seconds=91), 10, 30, "w2")) == [copy.id]

    # Settled, there is nothing left to hold, even for the owner.
    [failed] = await with_copies(store, alice, {})
    await store.claim_due_copies(NOW, 10, 30, "w1")
    task = await store.get_task(alice.id, failed.task_id)
    assert task is not None
    await write(store, task, replace(failed, state=FAILED, next_attempt_at=None, attempts=8))
    assert not await store.renew_copy(failed.id, "w1", at(seconds=90))


async def test_release_copy_drops_only_the_owner_s_lease_and_nothing_else(
    store: Store, alice: Account
) -> None:
    [copy] = await with_copies(store, alice, {"announce_by": at(seconds=60)})
    [claimed] = await store.claim_due_copies(NOW, 10, 30, "w1")
    await store.release_copy(copy.id, "w2")  # not w2's to drop
    assert await store.claim_due_copies(at(seconds=1), 10, 30, "w2") == []
    await store.release_copy(copy.id, "w1")
    assert await store.get_copy(copy.id) == copy == claimed
    assert ids(await store.claim_due_copies(at(seconds=1), 10, 30, "w2")) == [copy.id]
    assert not await store.renew_copy(copy.id, "w1", at(seconds=90))


async def test_concurrent_claims_never_return_the_same_copy(store: Store, alice: Account) -> None:
    made = []
    for i in range(12):
        made += await with_copies(
            store, alice, {"next_attempt_at": at(seconds=-i)}, {"kind": FRAME}
        )
    claims = await asyncio.gather(*(store.claim_due_copies(NOW, 3, 30, f"w{i}") for i in range(8)))
    claimed = [c.id for claim in claims for c in claim]
    assert len(claimed) == len(set(claimed)) == 24
    assert sorted(claimed) == sorted(ids(made))


async def test_two_instances_never_claim_the_same_copy(
    store: Store, other: Store, alice: Account
) -> None:
    made = []
    for i in range(16):
        made += await with_copies(
            store, alice, {"next_attempt_at": at(seconds=-i)}, {"kind": FRAME}
        )
    claims = await asyncio.gather(
        *(s.claim_due_copies(NOW, 3, 30, f"w{i}") for i, s in enumerate([store, other] * 5))
    )
    claimed = [c.id for claim in claims for c in claim]
    assert len(claimed) == len(set(claimed))
    rest = await other.claim_due_copies(NOW, 100, 30, "w9")
    assert sorted(claimed + ids(rest)) == sorted(ids(made))


async def test_release_leases_frees_the_copies_this_store_leased(
    store: Store, alice: Account
) -> None:
    [copy] = await with_copies(store, alice, {})
    [claimed] = await store.claim_due_copies(NOW, 10, 30, "w1")
    await store.release_leases(at(seconds=1))
    assert await store.get_copy(copy.id) == claimed == copy
    assert ids(await store.claim_due_copies(at(seconds=1), 10, 30, "w2")) == [copy.id]


@pytest_asyncio.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with BACKENDS["postgresql"](tmp_path) as url:
        yield url


async def test_on_postgres_release_leases_frees_only_this_store_s_copy_leases(
    pg_url: str,
) -> None:
    live, starting = open_store(pg_url), open_store(pg_url)
    try:
        await live.migrate()
        alice = await make_account(live, "alice")
        mine, its = await with_copies(live, alice, {}, {"kind": FRAME})
        assert ids(await live.claim_due_copies(NOW, 1, 30, "w1")) == [mine.id]
        assert ids(await starting.claim_due_copies(NOW, 1, 30, "w2")) == [its.id]
        await starting.release_leases(NOW)  # its own only
        assert ids(await starting.claim_due_copies(NOW, 10, 30, "w2")) == [its.id]
        await live.release_leases(NOW)
        assert ids(await starting.claim_due_copies(NOW, 10, 30, "w2")) == [mine.id]
    finally:
        await live.close()
        await starting.close()


# --- what the copier, the announcer and retention read ---------------------------------------


async def test_due_announcements_name_each_waiting_task_once_longest_waiting_first(
    store: Store, alice: Account, bob: Account
) -> None:
    a_video, _ = await with_copies(
        store,
        alice,
        {"announce_by": at(seconds=-10)},
        {"kind": FRAME, "announce_by": at(seconds=-10)},
    )
    [b_video] = await with_copies(store, bob, {"announce_by": at(seconds=-20)})
    [c_video] = await with_copies(store, alice, {"announce_by": at(seconds=10)})
    await with_copies(store, alice, {})  # not waited for

    assert await store.due_announcements(NOW, 10) == [
        (bob.id, b_video.task_id),
        (alice.id, a_video.task_id),
    ]
    assert await store.due_announcements(NOW, 1) == [(bob.id, b_video.task_id)]
    assert await store.due_announcements(at(seconds=-15), 10) == [(bob.id, b_video.task_id)]
    assert (alice.id, c_video.task_id) in await store.due_announcements(at(seconds=10), 10)

    # Announced: the copies no longer wait.
    task = await store.get_task(bob.id, b_video.task_id)
    assert task is not None
    await write(store, task, replace(b_video, announce_by=None))
    assert await store.due_announcements(NOW, 10) == [(alice.id, a_video.task_id)]


async def test_stored_copies_before_are_the_oldest_stored_ones(
    store: Store, alice: Account
) -> None:
    stored = []
    for days in (-3, -1, -2, -0.25):
        task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
        copy = stored_copy(task, at(days=days), 100)
        stored.append(copy)
        await write(store, task, copy)
    task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
    old = stored_copy(task, at(days=-5), 100)
    await write(
        store,
        task,
        replace(old, state=DELETED, deleted_at=at(days=-4), deleted_reason="retention"),
        copy_of(task, FRAME, state=FAILED),
    )
    three, one, two, _recent = stored

    assert await store.stored_copies_before(at(hours=-12), 2) == [three, two]
    assert await store.stored_copies_before(at(hours=-12), 10) == [three, two, one]
    assert await store.stored_copies_before(at(days=-3), 10) == []


async def test_next_copy_at_is_the_next_try_or_announcement_after_a_time(
    store: Store, alice: Account
) -> None:
    assert await store.next_copy_at(NOW) is None
    await with_copies(store, alice, {"next_attempt_at": at(seconds=30)})
    await with_copies(store, alice, {"next_attempt_at": at(seconds=-5)})  # due: the claim's
    assert await store.next_copy_at(NOW) == at(seconds=30)
    await with_copies(store, alice, {"announce_by": at(seconds=10)})
    assert await store.next_copy_at(NOW) == at(seconds=10)
    assert await store.next_copy_at(at(seconds=10)) == at(seconds=30)
    assert await store.next_copy_at(at(seconds=30)) is None
    # A settled copy is never tried again, whatever time it carries.
    task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
    settled = replace(stored_copy(task, at(seconds=-1), 10), next_attempt_at=at(seconds=20))
    await write(store, task, settled)
    assert await store.next_copy_at(at(seconds=10)) == at(seconds=30)


# --- /metrics --------------------------------------------------------------------------------


async def test_metrics_count_copies_by_state_and_the_bytes_stored(
    store: Store, alice: Account
) -> None:
    empty = await store.metrics_snapshot(NOW)
    assert (dict(empty.copies), empty.stored_bytes) == ({}, 0)

    await with_copies(store, alice, {}, {"kind": FRAME})
    for size in (5 * 2**30, 1000):
        task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
        await write(store, task, stored_copy(task, NOW, size))
    task = (await register(store, alice, callback_url=None, next_poll_at=None)).task
    gone = replace(stored_copy(task, NOW, 777), state=DELETED, deleted_at=at(seconds=1))
    await write(store, task, gone, copy_of(task, FRAME, state=FAILED, attempts=8))

    snapshot = await store.metrics_snapshot(at(seconds=2))
    assert dict(snapshot.copies) == {PENDING: 2, STORED: 2, FAILED: 1, DELETED: 1}
    assert snapshot.stored_bytes == 5 * 2**30 + 1000  # a deleted copy holds none


async def test_events_of_the_change_are_written_with_its_copies(
    store: Store, alice: Account
) -> None:
    """A change with events and copies writes both (the outbox, with its fan-out)."""
    reg = await register(store, alice, events={EventType.TASK_SUCCEEDED})
    succeeded = answer_change(reg.task, TaskStatus.SUCCEEDED, at(seconds=5))
    copy = copy_of(succeeded.task)
    assert await store.save_task(
        Change(succeeded.task, succeeded.events, (copy,)), reg.task.version
    )
    [event] = succeeded.events
    assert [v.delivery.event_id for v in await store.event_deliveries(alice.id, event.id)] == [
        event.id
    ]
    assert await store.task_copies(reg.task.id) == [copy]
