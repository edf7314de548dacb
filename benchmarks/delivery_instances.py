"""Delivery throughput on PostgreSQL with one and with two relay instances, next to SQLite and
next to a bare HTTP loop, in one run.

    python benchmarks/delivery_instances.py [--events 20000] [--pg-url postgresql://...]

Four figures, all against the same receiver (this file with ``--serve-receiver``, its own
process: a bare asyncio protocol on uvloop that answers 204 and counts the POSTs and their
distinct ``webhook-id`` headers), loopback only:

1. baseline: the bare aiohttp loop of ``benchmarks/delivery.py`` (64 concurrent, the same
   signed ~1 KB requests, no bookkeeping), in this process, on uvloop. It runs right before
   AND right after each relay configuration, and each relay figure is divided by both; the
   1-minute load average at the end of each of the three phases is printed beside them.
2. SQLite, one ``python -m relay serve`` process (``--role all``, the only role SQLite has);
3. PostgreSQL, one ``relay serve --role worker`` process;
4. PostgreSQL, two ``relay serve --role worker`` processes sharing the same database.

Every relay is a real process on uvloop (uvicorn's default, as ``relay serve`` runs), with
the default settings (256 attempts in flight, 64 per destination: all events here go to one
receiver, so one destination, and two instances may have 128 in flight to it between them)
and ``log_level: info``. Each configuration gets a fresh database: a SQLite file in a temp
dir, or a fresh PostgreSQL schema (``CREATE SCHEMA``, the relay's URL carries
``options=-csearch_path%3D<schema>``; dropped afterwards).

The work: ``--events`` task.succeeded events, each with its task's callback delivery, written
before the relays start through the store API (``Store.migrate``, ``create_account``,
``create_task`` with ``relay.transitions.registered``: one transaction per task, as
``POST /v1/tasks`` writes them). Then one UPDATE makes every delivery due at the same moment
``T0``, a few seconds ahead (``--lead``), and on PostgreSQL ``VACUUM ANALYZE`` leaves the
tables as autovacuum would (statistics, no dead rows from that UPDATE). The relays start,
become healthy while nothing is due yet, and each arms its timer for ``T0``: so two
instances start together, and nobody is measured starting up.

What is measured: events/s = events / (last 2xx - first claim), read from the database as
``benchmarks/delivery.py`` reads it. The last 2xx: the latest ``attempts.started_at +
latency_ms`` of a delivered attempt, the moment the relay had the receiver's answer. The
first claim: the earliest ``attempts.started_at``, stamped as the first claimed delivery
starts, right after the claim returned (so the first claim's own query, a few ms, is left
out). With two relays that is the first of the two. Both are wall-clock times of this one
machine. Why not from ``T0``? A relay's timer may fire a fraction of a millisecond before the
due time (uvloop rounds timers to whole milliseconds); that claim then finds nothing yet and
the pump looks again 50 ms later (``relay.pump.MIN_TIMER_DELAY``). That is a start-up
artefact here, not throughput; the "lag" column shows it, from ``T0`` to the first attempt.
CPU is /proc accounting from ``T0`` until the receiver has every event: all relay processes,
the receiver, all ``postgres`` processes (each per event), and the whole machine (busy share
of all its cores).

Correctness, per configuration: the receiver must have seen every event exactly once
(distinct ``webhook-id`` = events; duplicates = POSTs - distinct; nothing crashes here, so
duplicates should be 0), and the database must hold every delivery ``succeeded`` with one
attempt. A miss prints a line and makes the exit status 1.

Absolute numbers depend on the machine and its load; the ratios are what to compare. On a
machine with few cores, two relays, PostgreSQL and the receiver compete for the same CPUs:
the machine's busy share in the table says when that is the limit. ``--profile DIR`` records
every relay with py-spy (non-blocking) over its measured window, one flame graph each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import psycopg
import uvloop  # what relay serve runs on too (uvicorn[standard])
from delivery import aiohttp_loop, write_events
from receiver import take_request
from relay_process import free_port, start_profiler, stop

from relay.errors import RelayError
from relay.ids import new_id
from relay.models import Account
from relay.signing import generate_webhook_secret, webhook_key
from relay.store import open_store

HOST = "127.0.0.1"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


# --- the receiver (its own process) ------------------------------------------------------


class Counter(asyncio.Protocol):
    """Answers every POST with 204 and counts it, its ``webhook-id`` in a set, and per client
    port. ``GET /stats``: ``{"posts": n, "distinct": n, "last": t, "by_port": {port: n}}``;
    ``GET /reset`` forgets all."""

    posts = 0
    ids: set[bytes] = set()  # noqa: RUF012 - one per process, on purpose
    by_port: dict[int, int] = {}  # noqa: RUF012 - POSTs per client port (which relay)
    live: set[Counter] = set()  # noqa: RUF012
    last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.posts = 0
        Counter.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tally()
        Counter.live.discard(self)

    def _tally(self) -> None:
        if self.posts:
            port = self.transport.get_extra_info("peername")[1]
            Counter.by_port[port] = Counter.by_port.get(port, 0) + self.posts
            self.posts = 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, _, self.buffer = request
            head = head.lower()
            if head.startswith(b"post "):
                at = head.find(b"\r\nwebhook-id:")
                if at >= 0:
                    line_end = head.find(b"\r\n", at + 2)
                    Counter.ids.add(head[at + 13 : line_end if line_end > 0 else None].strip())
                Counter.posts += 1
                self.posts += 1
                Counter.last = time.time()
                self.transport.write(b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n")
                continue
            if head.startswith(b"get /reset"):
                Counter.posts, Counter.ids, Counter.by_port, Counter.last = 0, set(), {}, 0.0
                for conn in Counter.live:
                    conn.posts = 0
            for conn in Counter.live:
                conn._tally()
            payload = json.dumps(
                {
                    "posts": Counter.posts,
                    "distinct": len(Counter.ids),
                    "last": Counter.last,
                    "by_port": Counter.by_port,
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )


async def serve_receiver(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Counter, HOST, port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def receiver_stats(
    session: aiohttp.ClientSession, url: str, reset: bool = False
) -> dict[str, Any]:
    async with session.get(url + ("/reset" if reset else "/stats")) as r:
        return dict(await r.json())


# --- CPU accounting (Linux /proc) -----------------------------------------------------------


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
    return pids


def _machine() -> tuple[int, int, int]:
    """Jiffies of all CPUs: (busy, total, in processes: user + nice + system). Busy includes
    interrupts and softirqs, where the kernel carries loopback traffic; they are nobody's."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values), values[0] + values[1] + values[2]


