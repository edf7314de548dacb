"""Delivery throughput and latency of the relay, next to bare HTTP loops, in one run.

    python benchmarks/delivery.py [--events 20000] [--concurrency 64]

Measures, against the same local receiver (benchmarks/receiver.py, another process):

1. a bare loop with plain httpx (default transport) sending the same signed requests with no
   bookkeeping;
2. the same bare loop with aiohttp, the fastest Python client at hand;
3. the relay: durable deliveries (events already written to SQLite, each delivery claimed,
   signed, POSTed, its attempt recorded), events/s from the first claim to the last 2xx;
4. the relay's latency from an event being written (committed) to the receiver's 2xx, at a
   steady 100 events/s: p50, p99.

Absolute numbers depend on the machine and its load; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
from relay_process import free_port
from seeding import succeeded_task

from relay.clock import SystemClock
from relay.delivery.engine import DeliveryEngine, EngineSettings
from relay.ids import new_id
from relay.models import Account, Task, TaskStatus
from relay.net.transport import RelayTransport
from relay.signing import generate_webhook_secret, sign, webhook_key
from relay.store import open_store
from relay.store.interface import Store
from relay.transitions import registered

HERE = Path(__file__).parent


def sample_body() -> bytes:
    """An envelope the size of a real task.succeeded event (~1 KB)."""
    now = datetime.now(UTC)
    task = Task(
        id=new_id("task"),
        account_id="acct",
        provider="sandbox",
        provider_task_id="cgt-20260606160057-6bbjd",
        status=TaskStatus.SUCCEEDED,
        created_at=now,
        updated_at=now,
        video_url="https://example.com/v.mp4?" + "x" * 300,
    )
    return registered(task, now, lambda: new_id("evt")).events[0].body.encode()


async def bare_loop(
    send: Callable[[bytes, dict[str, str]], Awaitable[int]], n: int, concurrency: int, key: bytes
) -> float:
    body = sample_body()
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            stamp = int(time.time())
            msg_id = f"evt_{i}"
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(msg_id, stamp, body, [key]),
            }
            status = await send(body, headers)
            assert 200 <= status < 300, status

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def httpx_loop(url: str, n: int, concurrency: int, key: bytes) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def send(body: bytes, headers: dict[str, str]) -> int:
            return (await client.post(url, content=body, headers=headers)).status_code

        return await bare_loop(send, n, concurrency, key)


async def aiohttp_loop(url: str, n: int, concurrency: int, key: bytes) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(body: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        return await bare_loop(send, n, concurrency, key)


async def write_events(store: Store, account: Account, url: str, n: int) -> list[float]:
    """Write ``n`` task.succeeded events (each with its callback delivery); commit times."""
    written = []
    for _ in range(n):
        await succeeded_task(store, account, url)
        written.append(time.time())
    return written


async def wait_delivered(db: str, n: int, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if finished(db)[0] >= n:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{n} deliveries did not succeed within {limit:g} s")


def finished(db: str) -> tuple[int, float | None, float | None]:
    """(succeeded deliveries, first attempt start, last 2xx) read straight from the file."""
    with sqlite3.connect(db) as conn:
        done = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
        count = done.fetchone()[0]
        first, last = conn.execute(
            "SELECT min(started_at), max(started_at + latency_ms / 1000.0) FROM attempts "
            "WHERE outcome = 'delivered'"
        ).fetchone()
    return count, first, last


async def relay_run(url: str, n: int, concurrency: int, rate_events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        store = open_store(f"sqlite:///{db}")
        await store.migrate()
        account = Account(id=new_id("acct"), name="bench", created_at=datetime.now(UTC))
        await store.create_account(account, "hash", generate_webhook_secret())
        transport = RelayTransport(max_connections=concurrency * 4)
        engine = DeliveryEngine(
            store=store,
            transport=transport,
            clock=SystemClock(),
            rng=random.Random(1),
            owner="bench",
            settings=EngineSettings(
                max_in_flight=concurrency * 4, max_in_flight_per_destination=concurrency
            ),
        )
        try:
            # 1. Throughput: drain a backlog of n written events.
            await write_events(store, account, url, n)
            start = time.time()
            engine.wake()
            await wait_delivered(db, n)
            _, _, last = finished(db)
            assert last is not None
            throughput = n / (last - start)

            # 2. Latency at a steady rate: write one event every 1/rate s.
            before = time.time()
            written: list[float] = []
            for _ in range(rate_events):
                tick = time.perf_counter()
                written += await write_events(store, account, url, 1)
                engine.wake()
                await asyncio.sleep(max(0.0, 0.01 - (time.perf_counter() - tick)))
            await wait_delivered(db, n + rate_events)
            latencies = sorted(latency_ms(db, before))
        finally:
            await engine.stop(grace=5)
            await transport.aclose()
            await store.close()
    qs = statistics.quantiles(latencies, n=100)
    return {"throughput": throughput, "p50": qs[49], "p99": qs[98], "samples": len(latencies)}


def latency_ms(db: str, since: float) -> list[float]:
    """Per event: its 2xx time minus its write time (the event's created_at is taken just
    before the commit, so this slightly over-states latency, never under-states it)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT (a.started_at + a.latency_ms / 1000.0 - e.created_at) * 1000 "
            "FROM attempts a JOIN deliveries d ON d.pk = a.delivery_pk "
            "JOIN events e ON e.pk = d.event_pk "
            "WHERE a.outcome = 'delivered' AND e.created_at >= ?",
            (since,),
        ).fetchall()
    return [r[0] for r in rows]


async def measure(url: str, args: argparse.Namespace) -> None:
    key = webhook_key(generate_webhook_secret())
    n, c = args.events, args.concurrency
    # httpx's default pool degrades with many concurrent requests; give it its best
    # concurrency too, so the comparison is fair to it.
    plain = await httpx_loop(url, max(1000, n // 8), c, key)
    plain_best = await httpx_loop(url, max(1000, n // 8), 4, key)
    fast = await aiohttp_loop(url, n, c, key)
    relay = await relay_run(url, n, c, args.rate_events)
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"events: {n}, concurrency: {c}, event loop: {loop}, "
        "receiver: benchmarks/receiver.py (another process)"
    )
    print(f"bare loop, plain httpx ({c} concurrent) {plain:8.0f} req/s")
    print(f"bare loop, plain httpx (4 concurrent)  {plain_best:8.0f} req/s")
    print(f"bare loop, aiohttp ({c} concurrent)     {fast:8.0f} req/s")
    print(f"relay, durable signed deliveries       {relay['throughput']:8.0f} events/s")
    print(
        f"  relay / aiohttp loop                 {relay['throughput'] / fast:8.2f}"
        "   (target >= 0.50)"
    )
    print(
        f"  relay / best plain httpx loop        "
        f"{relay['throughput'] / max(plain, plain_best):8.2f}"
    )
    print(
        f"latency at 100 events/s, write -> receiver 2xx ({relay['samples']:.0f} events): "
        f"p50 {relay['p50']:.1f} ms, p99 {relay['p99']:.1f} ms   (target p99 < 20 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rate-events", type=int, default=1000, help="events sent at 100/s for the latency figure"
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop for all three (uvloop: what relay serve runs on)",
    )
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(measure(f"http://127.0.0.1:{port}/hook", args))
        else:
            asyncio.run(measure(f"http://127.0.0.1:{port}/hook", args))
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    main()
