"""Long history: does a replay, a count, the failed-events feed or a retention pass stall the
other requests of a relay holding 1M events?

    python benchmarks/long_history.py                      # 1M events, SQLite
    python benchmarks/long_history.py --events 200000      # a quicker look

What runs:
- the history, written straight into the relay's SQLite file before it starts (the schema by
  ``relay accounts create``, which migrates): ``--events`` events over four accounts (half of
  them the benchmark's), four per finished task, each with one callback delivery (1 % failed,
  1 % stopped, the rest succeeded) and its attempt, created from 100 days ago to 1 day ago;
- a real ``relay serve`` (its own process, SQLite), then phases, each probed every
  ``--probe-ms`` (20 ms) by a ``GET /v1/me`` and a ``POST /v1/subscriptions`` from this process:
  - ``baseline``: nothing else running (measured before and after the others);
  - ``replay-empty``: replays of a window holding no events, back to back;
  - ``replay-failed``: one replay of the whole history with ``only_failed`` to a seeded
    subscription that failed 1 % of the account's events (too many to read alone: its count
    and its walk read every event of the account; ~1,250 terminal events are sent again);
  - ``list-failed``: ``GET /v1/events?delivery_status=failed``, back to back;
  - ``retention``: the relay restarted with ``retention.history_days: 90`` and housekeeping
    every second: its first pass deletes the ~10 % of the history older than 90 days (events,
    deliveries, attempts, then the finished tasks and their callbacks), later passes find
    nothing.
Printed per phase: the probes' max and p99 (ms), the long operations' durations, and the
load average of the machine (other processes included) at the phase's end.

Target (issue 17): no API request waits more than 50 ms behind a replay or retention.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay_process import (
    HOST,
    create_account,
    free_port,
    start_relay,
    stop,
    wait_healthy,
)

DAY = 86_400.0
EVENTS_PER_TASK = 4
TYPES = ("task.queued", "task.running", "task.running", "task.succeeded")
OTHER_ACCOUNTS = ("acc_other1", "acc_other2", "acc_other3")
HOOK = "http://127.0.0.1:9/hook"
FAILING_SUB = "sub_failing"
TIMEOUT = aiohttp.ClientTimeout(total=120)
"""No request may hang the benchmark: one that takes longer fails the run."""


# --- the history --------------------------------------------------------------------------------


def seed(db: Path, bench_account: str, events: int, now: float) -> None:
    """``events`` events with their tasks, callbacks, deliveries and attempts, in bulk."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=OFF")
    c.executemany(
        "INSERT INTO accounts (id, name, callback_secret, created_at) VALUES (?, ?, ?, ?)",
        [(a, a, "whsec_x", now - 200 * DAY) for a in OTHER_ACCOUNTS],
    )
    accounts = [bench_account, bench_account, bench_account, *OTHER_ACCOUNTS]
    # The benchmark account's subscription (terminal types), which failed 1 % of its events.
    c.execute(
        "INSERT INTO destinations (id, account_id, kind, url, key, secret, created_at,"
        " status, updated_at) VALUES (?, ?, 'subscription', ?, ?, ?, ?, 'active', ?)",
        (FAILING_SUB, bench_account, HOOK, FAILING_SUB, "whsec_" + "A" * 32, now, now),
    )
    rng = random.Random(17)
    tasks = events // EVENTS_PER_TASK
    start, span = now - 100 * DAY, 99 * DAY
    body_pad = "x" * 200
    chunk = 20_000
    pk = 0
    for first in range(0, tasks, chunk):
        t_rows, d_rows, e_rows, v_rows, a_rows = [], [], [], [], []
        for t in range(first, min(first + chunk, tasks)):
            account = accounts[t % len(accounts)]
            task_id, dst = f"task_{t:08d}", f"dst_{t:08d}"
            t0 = start + span * t / tasks
            done = t0 + 60.0
            t_rows.append(
                (task_id, account, "sandbox", f"cgt-{t}", "succeeded", 4, 4, "{}", t0, done, done)
            )
            d_rows.append((dst, account, "callback", task_id, HOOK, "127.0.0.1:9", t0))
            for seq, type_ in enumerate(TYPES, start=1):
                pk += 1
                at = t0 + 20.0 * (seq - 1)
                body = json.dumps(
                    {"id": f"evt_{pk:09d}", "type": type_, "task_id": task_id, "pad": body_pad}
                )
                e_rows.append((pk, f"evt_{pk:09d}", account, task_id, type_, seq, at, body))
                roll = rng.random()
                status = "failed" if roll < 0.01 else "stopped" if roll < 0.02 else "succeeded"
                v_rows.append(
                    (
                        pk,
                        f"dlv_{pk:09d}",
                        account,
                        pk,
                        dst,
                        "127.0.0.1:9",
                        HOOK,
                        status,
                        1,
                        at,
                        at + 1,
                        task_id,
                    )
                )
                if account == bench_account and roll > 0.99:
                    v_rows.append(
                        (
                            -pk,
                            f"dlv_s{pk:09d}",
                            account,
                            pk,
                            FAILING_SUB,
                            FAILING_SUB,
                            HOOK,
                            "failed",
                            9,
                            at,
                            at + DAY,
                            task_id,
                        )
                    )
                code = 200 if status == "succeeded" else 500
                a_rows.append((pk, 1, at + 0.5, 35.0, "ok" if code == 200 else "http_error", code))
        with c:
            c.executemany(
                "INSERT INTO tasks (id, account_id, provider, provider_task_id, status, version,"
                " sequence, data, created_at, updated_at, completed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                t_rows,
            )
            c.executemany(
                "INSERT INTO destinations (id, account_id, kind, task_id, url, key, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                d_rows,
            )
            c.executemany(
                "INSERT INTO events (pk, id, account_id, task_id, type, sequence, created_at,"
                " body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                e_rows,
            )
            c.executemany(
                "INSERT INTO deliveries (pk, id, account_id, event_pk, destination_id,"
                " destination_key, url, status, attempt_count, created_at, updated_at, task_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                v_rows,
            )
            c.executemany(
                "INSERT INTO attempts (delivery_pk, number, started_at, latency_ms, outcome,"
                " status_code) VALUES (?, ?, ?, ?, ?, ?)",
                a_rows,
            )
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


