"""``relay subscriptions disable | enable``: stopping a subscription and sending to it again,
with what it missed replayed (or not), through click's ``CliRunner`` against a real SQLite
file prepared through the Store API."""

from __future__ import annotations

import re

from relay.models import Account, DeliveryStatus, SubscriptionStatus
from relay.store.interface import Store
from tests.store.factories import register
from tests.test_cli_replay import SUB_URL, T0, Db, at, db, deliveries_to, subscribe

__all__ = ["db"]  # the fixture, imported to be used here

ALICE = Account("acc_alice", "alice", T0)


def _status(db: Db, sub_id: str) -> SubscriptionStatus:
    sub = db.store(lambda s: s.get_subscription("acc_alice", sub_id))
    assert sub is not None
    return sub.status


def test_disable_stops_a_subscription_and_enable_replays_what_it_missed(db: Db) -> None:
    async def prepare(store: Store) -> tuple[str, str]:
        sub = await subscribe(store)
        first = await register(store, ALICE, callback_url=None, created_at=at(0))
        return sub.id, first.event.id

    sub_id, first = db.store(prepare)
    assert deliveries_to(db, sub_id, [first]) == {first: [DeliveryStatus.PENDING]}

    off = db.relay("subscriptions", "disable", sub_id, "-a", "acc_alice", "--reason", "moving")
    assert off.exit_code == 0, off.output
    assert off.stdout == f"disabled {sub_id} ({SUB_URL}): moving\n"
    assert _status(db, sub_id) is SubscriptionStatus.DISABLED
    assert deliveries_to(db, sub_id, [first]) == {first: [DeliveryStatus.STOPPED]}
    listed = db.relay("subscriptions", "list", "-a", "acc_alice").stdout
    assert re.search(rf"^{sub_id}\s+disabled\s.*: moving$", listed, re.MULTILINE), listed

    # While it is disabled, new events are not fanned out to it.
    second = db.store(lambda s: register(s, ALICE, callback_url=None, created_at=at(5))).event.id
    assert deliveries_to(db, sub_id, [second]) == {second: []}

    on = db.relay("subscriptions", "enable", sub_id, "-a", "acc_alice")
    assert on.exit_code == 0, on.output
    lines = on.stdout.splitlines()
    assert lines[0] == f"enabled {sub_id} ({SUB_URL})"
    assert re.fullmatch(r"replayed 2 events it missed since \S+Z", lines[1]), lines
    assert f"replaying to {sub_id}" in on.stderr  # the progress bar, off a terminal
    assert _status(db, sub_id) is SubscriptionStatus.ACTIVE
    assert deliveries_to(db, sub_id, [first, second]) == {
        first: [DeliveryStatus.STOPPED, DeliveryStatus.PENDING],
        second: [DeliveryStatus.PENDING],
    }


def test_enable_without_replay_sends_only_new_events(db: Db) -> None:
    async def prepare(store: Store) -> tuple[str, str]:
        sub = await subscribe(store)
        first = await register(store, ALICE, callback_url=None, created_at=at(0))
        await store.disable_subscription("acc_alice", sub.id, "the receiver answered 410", at(1))
        return sub.id, first.event.id

    sub_id, first = db.store(prepare)
    on = db.relay("subscriptions", "enable", sub_id, "-a", "acc_alice", "--no-replay")
    assert on.exit_code == 0, on.output
    assert on.stdout.splitlines()[1].endswith("not replayed (--no-replay)")
    assert deliveries_to(db, sub_id, [first]) == {first: [DeliveryStatus.STOPPED]}
    later = db.store(lambda s: register(s, ALICE, callback_url=None, created_at=at(9))).event.id
    assert deliveries_to(db, sub_id, [later]) == {later: [DeliveryStatus.PENDING]}


def test_enable_and_disable_refuse_unknown_subscriptions_and_accounts(db: Db) -> None:
    bobs = db.store(lambda s: subscribe(s, account_id="acc_bob")).id
    for command in ("enable", "disable"):
        for sub_id in ("sub_nope", bobs):  # another account's subscription does not exist
            result = db.relay("subscriptions", command, sub_id, "-a", "acc_alice")
            assert (result.exit_code, result.stdout, result.stderr) == (
                1,
                "",
                f"error: no subscription {sub_id} in account acc_alice\n",
            ), (command, sub_id)
        nobody = db.relay("subscriptions", command, bobs, "-a", "acc_nobody")
        assert nobody.exit_code == 1
        assert nobody.stderr.startswith("error: no account acc_nobody")
    assert _status_of(db, bobs) is SubscriptionStatus.ACTIVE  # nothing changed


def _status_of(db: Db, sub_id: str) -> SubscriptionStatus:
    sub = db.store(lambda s: s.get_subscription("acc_bob", sub_id))
    assert sub is not None
    return sub.status
