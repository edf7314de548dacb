"""The live event stream (``GET /v1/events/stream``, issue 15): how late an event reaches its
streams, and what idle streams cost the relay.

    python benchmarks/streams.py [--rate 100] [--streams 50] [--seconds 20] [--idle 1000]

Requirements: an event reaches an SSE client within 100 ms of its commit (p99) at 100
events/s with 50 open streams; an open stream costs under 100 KB of memory; 1,000 idle
streams cost under 5 % of one core. The exit status is 1 when one is missed.

Three processes, loopback only, one SQLite file:

- the relay, ``python -m relay serve --config ...`` (uvloop, its default ``log_level: info``),
  with ``streams.max_per_account`` raised to the 1,000 the idle figure needs, and every other
  ``streams`` setting at its default (heartbeat 15 s, tail interval 0.25 s);
- a second relay used only as the sandbox *provider* of the first (its built-in Ark sandbox:
  queued 0.2 s, running 0.4 s), so that answering creates and polls is not charged to the
  relay measured;
- this benchmark: the SSE clients (aiohttp, one connection per stream, frames split by hand
  to keep the client cheap next to 5,000 frames a second) and the tasks' creator.

1. Latency. Tasks are created through ``POST /v1/tasks`` at ``--rate`` / 3 a second, evenly
   spaced; each makes three events (queued in the create's own transaction, running and
   succeeded when the relay's polls see them), so the relay commits about ``--rate`` events a
   second, all of one account, and every stream receives every one of them. Per (stream,
   event): the event's ``created_at`` as the relay stored it (wall clock, stamped just before
   the transaction, so the commit itself counts) to the wall clock in this process when the
   chunk that completes the frame was read. One machine, one clock. An event a stream never
   received counts as infinitely late. Baseline in the same run: the same load read by one
   stream; the ratios divide the 50 streams' figures by it. Printed with each: the relay's
   CPU, the share of the time its event loop was ready to run but waited for a CPU (from
   ``/proc/PID/schedstat``: on a shared machine, how much other load held it back), this
   client's CPU, and the relay CPU each frame beyond the baseline's cost. ``--profile FILE``
   records the relay with py-spy during the many-stream run.

2. Idle streams. On the same relay before the latency runs, with nothing else happening: its
   ``VmRSS`` (median of 2 s of samples) and CPU seconds over ``--cpu-seconds`` (30 s) with no
   stream open (the baseline: its schedulers' ticks), then the same with ``--idle`` streams
   open and settled. Memory per stream is the RSS difference divided by the streams; the
   streams' CPU is the difference of the two CPU figures. (The streams are opened after a
   few were opened and closed once, so first-use costs, imports and caches, are not counted
   against them.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop
from relay_process import (
    HOST,
    cpu_seconds,
    create_account,
    free_port,
    start_relay,
    stop,
    tail,
    wait_healthy,
)

TARGET_P99_MS = 100.0
TARGET_KB_PER_STREAM = 100.0
TARGET_CPU_SHARE = 0.05
MODEL = "doubao-seedance-2-0-fast-260128"
EVENTS_PER_TASK = 3
_FRAME_END = re.compile(rb"\r?\n\r?\n")
_ID_LINE = re.compile(rb"^id: ?([^\r\n]*)", re.MULTILINE)


# --- the processes ----------------------------------------------------------------------------


def write_configs(tmp: Path, port: int, provider_port: int, log_level: str) -> tuple[Path, Path]:
    """(the relay's config, the sandbox provider's)."""
    loopback = {"allow_networks": ["127.0.0.0/8", "::1"]}
    provider = {
        "server": {"host": HOST, "port": provider_port},
        "database_url": f"sqlite:///{tmp / 'provider.db'}",
        "log_level": "warning",
        "network": loopback,
        "polling": {"tick_seconds": 5},
        "delivery": {"tick_seconds": 5},
        "sandbox": {"enabled": True, "queued_seconds": 0.2, "running_seconds": 0.4},
    }
    relay = {
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}"},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": log_level,
        "network": loopback,
        "sandbox": {"enabled": False},
        "streams": {"max_per_account": 1000},
        "providers": {
            "sandbox": {
                "dialect": "ark",
                "base_url": f"http://{HOST}:{provider_port}",
                "path_prefix": "/sandbox/ark/api/v3",
                "api_key": "sandbox",
                # Every transition observed soon after it happens: three events a task.
                "poll": {
                    "min_interval": 0.1,
                    "max_interval": 0.5,
                    "expected_duration": 0.6,
                    "learn": False,
                },
            }
        },
    }
    paths = tmp / "relay.yaml", tmp / "provider.yaml"
    for path, config in zip(paths, (relay, provider), strict=True):
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return paths


def run_queue_wait(pid: int) -> float:
    """Seconds the process's main thread (the relay's event loop) has spent runnable but
    waiting for a CPU (Linux ``schedstat``); NaN elsewhere."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except OSError:
        return math.nan