# --- the relay ----------------------------------------------------------------------------------


def write_config(tmp: Path, port: int, history_days: float | None) -> Path:
    config = {
        "server": {"host": HOST, "port": port},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": "warning",
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "retention": {"history_days": history_days},
        "subscriptions": {"housekeeping_seconds": 1.0},
    }
    path = tmp / "relay.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    probes: dict[str, list[float]] = field(default_factory=lambda: {"me": [], "create": []})
    ops: dict[str, list[float]] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    began: float = field(default_factory=time.perf_counter)
    worst: list[tuple[float, float, str]] = field(default_factory=list)
    """(ms, seconds into the phase when issued, probe) of every probe."""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(session: aiohttp.ClientSession, method: str, url: str, **kw: object) -> float:
    began = time.perf_counter()
    async with session.request(method, url, **kw) as r:  # type: ignore[arg-type]
        await r.read()
        if r.status >= 400:
            raise RuntimeError(f"{method} {url}: {r.status} {await r.text()}")
    return (time.perf_counter() - began) * 1000


async def probe(
    session: aiohttp.ClientSession, base: str, phase: Phase, every: float, stop: asyncio.Event
) -> None:
    """A GET /v1/me and a POST /v1/subscriptions every ``every`` seconds until ``stop``."""
    pending: set[asyncio.Task[None]] = set()

    async def one(kind: str, method: str, url: str, **kw: object) -> None:
        issued = time.perf_counter() - phase.began
        try:
            took = await timed(session, method, url, **kw)
        except TimeoutError:
            took = math.inf
        phase.probes[kind].append(took)
        phase.worst.append((took, issued, kind))

    next_at = time.perf_counter()
    while not stop.is_set():
        for kind, method, url, kw in (
            ("me", "GET", base + "/v1/me", {}),
            ("create", "POST", base + "/v1/subscriptions", {"json": {"url": HOOK}}),
        ):
            t = asyncio.create_task(one(kind, method, url, **kw))
            pending.add(t)
            t.add_done_callback(pending.discard)
        next_at += every
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*pending)


