"""What a stopping delivery engine hands back (``DeliveryStore.release_deliveries``): the
deliveries a cycle claimed as it stopped, due again at once for another instance. A real
SQLite store, the relay's transport and a real receiver on loopback."""

from __future__ import annotations

import asyncio
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
from tests.e2e.harness import Receiver, Reply


class HeldClaim(DeliveryStoreOver):
    """The engine's store role (``DeliveryStore``) over a real store, whose first claim that
    takes something is held, leased already, until ``go`` is set: the cycle is under way
    when the engine is told to stop."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.claimed = asyncio.Event()
        self.go = asyncio.Event()

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        return await self._hold(
            await super().claim_due_deliveries(now, limit, lease_seconds, owner, limits=limits)
        )

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
        return await self._hold(
            await super().record_and_claim(records, owner, now, limit, lease_seconds, limits=limits)
        )

    async def _hold(self, due: list[DueDelivery]) -> list[DueDelivery]:
        if due and not self.claimed.is_set():
            self.claimed.set()
            await self.go.wait()
        return due


async def test_deliveries_a_cycle_claimed_as_the_engine_stopped_are_handed_back(
    store: Store,
) -> None:
    # stop() promises that deliveries claimed but not started are handed back (due again at
    # once, where PostgreSQL would keep them leased for the whole lease). A cycle under way
    # when stop() is called claims, sees the engine stopping and starts nothing: those
    # deliveries must be handed back like the ones waiting for their turn.
    async with Receiver() as receiver:
        receiver.default = Reply(204)
        _, events = await write_succeeded_tasks(store, receiver.url, 4)
        held = HeldClaim(store)
        transport = RelayTransport(max_connections=16)
        engine = DeliveryEngine(
            store=held,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="first",
            settings=EngineSettings(timeout=2, max_in_flight=16, max_in_flight_per_destination=8),
        )
        try:
            engine.wake()
            await asyncio.wait_for(held.claimed.wait(), timeout=10)
            stopping = asyncio.ensure_future(engine.stop(grace=2))
            await asyncio.sleep(0.05)  # stop() is waiting for the cycle under way
            held.go.set()
            await asyncio.wait_for(stopping, timeout=10)
            assert receiver.requests == []  # claimed, but never started
            # Another instance (no release of leases at its start) sends them at once.
            second = DeliveryEngine(
                store=store,
                transport=transport,
                clock=SystemClock(),
                rng=random.Random(2),
                owner="second",
                settings=EngineSettings(timeout=2, max_in_flight=16),
            )
            try:
                second.wake()
                await receiver.wait_for(len(events), within=5)
                await receiver.quiet_for(0.3)
            finally:
                await second.stop(grace=2)
        finally:
            await transport.aclose()
    assert Counter(r.webhook_id for r in receiver.requests) == Counter(events)
