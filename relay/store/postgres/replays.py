"""The PostgreSQL store's replays in bounded steps (``relay.store.replay_steps``): each step
one short transaction over at most ``scan`` events of the window, driven by
``relay.store.postgres.subscriptions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay.models import DEFAULT_EVENT_TYPES, EventType
from relay.store import codec, replay_steps
from relay.store.named_sql import load_queries
from relay.store.postgres.outbox import NewDelivery, fetch_all, fetch_one, insert_deliveries
from relay.store.postgres.runner import Conn
from relay.store.replay_steps import ReplayCursor
from relay.store.values import ReplayQuery

QUERIES = load_queries("relay.store.postgres")


def _wanted_types(event_types: frozenset[EventType] | None) -> list[str]:
    """The filter's types; no filter means the terminal types."""
    return sorted(t.value for t in (event_types or DEFAULT_EVENT_TYPES))


async def _replay_target(
    c: Conn, account_id: str, destination_id: str, *, lock: bool
) -> tuple[str, str, list[str]] | None:
    """The key, URL and wanted types of an active subscription; ``lock``: taken as a fan-out
    takes its destinations (see lock_replay_target)."""
    params = {"id": destination_id, "account_id": account_id}
    if lock:
        row = await fetch_one(c, QUERIES["lock_replay_target"], params)
    else:
        row = await fetch_one(c, QUERIES["replay_target"], params)
    if row is None:
        return None
    return row[0], row[1], _wanted_types(codec.event_types_from(row[2]))


async def _window(
    c: Conn,
    account_id: str,
    destination_id: str,
    types: list[str],
    query: ReplayQuery,
    cursor: ReplayCursor | None,
    scan: int,
) -> list[Any]:
    """The next ``scan`` events of the replay's window past ``cursor`` (``replay_window``;
    ``replay_failed_window`` when only the few failed ones can be sent)."""
    params = replay_steps.window_params(account_id, destination_id, types, query, cursor, scan)
    if query.only_failed:
        failed = await fetch_all(
            c, QUERIES["failed_event_pks"], {"destination_id": destination_id, "cap": scan + 1}
        )
        if len(failed) <= scan:  # few: read those events alone
            params["failed"] = [row[0] for row in failed]
            return await fetch_all(c, QUERIES["replay_failed_window"], params)
    return await fetch_all(c, QUERIES["replay_window"], params)


async def replay_step(
    c: Conn,
    *,
    account_id: str,
    destination_id: str,
    query: ReplayQuery,
    now: datetime,
    cursor: ReplayCursor | None,
    want: int,
    scan: int,
) -> tuple[int, ReplayCursor | None, bool] | None:
    """One transaction of a replay: ordered deliveries for up to ``want`` events of the next
    ``scan`` of the window; (how many, the cursor past the last event read, whether the
    window is done). None: no such active subscription."""
    target = await _replay_target(c, account_id, destination_id, lock=True)
    if target is None:
        return None
    key, url, types = target
    rows = await _window(c, account_id, destination_id, types, query, cursor, scan)
    picked, seen = replay_steps.pick(rows, want)
    await insert_deliveries(
        c,
        [
            NewDelivery(
                row[replay_steps.PK],
                row[replay_steps.EVENT_ID],
                account_id,
                destination_id,
                key,
                url,
                row[replay_steps.TASK_ID],
            )
            for row in picked
        ],
        now,
        ordered=True,
    )
    return (len(picked), *replay_steps.step_end(rows, seen, scan, cursor))


async def count_step(
    c: Conn,
    *,
    account_id: str,
    destination_id: str,
    query: ReplayQuery,
    cursor: ReplayCursor | None,
    scan: int,
) -> tuple[int, ReplayCursor | None] | None:
    """One read of a replay's count: (how many of the next ``scan`` events it sends, the
    cursor past them or None at the end of the window); None: no such subscription."""
    target = await _replay_target(c, account_id, destination_id, lock=False)
    if target is None:
        return None
    rows = await _window(c, account_id, destination_id, target[2], query, cursor, scan)
    return replay_steps.count_end(rows, scan)
