"""The delivery engine claiming ahead for a quick destination (``relay.delivery.fairness``,
rule 6), against a real SQLite store, the relay's transport and a real receiver on loopback:
more claimed than the destination's cap, never more than the cap sent at once, each event
once, and what waits for its turn when the engine stops is sent after a restart."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from relay.clock import SystemClock
from relay.delivery.engine import DeliveryEngine, EngineSettings
from relay.models import DueDelivery
from relay.net.transport import RelayTransport
from relay.store.interface import ClaimLimits, Store
from relay.store.values import AttemptRecord
from tests.delivery.doubles import DeliveryStoreOver
from tests.delivery.test_engine import write_succeeded_tasks
from tests.e2e.harness import Receiver, Reply, eventually

KEY = "one-key"
"""The destination key of every delivery ``write_succeeded_tasks`` writes."""


class Claims(DeliveryStoreOver):
    """The engine's store role (``DeliveryStore``), noting how many deliveries of ``KEY``
    each of its claims could take."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.caps: list[float] = []

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        self._note(limits)
        return await super().claim_due_deliveries(now, limit, lease_seconds, owner, limits=limits)

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
        self._note(limits)
        return await super().record_and_claim(
            records, owner, now, limit, lease_seconds, limits=limits
        )

    def _note(self, limits: ClaimLimits | None) -> None:
        if limits is not None:
            self.caps.append(limits.destination_cap(KEY, None))


def engine_for(store: Claims | Store, transport: RelayTransport, owner: str) -> DeliveryEngine:
    return DeliveryEngine(
        store=store,
        transport=transport,
        clock=SystemClock(),
        rng=random.Random(1),
        owner=owner,
        # A 300 s lease and 2 s attempts: two caps' worth may be claimed ahead.
        settings=EngineSettings(timeout=2, max_in_flight=16, max_in_flight_per_destination=2),
    )


async def test_a_quick_destination_is_claimed_ahead_yet_never_sent_more_than_its_cap(
    store: Store,
) -> None:
    async with Receiver() as receiver:
        receiver.default = Reply(204, delay=0.05)
        account_id, events = await write_succeeded_tasks(store, receiver.url, 24)
        claims = Claims(store)
        transport = RelayTransport(max_connections=16)
        engine = engine_for(claims, transport, "test")
        try:
            engine.wake()
            await receiver.wait_for(24, within=20)
            await receiver.quiet_for(0.3)
        finally:
            await engine.stop(grace=2)
            await transport.aclose()
    assert Counter(r.webhook_id for r in receiver.requests) == Counter(events)
    assert receiver.max_in_flight == 2
    # Once it answered quickly, a claim could take up to its cap and two caps more.
    assert max(claims.caps) == 6, claims.caps

    async def all_recorded() -> bool:
        views = [await store.event_deliveries(account_id, e) for e in events]
        return all(v[0].delivery.status.value == "succeeded" for v in views)

    await eventually(all_recorded, within=2, what="every delivery recorded as succeeded")


async def test_sends_waiting_for_their_turn_at_a_stop_are_handed_back_and_sent_once(
    store: Store,
) -> None:
    async with Receiver() as receiver:
        receiver.default = Reply(204, delay=0.3)
        account_id, events = await write_succeeded_tasks(store, receiver.url, 12)
        transport = RelayTransport(max_connections=16)
        claims = Claims(store)
        engine = engine_for(claims, transport, "first")
        try:
            engine.wake()
            await receiver.wait_for(4, within=10)  # quick by now: claims took sends ahead
            await engine.stop(grace=5)
            sent = len(receiver.requests)
            await receiver.quiet_for(0.8)  # nothing is sent after stop() returned
        finally:
            await transport.aclose()
        assert max(claims.caps) > 2, claims.caps
        statuses = Counter(
            [(await store.event_deliveries(account_id, e))[0].delivery.status.value for e in events]
        )
        assert statuses == {"succeeded": sent, "pending": len(events) - sent}
        # Handed back at the stop: another instance (no release of leases at its start)
        # sends the rest at once, and once.
        transport = RelayTransport(max_connections=16)
        engine = engine_for(store, transport, "second")
        try:
            engine.wake()
            await receiver.wait_for(len(events), within=10)
            await receiver.quiet_for(0.5)
        finally:
            await engine.stop(grace=2)
            await transport.aclose()
    assert Counter(r.webhook_id for r in receiver.requests) == Counter(events)