def profile(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy (non-blocking) on the relay into ``--profile``, if asked: collapsed stacks."""
    if not args.profile:
        return None
    command = [args.py_spy, "record", "--pid", str(pid), "--nonblocking", "--rate", "200"]
    return subprocess.Popen(
        [*command, "--format", "raw", "--output", args.profile], stdout=subprocess.DEVNULL
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


async def median_rss_kb(pid: int, seconds: float = 2.0) -> float:
    samples = []
    for _ in range(int(seconds / 0.05)):
        samples.append(rss_kb(pid))
        await asyncio.sleep(0.05)
    return statistics.median(samples)


# --- the streams --------------------------------------------------------------------------------


@dataclass
class Stream:
    """One open ``GET /v1/events/stream``: when each event's frame was read (wall clock)."""

    received: dict[str, float] = field(default_factory=dict)
    bytes_read: int = 0
    dropped: bool = False
    """The relay ended it with ``event: error`` (the reader fell too far behind)."""
    reader: asyncio.Task[None] | None = None


async def read_frames(response: aiohttp.ClientResponse, stream: Stream) -> None:
    buffer = b""
    async for chunk in response.content.iter_any():
        now = time.time()
        stream.bytes_read += len(chunk)
        buffer += chunk
        frames = _FRAME_END.split(buffer)
        buffer = frames.pop()  # an incomplete frame waits for the next chunk
        for frame in frames:
            found = _ID_LINE.search(frame)
            if found:  # not a heartbeat comment
                stream.received.setdefault(found.group(1).decode(), now)
            elif b"event: error" in frame:
                stream.dropped = True


@contextlib.asynccontextmanager
async def open_streams(
    session: aiohttp.ClientSession, url: str, key: str, n: int
) -> AsyncIterator[list[Stream]]:
    """``n`` streams, each open (its 200 read, so its listener is registered) when this
    yields; closed on exit."""
    streams = [Stream() for _ in range(n)]
    opened: list[aiohttp.ClientResponse] = []
    gate = asyncio.Semaphore(100)  # no thundering herd of connects

    async def one(stream: Stream) -> None:
        async with gate:
            response = await session.get(
                url + "/v1/events/stream", headers={"Authorization": f"Bearer {key}"}
            )
        if response.status != 200:
            raise RuntimeError(f"stream refused: {response.status} {await response.text()}")
        opened.append(response)
        stream.reader = asyncio.ensure_future(read_frames(response, stream))

    try:
        await asyncio.gather(*(one(s) for s in streams))
        yield streams
    finally:
        for s in streams:
            if s.reader is not None:
                s.reader.cancel()
        await asyncio.gather(*(s.reader for s in streams if s.reader), return_exceptions=True)
        for response in opened:
            response.close()


# --- the load -----------------------------------------------------------------------------------


async def create_tasks(
    session: aiohttp.ClientSession, url: str, key: str, rate: float, seconds: float
) -> list[str]:
    """Tasks created at ``rate`` a second, evenly spaced (each create runs on its own, so a
    slow answer does not delay the next): their ids."""
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}

    async def create(i: int) -> None:
        body = {
            "provider": "sandbox",
            "input": {"model": MODEL, "content": [{"type": "text", "text": f"fox {i}"}]},
        }
        async with session.post(url + "/v1/tasks", json=body, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"create refused: {r.status} {await r.text()}")
            ids.append((await r.json())["id"])

    started = time.monotonic()
    running = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        running.append(asyncio.ensure_future(create(i)))
    await asyncio.gather(*running)
    return ids


