"""A victim account's delivery latency next to a noisy neighbour, in one run (issue 11).

    python benchmarks/fairness.py [--seconds 8] [--rate 20]

The relay's delivery engine on a SQLite file, with the default slots (256, 64 per
destination) and attempt timeout (15 s). A victim account writes ``--rate`` task.succeeded
events a second, each with a callback to a fast local receiver (benchmarks/receiver.py,
another process); its latency is from the event's commit to the receiver's 2xx, read from
the attempts recorded. Three scenarios, each on a fresh database:

1. baseline: the victim alone;
2. black holes: another account first has 400 callbacks due to five origins that accept
   connections and never answer (more than all 256 slots);
3. slow rates: another account first has four subscriptions at ``rate_limit`` 0.01 (the lowest
   the API accepts) with 100 deliveries due each.

Prints the victim's p50 and p99 per scenario and the ratio of each p50 to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from relay_process import HOST, free_port
from seeding import succeeded_task

from relay.clock import SystemClock
from relay.delivery.engine import DeliveryEngine, EngineSettings
from relay.ids import new_id
from relay.models import (
    Account,
    EventType,
    Subscription,
    SubscriptionStatus,
)
from relay.net.transport import RelayTransport
from relay.signing import generate_webhook_secret
from relay.store import open_store
from relay.store.interface import Store

HERE = Path(__file__).parent
SLOWEST_RATE = 0.01


@contextlib.asynccontextmanager
async def black_holes(n: int) -> AsyncIterator[list[str]]:
    """``n`` origins that accept connections, read, and never answer: their URLs."""
    held: set[asyncio.StreamWriter] = set()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.add(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        held.discard(writer)
        writer.close()

    servers = [await asyncio.start_server(hold, HOST, 0) for _ in range(n)]
    try:
        yield [f"http://{HOST}:{s.sockets[0].getsockname()[1]}/hook" for s in servers]
    finally:
        for server in servers:
            server.close()
        for writer in list(held):
            writer.close()


async def account(store: Store, name: str) -> Account:
    acct = Account(id=new_id("acct"), name=name, created_at=datetime.now(UTC))
    await store.create_account(acct, new_id("hash"), generate_webhook_secret())
    return acct


async def noisy_black_holes(store: Store, holes: list[str]) -> None:
    noisy = await account(store, "noisy")
    for i in range(400):
        await succeeded_task(store, noisy, holes[i % len(holes)])


async def noisy_slow_rates(store: Store, receiver: str) -> None:
    noisy = await account(store, "noisy")
    now = datetime.now(UTC)
    for i in range(4):
        sub = Subscription(
            id=new_id("sub"),
            account_id=noisy.id,
            url=f"{receiver}/{i}",
            event_types=frozenset({EventType.TASK_SUCCEEDED}),
            status=SubscriptionStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            rate_limit=SLOWEST_RATE,
        )
        await store.create_subscription(sub, generate_webhook_secret())
    for _ in range(100):
        await succeeded_task(store, noisy, None)


async def scenario(name: str, receiver: str, args: argparse.Namespace) -> list[float]:
    """The victim's latencies (ms) with the noisy neighbour ``name`` sets up."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        store = open_store(f"sqlite:///{db}")
        await store.migrate()
        transport = RelayTransport(max_connections=256 + 64)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="bench",
            settings=EngineSettings(),
        )
        async with black_holes(5) as holes:
            try:
                if name == "black holes":
                    await noisy_black_holes(store, holes)
                elif name == "slow rates":
                    await noisy_slow_rates(store, receiver)
                engine.wake()
                await asyncio.sleep(1.0)  # the neighbour takes what it can
                victim = await account(store, "victim")
                for _ in range(int(args.seconds * args.rate)):
                    tick = time.perf_counter()
                    await succeeded_task(store, victim, receiver)
                    engine.wake()
                    await asyncio.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - tick)))
                await asyncio.sleep(2.0)  # the last ones arrive (or do not)
            finally:
                await engine.stop(grace=0)
                await transport.aclose()
                await store.close()
        return victim_latencies(db, victim.id, int(args.seconds * args.rate))


def victim_latencies(db: str, account_id: str, expected: int) -> list[float]:
    """Per victim event: 2xx time minus write time, in ms; one not delivered counts as
    infinitely late."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT (a.started_at + a.latency_ms / 1000.0 - e.created_at) * 1000 "
            "FROM attempts a JOIN deliveries d ON d.pk = a.delivery_pk "
            "JOIN events e ON e.pk = d.event_pk "
            "WHERE a.outcome = 'delivered' AND d.account_id = ?",
            (account_id,),
        ).fetchall()
    found = [r[0] for r in rows]
    return found + [float("inf")] * (expected - len(found))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(receiver: str, args: argparse.Namespace) -> None:
    results = {}
    for name in ("baseline", "black holes", "slow rates"):
        results[name] = await scenario(name, receiver, args)
    base = statistics.median(results["baseline"])
    print(
        f"victim: {args.rate:g} events/s for {args.seconds:g} s; slots 256, 64 per destination, "
        "timeout 15 s"
    )
    for name, latencies in results.items():
        p50 = statistics.median(latencies)
        print(
            f"{name:12}  p50 {p50:9.1f} ms  p99 {quantile(latencies, 0.99):9.1f} ms  "
            f"p50 / baseline {p50 / base:8.2f}  ({len(latencies)} events)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        asyncio.run(measure(f"http://{HOST}:{port}/hook", args))
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    main()