@dataclass
class CpuSample:
    procs: dict[int, int]
    machine: tuple[int, int, int]
    at: float


def cpu_sample(pids: Sequence[int]) -> CpuSample:
    procs = {pid: t for pid in [*pids, *_postgres_pids()] if (t := _ticks(pid)) is not None}
    return CpuSample(procs, _machine(), time.monotonic())


def cpu_seconds(before: CpuSample, after: CpuSample, pids: Sequence[int]) -> float:
    hz = os.sysconf("SC_CLK_TCK")
    return (
        sum(
            after.procs[p] - before.procs[p] for p in pids if p in before.procs and p in after.procs
        )
        / hz
    )


def postgres_cpu(before: CpuSample, after: CpuSample, exclude: Sequence[int]) -> float:
    pids = [p for p in after.procs if p in before.procs and p not in exclude]
    return cpu_seconds(before, after, pids)


def machine_busy(before: CpuSample, after: CpuSample) -> float:
    """Share of all CPUs busy between the samples (1.0: every core, all the time)."""
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    return busy / total if total else float("nan")


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (its fds matched against /proc/net/tcp)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def wait_quiet(threshold: float, limit: float) -> float:
    """Wait (up to ``limit`` s) until other work on the machine keeps less than
    ``threshold`` of its CPUs busy over 2 s; the busy share last seen."""
    deadline = time.monotonic() + limit
    while True:
        before = _machine()
        await asyncio.sleep(2.0)
        after = _machine()
        share = (after[0] - before[0]) / max(1, after[1] - before[1])
        if share < threshold or time.monotonic() > deadline:
            return share


