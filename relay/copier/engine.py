"""The copier: copies tasks' files into the output store as durable outbox work.

Each pass announces what waited past its deadline (a ``task.succeeded`` whose copies are not
done after ``CopyPolicy.wait``), then claims as many due copies as there are free slots and
starts one try each (``relay.copier.fetch``) under a lease it renews while the try runs.
A try's outcome is folded into the task by the pure ``relay.copies.rules`` and written with
it in one transaction, fenced by the task's version: a try whose copy was settled meanwhile
(by another instance whose lease it outlived, or a deletion) writes nothing, and removes
what it stored if the copy was deleted. A killed process leaves its copies leased until the
lease runs out (on SQLite, until the restart releases it); the next try starts over, and the
store never shows half an object.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpcore

from relay.clock import Clock
from relay.copier.fetch import CopyFailed, FetchLimits, fetch_into
from relay.copies.rules import CopyPolicy, failed, settle, stored
from relay.copies.values import CopyState, OutputCopy, OutputKind, StoredFile
from relay.delivery.fresh_urls import MARGIN, OutputRefresher
from relay.errors import StoreError
from relay.heartbeat import renewing
from relay.logs import ids
from relay.metrics import RelayMetrics
from relay.models import Task
from relay.outputs.interface import OutputStore, Stored
from relay.outputs.links import OutputLinks
from relay.pump import Pump
from relay.store.interface import Store
from relay.tasks.verdicts import event_id
from relay.transitions import Change

log = logging.getLogger("relay.outputs")

ANNOUNCE_BATCH = 100
SAVE_TRIES = 5


@dataclass(frozen=True, slots=True)
class CopierSettings:
    policy: CopyPolicy
    limits: FetchLimits
    max_concurrent: int = 4
    lease_seconds: float = 60.0


class Copier:
    def __init__(
        self,
        *,
        store: Store,
        outputs: OutputStore,
        pool: httpcore.AsyncConnectionPool,
        links: OutputLinks,
        refresher: OutputRefresher,
        clock: Clock,
        owner: str,
        settings: CopierSettings,
        on_events: Callable[[], None] = lambda: None,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._pool = pool
        self._links = links
        self._refresher = refresher
        self._clock = clock
        self._owner = owner
        self._settings = settings
        self._on_events = on_events
        self._metrics = metrics or RelayMetrics()
        self._running: dict[str, asyncio.Task[None]] = {}
        self.pump = Pump("copy", self._one_pass, self._seconds_to_next)

    def wake(self) -> None:
        self.pump.wake()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def _one_pass(self) -> bool:
        now = self._clock.now()
        for account_id, task_id in await self._store.due_announcements(now, ANNOUNCE_BATCH):
            await self._fold(account_id, task_id, None)
        free = self._settings.max_concurrent - len(self._running)
        if free <= 0:
            return False
        claimed = await self._store.claim_due_copies(
            now, free, self._settings.lease_seconds, self._owner
        )
        for copy in claimed:
            task = asyncio.ensure_future(self._copy(copy))
            self._running[copy.id] = task
            task.add_done_callback(functools.partial(self._finished, copy.id))
        return False

    def _finished(self, copy_id: str, _: object) -> None:
        self._running.pop(copy_id, None)
        self.wake()  # a slot came free

    async def _seconds_to_next(self) -> float | None:
        now = self._clock.now()
        due = await self._store.next_copy_at(now)
        return None if due is None else max(0.0, (due - now).total_seconds())

    async def _copy(self, copy: OutputCopy) -> None:
        started = self._clock.now()
        try:
            lease = timedelta(seconds=self._settings.lease_seconds)

            def renew() -> Awaitable[bool]:
                return self._store.renew_copy(copy.id, self._owner, self._clock.now() + lease)

            async with renewing(renew, self._settings.lease_seconds / 3, copy.id):
                try:
                    outcome = await self._try(copy)
                except (asyncio.CancelledError, StoreError):
                    raise
                except Exception as exc:  # a bug must cost a try, not the copy's progress
                    log.exception("copy %s of task %s failed", copy.id, copy.task_id)
                    outcome = f"unexpected error: {type(exc).__name__}: {exc}"
            if isinstance(outcome, str) and not await renew():
                # Not ours any more (our lease ran out and another instance took the copy):
                # its try decides; recording ours would end its lease under it.
                log.info("copy %s: a failed try dropped, the copy is no longer ours", copy.id)
                return
            await self._fold(copy.account_id, copy.task_id, (copy, outcome))
            if isinstance(outcome, Stored):
                self._metrics.copy_finished(
                    "stored",
                    outcome.size,
                    (self._clock.now() - started).total_seconds(),
                )
            else:
                self._metrics.copy_finished("failed", 0, None)
        except asyncio.CancelledError:
            # Shutting down: the copy is due again for the next process (or this one).
            await asyncio.shield(self._store.release_copy(copy.id, self._owner))
            raise
        except StoreError as exc:
            # The database is away: the copy stays leased until its lease runs out, then is
            # tried again (what was stored is overwritten by the same bytes).
            log.warning("copy %s could not be recorded: %s", copy.id, exc, extra=_ids(copy))
        except Exception:
            log.exception("copy %s of task %s failed", copy.id, copy.task_id, extra=_ids(copy))

    async def _try(self, copy: OutputCopy) -> Stored | str:
        """One try: the stored file, or why there is none."""
        task = await self._store.get_task(copy.account_id, copy.task_id)
        if task is None:
            return "the task is no longer stored"
        url, why = await self._source(task, copy.kind)
        if url is None:
            return why
        try:
            return await fetch_into(
                self._pool,
                self._outputs,
                url,
                account_id=copy.account_id,
                task_id=copy.task_id,
                kind=copy.kind,
                limits=self._settings.limits,
            )
        except CopyFailed as exc:
            log.info(
                "copy of task %s's %s failed: %s",
                copy.task_id,
                copy.kind.value,
                exc,
                extra=_ids(copy),
            )
            return str(exc)

    async def _source(self, task: Task, kind: OutputKind) -> tuple[str | None, str]:
        """The provider's live link to the file: the task's, or asked for again."""
        url = task.provider_video_url if kind is OutputKind.VIDEO else task.provider_last_frame_url
        expires = task.provider_video_url_expires_at
        if url is not None and (expires is None or expires > self._clock.now() + MARGIN):
            return url, ""
        links, why = await self._refresher.provider_links(task)
        if links is None:
            return None, f"the provider's link expired and no fresh one was given: {why}"
        url = links.video_url if kind is OutputKind.VIDEO else links.last_frame_url
        return url, "" if url is not None else "the provider no longer reports this file"

    async def _fold(
        self, account_id: str, task_id: str, tried: tuple[OutputCopy, Stored | str] | None
    ) -> None:
        """Write what a try left (or, with none, only what is owed now) into the task."""
        for _ in range(SAVE_TRIES):
            task = await self._store.get_task(account_id, task_id)
            if task is None:
                return
            copies = await self._store.task_copies(task_id)
            now = self._clock.now()
            if tried is not None:
                copy, outcome = tried
                current = next((c for c in copies if c.id == copy.id), None)
                # A stored file counts even if another holder gave the copy up meanwhile.
                open_states = (CopyState.PENDING, CopyState.FAILED)
                if (
                    current is None
                    or current.state not in open_states
                    or (current.state is CopyState.FAILED and not isinstance(outcome, Stored))
                ):
                    await self._discard(current, outcome)
                    return
                if isinstance(outcome, str) and current.attempts != copy.attempts:
                    return  # another holder recorded a try since our claim: it decides
                updated = (
                    stored(current, now, outcome.key, _file(outcome))
                    if isinstance(outcome, Stored)
                    else failed(current, now, outcome, self._settings.policy)
                )
                copies = [updated if c.id == updated.id else c for c in copies]
            change = settle(task, copies, now, event_id, self._links.link)
            if tried is None and not change.events:
                return  # another instance announced it first
            if await self._store.save_task(change, task.version):
                self._after(change)
                return
        log.warning("task %s kept changing while its copy was recorded", task_id)

    async def _discard(self, current: OutputCopy | None, outcome: Stored | str) -> None:
        """A try whose copy was settled while it ran: what it stored goes if the copy was
        deleted meanwhile (another instance's object under the same key stays)."""
        if isinstance(outcome, Stored) and (current is None or current.state is CopyState.DELETED):
            await self._outputs.delete(outcome.key)

    def _after(self, change: Change) -> None:
        if change.events:
            self._on_events()
        due = [c.next_attempt_at for c in change.copies if c.next_attempt_at is not None]
        if due:
            self.pump.due_in((min(due) - self._clock.now()).total_seconds())

    async def stop(self, grace: float) -> None:
        """No new copies; tries under way get ``grace`` seconds, then are cancelled (their
        copies are released, due again)."""
        self.pump.stop()
        await self.pump.settle()
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._pool.aclose()


def _file(s: Stored) -> StoredFile:
    return StoredFile(s.size, s.sha256, s.content_type)


def _ids(copy: OutputCopy) -> dict[str, str]:
    return ids(task_id=copy.task_id, account_id=copy.account_id)