async def run_phase(
    session: aiohttp.ClientSession,
    base: str,
    name: str,
    every: float,
    work: Callable[[Phase], Awaitable[None]],
) -> Phase:
    phase = Phase(name)
    stop_probes = asyncio.Event()
    prober = asyncio.create_task(probe(session, base, phase, every, stop_probes))
    try:
        await work(phase)
    finally:
        stop_probes.set()
        await prober
    phase.load = os.getloadavg()
    return phase


def for_seconds(seconds: float) -> Callable[[Phase], Awaitable[None]]:
    async def idle(phase: Phase) -> None:
        await asyncio.sleep(seconds)

    return idle


def repeat(
    seconds: float, name: str, op: Callable[[], Awaitable[float]]
) -> Callable[[Phase], Awaitable[None]]:
    async def run(phase: Phase) -> None:
        deadline = time.perf_counter() + seconds
        phase.ops[name] = []
        while time.perf_counter() < deadline:
            try:
                phase.ops[name].append(await op())
            except TimeoutError:  # no answer within TIMEOUT: shown as inf, the run goes on
                phase.ops[name].append(math.inf)
                return

    return run


def report(phases: list[Phase]) -> None:
    print(
        f"\n{'phase':<15} {'probe':<7} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}   load 1/5/15 min"
    )
    for p in phases:
        for kind, values in p.probes.items():
            print(
                f"{p.name:<15} {kind:<7} {len(values):>5} {pct(values, 0.5):>8.1f}"
                f" {pct(values, 0.99):>8.1f} {max(values, default=float('nan')):>8.1f}"
                f"   {p.load[0]:.2f} / {p.load[1]:.2f} / {p.load[2]:.2f}"
            )
        slow = sorted(p.worst, reverse=True)[:3]
        over = sum(1 for ms, _, _ in p.worst if ms > 50)
        print(
            f"{'':<15} probes over 50 ms: {over}; slowest: "
            + ", ".join(f"{ms:.0f} ms ({kind}, issued at {at:.2f} s)" for ms, at, kind in slow)
        )
        for op, values in p.ops.items():
            print(
                f"{'':<15} {op}: {len(values)} run(s), ms: min {min(values):.1f}"
                f" median {statistics.median(values):.1f} max {max(values):.1f}"
            )
    worst = max(
        (
            max(v)
            for p in phases
            if not p.name.startswith("baseline")
            for v in p.probes.values()
            if v
        ),
        default=float("nan"),
    )
    base = max(
        (max(v) for p in phases if p.name.startswith("baseline") for v in p.probes.values() if v),
        default=float("nan"),
    )
    print(
        f"\nworst probe behind a long operation: {worst:.1f} ms (baseline max {base:.1f} ms);"
        " target: < 50 ms"
    )


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