def committed_at(db: Path, task_ids: list[str]) -> dict[str, float]:
    """Event id -> ``created_at`` (epoch seconds) of every event of these tasks."""
    wanted = set(task_ids)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, task_id, created_at FROM events").fetchall()
    return {eid: float(at) for eid, task_id, at in rows if task_id in wanted}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Latency:
    streams: int
    events: int
    latencies_ms: list[float]
    missing: int
    events_per_second: float
    dropped: int
    """Streams the relay ended because they fell behind."""
    relay_cpu: float
    relay_waited: float
    """Seconds the relay's event loop was ready to run but waited for a CPU (other
    processes had them): how much the shared machine held it back."""
    """The relay process's CPU seconds during the run."""
    client_cpu: float
    """This process's (the streams' readers and the creator)."""
    seconds: float

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms) - self.missing

    @property
    def p50(self) -> float:
        return quantile(self.latencies_ms, 0.50)

    @property
    def p99(self) -> float:
        return quantile(self.latencies_ms, 0.99)

    @property
    def worst(self) -> float:
        return max(self.latencies_ms)


async def latency(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    pid: int,
    db: Path,
    n: int,
    args: argparse.Namespace,
) -> Latency:
    async with open_streams(session, url, key, n) as streams:
        spy = profile(pid, args) if n > 1 else None
        relay_cpu, client_cpu, started = cpu_seconds(pid), time.process_time(), time.monotonic()
        waited = run_queue_wait(pid)
        task_ids = await create_tasks(session, url, key, args.rate / EVENTS_PER_TASK, args.seconds)
        await asyncio.sleep(3.0)  # the last tasks finish and their events arrive
        relay_cpu, client_cpu = cpu_seconds(pid) - relay_cpu, time.process_time() - client_cpu
        seconds = time.monotonic() - started
        waited = run_queue_wait(pid) - waited
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 60)
    events = await asyncio.to_thread(committed_at, db, task_ids)
    stamps = sorted(events.values())
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else math.nan
    found: list[float] = []
    missing = 0
    for stream in streams:
        for eid, at in events.items():
            got = stream.received.get(eid)
            if got is None:
                missing += 1
                found.append(math.inf)
            else:
                found.append((got - at) * 1000)
    return Latency(
        n,
        len(events),
        found,
        missing,
        len(events) / span,
        sum(s.dropped for s in streams),
        relay_cpu,
        waited,
        client_cpu,
        seconds,
    )


# --- idle streams -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Idle:
    streams: int
    rss_before_kb: float
    rss_after_kb: float
    cpu_before: float
    cpu_after: float
    seconds: float
    heartbeats: int

    @property
    def kb_per_stream(self) -> float:
        return (self.rss_after_kb - self.rss_before_kb) / self.streams

    @property
    def extra_share(self) -> float:
        return (self.cpu_after - self.cpu_before) / self.seconds


async def cpu_over(pid: int, seconds: float) -> float:
    used = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(pid) - used


async def idle(
    session: aiohttp.ClientSession, url: str, key: str, pid: int, args: argparse.Namespace
) -> Idle:
    # First use of the stream's code (imports, caches) is paid before the baseline.
    async with open_streams(session, url, key, 10):
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    rss_before = await median_rss_kb(pid)
    cpu_before = await cpu_over(pid, args.cpu_seconds)
    async with open_streams(session, url, key, args.idle) as streams:
        await asyncio.sleep(3.0)  # let the opening settle
        rss_after = await median_rss_kb(pid)
        cpu_after = await cpu_over(pid, args.cpu_seconds)
        beats = sum(s.bytes_read > 0 for s in streams)
    return Idle(args.idle, rss_before, rss_after, cpu_before, cpu_after, args.cpu_seconds, beats)


# --- the run ------------------------------------------------------------------------------------


