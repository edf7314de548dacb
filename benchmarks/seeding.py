"""What the delivery benchmarks write into a store: a finished task whose event is due."""

from __future__ import annotations

from datetime import UTC, datetime

from relay.ids import new_id
from relay.models import Account, Destination, Task, TaskStatus
from relay.store.interface import Store
from relay.transitions import registered


async def succeeded_task(store: Store, account: Account, callback: str | None) -> None:
    """A task.succeeded event, with a callback delivery to ``callback`` when given (and one
    to each of the account's matching subscriptions)."""
    now = datetime.now(UTC)
    task = Task(
        id=new_id("task"),
        account_id=account.id,
        provider="sandbox",
        provider_task_id=new_id("cgt"),
        status=TaskStatus.SUCCEEDED,
        created_at=now,
        updated_at=now,
        callback_url=callback,
    )
    dest = (
        Destination(
            id=new_id("dst"),
            account_id=account.id,
            kind="callback",
            url=callback,
            key=callback.rsplit("/", 1)[0],
            event_types=None,
            task_id=task.id,
        )
        if callback
        else None
    )
    await store.create_task(registered(task, now, lambda: new_id("evt")), dest)
