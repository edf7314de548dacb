"""The SQLite store's replays in bounded steps (``relay.store.replay_steps``): each step one
short transaction over at most ``scan`` events of the window, driven by
``relay.store.sqlite.subscriptions``."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from relay.ids import new_id
from relay.models import DEFAULT_EVENT_TYPES, EventType
from relay.store import replay_steps
from relay.store.codec import event_types_from, ts
from relay.store.named_sql import load_queries
from relay.store.replay_steps import ReplayCursor
from relay.store.values import ReplayQuery

QUERIES = load_queries("relay.store.sqlite")


def wanted_types(event_types: frozenset[EventType] | None) -> str:
    """The filter as a JSON list for ``json_each``; no filter means the terminal types."""
    return json.dumps(sorted(t.value for t in (event_types or DEFAULT_EVENT_TYPES)))


def _replay_target(
    c: sqlite3.Connection, account_id: str, destination_id: str
) -> tuple[str, str, str] | None:
    row = c.execute(
        QUERIES["replay_target"], {"destination_id": destination_id, "account_id": account_id}
    ).fetchone()
    if row is None:
        return None
    return row[0], row[1], wanted_types(event_types_from(row[2]))


def _window(
    c: sqlite3.Connection,
    account_id: str,
    destination_id: str,
    types: str,
    query: ReplayQuery,
    cursor: ReplayCursor | None,
    scan: int,
) -> list[Any]:
    """The next ``scan`` events of the replay's window past ``cursor`` (``replay_window``;
    ``replay_failed_window`` when only the few failed ones can be sent)."""
    params = replay_steps.window_params(account_id, destination_id, types, query, cursor, scan)
    if query.only_failed:
        failed = c.execute(
            QUERIES["failed_event_pks"], {"destination_id": destination_id, "cap": scan + 1}
        ).fetchall()
        if len(failed) <= scan:  # few: read those events alone
            params["failed"] = json.dumps([row[0] for row in failed])
            return c.execute(QUERIES["replay_failed_window"], params).fetchall()
    return c.execute(QUERIES["replay_window"], params).fetchall()


def replay_step(
    c: sqlite3.Connection,
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
    target = _replay_target(c, account_id, destination_id)
    if target is None:
        return None
    key, url, types = target
    rows = _window(c, account_id, destination_id, types, query, cursor, scan)
    picked, seen = replay_steps.pick(rows, want)
    c.executemany(
        QUERIES["insert_replay_delivery"],
        [
            {
                "id": new_id("dlv"),
                "account_id": account_id,
                "event_pk": row[replay_steps.PK],
                "destination_id": destination_id,
                "destination_key": key,
                "url": url,
                "now": ts(now),
                "task_id": row[replay_steps.TASK_ID],
            }
            for row in picked
        ],
    )
    return (len(picked), *replay_steps.step_end(rows, seen, scan, cursor))


def count_step(
    c: sqlite3.Connection,
    *,
    account_id: str,
    destination_id: str,
    query: ReplayQuery,
    cursor: ReplayCursor | None,
    scan: int,
) -> tuple[int, ReplayCursor | None] | None:
    """One read of a replay's count: (how many of the next ``scan`` events it sends, the
    cursor past them or None at the end of the window); None: no such subscription."""
    target = _replay_target(c, account_id, destination_id)
    if target is None:
        return None
    rows = _window(c, account_id, destination_id, target[2], query, cursor, scan)
    return replay_steps.count_end(rows, scan)
