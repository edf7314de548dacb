"""Held successes on a relay that no longer copies outputs.

A task that succeeded while ``outputs.store`` was set waits for its copies (at most
``outputs.wait_seconds``). If the relay is then restarted without a store, or the worker that
runs has none, no copier will ever try them: at the deadline their ``task.succeeded`` must
still go out. This pass gives up the copies left pending and lets the rules announce the
success with the provider's link and a ``relay_notice`` saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from relay.clock import Clock
from relay.copies.rules import LinkFactory, settle
from relay.copies.values import CopyState
from relay.store.interface import Store
from relay.tasks.verdicts import event_id

log = logging.getLogger("relay.outputs")

GIVEN_UP = "outputs.store is no longer set on this relay: the copy was given up"
BATCH = 100


async def announce_orphaned(
    store: Store, clock: Clock, link: LinkFactory, on_events: Callable[[], None]
) -> int:
    """Announce the held successes past their deadline; how many went out."""
    announced = 0
    for account_id, task_id in await store.due_announcements(clock.now(), BATCH):
        for _ in range(3):
            task = await store.get_task(account_id, task_id)
            if task is None:
                break
            now = clock.now()
            copies = [
                replace(c, state=CopyState.FAILED, next_attempt_at=None, error=GIVEN_UP)
                if c.state is CopyState.PENDING
                else c
                for c in await store.task_copies(task_id)
            ]
            change = settle(task, copies, now, event_id, link)
            if await store.save_task(change, task.version):
                announced += len(change.events)
                break
    if announced:
        log.warning("%d held task.succeeded sent without their copies: %s", announced, GIVEN_UP)
        on_events()
    return announced
