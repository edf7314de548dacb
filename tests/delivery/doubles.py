"""A test double of the delivery engine's store role: the real store, every method passed
through, so a double overrides only what it changes (notes, holds or refuses)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.models import DueDelivery
from relay.store.interface import ClaimLimits, Store
from relay.store.values import AttemptRecord


class DeliveryStoreOver:
    """``DeliveryStore`` over a real ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim_due_deliveries(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        owner: str,
        *,
        limits: ClaimLimits | None = None,
    ) -> list[DueDelivery]:
        return await self._store.claim_due_deliveries(
            now, limit, lease_seconds, owner, limits=limits
        )

    async def next_delivery_at(self, after: datetime) -> datetime | None:
        return await self._store.next_delivery_at(after)

    async def record_attempts(self, records: Sequence[AttemptRecord], owner: str) -> None:
        await self._store.record_attempts(records, owner)

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
        return await self._store.record_and_claim(
            records, owner, now, limit, lease_seconds, limits=limits
        )

    async def release_deliveries(self, pks: Sequence[int], owner: str) -> None:
        await self._store.release_deliveries(pks, owner)