# --- the run ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as cleanup:
        if args.keep is None:
            tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="relay-lh-")))
        else:
            tmp = args.keep
            tmp.mkdir(parents=True, exist_ok=True)
        port = free_port()
        base = f"http://{HOST}:{port}"
        config = write_config(tmp, port, None)
        kept = tmp / "bench.json"
        if kept.exists():  # --keep: the history of an earlier run (its retention already ran)
            account_id, key, now = json.loads(kept.read_text(encoding="utf-8"))
            print(f"reusing the history in {tmp} (seeded at {iso(now)})")
        else:
            account_id, key = await asyncio.to_thread(create_account, config)
            now = time.time()
            began = time.perf_counter()
            await asyncio.to_thread(seed, tmp / "relay.db", account_id, args.events, now)
            size = (tmp / "relay.db").stat().st_size / 2**20
            print(
                f"seeded {args.events:,} events (deliveries and attempts alike) in"
                f" {time.perf_counter() - began:.1f} s, {size:.0f} MiB;"
                f" load {os.getloadavg()[0]:.2f}"
            )
            if args.keep is not None:
                kept.write_text(json.dumps([account_id, key, now]), encoding="utf-8")
        every = args.probe_ms / 1000
        headers = {"Authorization": f"Bearer {key}"}
        phases: list[Phase] = []
        log = tmp / "relay.log"
        relay = start_relay(config, log)
        try:
            await wait_healthy(base, relay, log)
            async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:
                async with session.post(base + "/v1/subscriptions", json={"url": HOOK}) as r:
                    sub = (await r.json())["id"]
                # Warm up: the first requests pay for imports and caches.
                for _ in range(20):
                    await timed(session, "GET", base + "/v1/me")
                phases.append(
                    await run_phase(session, base, "baseline", every, for_seconds(args.seconds))
                )
                empty = {"since": iso(now - 0.5 * DAY), "until": iso(now - 0.4 * DAY)}
                replay_url = f"{base}/v1/subscriptions/{sub}/replay"
                phases.append(
                    await run_phase(
                        session,
                        base,
                        "replay-empty",
                        every,
                        repeat(
                            args.seconds,
                            "replay (empty window)",
                            lambda: timed(session, "POST", replay_url, json=empty),
                        ),
                    )
                )
                everything = {"since": iso(now - 200 * DAY), "only_failed": True}
                failing_url = f"{base}/v1/subscriptions/{FAILING_SUB}/replay"
                phases.append(
                    await run_phase(
                        session,
                        base,
                        "replay-failed",
                        every,
                        repeat(
                            0.001,
                            "replay only_failed, whole history (count + walk)",
                            lambda: timed(session, "POST", failing_url, json=everything),
                        ),
                    )
                )
                failed_url = base + "/v1/events?delivery_status=failed"
                phases.append(
                    await run_phase(
                        session,
                        base,
                        "list-failed",
                        every,
                        repeat(
                            args.seconds,
                            "GET /v1/events?delivery_status=failed",
                            lambda: timed(session, "GET", failed_url),
                        ),
                    )
                )
                phases.append(
                    await run_phase(
                        session, base, "baseline-after", every, for_seconds(args.seconds)
                    )
                )
        finally:
            stop(relay)
        # Retention: the same database, retention on, housekeeping every second.
        config = write_config(tmp, port, 90.0)
        cutoff = time.time() - 90 * DAY
        relay = start_relay(config, log)
        try:
            await wait_healthy(base, relay, log)
            async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:
                reader = sqlite3.connect(f"file:{tmp / 'relay.db'}?mode=ro", uri=True)

                def oldest() -> float:
                    """The oldest event retention may delete (one with a delivery still
                    pending, such as the replay's, is kept: events_time, those skipped)."""
                    row = reader.execute(
                        "SELECT created_at FROM events AS e WHERE NOT EXISTS ("
                        " SELECT 1 FROM deliveries AS d"
                        " WHERE d.event_pk = e.pk AND d.status = 'pending')"
                        " ORDER BY created_at LIMIT 1"
                    ).fetchone()
                    return float(row[0]) if row else 1e15

                async def retention(phase: Phase) -> None:
                    began = time.perf_counter()
                    for _ in range(int(args.retention_timeout * 10)):
                        if oldest() >= cutoff:
                            break
                        await asyncio.sleep(0.1)
                    else:
                        raise RuntimeError("retention did not finish its first pass in time")
                    phase.ops["first retention pass (to the last old event gone)"] = [
                        (time.perf_counter() - began) * 1000
                    ]
                    # Later passes, every second, find nothing left.
                    await asyncio.sleep(args.seconds)

                phases.append(await run_phase(session, base, "retention", every, retention))
                left = reader.execute("SELECT count(*) FROM tasks").fetchone()[0]
                print(f"tasks left after retention: {left:,} of {args.events // EVENTS_PER_TASK:,}")
                reader.close()
        finally:
            stop(relay)
        if relay.returncode not in (0, None):
            print(log.read_text(errors="replace")[-3000:])
        report(phases)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the timed phases")
    parser.add_argument("--probe-ms", type=float, default=20.0)
    parser.add_argument("--retention-timeout", type=float, default=600.0)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="work in this folder and keep it; a later run reuses its history (pruned once)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
