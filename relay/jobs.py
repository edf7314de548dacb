"""The scheduler's periodic jobs (DESIGN §8): claim due polls, claim due deliveries,
reconcile uncertain submissions, housekeeping. APScheduler only ticks them; none owns work
in flight, and a job that meets an unavailable database skips its round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from relay.clock import Clock
from relay.config.settings import Settings
from relay.copier.engine import Copier
from relay.copier.orphans import announce_orphaned
from relay.copier.removal import Remover
from relay.delivery.engine import DeliveryEngine
from relay.errors import StoreError
from relay.outputs.links import OutputLinks
from relay.store.interface import Store
from relay.tasks.provider_watch import ProviderWatch
from relay.tasks.tracker import Tracker

log = logging.getLogger("relay")


def schedule(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    store: Store,
    clock: Clock,
    tracker: Tracker,
    engine: DeliveryEngine,
    copier: Copier | None = None,
    remover: Remover | None = None,
    orphans: tuple[OutputLinks, Callable[[], None]] | None = None,
    watch: ProviderWatch | None = None,
) -> None:
    jobs: tuple[tuple[str, float, Callable[..., Awaitable[None]], tuple[Any, ...]], ...] = (
        ("poll-due", settings.polling.tick_seconds, tracker.poll_due, ()),
        ("deliver-due", settings.delivery.tick_seconds, engine.pump.run, ()),
        ("reconcile-submissions", RECONCILE_SECONDS, _reconcile_submissions, (tracker,)),
        (
            "housekeeping",
            settings.subscriptions.housekeeping_seconds,
            _housekeeping,
            (store, clock, settings),
        ),
    )
    if copier is not None:
        jobs += (("copy-due", settings.delivery.tick_seconds, copier.pump.run, ()),)
    if orphans is not None:
        links, wake = orphans
        every = settings.delivery.tick_seconds
        jobs += (("announce-held", every, _announce_orphaned, (store, clock, links, wake)),)
    if watch is not None:
        every = settings.operational_events.provider_check_seconds
        jobs += (("provider-health", every, watch.check, ()),)
    days = settings.outputs.retention_days
    if remover is not None and days is not None:
        every = settings.subscriptions.housekeeping_seconds
        jobs += (("output-retention", every, _output_retention, (remover, days)),)
    for job_id, seconds, job, args in jobs:
        scheduler.add_job(
            interruptible(job),
            "interval",
            seconds=seconds,
            args=args,
            id=job_id,
            name=job_id,
            max_instances=1,
            coalesce=True,
        )


def interruptible(
    job: Callable[..., Awaitable[None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    """``job``, ending quietly when the scheduler's shutdown cancels it mid-pass
    (AsyncIOExecutor cancels the jobs still running, and APScheduler logs that as an ERROR
    with a traceback). Nothing is lost: a pass only takes work under leases, which a restart
    or another instance takes up again."""

    async def run(*args: Any) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await job(*args)

    return run


def waker(tracker: Tracker, events: Callable[[], None]) -> Callable[[str], None]:
    """What another instance's NOTIFY wakes here: the pollers, or (``events``) the
    deliveries and the live stream."""

    def wake(kind: str) -> None:
        if kind == "polls":
            tracker.wake()
        else:
            events()

    return wake


RECONCILE_SECONDS = 15.0
"""How often submissions left uncertain are looked for at their providers (each on its own
back-off, ``relay.tasks.submitting``)."""


async def _reconcile_submissions(tracker: Tracker) -> None:
    try:
        await tracker.submitter.reconciler.reconcile_open()
    except StoreError as exc:  # the database is down: the next pass tries again
        log.warning("could not reconcile submissions: %s", exc)


async def _output_retention(remover: Remover, days: float) -> None:
    """Stored outputs past ``outputs.retention_days`` go, a batch at a time."""
    try:
        deleted = 0
        while n := await remover.expire(days, RETENTION_BATCH):
            deleted += n
            if n < RETENTION_BATCH:
                break
        if deleted:
            log.info("retention: deleted %d stored outputs older than %g days", deleted, days)
    except StoreError as exc:
        log.warning("output retention skipped, the database is unavailable: %s", exc)
    except Exception:  # the storage failed: the next round tries again
        log.exception("output retention failed")


RETENTION_BATCH = 100


async def _announce_orphaned(
    store: Store, clock: Clock, links: OutputLinks, wake: Callable[[], None]
) -> None:
    try:
        await announce_orphaned(store, clock, links.link, wake)
    except StoreError as exc:
        log.warning("held successes not announced, the database is unavailable: %s", exc)


async def _housekeeping(store: Store, clock: Clock, settings: Settings) -> None:
    """Subscriptions that have failed too long are disabled; old idempotency keys and
    history past its retention go."""
    now = clock.now()
    try:
        for sub_id in await store.disable_failing_subscriptions(
            now, settings.subscriptions.disable_after
        ):
            log.warning(
                "subscription %s disabled: its deliveries have failed for %g s",
                sub_id,
                settings.subscriptions.disable_after,
            )
        await store.prune_idempotency_keys(now - timedelta(seconds=settings.idempotency.ttl))
        days = settings.retention.history_days
        if days is not None:
            before = now - timedelta(days=days)
            pruned = 0
            # One short transaction per batch, then a pause as long as the batch took: a
            # long backlog (a first pass over a long history) takes the writer half the time
            # at most, and every other request gets in between two batches.
            loop = asyncio.get_running_loop()
            began = loop.time()
            while n := await store.prune_history(before, settings.retention.batch_size):
                pruned += n
                await asyncio.sleep(loop.time() - began)
                began = loop.time()
            if pruned:
                log.info(
                    "retention: deleted %d events and finished tasks older than %g days",
                    pruned,
                    days,
                )
    except StoreError as exc:  # the database is away or full: nothing was half-done
        log.warning("housekeeping skipped, the database is unavailable: %s", exc)
    except Exception:  # the next round tries again
        log.exception("housekeeping failed")
