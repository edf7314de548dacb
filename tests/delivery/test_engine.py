"""The delivery engine against a real SQLite store, the relay's transport and a real receiver
on loopback (the end-to-end suite covers the same engine inside a running relay)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from relay.clock import SystemClock
from relay.delivery.engine import DeliveryEngine, EngineSettings
from relay.delivery.outcomes import RetryPolicy
from relay.errors import StoreError
from relay.ids import new_id
from relay.models import Account, Destination, DueDelivery, Task, TaskStatus
from relay.net.transport import RelayTransport
from relay.signing import generate_webhook_secret
from relay.store.interface import ClaimLimits, Store
from relay.store.values import AttemptRecord
from relay.transitions import registered
from tests.delivery.doubles import DeliveryStoreOver
from tests.e2e.harness import Receiver, Reply, eventually


async def write_succeeded_tasks(store: Store, url: str, n: int) -> tuple[str, list[str]]:
    """``n`` tasks whose task.succeeded event is due to ``url`` now: (account, event ids)."""
    now = datetime.now(UTC)
    account = Account(id=new_id("acct"), name="t", created_at=now)
    await store.create_account(account, new_id("hash"), generate_webhook_secret())
    event_ids = []
    for _ in range(n):
        task = Task(
            id=new_id("task"),
            account_id=account.id,
            provider="sandbox",
            provider_task_id=new_id("cgt"),
            status=TaskStatus.SUCCEEDED,
            created_at=now,
            updated_at=now,
            callback_url=url,
        )
        change = registered(task, now, lambda: new_id("evt"))
        await store.create_task(
            change,
            Destination(
                id=new_id("dst"),
                account_id=account.id,
                kind="callback",
                url=url,
                key="one-key",
                event_types=None,
                task_id=task.id,
            ),
        )
        event_ids.append(change.events[0].id)
    return account.id, event_ids


async def test_a_delivery_that_waited_out_its_lease_is_not_sent_twice(store: Store) -> None:
    # One destination, one request at a time, each answer (0.45 s) longer than what is left
    # of a queued delivery's lease once a whole attempt (timeout 0.5 s) is set aside: the
    # deliveries queued behind the first must be left to be claimed again when their lease
    # ends, not sent on a lease another claim is about to take.
    async with Receiver() as receiver:
        receiver.default = Reply(204, delay=0.45)
        account_id, events = await write_succeeded_tasks(store, receiver.url, 4)
        transport = RelayTransport(max_connections=8)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="test",
            settings=EngineSettings(
                timeout=0.5,
                max_in_flight=8,
                max_in_flight_per_destination=1,
                lease_seconds=1.0,
                retry=RetryPolicy(schedule=(0.1,), jitter=0),
            ),
        )
        try:
            engine.wake()
            await receiver.wait_for(4, within=10)
            await receiver.quiet_for(1.0)
        finally:
            await engine.stop(grace=1)
            await transport.aclose()
        received = Counter(r.webhook_id for r in receiver.requests)
        assert received == Counter(events)  # each event exactly once
        assert receiver.max_in_flight == 1

        async def all_recorded() -> bool:
            views = [await store.event_deliveries(account_id, e) for e in events]
            return all(v[0].delivery.status.value == "succeeded" for v in views)

        await eventually(all_recorded, within=2, what="every delivery recorded as succeeded")


async def test_stop_lets_attempts_in_flight_finish_and_starts_no_more(store: Store) -> None:
    async with Receiver() as receiver:
        receiver.default = Reply(204, delay=0.3)
        account_id, events = await write_succeeded_tasks(store, receiver.url, 6)
        transport = RelayTransport(max_connections=8)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="test",
            settings=EngineSettings(timeout=2, max_in_flight=8, max_in_flight_per_destination=2),
        )
        try:
            engine.wake()
            await receiver.wait_for(2, within=5)  # two in flight, four waiting their turn
            await engine.stop(grace=5)
            sent = len(receiver.requests)
            await receiver.quiet_for(0.8)  # nothing is sent after stop() returned
        finally:
            await transport.aclose()
        assert sent == 2
        # The two attempts in flight finished and were recorded; the rest wait, pending.
        statuses = sorted(
            [(await store.event_deliveries(account_id, e))[0].delivery.status.value for e in events]
        )
        assert statuses == ["pending"] * 4 + ["succeeded"] * 2


class Outage(DeliveryStoreOver):
    """The delivery engine's store role (``DeliveryStore``), except that its first
    ``failures`` writes of attempt records (with their claims) fail as a database that is
    down does."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store)
        self.failures = failures
        self.refused: list[int] = []

    def _refuse(self, records: Sequence[AttemptRecord]) -> None:
        if self.failures > 0:
            self.failures -= 1
            self.refused.append(len(records))
            raise StoreError("PostgreSQL: no connection within 5 s")

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        self._refuse(records)
        await super().record_attempts(records, owner)

    async def record_and_claim(
        self,
        records: Sequence[AttemptRecord],
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        if records:
            self._refuse(records)
        return await super().record_and_claim(
            records, owner, now, limit, lease_seconds, limits=limits
        )


async def test_attempts_the_database_refused_are_recorded_once_it_is_back(store: Store) -> None:
    """Records that fail are written again while their leases hold, so a database that
    comes back within a lease costs no second send."""
    async with Receiver() as receiver:
        receiver.default = Reply(204)
        account_id, events = await write_succeeded_tasks(store, receiver.url, 3)
        outage = Outage(store, failures=3)
        transport = RelayTransport(max_connections=8)
        engine = DeliveryEngine(
            store=outage,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="test",
            settings=EngineSettings(timeout=1, max_in_flight=8, lease_seconds=10.0),
        )
        try:
            engine.wake()
            await receiver.wait_for(3, within=5)

            async def all_recorded() -> bool:
                views = [await store.event_deliveries(account_id, e) for e in events]
                return all(v[0].delivery.status.value == "succeeded" for v in views)

            await eventually(all_recorded, within=5, what="every attempt recorded")
        finally:
            await engine.stop(grace=1)
            await transport.aclose()
        assert outage.failures == 0
        assert sum(outage.refused) >= 3, outage.refused
        assert Counter(r.webhook_id for r in receiver.requests) == Counter(events)
        for event_id in events:
            [view] = await store.event_deliveries(account_id, event_id)
            assert [a.number for a in view.attempts] == [1]


class Relabel:
    """A refresher that marks what it rewrote; it is asked only about expired URLs."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def needs_refresh(self, d: DueDelivery, now: datetime) -> bool:
        return d.url_expires_at is not None and d.url_expires_at <= now

    async def body_for(self, d: DueDelivery) -> str:
        self.asked.append(d.event_id)
        envelope = json.loads(d.body)
        envelope["relay_notice"] = {"code": "video_url_refreshed", "message": "test"}
        return json.dumps(envelope)


async def test_a_late_send_signs_and_sends_the_refreshed_body(store: Store) -> None:
    async with Receiver() as receiver:
        now = datetime.now(UTC)
        account = Account(id=new_id("acct"), name="t", created_at=now)
        secret = generate_webhook_secret()
        await store.create_account(account, new_id("hash"), secret)
        events = {}
        for expires in (now - timedelta(hours=1), now + timedelta(hours=1)):
            task = Task(
                id=new_id("task"),
                account_id=account.id,
                provider="sandbox",
                provider_task_id=new_id("cgt"),
                status=TaskStatus.SUCCEEDED,
                created_at=now,
                updated_at=now,
                callback_url=receiver.url,
                video_url="https://cdn.example.com/v.mp4",
                video_url_expires_at=expires,
            )
            change = registered(task, now, lambda: new_id("evt"))
            await store.create_task(
                change,
                Destination(
                    id=new_id("dst"),
                    account_id=account.id,
                    kind="callback",
                    url=receiver.url,
                    key="one-key",
                    event_types=None,
                    task_id=task.id,
                ),
            )
            events[expires < now] = change.events[0]
        refresh = Relabel()
        transport = RelayTransport(max_connections=8)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="test",
            refresh=refresh,
            settings=EngineSettings(timeout=2),
        )
        try:
            engine.wake()
            await receiver.wait_for(2, within=5)
        finally:
            await engine.stop(grace=2)
            await transport.aclose()
        assert refresh.asked == [events[True].id]
        bodies = {
            r.webhook_id: Webhook(secret).verify(r.body, r.headers) for r in receiver.requests
        }
        assert bodies[events[True].id]["relay_notice"]["code"] == "video_url_refreshed"
        assert bodies[events[True].id]["id"] == events[True].id
        assert receiver.with_id(events[False].id)[0].body == events[False].body.encode()


class SlowRefresh(Relabel):
    """A refresher whose first answer takes ``delay`` seconds (a slow provider)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def needs_refresh(self, d: DueDelivery, now: datetime) -> bool:
        return True

    async def body_for(self, d: DueDelivery) -> str:
        if not self.asked:
            await asyncio.sleep(self.delay)
        return await super().body_for(d)


async def test_a_send_never_starts_on_a_lease_that_may_run_out_under_it(store: Store) -> None:
    # Lease 1 s, timeout 0.5 s; the video URL's refresh takes 0.7 s and the receiver 0.45 s:
    # sent after the refresh, the POST would outlive the lease, and the delivery, claimed
    # again meanwhile, would be sent twice without any crash.
    async with Receiver() as receiver:
        receiver.default = Reply(204, delay=0.45)
        account_id, [event_id] = await write_succeeded_tasks(store, receiver.url, 1)
        transport = RelayTransport(max_connections=8)
        refresh = SlowRefresh(0.7)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="test",
            refresh=refresh,
            settings=EngineSettings(
                timeout=0.5, lease_seconds=1.0, retry=RetryPolicy(schedule=(0.1,), jitter=0)
            ),
        )
        try:
            engine.wake()
            await receiver.wait_for(1, within=5)
            await receiver.quiet_for(1.5)
        finally:
            await engine.stop(grace=1)
            await transport.aclose()
        assert [r.webhook_id for r in receiver.requests] == [event_id]
        assert refresh.asked == [event_id, event_id]  # asked again by the second claim
        [view] = await store.event_deliveries(account_id, event_id)
        assert [a.number for a in view.attempts] == [1]
