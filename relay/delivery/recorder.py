"""The delivery engine's attempt records: handed to the engine's cycle, which writes them in
the transaction of its next claim, and kept to be written again while their leases hold when
the database could not take them (``relay.delivery.engine`` sends, this keeps the records)."""

from __future__ import annotations

import asyncio
import logging
import time
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
    """Finished attempts waiting for the engine's next cycle: whatever finished while the
    last cycle's write ran goes into the next one, so the batch size follows the load by
    itself. ``add`` wakes the cycle (``wake``); the cycle ``take``s the batch and says how
    its write went (``written`` or ``refused``).

    A batch the database could not take (it is restarting, unreachable) is written again,
    with what finished meanwhile, for as long as its deliveries are still leased: a record
    lost would have the delivery sent twice once its lease runs out. Past the lease another
    instance may have sent it again, and the lease fence would refuse the record anyway."""

    def __init__(
        self,
        written: Callable[[Sequence[AttemptRecord]], None],
        wake: Callable[[], None],
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        self._written = written
        self._wake = wake
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._pending: list[AttemptRecord] = []
        self._pause = RECORD_RETRY_PAUSE
        self._retry_at = 0.0
        """time.monotonic() before which a refused batch is not tried again."""
        self.final = False
        """Stopping: a failed write is not tried again (the leases keep those deliveries)."""

    def add(self, record: AttemptRecord) -> None:
        self._pending.append(record)
        if len(self._pending) == 1:
            self._wake()

    def take(self) -> list[AttemptRecord]:
        """The records to write now (none while a refused batch waits out its pause)."""
        if not self._pending or time.monotonic() < self._retry_at:
            return []
        batch, self._pending = self._pending, []
        return batch

    def retry_in(self) -> float | None:
        """Seconds until records waiting out a pause are tried again (None: none wait)."""
        if not self._pending:
            return None
        return max(0.0, self._retry_at - time.monotonic())

    def written(self, batch: Sequence[AttemptRecord]) -> None:
        if batch:
            self._pause = RECORD_RETRY_PAUSE
            self._retry_at = 0.0
            self._written(batch)

    def refused(self, batch: Sequence[AttemptRecord], exc: BaseException) -> float | None:
        """The write of ``batch`` failed with ``exc``: keep what may be written again in time.
        Returns the seconds to wait before trying, or None when nothing is kept."""
        if not batch:
            return None
        pause = self._pause
        wake = self._clock.now() + timedelta(seconds=pause)
        # Only the database's trouble passes; anything else (a bug, a record it can never
        # take) would fail again and hold up every record batched after. Whatever is not
        # written again in time stays leased until the lease runs out, then it is sent
        # again: never lost.
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
        if not kept:
            return None
        self._pending[:0] = kept
        self._retry_at = time.monotonic() + pause
        self._pause = min(2 * pause, RECORD_RETRY_PAUSE_MAX)
        return pause

    async def flush(self, store: DeliveryStore, owner: str) -> None:
        """Write what is left, once (stopping: the cycle no longer runs)."""
        self.final = True
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await store.record_attempts(batch, owner)
        except Exception as exc:
            self.refused(batch, exc)
        else:
            self.written(batch)


def log_crash(task: asyncio.Task[Any]) -> None:
    """A done callback: a delivery task must never fail silently."""
    if not task.cancelled() and task.exception() is not None:
        log.error("delivery task crashed", exc_info=task.exception())
