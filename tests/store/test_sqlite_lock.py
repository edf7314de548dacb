"""SQLite serves one relay instance: a store opened ``exclusive`` (the serving process) holds
the instance lock beside the database file until it closes; a second server is refused, while
tools that open the database without ``exclusive`` (``relay migrate``, …) are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.errors import StoreError
from relay.store import open_store
from relay.submissions import SubmissionState
from tests.store.factories import NOW, at, make_account
from tests.store.test_submissions import intent


async def test_a_second_server_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    first = open_store(url, exclusive=True)
    await first.migrate()
    with pytest.raises(StoreError, match="another relay is already serving"):
        open_store(url, exclusive=True)
    await first.close()

    again = open_store(url, exclusive=True)
    await again.ping()
    await again.close()


async def test_a_tool_opens_a_served_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    server = open_store(url, exclusive=True)
    try:
        tool = open_store(url)
        assert await tool.migrate() != []
        await tool.ping()
        await tool.close()
        # A tool closing does not release the server's lock.
        with pytest.raises(StoreError, match="another relay is already serving"):
            open_store(url, exclusive=True)
    finally:
        await server.close()


async def test_without_exclusive_nothing_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    tool = open_store(url)
    try:
        server = open_store(url, exclusive=True)
        await server.close()
    finally:
        await tool.close()


async def test_a_starting_server_settles_what_its_dead_predecessor_left(tmp_path: Path) -> None:
    """One instance: at start-up every pending submission and unanswered Idempotency-Key is
    a dead process's, so ``release_leases`` makes the submission uncertain and frees the key
    at once (PostgreSQL waits for their leases: tests/store/test_submissions.py)."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    store = open_store(url, exclusive=True)
    await store.migrate()
    alice = await make_account(store, "alice")
    sub = intent(alice, lease_until=at(hours=1))
    await store.begin_submission(sub)
    lease = at(hours=1)
    assert await store.reserve_idempotency_key(alice.id, "k1", "h", "dead", NOW, lease) is None
    await store.close()

    store = open_store(url, exclusive=True)
    try:
        await store.release_leases(at(seconds=5))
        after = await store.get_submission(alice.id, sub.id)
        assert after is not None
        assert after.state is SubmissionState.UNCERTAIN
        assert after.updated_at == at(seconds=5)
        retry = await store.reserve_idempotency_key(alice.id, "k1", "h", "r2", at(seconds=5), lease)
        assert retry is None  # taken over, not waited out
    finally:
        await store.close()
