"""PostgreSQL connections: the pool every store operation runs on, the one place driver errors
become ``StoreError``, versioned migrations under an advisory lock, and the listening
connection that hears other instances' wake-ups.

Each store operation is one coroutine run on one pooled connection, inside one transaction
unless it is a single statement (atomic on its own, one round trip). Connections are in
autocommit mode, so a single statement costs no BEGIN/COMMIT round trips.

A database restart breaks every pooled connection. The pool replaces them in the background;
meanwhile an operation fails with ``StoreError`` after at most ``timeout`` seconds (never
hangs), and the first failure on a broken connection sends the pool to check the others, so
operations after the database is back get fresh connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from relay.errors import MigrationError, StoreError
from relay.store.named_sql import load_queries
from relay.store.schema import packaged_migrations, pending_migrations

R = TypeVar("R")
Conn = AsyncConnection[tuple[Any, ...]]

log = logging.getLogger("relay.store.postgres")

QUERIES = load_queries("relay.store.postgres")

MIGRATION_LOCK = 0x72656C6179
"""The advisory lock migrations run under, so instances starting together do not race."""

CONFLICT_RETRIES = 4
"""How many times an operation the server aborted for a deadlock or a serialization failure
is run again. Such an abort rolls the whole transaction back, so running it again is safe;
PostgreSQL's documentation asks applications to do exactly that. Between tries a short random
pause lets the other transaction finish."""

IDLE_CHECK = 2.0
"""A pooled connection idle longer than this is checked (one empty query) before use: after
a database restart an idle connection is broken, and a call must not fail for that."""

# Defaults a URL may override: give up connecting after a few seconds, and notice a peer
# that vanished (a network partition) instead of waiting on its socket forever.
_DEFAULTS = {
    "connect_timeout": "5",
    "application_name": "relay",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


def conninfo(url: str) -> str:
    """libpq's connection string for a ``postgresql://`` (or ``postgres://``) URL."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"invalid PostgreSQL URL: {exc}") from exc
    return make_conninfo("", **{**_DEFAULTS, **params})


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PgRunner:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        op_timeout: float = 60.0,
        min_size: int = 2,
        max_size: int = 10,
    ) -> None:
        """``timeout``: how long an operation waits for a connection (during an outage: how
        soon it fails); ``op_timeout``: how long one operation may take in all."""
        self.conninfo = conninfo(url)
        self._timeout = timeout
        self._op_timeout = op_timeout
        self._last_used: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._checking: asyncio.Task[None] | None = None
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.conninfo,
            open=False,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True},
            name="relay",
            # Reconnection backs off exponentially until this, then the pool retries only
            # when a call waits: kept short, a call soon after the database is back gets a
            # connection instead of waiting out a long back-off.
            reconnect_timeout=10.0,
        )
        self._opened = False

    async def run(
        self,
        fn: Callable[[Conn], Awaitable[R]],
        *,
        transaction: bool = True,
        pipeline: bool = False,
    ) -> R:
        """Run ``fn`` on a pooled connection (in a transaction unless told it is one
        statement). Driver errors become ``StoreError``; the caller's own exceptions (a
        ``DuplicateTask``) pass unchanged, after the transaction rolled back.

        ``pipeline``: the transaction runs in pipeline mode, where statements are sent
        without waiting for the ones before, and a round trip happens only when ``fn``
        fetches a result (and at commit). ``fn`` must read results with the cursor's fetch
        methods only (``rowcount`` is not known before a fetch)."""
        for retry in range(CONFLICT_RETRIES + 1):
            try:
                return await self._run_once(fn, transaction=transaction, pipeline=pipeline)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                if retry == CONFLICT_RETRIES:
                    raise StoreError(
                        f"PostgreSQL: {describe(exc)} (tried {CONFLICT_RETRIES + 1} times)"
                    ) from exc
                log.info("%s; running the operation again", describe(exc))
                await asyncio.sleep(random.uniform(0.005, 0.05) * 2**retry)
        raise AssertionError("unreachable")

    async def _run_once(
        self, fn: Callable[[Conn], Awaitable[R]], *, transaction: bool, pipeline: bool
    ) -> R:
        """One try of ``run``: a deadlock or a serialization failure passes through."""
        try:
            async with asyncio.timeout(self._op_timeout):
                if not self._opened:
                    await self._pool.open()
                    self._opened = True
                while True:
                    async with self._pool.connection() as conn:
                        if not await self._usable(conn):
                            continue  # broken while idle: the pool replaces it
                        self._last_used[conn] = time.monotonic()
                        if pipeline:
                            async with conn.pipeline(), conn.transaction():
                                result = await fn(conn)
                        elif transaction:
                            async with conn.transaction():
                                result = await fn(conn)
                        else:
                            result = await fn(conn)
                        return result
        except PoolTimeout as exc:
            raise StoreError(
                f"PostgreSQL: no connection within {self._timeout:g} s (is the "
                f"database up and reachable?): {describe(exc)}"
            ) from exc
        except TimeoutError as exc:
            raise StoreError(f"PostgreSQL: no answer within {self._op_timeout:g} s") from exc
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            raise
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self._check_pool()
            raise StoreError(f"PostgreSQL: {describe(exc)}") from exc

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        await self._pool.close()

    async def _usable(self, conn: Conn) -> bool:
        """Whether a connection works, asking the server only if it sat idle a while. Nothing
        was sent on a broken one, so taking another is safe."""
        if time.monotonic() - self._last_used.get(conn, 0.0) <= IDLE_CHECK:
            return True
        try:
            # An empty query: one round trip, no statement to name in queries.sql.
            await conn.execute("")
        except psycopg.OperationalError:
            self._check_pool()
            return False
        return True

    def _check_pool(self) -> None:
        """A connection broke (the database restarted?): check the idle ones now rather than
        letting each fail one call."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._pool.check())
            self._checking.add_done_callback(_quiet)

    async def migrate(self) -> list[int]:
        return await self.run(_migrate, transaction=False)


def _quiet(task: asyncio.Task[None]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.warning("checking pooled connections failed: %s", describe(exc))


async def _migrate(conn: Conn) -> list[int]:
    """Apply every packaged migration not applied yet, each in its own transaction, while
    holding an advisory lock: an instance starting meanwhile waits, then finds them applied."""
    await conn.execute(QUERIES["lock_migrations"], {"lock": MIGRATION_LOCK})
    try:
        await conn.execute(QUERIES["create_schema_migrations"])
        cur = await conn.execute(QUERIES["applied_migrations"])
        applied = {row[0] for row in await cur.fetchall()}
        done = []
        for version, name, sql in pending_migrations(
            packaged_migrations("relay.store.postgres"), applied
        ):
            try:
                async with conn.transaction():
                    # A whole file in one simple-protocol query: no parameters in it.
                    await conn.execute(sql.encode())
                    await conn.execute(
                        QUERIES["record_migration"], {"version": version, "name": name}
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {name} failed: {describe(exc)}") from exc
            done.append(version)
        return done
    finally:
        if not conn.closed:
            await conn.execute(QUERIES["unlock_migrations"], {"lock": MIGRATION_LOCK})


class Listener:
    """One dedicated connection that LISTENs for other instances' wake-ups (channel
    ``relay_work``, payload ``deliveries`` or ``polls``) and calls ``on_work`` with each
    payload. It reconnects by itself, backing off, when the database restarts, and then calls
    ``on_work`` for every kind: what was written while it was deaf is due now."""

    KINDS = ("deliveries", "polls")

    def __init__(self, conninfo: str, on_work: Callable[[str], None]) -> None:
        self._conninfo = conninfo
        self._on_work = on_work
        self._task: asyncio.Task[None] | None = None
        self._conn: Conn | None = None

    async def start(self) -> None:
        """Returns once listening; raises ``StoreError`` if the database cannot be reached."""
        try:
            self._conn = await self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: cannot listen for wake-ups: {describe(exc)}") from exc
        self._task = asyncio.ensure_future(self._serve())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def _connect(self) -> Conn:
        conn: Conn = await AsyncConnection.connect(self._conninfo, autocommit=True)
        await conn.execute(QUERIES["listen"])
        return conn

    def _wake(self, kind: str) -> None:
        try:
            self._on_work(kind)
        except Exception:  # the listener outlives a faulty callback
            log.exception("wake-up callback failed for %s", kind)

    async def _serve(self) -> None:
        delay = 0.5
        while True:
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                    log.warning("wake-up listener is listening again")
                    delay = 0.5
                    for kind in self.KINDS:
                        self._wake(kind)
                # A quiet connection is probed now and then, so a dead one is noticed.
                async for notify in self._conn.notifies(timeout=30.0):
                    if notify.payload in self.KINDS:
                        self._wake(notify.payload)
                await self._conn.execute("")  # an empty query: a round trip, no statement
            except psycopg.Error as exc:
                if self._conn is not None:
                    log.warning(
                        "wake-up listener lost its connection (%s); reconnecting", describe(exc)
                    )
                    await self._conn.close()
                    self._conn = None
                else:
                    log.info(
                        "wake-up listener cannot reconnect yet (%s); retrying in %g s",
                        describe(exc),
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