# --- databases --------------------------------------------------------------------------------


class Database:
    """One fresh database for one configuration: made, seeded, read back, removed."""

    url: str
    relay_url: str
    """What the relays are given (``--pg-options`` added)."""
    backend: str

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """After the shift to T0: leave the tables as a live database has them."""

    def started(self) -> str:
        return ""

    def wal(self) -> int | None:
        """The server's WAL insert position in bytes (None: no WAL to speak of)."""
        return None

    def remove(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    backend = "SQLite"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "relay.db"
        self.url = self.relay_url = f"sqlite:///{self.path}"

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
            return conn.execute(sql).fetchall()

    def remove(self) -> None:
        pass  # the temp dir goes


class PostgresDatabase(Database):
    backend = "PostgreSQL"

    def __init__(self, base_url: str, options: str = "") -> None:
        self.base_url = base_url
        self.schema = "bench_" + "".join(random.choices(string.ascii_lowercase, k=10))
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        joiner = "&" if "?" in base_url else "?"
        self.url = f"{base_url}{joiner}options={quote(f'-csearch_path={self.schema}')}"
        self.relay_url = self.url + (quote(f" {options}") if options else "")

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def prepare(self) -> None:
        for table in ("deliveries", "events", "tasks", "destinations", "accounts"):
            self.execute(f"VACUUM ANALYZE {table}")

    def started(self) -> str:
        """When the server started: a change means it restarted meanwhile."""
        return str(self.execute("SELECT pg_postmaster_start_time()")[0][0])

    def wal(self) -> int | None:
        return int(self.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")[0][0])

    def remove(self) -> None:
        # Patiently: the server may be restarting (something else on the machine did that).
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.base_url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    print(f"could not drop schema {self.schema}; drop it by hand", file=sys.stderr)
                    raise
                time.sleep(1)


async def seed(db: Database, n: int, hook_url: str) -> float:
    """``n`` task.succeeded events with their callback deliveries, through the store API;
    the seconds it took."""
    store = open_store(db.url)
    try:
        await store.migrate()
        account = Account(id=new_id("acct"), name="bench", created_at=datetime.now(UTC))
        await store.create_account(account, "hash", generate_webhook_secret())
        started = time.perf_counter()
        # A few writers at once: PostgreSQL takes them side by side (SQLite queues them).
        writers = 8
        await asyncio.gather(
            *(
                write_events(store, account, hook_url, n // writers + (i < n % writers))
                for i in range(writers)
            )
        )
        return time.perf_counter() - started
    finally:
        await store.close()


# --- relay processes ---------------------------------------------------------------------


@dataclass
class Relay:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def start_relay(
    db: Database, role: str, tmp: Path, index: int, script: Path | None = None
) -> Relay:
    port = free_port()
    config = {
        "server": {"host": HOST, "port": port},
        "database_url": db.relay_url,
        "log_level": "info",
        # The receiver is on loopback, which the default network policy refuses.
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
    }
    path = tmp / f"relay-{index}.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    log = tmp / f"relay-{index}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                *([str(script)] if script else ["-m", "relay"]),
                "serve",
                "--config",
                str(path),
                "--role",
                role,
            ],
            stdout=out,
            stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Relay(proc, f"http://{HOST}:{port}", log)


async def wait_healthy(session: aiohttp.ClientSession, relay: Relay, until: float) -> None:
    while time.time() < until:
        if relay.proc.poll() is not None:
            raise RuntimeError(
                f"a relay exited with {relay.proc.returncode}:\n"
                + relay.log.read_text(errors="replace")[-3000:]
            )
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(relay.url + "/healthz") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise RuntimeError("a relay was not healthy before the work fell due; raise --lead")


def trouble(log: str) -> tuple[int, str] | None:
    """How many warnings and errors a relay's log has, and the first one whole (its
    traceback runs to the next line that starts with a time stamp)."""
    lines = log.splitlines()
    bad = [n for n, line in enumerate(lines) if " ERROR " in line or " WARNING " in line]
    if not bad:
        return None
    end = next(
        (n for n in range(bad[0] + 1, len(lines)) if lines[n][:4] == lines[bad[0]][:4]), len(lines)
    )
    return len(bad), "\n    ".join(lines[bad[0] : min(end, bad[0] + 40)])


# --- one configuration -------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    baseline: float
    """The aiohttp loop's req/s, measured right before this configuration."""
    baseline_after: float
    """The same, measured right after it."""
    loads: tuple[float, float, float]
    """The 1-minute load average at the end of each phase: baseline before, relay, after."""
    lag_ms: float
    """From T0 (everything due) to the first attempt's start: the first claim's query, and
    50 ms more when the timer fired a hair early (see the module's docstring)."""
    relay_cpu: float
    receiver_cpu: float
    postgres_cpu: float
    machine: float
    others: float
    """CPUs' worth of time (cores) used by everything else on the machine meanwhile."""
    per_instance: list[int]
    """POSTs the receiver got from each relay (a last figure: from connections closed)."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the relays logged as they were stopped: reported, not a failed run."""
    seed_seconds: float = 0.0
    wal_bytes: int | None = None
    tries: int = 1
    """WAL the server wrote over the window (the whole server's: other users' too)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def run_config(
    name: str,
    db: Database,
    instances: int,
    role: str,
    args: argparse.Namespace,
    tmp: Path,
    hook: str,
    receiver_url: str,
    receiver_pid: int,
    session: aiohttp.ClientSession,
) -> Result:
    n = args.events
    seeded = await seed(db, n, hook)
    if args.quiet < 1:
        share = await wait_quiet(args.quiet, args.quiet_wait)
        if share >= args.quiet:
            print(
                f"{name}: the machine stayed {share:.0%} busy with other work; measuring anyway",
                file=sys.stderr,
            )
    # The baseline, right before: the machine's state drifts between configurations.
    await receiver_stats(session, receiver_url, reset=True)
    baseline = await aiohttp_loop(hook, n, args.concurrency, webhook_key(generate_webhook_secret()))
    load_before = os.getloadavg()[0]
    await receiver_stats(session, receiver_url, reset=True)

    server_started = db.started()
    t0 = time.time() + args.lead
    db.execute(f"UPDATE deliveries SET next_attempt_at = {t0!r}")
    db.prepare()
    if time.time() > t0 - args.lead / 2:
        raise RuntimeError("preparing the database took most of --lead; raise it")
    relays: list[Relay] = []
    spies: list[subprocess.Popen[bytes]] = []
    problems: list[str] = []
    try:
        relays = [start_relay(db, role, tmp, i, args.relay_script) for i in range(instances)]
        await asyncio.gather(*(wait_healthy(session, r, t0 - 0.2) for r in relays))
        pids = [r.proc.pid for r in relays]
        await asyncio.sleep(max(0.0, t0 - 0.05 - time.time()))
        if args.profile:
            spies = [
                start_profiler(pid, args.profile / f"{name}-{i + 1}.svg", rate=250)
                for i, pid in enumerate(pids)
            ]
        ours = [*pids, receiver_pid, os.getpid()]
        before = cpu_sample(ours)
        wal_before = db.wal()
        deadline = time.monotonic() + args.timeout
        while True:
            stats = await receiver_stats(session, receiver_url)
            if stats["distinct"] >= n or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        after = cpu_sample(ours)
        load_relay = os.getloadavg()[0]
        wal_after = db.wal()
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        await asyncio.sleep(1.0)  # late duplicates, if any, and the last attempt records
        stats = await receiver_stats(session, receiver_url)
        by_port = {int(k): v for k, v in stats["by_port"].items()}
        per_instance = [sum(by_port.pop(p, 0) for p in local_ports(pid)) for pid in pids]
        if sum(by_port.values()):
            per_instance.append(sum(by_port.values()))  # connections closed meanwhile
    finally:
        for spy in spies:
            await asyncio.to_thread(stop, spy, signal.SIGINT)
        running = [r.log.stat().st_size for r in relays]
        await asyncio.gather(*(asyncio.to_thread(stop, r.proc) for r in relays))
        notes: list[str] = []
        for i, (r, size) in enumerate(zip(relays, running, strict=True)):
            text = r.log.read_bytes()
            for part, when, into in (
                (text[:size], "while running", problems),
                (text[size:], "as it stopped (SIGTERM)", notes),
            ):
                found = trouble(part.decode(errors="replace"))
                if found:
                    into.append(
                        f"relay {i + 1} logged {found[0]} warnings/errors {when}; "
                        f"the first:\n    {found[1]}"
                    )

    # The baseline again, right after: the machine's state drifts during a configuration too.
    await receiver_stats(session, receiver_url, reset=True)
    baseline_after = await aiohttp_loop(
        hook, n, args.concurrency, webhook_key(generate_webhook_secret())
    )
    loads = (load_before, load_relay, os.getloadavg()[0])

    # The database's account, after a clean stop (every attempt recorded).
    ((succeeded, attempts, resent, first, last),) = db.execute(
        "SELECT (SELECT count(*) FROM deliveries WHERE status = 'succeeded'), "
        "(SELECT count(*) FROM attempts), "
        "(SELECT count(*) FROM deliveries WHERE attempt_count > 1), "
        "(SELECT min(started_at) FROM attempts), "
        "(SELECT max(started_at + latency_ms / 1000.0) FROM attempts "
        "WHERE outcome = 'delivered')"
    )
    if db.started() != server_started:
        problems.append("PostgreSQL restarted during the measurement: run it again")
    if stats["distinct"] < n:
        problems.append(f"the receiver saw {stats['distinct']} of {n} events")
    if stats["posts"] != stats["distinct"]:
        problems.append(f"duplicates at the receiver: {stats['posts'] - stats['distinct']}")
    if succeeded != n or attempts != n or resent:
        problems.append(
            f"database: {succeeded} of {n} deliveries succeeded, {attempts} "
            f"attempts, {resent} deliveries attempted more than once"
        )
    if last is None or first is None:
        raise RuntimeError(f"{name}: nothing was delivered; " + "; ".join(problems))
    pg_cpu = postgres_cpu(before, after, exclude=ours)
    window = after.at - before.at
    in_processes = (after.machine[2] - before.machine[2]) / os.sysconf("SC_CLK_TCK")
    others = in_processes - cpu_seconds(before, after, ours) - pg_cpu
    return Result(
        name=name,
        events=n,
        seconds=last - first,
        baseline=baseline,
        baseline_after=baseline_after,
        loads=loads,
        lag_ms=(first - t0) * 1000,
        relay_cpu=cpu_seconds(before, after, pids),
        receiver_cpu=cpu_seconds(before, after, [receiver_pid]),
        postgres_cpu=pg_cpu if db.backend == "PostgreSQL" else 0.0,
        machine=machine_busy(before, after),
        others=others / window,
        per_instance=per_instance,
        problems=problems,
        notes=notes,
        seed_seconds=seeded,
        wal_bytes=None if wal_before is None or wal_after is None else wal_after - wal_before,
    )


# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, tmp: Path, pg_url: str, pg_options: str) -> Iterator[Database]:
    db: Database = SqliteDatabase(tmp) if kind == "sqlite" else PostgresDatabase(pg_url, pg_options)
    try:
        yield db
    finally:
        db.remove()


CONFIGS: list[tuple[str, str, int, str]] = [
    # (name, backend, instances, role)
    ("sqlite-1", "sqlite", 1, "all"),
    ("postgres-1", "postgres", 1, "worker"),
    ("postgres-2", "postgres", 2, "worker"),
]
LABELS = {
    "sqlite-1": "SQLite, 1 relay (--role all)",
    "postgres-1": "PostgreSQL, 1 relay (--role worker)",
    "postgres-2": "PostgreSQL, 2 relays (--role worker)",
}


async def measure(args: argparse.Namespace, receiver_url: str, receiver_pid: int) -> bool:
    hook = receiver_url + "/hook"
    results: dict[str, Result] = {}
    failed: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        for name, kind, instances, role in CONFIGS:
            if name not in args.only:
                continue
            for attempt in range(args.retries + 1):
                again = "again" if attempt < args.retries else "giving up on it"
                try:
                    with (
                        tempfile.TemporaryDirectory(prefix=f"delivery-{name}-") as d,
                        database(kind, Path(d), args.pg_url, args.pg_options) as db,
                    ):
                        result = await run_config(
                            name,
                            db,
                            instances,
                            role,
                            args,
                            Path(d),
                            hook,
                            receiver_url,
                            receiver_pid,
                            session,
                        )
                except (RuntimeError, OSError, psycopg.Error, RelayError) as exc:
                    # The server restarted under us, a relay died: say so, and retry.
                    failed[name] = f"{type(exc).__name__}: {exc}"
                    print(f"{name}: failed ({failed[name][:2000]}); {again}", file=sys.stderr)
                    continue
                best = results.get(name)
                if best is None or result.others < best.others:
                    results[name] = result
                if result.others <= args.max_others:
                    break
                print(
                    f"{name}: other processes took {result.others:.2f} cores meanwhile "
                    f"({result.rate:.0f} events/s); "
                    + ("again" if attempt < args.retries else "keeping the least disturbed"),
                    file=sys.stderr,
                )
            if name in results:
                failed.pop(name, None)
                results[name].tries = attempt + 1
    ok = report(args, results)
    for name, why in failed.items():
        print(f"{LABELS[name]}: FAILED: {why[:2000]}")
    return ok and not failed


def report(args: argparse.Namespace, results: dict[str, Result]) -> bool:
    loop = "uvloop"
    print(
        f"events: {args.events} task.succeeded, one callback delivery each, one receiver "
        f"(its own process); {os.cpu_count()} CPUs; event loop: {loop} everywhere"
    )
    print(
        f"baseline: bare aiohttp loop of benchmarks/delivery.py, {args.concurrency} "
        "concurrent, run right before and right after each configuration"
    )
    print()
    head = (
        f"{'configuration':<38}{'events/s':>9}{'/ before':>9}{'/ after':>8}{'before':>8}"
        f"{'after':>7}{'loads b/r/a':>16}"
        f"{'lag ms':>8}{'relay CPU':>10}{'pg CPU':>8}{'rcv CPU':>8}{'machine':>8}"
        f"{'others':>8}{'WAL':>8}  per relay"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        wal = "-" if r.wal_bytes is None else f"{r.wal_bytes / r.events / 1024:.1f}KB"
        print(
            f"{LABELS[name]:<38}{r.rate:>9.0f}{r.rate / r.baseline:>9.2f}"
            f"{r.rate / r.baseline_after:>8.2f}{r.baseline:>8.0f}{r.baseline_after:>7.0f}"
            f"{'/'.join(f'{x:.1f}' for x in r.loads):>16}{r.lag_ms:>8.1f}"
            f"{r.relay_cpu * 1e6 / r.events:>8.0f}us{r.postgres_cpu * 1e6 / r.events:>6.0f}us"
            f"{r.receiver_cpu * 1e6 / r.events:>6.0f}us{r.machine:>8.0%}"
            f"{r.others:>8.2f}{wal:>8}"
            f"  {'/'.join(map(str, r.per_instance))}"
        )
    print(
        "(/ before, / after: relay events/s over the baseline run just before it and just "
        "after it, in req/s under before and after; loads b/r/a: the 1-minute load average "
        "at the end of the baseline before, the relay, the baseline after; lag: from T0 to "
        "the first attempt; CPU per event: all relays, all postgres processes, the "
        "receiver; machine: busy share of all CPUs; others: cores used by other processes "
        "meanwhile (not this benchmark's, not postgres); WAL: PostgreSQL's WAL per event; "
        "per relay: POSTs the receiver got from each)"
    )
    if not results:
        return False
    base = statistics.median(r.baseline for r in results.values())
    print(
        f"baseline median {base:.0f} req/s over {len(results)} runs "
        f"(range {min(r.baseline for r in results.values()):.0f}-"
        f"{max(r.baseline for r in results.values()):.0f})"
    )
    print()
    ratios: list[tuple[str, str, str]] = [
        ("PostgreSQL 1 relay / SQLite 1 relay", "postgres-1", "sqlite-1"),
        ("PostgreSQL 2 relays / PostgreSQL 1 relay", "postgres-2", "postgres-1"),
        ("PostgreSQL 2 relays / SQLite 1 relay", "postgres-2", "sqlite-1"),
    ]
    for label, a, b in ratios:
        if a in results and b in results:
            print(f"{label:<42}{results[a].rate / results[b].rate:6.2f}")
    ok = True
    print()
    for name, r in results.items():
        if r.problems:
            ok = False
            for p in r.problems:
                print(f"{LABELS[name]}: {p}")
        else:
            print(
                f"{LABELS[name]}: all {r.events} delivered, each once at the receiver "
                f"and once in the database (0 duplicates); seeded in {r.seed_seconds:.0f} s"
                + (f"; the least disturbed of {r.tries} runs" if r.tries > 1 else "")
            )
        for note in r.notes:
            print(f"{LABELS[name]}: note: {note}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="the baseline loop's concurrency (the relays': their defaults)",
    )
    parser.add_argument(
        "--pg-url",
        default=PG_URL,
        help="a PostgreSQL database to make fresh schemas in "
        "(default: $BENCH_PG_URL or %(default)s)",
    )
    parser.add_argument(
        "--pg-options",
        default="",
        metavar="OPTIONS",
        help="server settings for the relays' PostgreSQL sessions, as libpq "
        "options (-clog_min_duration_statement=0 logs every statement "
        "with its duration, for profiling)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=6.0,
        help="seconds from making the work due ahead to it falling due: "
        "the relays must start in that time",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="give up on a configuration after this many seconds",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.15,
        help="before each configuration, wait until other work keeps less "
        "than this share of the CPUs busy (1: do not wait)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=300.0, help="... but no longer than this many seconds"
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="a configuration during which other processes used more CPU "
        "than this (cores) is run again ...",
    )
    parser.add_argument("--retries", type=int, default=2, help="... up to this many times")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[c[0] for c in CONFIGS],
        default=[c[0] for c in CONFIGS],
        help="run only these",
    )
    parser.add_argument(
        "--relay-script",
        type=Path,
        metavar="FILE",
        help="run `python FILE serve ...` instead of `python -m relay serve "
        "...` (a relay patched for an experiment)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy every relay into DIR/<configuration>-<n>.svg",
    )
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        uvloop.run(serve_receiver(args.serve_receiver))
        return
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve-receiver", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        ok = uvloop.run(measure(args, f"http://{HOST}:{port}", receiver.pid))
    finally:
        receiver.kill()
        receiver.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
