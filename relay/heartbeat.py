"""Keeping a lease alive while the work it covers runs: a claim that outlives a slow send or
a slow provider must never look abandoned to another process (or take-over would do the
work twice), and one left by a dead process must expire soon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger("relay.heartbeat")


@contextlib.asynccontextmanager
async def renewing(
    renew: Callable[[], Awaitable[object]], every: float, what: str
) -> AsyncIterator[None]:
    """Call ``renew()`` every ``every`` seconds while the body of the ``with`` runs. A
    renewal that fails is logged and tried again at the next beat (the database may blink);
    one that returns False means the lease is lost, and renewing stops."""

    async def beat() -> None:
        while True:
            try:
                if await renew() is False:
                    return
            except Exception as exc:
                log.warning("could not renew the lease of %s: %s", what, exc)
            await asyncio.sleep(every)

    # Most work ends long before its first beat: a timer, and a task only once it fires.
    loop = asyncio.get_running_loop()
    beating: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal beating
        beating = loop.create_task(beat())

    timer = loop.call_later(every, start)
    try:
        yield
    finally:
        timer.cancel()
        if beating is not None:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
