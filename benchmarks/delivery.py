"""Delivery throughput and latency of the relay, next to bare HTTP loops, in one run.

    python benchmarks/delivery.py [--events 20000] [--concurrency 64] [--no-httpx]

Measures, against the same local receiver (benchmarks/receiver.py, another process):

1. a bare loop with plain httpx (default transport) sending the same signed requests with no
   bookkeeping (left out with ``--no-httpx``);
2. the same bare loop with aiohttp, the fastest Python client at hand: the baseline, run
   right before AND right after the relay; the relay's figure is divided by each;
3. the relay (P1): durable deliveries (events already written to SQLite, each delivery
   claimed, signed, POSTed, its attempt recorded), events/s from the wake to the receiver's
   last POST;
4. the relay's latency (P2) from an event being written (committed) to the relay having the
   receiver's 2xx, at a steady 100 events/s for 10 s: p50, p99 and max.

Completion is asked of the receiver (it counts what it got; one ``GET /wait/N`` is left
open), never counted in the relay's database on the event loop under test; the latencies are
read from the database once the relay has stopped.

Beside each figure, the load of the machine over that phase: the 1-minute load average at
its end, and "others": the cores that processes other than this benchmark and its receiver
used meanwhile (/proc). A phase where others used more than 0.2 cores is flagged: not a
quiet run. Absolute numbers depend on the machine and its load; the ratios are what to
compare.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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

QUIET = 0.2
"""Cores other processes may use during a phase of a quiet run."""


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


class Receiver:
    """The receiver process, asked (never the relay's store) whether the work is done."""

    def __init__(self, base: str, pid: int) -> None:
        self.base = base
        self.pid = pid
        self.hook = base + "/hook"

    async def stats(self, at_least: int = 0, limit: float = 600.0) -> tuple[int, float]:
        """(POSTs so far, ``time.time()`` of the last), once there are ``at_least``: one
        request, answered by the receiver when it has them."""
        path = f"/wait/{at_least}" if at_least else "/stats"
        timeout = aiohttp.ClientTimeout(total=limit)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.base + path) as r,
        ):
            got = await r.json()
        return int(got["posts"]), float(got["last"])

    async def wait_for(self, posts: int, limit: float = 600.0) -> float:
        """Wait until the receiver has had ``posts`` POSTs in all; the time of the last."""
        try:
            return (await self.stats(posts, limit))[1]
        except TimeoutError:
            got = (await self.stats())[0]
            raise TimeoutError(f"the receiver got {got} of {posts} within {limit:g} s") from None


@dataclass(frozen=True)
class Load:
    """The machine's load over one phase."""

    average: float
    """The 1-minute load average at the end of the phase."""
    others: float
    """Cores used by processes other than this benchmark and its receiver over the phase."""

    def __str__(self) -> str:
        return f"load {self.average:4.2f}, others {self.others:4.2f} cores"


def _ticks(pids: Sequence[int]) -> tuple[int, int]:
    """(jiffies spent in processes on the whole machine, those of ``pids``); (0, 0) where
    /proc is not there."""
    try:
        cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        ours = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(fields[11]) + int(fields[12])
    except OSError:
        return 0, 0
    return cpu[0] + cpu[1] + cpu[2], ours


class LoadMeter:
    """The load of each phase: ``stop = meter.start()`` as it begins, ``stop()`` as it ends."""

    def __init__(self, ours: Sequence[int]) -> None:
        self.ours = list(ours)
        self.loads: list[Load] = []

    def start(self) -> Callable[[], Load]:
        machine, ours = _ticks(self.ours)
        at = time.monotonic()

        def stop() -> Load:
            machine_now, ours_now = _ticks(self.ours)
            jiffies = max(1e-9, time.monotonic() - at) * os.sysconf("SC_CLK_TCK")
            others = (machine_now - machine - (ours_now - ours)) / jiffies
            load = Load(os.getloadavg()[0], max(0.0, others))
            self.loads.append(load)
            return load

        return stop


@dataclass(frozen=True)
class RelayFigures:
    throughput: float
    throughput_load: Load
    cpu_us: float
    """This process's CPU per event while it drained the backlog (the relay alone runs)."""
    latencies: list[float]
    latency_load: Load


