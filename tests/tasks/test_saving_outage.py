"""A database outage fails a group save's changes within one wait, not one wait per save
(``relay.tasks.saving``); needs no PostgreSQL server, only nothing listening."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

from relay.errors import StoreError
from relay.models import Task, TaskStatus
from relay.store.postgres.store import PostgresStore
from relay.tasks.saving import GroupSaver
from relay.transitions import Change

WAIT = 0.5
"""How long the store waits for a connection (PostgresStore's ``timeout``; 5 s by default)."""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_outage_fails_a_batch_within_one_wait_not_one_wait_per_save() -> None:
    # PostgreSQL is down (nothing listens): every operation fails after WAIT.
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test", timeout=WAIT)
    now = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)
    changes = [
        Change(
            Task(
                id=f"task_{i}",
                account_id="acc",
                provider="p",
                provider_task_id=f"p{i}",
                status=TaskStatus.RUNNING,
                created_at=now,
                updated_at=now,
            ),
            (),
        )
        for i in range(8)
    ]
    saver = GroupSaver(store)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        # Eight polls finish together (before this change: eight save_task calls side by
        # side, all failed after one WAIT).
        results = await asyncio.gather(*(saver.save(c, 0) for c in changes), return_exceptions=True)
        took = loop.time() - started
        await saver.settle()  # what shut_down waits for
    finally:
        await store.close()
    assert all(isinstance(r, StoreError) for r in results)
    # The batch waits WAIT and fails, then each save alone waits WAIT again, one after the
    # other: 9 x WAIT here; 257 x 5 s = 21 min for a full batch at the defaults, with every
    # later save (and a stopping relay's shut_down) queued behind it.
    assert took < 3 * WAIT, f"the saves took {took:.1f} s to fail ({took / WAIT:.0f} waits)"
