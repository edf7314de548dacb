"""The usage role on both backends: costs written with their task read back exactly, only
the account's, only within the window; budgets set, replaced and cleared."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from relay.models import Account, TaskStatus
from relay.pricing import Budget, Cost, Period
from relay.store.interface import Store
from relay.transitions import Change
from tests.store.factories import NOW, at, current, make_account, register


async def finish(store: Store, account: Account, amount: str | None, seconds: float) -> str:
    """A task that succeeded ``seconds`` after NOW, costing ``amount`` USD (None: no cost)."""
    task = (await register(store, account, callback_url=None, next_poll_at=None)).task
    now = await current(store, task)
    done = replace(
        now,
        status=TaskStatus.SUCCEEDED,
        completed_at=at(seconds=seconds),
        updated_at=at(seconds=seconds),
        model="m",
        route="r" if amount == "0.3333" else None,
        cost=None if amount is None else Cost(Decimal(amount), "USD", f"{amount} basis"),
    )
    assert await store.save_task(Change(done), now.version)
    return task.id


async def test_costs_read_back_exactly_for_the_account_and_the_window(
    store: Store, alice: Account
) -> None:
    bob = await make_account(store, "bob")
    await finish(store, alice, "0.1525", 10)
    await finish(store, alice, "0.3333", 20)
    await finish(store, alice, None, 30)  # no price: not in usage
    await finish(store, alice, "9.0000", 5000)  # after the window
    await finish(store, bob, "1.0000", 10)
    spent = await store.task_costs(alice.id, NOW, at(seconds=3600))
    assert [(s.cost.amount, s.cost.currency, s.cost.basis) for s in spent] == [
        (Decimal("0.1525"), "USD", "0.1525 basis"),
        (Decimal("0.3333"), "USD", "0.3333 basis"),
    ]
    assert [(s.completed_at, s.model, s.route) for s in spent] == [
        (at(seconds=10), "m", None),
        (at(seconds=20), "m", "r"),
    ]
    assert [s.cost.amount for s in await store.task_costs(bob.id, NOW, at(hours=1))] == [
        Decimal("1.0000")
    ]
    # [since, until): a task finished at until is the next window's.
    assert await store.task_costs(alice.id, at(seconds=11), at(seconds=20)) == []


async def test_a_budget_is_set_replaced_and_cleared(store: Store, alice: Account) -> None:
    assert await store.get_budget(alice.id) is None
    daily = Budget(Period.DAY, Decimal("0.55"), "USD")
    await store.set_budget(alice.id, daily, NOW)
    assert await store.get_budget(alice.id) == daily
    monthly = Budget(Period.MONTH, Decimal("1000"), "EUR")
    await store.set_budget(alice.id, monthly, at(seconds=1))
    assert await store.get_budget(alice.id) == monthly
    await store.set_budget(alice.id, None, at(seconds=2))
    assert await store.get_budget(alice.id) is None


async def test_only_unfinished_tasks_estimates_are_read(store: Store, alice: Account) -> None:
    bob = await make_account(store, "bob")
    estimate = Cost(Decimal("0.3000"), "USD", "estimated at submission")
    for account, amount in ((alice, "0.3000"), (alice, "0.1250"), (bob, "7")):
        await register(
            store,
            account,
            callback_url=None,
            next_poll_at=None,
            estimate=replace(estimate, amount=Decimal(amount)),
        )
    await register(store, alice, callback_url=None, next_poll_at=None)  # no estimate
    # A task that failed with an estimate costs nothing: it is no longer read.
    ended = (
        await register(
            store,
            alice,
            callback_url=None,
            next_poll_at=None,
            estimate=replace(estimate, amount=Decimal(5)),
        )
    ).task
    now = await current(store, ended)
    failed = replace(now, status=TaskStatus.FAILED, completed_at=at(seconds=9))
    assert await store.save_task(Change(failed), now.version)
    assert sorted(await store.open_estimates(alice.id)) == [
        (Decimal("0.1250"), "USD"),
        (Decimal("0.3000"), "USD"),
    ]
    assert await store.open_estimates(bob.id) == [(Decimal("7"), "USD")]
