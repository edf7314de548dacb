"""The delivery engine's attempt records: written in batches, and written again while their
leases hold when the database could not take them (``relay.delivery.engine`` sends, this
records)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from relay.clock import Clock
from relay.errors import StoreError
from relay.store.interface import DeliveryStore
from relay.store.values import AttemptRecord

log = logging.getLogger("relay.delivery")

RECORD_RETRY_PAUSE = 0.25
"""Seconds before writing again the attempts the database could not take; doubled each time
it fails again, up to ``RECORD_RETRY_PAUSE_MAX``."""
RECORD_RETRY_PAUSE_MAX = 4.0


class AttemptRecorder:
    """Writes finished attempts in batches: whatever finished while the last write ran goes
    into the next one, so the batch size follows the load by itself.

    A batch the database could not take (it is restarting, unreachable) is written again,
    with what finished meanwhile, for as long as its deliveries are still leased: a record
    lost would have the delivery sent twice once its lease runs out. Past the lease another
    instance may have sent it again, and the lease fence would refuse the record anyway."""

    def __init__(
        self,
        store: DeliveryStore,
        owner: str,
        written: Callable[[Sequence[AttemptRecord]], None],
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        self._store = store
        self._owner = owner
        self._written = written
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._pending: list[AttemptRecord] = []
        self._writer: asyncio.Task[None] | None = None
        self.final = False
        """Stopping: a failed write is not tried again (the leases keep those deliveries)."""

    def add(self, record: AttemptRecord) -> None:
        self._pending.append(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
            self._writer.add_done_callback(log_crash)

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let the sends finishing in this loop turn join the batch
        pause = RECORD_RETRY_PAUSE
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.record_attempts(batch, self._owner)
            except Exception as exc:
                # Whatever is not written again in time stays leased until the lease runs
                # out, then it is sent again: never lost.
                wake = self._clock.now() + timedelta(seconds=pause)
                # Only the database's trouble passes; anything else (a bug, a record it
                # can never take) would fail again and hold up every record batched after.
                kept = (
                    []
                    if self.final or not isinstance(exc, StoreError)
                    else [r for r in batch if r.attempt.started_at + self._lease > wake]
                )
                log.warning(
                    "could not record %d attempts (%s); %s",
                    len(batch),
                    exc,
                    f"trying {len(kept)} again in {pause:g} s"
                    if kept
                    else "they will be sent again when their leases run out",
                    exc_info=not isinstance(exc, StoreError),
                )
                self._pending[:0] = kept
                if kept:
                    await asyncio.sleep(pause)
                    pause = min(2 * pause, RECORD_RETRY_PAUSE_MAX)
            else:
                pause = RECORD_RETRY_PAUSE
                self._written(batch)

    async def flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await self._writer
        if self._pending:
            await self._write()


def log_crash(task: asyncio.Task[Any]) -> None:
    """A done callback: a delivery task must never fail silently."""
    if not task.cancelled() and task.exception() is not None:
        log.error("delivery task crashed", exc_info=task.exception())
