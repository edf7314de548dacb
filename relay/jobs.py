"""The scheduler's periodic jobs (DESIGN §8): claim due polls, claim due deliveries,
reconcile uncertain submissions, housekeeping. APScheduler only ticks them; none owns work
in flight, and a job that meets an unavailable database skips its round."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from relay.clock import Clock
from relay.config.settings import Settings
from relay.delivery.engine import DeliveryEngine
from relay.errors import StoreError
from relay.store.interface import Store
from relay.tasks.tracker import Tracker

log = logging.getLogger("relay")


def schedule(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    store: Store,
    clock: Clock,
    tracker: Tracker,
    engine: DeliveryEngine,
) -> None:
    scheduler.add_job(
        tracker.poll_due,
        "interval",
        seconds=settings.polling.tick_seconds,
        id="poll-due",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        engine.pump.run,
        "interval",
        seconds=settings.delivery.tick_seconds,
        id="deliver-due",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        _reconcile_submissions,
        "interval",
        seconds=RECONCILE_SECONDS,
        args=(tracker,),
        id="reconcile-submissions",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        _housekeeping,
        "interval",
        seconds=settings.subscriptions.housekeeping_seconds,
        args=(store, clock, settings),
        id="housekeeping",
        max_instances=1,
        coalesce=True,
    )


def waker(tracker: Tracker, engine: DeliveryEngine) -> Callable[[str], None]:
    """What another instance's NOTIFY wakes here."""

    def wake(kind: str) -> None:
        if kind == "polls":
            tracker.wake()
        else:
            engine.wake()

    return wake


RECONCILE_SECONDS = 15.0
"""How often submissions left uncertain are looked for at their providers (each on its own
back-off, ``relay.tasks.submitting``)."""


async def _reconcile_submissions(tracker: Tracker) -> None:
    try:
        await tracker.submitter.reconciler.reconcile_open()
    except StoreError as exc:  # the database is down: the next pass tries again
        log.warning("could not reconcile submissions: %s", exc)


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
            # One short transaction per batch, with the event loop free in between.
            while n := await store.prune_history(before, settings.retention.batch_size):
                pruned += n
                await asyncio.sleep(0)
            if pruned:
                log.info("retention: deleted %d events older than %g days", pruned, days)
    except StoreError as exc:  # the database is away or full: nothing was half-done
        log.warning("housekeeping skipped, the database is unavailable: %s", exc)
    except Exception:  # the next round tries again
        log.exception("housekeeping failed")
