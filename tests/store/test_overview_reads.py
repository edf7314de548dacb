"""The overview role on both backends: per-status counts that stop at their cap, the latest
tasks and deliveries (with their attempts), an account's backlog, and the provider task id
lookup; each only the account's."""

from __future__ import annotations

from relay.models import Account, DeliveryStatus, TaskStatus
from relay.store.interface import Store
from tests.store.factories import NOW, advance, at, attempt, current, pending, register


async def test_counts_stop_at_the_cap_and_are_the_accounts(
    store: Store, alice: Account, bob: Account
) -> None:
    assert dict(await store.count_tasks_capped(alice.id, 10)) == {}
    tasks = [(await register(store, alice, callback_url=None)).task for _ in range(4)]
    await register(store, bob, callback_url=None)
    await advance(store, tasks[0], TaskStatus.FAILED, at(seconds=1))
    assert dict(await store.count_tasks_capped(alice.id, 10)) == {
        TaskStatus.QUEUED: 3,
        TaskStatus.FAILED: 1,
    }
    assert dict(await store.count_tasks_capped(alice.id, 2)) == {
        TaskStatus.QUEUED: 2,
        TaskStatus.FAILED: 1,
    }
    assert dict(await store.count_tasks_capped(bob.id, 10)) == {TaskStatus.QUEUED: 1}


async def test_recent_tasks_are_the_newest_first_up_to_the_limit(
    store: Store, alice: Account, bob: Account
) -> None:
    first = (await register(store, alice, callback_url=None)).task
    second = (await register(store, alice, callback_url=None, created_at=at(minutes=1))).task
    await register(store, bob, callback_url=None)
    await advance(store, first, TaskStatus.SUCCEEDED, at(minutes=2))
    samples = await store.recent_tasks(alice.id, 10)
    assert [(s.status, s.created_at) for s in samples] == [
        (TaskStatus.QUEUED, at(minutes=1)),
        (TaskStatus.SUCCEEDED, NOW),
    ]
    assert samples[1].completed_at == at(minutes=2)
    assert samples[0].completed_at is None
    assert samples[0].provider == second.provider
    assert len(await store.recent_tasks(alice.id, 1)) == 1


async def test_recent_deliveries_carry_their_attempts(
    store: Store, alice: Account, bob: Account
) -> None:
    await pending(store, alice, when=NOW)
    await pending(store, bob, when=NOW, key="https://other.example.com")
    before = await store.recent_deliveries(alice.id, 10)
    assert [(s.status, s.latency_ms, s.outcome) for s in before] == [
        (DeliveryStatus.PENDING, None, None)
    ]
    claimed = await store.claim_due_deliveries(at(seconds=1), 10, 60, "me")
    mine = [d for d in claimed if d.account_id == alice.id]
    assert len(mine) == 1
    await store.record_attempts(
        [attempt(mine[0], at(seconds=1), 200, status=DeliveryStatus.SUCCEEDED)], "me"
    )
    after = await store.recent_deliveries(alice.id, 10)
    assert [(s.status, s.latency_ms, s.outcome) for s in after] == [
        (DeliveryStatus.SUCCEEDED, 42.5, "HTTP 200")
    ]
    assert after[0].event_created_at == NOW
    assert await store.recent_deliveries(alice.id, 0) == []


async def test_the_backlog_is_the_accounts_due_and_unleased_deliveries(
    store: Store, alice: Account, bob: Account
) -> None:
    assert (await store.account_backlog(alice.id, NOW, 10)).due == 0
    await pending(store, bob, when=NOW, key="https://other.example.com")
    await pending(store, alice, when=at(seconds=10))
    await pending(store, alice, when=at(seconds=20), key="https://third.example.com")
    await pending(store, alice, when=at(minutes=5), key="https://fourth.example.com")
    backlog = await store.account_backlog(alice.id, at(seconds=30), 10)
    assert (backlog.due, backlog.oldest_due_at) == (2, at(seconds=10))
    capped = await store.account_backlog(alice.id, at(seconds=30), 1)
    assert (capped.due, capped.oldest_due_at) == (1, at(seconds=10))
    await store.claim_due_deliveries(at(seconds=30), 10, 60, "me")
    assert (await store.account_backlog(alice.id, at(seconds=31), 10)).due == 0


async def test_a_provider_task_id_finds_only_the_accounts_task(
    store: Store, alice: Account, bob: Account
) -> None:
    mine = (await register(store, alice, callback_url=None, provider_task_id="cgt-1")).task
    await register(store, bob, callback_url=None, provider_task_id="cgt-2")
    found = await store.tasks_with_provider_task_id(alice.id, "cgt-1", ["other", "sandbox"])
    assert found == [mine.id]
    assert await store.tasks_with_provider_task_id(alice.id, "cgt-2", ["sandbox"]) == []
    assert await store.tasks_with_provider_task_id(alice.id, "cgt-1", []) == []
    assert (await current(store, mine)).provider == "sandbox"