def report(args: argparse.Namespace, base: Latency, many: Latency, still: Idle) -> bool:
    print(
        f"1. Event committed -> SSE frame read, tasks at {args.rate / EVENTS_PER_TASK:.1f}/s "
        f"(3 events each) for {args.seconds:g} s, every stream receiving every event"
    )
    for row in (base, many):
        print(
            f"  {row.streams:4d} stream(s): {row.events} events at {row.events_per_second:.0f}/s, "
            f"{len(row.latencies_ms)} frames, p50 {row.p50:6.1f} ms  p99 {row.p99:6.1f} ms  "
            f"max {row.worst:6.1f} ms  missing {row.missing}"
        )
        print(
            f"{'':19}over {row.seconds:.0f} s: relay CPU {row.relay_cpu / row.seconds:.0%} of a "
            f"core, ready but waiting for a CPU {row.relay_waited / row.seconds:.0%} of the "
            f"time; this client's CPU {row.client_cpu / row.seconds:.0%}; "
            f"{row.dropped} stream(s) dropped for falling behind"
        )
    extra = many.delivered - base.delivered
    if extra > 0:
        print(
            f"  relay CPU per extra frame sent: "
            f"{(many.relay_cpu - base.relay_cpu) / extra * 1e6:.0f} µs "
            f"(({many.streams} streams' CPU - 1 stream's) / (frames sent - 1 stream's))"
        )
    met_latency = many.p99 < TARGET_P99_MS and many.missing == 0
    print(
        f"  {many.streams} streams / 1 stream: p50 {many.p50 / base.p50:.2f}x, "
        f"p99 {many.p99 / base.p99:.2f}x; target p99 < {TARGET_P99_MS:g} ms with "
        f"{args.streams} streams: {'met' if met_latency else 'MISSED'}"
    )
    print(f"\n2. {still.streams} idle streams (heartbeat every 15 s), one relay process")
    print(
        f"  RSS {still.rss_before_kb / 1024:.1f} MB with none open -> "
        f"{still.rss_after_kb / 1024:.1f} MB: {still.kb_per_stream:.1f} KB per stream "
        f"(target < {TARGET_KB_PER_STREAM:g} KB: "
        f"{'met' if still.kb_per_stream < TARGET_KB_PER_STREAM else 'MISSED'})"
    )
    share = still.extra_share
    print(
        f"  CPU over {still.seconds:g} s: {still.cpu_before:.2f} s idle relay "
        f"({still.cpu_before / still.seconds:.1%} of a core), {still.cpu_after:.2f} s with the "
        f"streams ({still.cpu_after / still.seconds:.1%}): the streams cost {share:.2%} of a "
        f"core (target < {TARGET_CPU_SHARE:.0%}: {'met' if share < TARGET_CPU_SHARE else 'MISSED'}"
        f"); {still.heartbeats} of {still.streams} streams got a heartbeat"
    )
    return met_latency and still.kb_per_stream < TARGET_KB_PER_STREAM and share < TARGET_CPU_SHARE


async def measure(args: argparse.Namespace, tmp: Path) -> bool:
    port, provider_port = free_port(), free_port()
    config, provider_config = write_configs(tmp, port, provider_port, args.log_level)
    _, key = await asyncio.to_thread(create_account, config)
    url, provider_url = f"http://{HOST}:{port}", f"http://{HOST}:{provider_port}"
    provider = start_relay(provider_config, tmp / "provider.log")
    relay: subprocess.Popen[bytes] | None = None
    try:
        await wait_healthy(provider_url, provider, tmp / "provider.log")
        relay = start_relay(config, tmp / "relay.log")
        await wait_healthy(url, relay, tmp / "relay.log")
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            still = await idle(session, url, key, relay.pid, args)
            # Warm the task and stream paths once, unmeasured.
            async with open_streams(session, url, key, 1):
                await create_tasks(session, url, key, 10, 0.5)
                await asyncio.sleep(2.0)
            db = tmp / "relay.db"
            base = await latency(session, url, key, relay.pid, db, 1, args)
            many = await latency(session, url, key, relay.pid, db, args.streams, args)
    finally:
        if relay is not None:
            await asyncio.to_thread(stop, relay)
        await asyncio.to_thread(stop, provider)
        errors = [
            line
            for line in tail(tmp / "relay.log").splitlines()
            if " ERROR " in line or " WARNING " in line
        ]
        if errors:
            print(f"relay log: {len(errors)} warnings/errors, e.g. {errors[0][:300]}")
    return report(args, base, many, still)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events committed a second")
    parser.add_argument("--streams", type=int, default=50, help="open streams for figure 1")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load run")
    parser.add_argument("--idle", type=int, default=1000, help="idle streams for figure 2")
    parser.add_argument("--cpu-seconds", type=float, default=30.0)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy the relay during the many-stream run into FILE (collapsed stacks)",
    )
    parser.add_argument(
        "--py-spy",
        default=str(Path(sys.executable).with_name("py-spy")),
        help="the py-spy executable for --profile",
    )
    parser.add_argument("--log-level", default="info", help="the relay's log_level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streams-bench-") as tmp:
        met = uvloop.run(measure(args, Path(tmp)))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