async def relay_run(
    receiver: Receiver, n: int, concurrency: int, rate_events: int, meter: LoadMeter
) -> RelayFigures:
    url = receiver.hook
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
            posts, _ = await receiver.stats()
            stop = meter.start()
            cpu = time.process_time()
            start = time.time()
            engine.wake()
            last = await receiver.wait_for(posts + n)
            throughput = n / (last - start)
            cpu_us = (time.process_time() - cpu) / n * 1e6
            throughput_load = stop()

            # 2. Latency at a steady rate: write one event every 1/rate s.
            before = time.time()
            stop = meter.start()
            for _ in range(rate_events):
                tick = time.perf_counter()
                await write_events(store, account, url, 1)
                engine.wake()
                await asyncio.sleep(max(0.0, 0.01 - (time.perf_counter() - tick)))
            await receiver.wait_for(posts + n + rate_events)
            latency_load = stop()
        finally:
            await engine.stop(grace=5)
            await transport.aclose()
            await store.close()
        latencies = sorted(latency_ms(db, before))
    return RelayFigures(throughput, throughput_load, cpu_us, latencies, latency_load)


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


async def measure(receiver: Receiver, args: argparse.Namespace) -> None:
    key = webhook_key(generate_webhook_secret())
    n, c, url = args.events, args.concurrency, receiver.hook
    meter = LoadMeter([os.getpid(), receiver.pid])
    rows: list[tuple[str, str, Load]] = []

    async def bare(label: str, run: Awaitable[float], items: int) -> float:
        stop = meter.start()
        cpu = time.process_time()
        rate = await run
        cpu_us = (time.process_time() - cpu) / items * 1e6
        rows.append((label, f"{rate:8.0f} req/s {cpu_us:5.0f} us", stop()))
        return rate

    if args.httpx:
        # httpx's default pool degrades with many concurrent requests; give it its best
        # concurrency too, so the comparison is fair to it.
        m = max(1000, n // 8)
        await bare(f"bare loop, plain httpx ({c} concurrent)", httpx_loop(url, m, c, key), m)
        await bare("bare loop, plain httpx (4 concurrent)", httpx_loop(url, m, 4, key), m)
    before = await bare(
        f"bare loop, aiohttp ({c} concurrent), before", aiohttp_loop(url, n, c, key), n
    )
    relay = await relay_run(receiver, n, c, args.rate_events, meter)
    rows.append(
        (
            "relay, durable signed deliveries (P1)",
            f"{relay.throughput:8.0f} ev/s  {relay.cpu_us:5.0f} us",
            relay.throughput_load,
        )
    )
    after = await bare(
        f"bare loop, aiohttp ({c} concurrent), after", aiohttp_loop(url, n, c, key), n
    )
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"events: {n}, concurrency: {c}, event loop: {loop}, {os.cpu_count()} CPUs, "
        "receiver: benchmarks/receiver.py (another process)"
    )
    print(f"{'phase':<44}{'figure':>14} {'CPU/item':>8}   machine load over the phase")
    for label, figure, load in rows:
        print(f"{label:<44}{figure}   {load}")
    print(f"  relay / aiohttp loop before            {relay.throughput / before:8.2f}")
    print(
        f"  relay / aiohttp loop after             {relay.throughput / after:8.2f}"
        "   (target >= 0.6 of each)"
    )
    lat = relay.latencies
    qs = statistics.quantiles(lat, n=100)
    print(
        f"latency at 100 events/s, write -> relay has the 2xx, {len(lat)} events (P2): "
        f"p50 {qs[49]:.1f} ms, p99 {qs[98]:.1f} ms, max {lat[-1]:.1f} ms   "
        f"{relay.latency_load}   (target max < 20 ms)"
    )
    noisy = [load for load in meter.loads if load.others > QUIET]
    if noisy:
        print(
            f"not a quiet run: other processes used more than {QUIET} cores in "
            f"{len(noisy)} of {len(meter.loads)} phases"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rate-events", type=int, default=1000, help="events sent at 100/s for the latency figure"
    )
    parser.add_argument(
        "--no-httpx", dest="httpx", action="store_false", help="leave out the plain httpx loops"
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
        target = Receiver(f"http://127.0.0.1:{port}", receiver.pid)
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(measure(target, args))
        else:
            asyncio.run(measure(target, args))
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    main()
