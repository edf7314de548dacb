"""The scheduler's jobs end quietly when its shutdown cancels them mid-pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from relay.jobs import interruptible


async def cancelled_by_shutdown(
    wrap: Callable[[Callable[[], Awaitable[None]]], Callable[[], Awaitable[None]]],
) -> None:
    started = asyncio.Event()

    async def slow_pass() -> None:
        started.set()
        await asyncio.sleep(30)

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(wrap(slow_pass), "interval", seconds=0.01, max_instances=1)
    scheduler.start()
    await asyncio.wait_for(started.wait(), 5)
    scheduler.shutdown(wait=False)  # what the relay's lifespan does
    await asyncio.sleep(0.1)


async def test_a_job_cancelled_by_the_scheduler_s_shutdown_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        await cancelled_by_shutdown(lambda job: job)
    # APScheduler itself reports the cancel as a failed job, with a traceback...
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        await cancelled_by_shutdown(interruptible)
    # ...which the relay's jobs do not give it.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
