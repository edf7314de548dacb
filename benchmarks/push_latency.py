"""Push latency of the seedance2.ink path: from the provider's inbound webhook reaching the
relay to the signed ``task.succeeded`` callback reaching the caller's receiver.

    python benchmarks/push_latency.py [--tasks 1000] [--rate 50] [--burst 200]

Requirement: the callback arrives within 50 ms of the inbound webhook (p99, loopback). It is
judged on the steady phase (traffic like a provider's: finishes spread over time); the exit
status is 1 when that misses. The burst is reported against the same 50 ms, for information.

Three processes, loopback only:

- the relay, ``python -m relay serve --config ...`` (its own process and event loop, SQLite
  in a temp dir, the default ``log_level: info``), with one provider ``ink`` on the
  ``seedance2ink`` preset whose ``base_url`` is a fake seedance2.ink run by this benchmark;
- this benchmark, which plays the provider: it answers the relay's create (keeping the
  ``webhookUrl`` the relay hands over) and its confirming query, and when a task "finishes"
  it POSTs the final task body to that ``webhookUrl`` itself;
- a receiver (this file with ``--serve-receiver``, a bare asyncio protocol) that stamps the
  arrival of every callback and answers 204.

What is measured, per task: ``t0`` = ``time.monotonic()`` in this benchmark immediately
before the push request is handed to the HTTP client, to ``t1`` = ``time.monotonic()`` in
the receiver once the whole callback request has been read. Both are CLOCK_MONOTONIC, one
clock for every process on Linux. Everything between counts: the inbound request, the token
check, the relay's query to the provider and the provider's answer, the transaction saving
the status change with its event and delivery, the delivery engine's claim, signing and
POST. Why not the built-in sandbox (``sandbox: true``)? Its pushes are sent, and its
confirming queries answered, by the relay's own event loop, so the provider's work would be
charged to the relay; and its ``sent_at`` is stamped when the relay's 202 has come back, not
when the push left, so it misses the inbound handling. Here the provider is another process
and stamps the push itself. (Its answer to the confirming query still comes from this
benchmark's event loop, so a busy benchmark is charged to the relay, never the reverse: the
figures can only over-state the relay's latency.)

Load: ``--tasks`` tasks are created through ``POST /v1/tasks`` as a Poisson stream at
``--rate`` per second, and each finishes (is pushed) 1 to 3 s after its creation, so creates
and pushes interleave like real traffic. Then a burst: ``--burst`` tasks created first and
pushed all at once (a provider flushing its webhook queue after an outage).

Baselines, in the same run and under the same load: during the steady phase a Poisson stream
of plain POSTs (the size of a callback) from this benchmark straight to the receiver, timed
between the same two points (t0 before the client call, t1 on arrival): one loopback hop
with nobody in between; and the round trip of one provider query (this benchmark's client to
its fake provider), the hop the relay must make before it may emit anything. The printed
ratios divide the relay's figures by the plain POST's.

The total is split into stages with three more stamps: when the fake provider received the
relay's confirming query, and, read from the relay's database after the run, when the relay
stamped the ``task.succeeded`` event (``events.created_at``, taken once the query's answer is
read, before the transaction) and started the callback's first attempt
(``attempts.started_at``); both are wall-clock times, put on the monotonic clock with this
process's offset between the two.

Absolute numbers depend on the machine and its load; the ratios are what to compare.
``--profile FILE`` records the relay process with py-spy (non-blocking, so it does not pause
the relay) from the start of the steady phase to the end (or, with ``--tasks 0``, the burst's
pushes only): ``.svg`` flame graph, ``.json`` speedscope, anything else collapsed stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop  # what relay serve runs on too (uvicorn[standard])
from aiohttp import web
from receiver import take_request
from relay_process import (
    cpu_seconds,
    create_account,
    free_port,
    start_profiler,
    start_relay,
    stop,
    tail,
    wait_healthy,
)

HOST = "127.0.0.1"
PROVIDER = "ink"
INK_TASKS = "/api/open/v1/video/generations"
TARGET_P99_MS = 50.0


# --- the receiver (its own process) ------------------------------------------------------


class Recorder(asyncio.Protocol):
    """Answers every POST with 204 and keeps (arrival, body); ``GET /arrivals`` returns
    ``[[task id, event type, arrival], ...]`` and ``GET /count`` how many POSTs came."""

    records: list[tuple[float, bytes]] = []  # noqa: RUF012 - one per process, on purpose

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            arrived = time.monotonic()
            head, body, self.buffer = request
            head = head.lower()
            if head.startswith(b"get /count"):
                self._answer(str(len(Recorder.records)).encode())
            elif head.startswith(b"get "):
                self._answer(
                    json.dumps([_named(when, raw) for when, raw in Recorder.records]).encode()
                )
            else:
                Recorder.records.append((arrived, body))
                self.transport.write(b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n")

    def _answer(self, payload: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )


def _named(when: float, raw: bytes) -> list[object]:
    try:
        envelope = json.loads(raw)
        return [envelope["data"]["id"], envelope["type"], when]
    except (ValueError, KeyError, TypeError):
        return [None, None, when]


async def serve_receiver(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Recorder, HOST, port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# --- the fake seedance2.ink (in this process) --------------------------------------------


@dataclass
class InkTask:
    request_id: str
    webhook_url: str
    relay_id: str = ""
    done: bool = False
    pushed_at: float | None = None
    acked_at: float | None = None
    queried_at: float | None = None
    """The first query after the push: the relay confirming it."""


class FakeInk:
    """Just enough of seedance2.ink's open API (page 004) for the relay's push path."""

    PROBE = "req_probe"
    """A task the baseline queries; never pushed, so never confirmed by the relay."""

    def __init__(self) -> None:
        self.tasks: dict[str, InkTask] = {self.PROBE: InkTask(self.PROBE, "")}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(INK_TASKS, self.create)
        app.router.add_get(INK_TASKS + "/{request_id}", self.get)
        return app

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        request_id = f"req_bench{len(self.tasks):06d}"
        self.tasks[request_id] = InkTask(request_id, body["webhookUrl"])
        return web.json_response(
            {"success": True, "requestId": request_id, "status": "queued", "creditsCharged": 40}
        )

    async def get(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        task = self.tasks.get(request.match_info["request_id"])
        if task is None:
            return web.json_response(
                {"success": False, "error": {"code": "not_found", "message": "Task not found"}},
                status=404,
            )
        if task.pushed_at is not None and task.queried_at is None:
            task.queried_at = now
        return web.json_response(self.body(task))

    def body(self, task: InkTask) -> dict[str, object]:
        done = task.done
        return {
            "success": True,
            "requestId": task.request_id,
            "status": "succeeded" if done else "processing",
            "model": "seedance-2.0",
            "prompt": "a lighthouse at dawn, slow dolly in",
            "duration": 5,
            "aspectRatio": "16:9",
            "output": {
                "type": "video",
                "url": f"https://cdn.example.com/videos/{task.request_id}.mp4",
            }
            if done
            else None,
            "error": None,
        }


# --- driving the load --------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        relay_url: str,
        api_key: str,
        receiver_url: str,
        ink: FakeInk,
        ink_url: str,
        rng: random.Random,
    ) -> None:
        self.relay_url = relay_url
        self.receiver_url = receiver_url
        self.ink = ink
        self.ink_url = ink_url
        self.rng = rng
        self.api = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"}, connector=aiohttp.TCPConnector(limit=64)
        )
        # The provider's webhook sender and the baseline's plain POSTs: same client, same
        # pooling, no limit (a burst must not queue inside this benchmark).
        self.pusher = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.prober = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.probes: dict[str, float] = {}
        self.query_rtts: list[float] = []

    async def close(self) -> None:
        for session in (self.api, self.pusher, self.prober):
            await session.close()

    async def create(self, n: int) -> InkTask:
        body = {
            "provider": PROVIDER,
            "input_format": "native",
            "input": {
                "model": "seedance-2.0",
                "prompt": f"benchmark task {n}",
                "aspectRatio": "16:9",
                "duration": 5,
                "resolution": "720p",
            },
            "callback_url": self.receiver_url + "/hook",
            "reference": f"bench-{n}",
        }
        async with self.api.post(self.relay_url + "/v1/tasks", json=body) as response:
            answer = await response.json()
            if response.status != 201:
                raise RuntimeError(f"POST /v1/tasks: {response.status} {answer}")
        task = self.ink.tasks[answer["provider_task_id"]]
        task.relay_id = answer["id"]
        return task

    async def push(self, task: InkTask) -> None:
        """The provider's webhook: the task ends, then its final body is POSTed."""
        task.done = True  # the query answers "succeeded" from now on
        content = json.dumps(self.ink.body(task)).encode()
        headers = {"content-type": "application/json", "user-agent": "seedance2ink-webhook/1.0"}
        task.pushed_at = time.monotonic()
        async with self.pusher.post(task.webhook_url, data=content, headers=headers) as response:
            await response.read()
            task.acked_at = time.monotonic()
            if response.status != 202:
                raise RuntimeError(f"inbound webhook answered {response.status}")

    async def life(self, n: int, delay: float) -> InkTask:
        task = await self.create(n)
        await asyncio.sleep(delay)
        await self.push(task)
        return task

    async def steady(self, n: int, rate: float) -> list[InkTask]:
        loop = asyncio.get_running_loop()
        lives: list[asyncio.Task[InkTask]] = []
        at = loop.time()
        for i in range(n):
            at += self.rng.expovariate(rate)
            await asyncio.sleep(max(0.0, at - loop.time()))
            lives.append(asyncio.ensure_future(self.life(i, self.rng.uniform(1.0, 3.0))))
        return list(await asyncio.gather(*lives))

    async def baseline(self, n: int, rate: float, stop: asyncio.Event) -> None:
        """Plain POSTs to the receiver and provider queries, interleaved with the load."""
        loop = asyncio.get_running_loop()
        sent: list[asyncio.Task[None]] = []
        at = loop.time()
        for i in range(n):
            at += self.rng.expovariate(rate)
            await asyncio.sleep(max(0.0, at - loop.time()))
            if stop.is_set():
                break
            sent.append(asyncio.ensure_future(self._probe(i)))
        await asyncio.gather(*sent)

    async def _probe(self, i: int) -> None:
        body = json.dumps(_sample_envelope(f"probe_{i}")).encode()
        started = time.monotonic()
        async with self.prober.post(
            self.receiver_url + "/hook", data=body, headers={"content-type": "application/json"}
        ) as r:
            await r.read()
        self.probes[f"probe_{i}"] = started
        started = time.monotonic()
        async with self.prober.get(f"{self.ink_url}{INK_TASKS}/{FakeInk.PROBE}") as r:
            await r.read()
        self.query_rtts.append((time.monotonic() - started) * 1000)

    async def create_many(self, n: int, first: int) -> list[InkTask]:
        todo = iter(range(first, first + n))
        tasks: list[InkTask] = []

        async def creator() -> None:
            for i in todo:
                tasks.append(await self.create(i))

        await asyncio.gather(*(creator() for _ in range(8)))
        return tasks

    async def arrivals(self, expect: int, within: float) -> dict[str, float]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self.prober.get(self.receiver_url + "/count") as r:
                if int(await r.text()) >= expect:
                    break
            await asyncio.sleep(0.2)
        async with self.prober.get(self.receiver_url + "/arrivals") as r:
            rows = json.loads(await r.text())
        return {
            str(task_id): at for task_id, kind, at in rows if kind in ("task.succeeded", "probe")
        }


def _sample_envelope(task_id: str) -> dict[str, object]:
    """A plain POST the size of a real task.succeeded callback (~1 KB)."""
    return {
        "id": "evt_01JX0000000000000000000000",
        "type": "probe",
        "timestamp": "2026-06-06T16:03:11Z",
        "sequence": 3,
        "data": {
            "id": task_id,
            "provider": PROVIDER,
            "provider_task_id": "req_bench000000",
            "model": "seedance-2.0",
            "status": "succeeded",
            "progress": 100,
            "video_url": "https://cdn.example.com/videos/req_bench000000.mp4",
            "video_url_expires_at": None,
            "last_frame_url": None,
            "error": None,
            "usage": {"creditsCharged": 40},
            "resolution": "720p",
            "ratio": "16:9",
            "duration": 5,
            "fps": None,
            "seed": None,
            "reference": "bench-0",
            "metadata": {"projectId": "proj_1001", "pad": "x" * 400},
            "created_at": "2026-06-06T16:00:57Z",
            "updated_at": "2026-06-06T16:03:11Z",
            "completed_at": "2026-06-06T16:03:11Z",
        },
    }


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    if not values:
        return "count 0"
    return (
        f"count {len(values):4d}  p50 {percentile(values, 50):6.2f}  "
        f"p90 {percentile(values, 90):6.2f}  p99 {percentile(values, 99):6.2f}  "
        f"max {max(values):6.2f} ms"
    )


@dataclass
class Phase:
    name: str
    latencies: list[float]
    stages: dict[str, list[float]]
    missing: int
    cpu_ms: float
    """The relay process's CPU time (all threads) per task during the phase."""
    cpu_what: str
    load: float = math.nan
    """The machine's 1-minute load average at the end of the phase."""


STAGES = (
    "push -> relay's 202 (at the provider)",
    "push -> confirming query at provider",
    "query -> event stamped (answer read)",
    "event -> delivery attempt starts",
    "attempt starts -> callback arrives",
)


def phase(
    name: str,
    tasks: list[InkTask],
    arrived: dict[str, float],
    relay_side: dict[str, tuple[float, float]],
    cpu: float,
    cpu_what: str,
) -> Phase:
    """``relay_side``: task id -> (event created, first attempt started), monotonic;
    ``cpu``: the relay's CPU seconds per task."""
    out = Phase(name, [], {stage: [] for stage in STAGES}, 0, cpu * 1000, cpu_what)
    ack, to_query, to_event, to_attempt, to_arrival = out.stages.values()
    for t in tasks:
        assert t.pushed_at is not None
        assert t.acked_at is not None
        ack.append((t.acked_at - t.pushed_at) * 1000)
        at = arrived.get(t.relay_id)
        if at is None:
            out.missing += 1
            continue
        out.latencies.append((at - t.pushed_at) * 1000)
        event, attempt = relay_side.get(t.relay_id, (math.nan, math.nan))
        if t.queried_at is not None and not math.isnan(event):
            to_query.append((t.queried_at - t.pushed_at) * 1000)
            to_event.append((event - t.queried_at) * 1000)
            to_attempt.append((attempt - event) * 1000)
            to_arrival.append((at - attempt) * 1000)
    return out


def relay_stamps(db: Path, offset: float) -> dict[str, tuple[float, float]]:
    """Per task, when the relay stamped its task.succeeded event and started the callback's
    first attempt (wall clock in the database; ``offset`` = wall - monotonic)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT e.task_id, e.created_at, min(a.started_at) FROM events e "
            "JOIN deliveries d ON d.event_pk = e.pk JOIN attempts a ON a.delivery_pk = d.pk "
            "WHERE e.type = 'task.succeeded' GROUP BY e.task_id"
        ).fetchall()
    return {task_id: (created - offset, started - offset) for task_id, created, started in rows}


def report(
    args: argparse.Namespace,
    relay_pid: int,
    base: list[float],
    query: list[float],
    phases: list[Phase],
) -> bool:
    print(
        f"seedance2ink push -> signed callback; relay: python -m relay serve (pid {relay_pid},"
        f" own process, SQLite, log_level {args.log_level}); {os.cpu_count()} CPUs; "
        "p50/p90/p99/max in ms"
    )
    print(f"baseline, plain POST -> receiver          {summary(base)}")
    print(f"baseline, provider query round trip       {summary(query)}")
    base50, base99 = percentile(base, 50), percentile(base, 99)
    met = True
    for p in phases:
        print(
            f"relay, {p.name:<35}{summary(p.latencies)}"
            + (f"   MISSING {p.missing}" if p.missing else "")
            + f"   load {p.load:.2f}"
        )
        if not p.latencies:
            met = False
            continue
        for stage, values in p.stages.items():
            print(f"  {stage:<40}{summary(values)}")
        p99 = percentile(p.latencies, 99)
        if not math.isnan(p.cpu_ms):
            print(f"  relay CPU per task ({p.cpu_what}): {p.cpu_ms:.2f} ms")
        print(
            f"  relay / plain POST: p50 {percentile(p.latencies, 50) / base50:.1f}x, "
            f"p99 {p99 / base99:.1f}x"
        )
        ok = p99 <= TARGET_P99_MS and not p.missing
        steady = p.name.startswith("steady")
        met = met and (ok or not steady)
        print(
            f"  p99 {p99:.1f} ms: {'' if steady else '(for information) '}target p99 <= "
            f"{TARGET_P99_MS:g} ms {'met' if ok else 'MISSED'}"
        )
        if not steady and not math.isnan(p.cpu_ms):
            # A burst is CPU-bound: its last callback waits for the relay's work on all of it.
            print(
                f"  at {p.cpu_ms:.2f} ms of relay CPU a push, at most about "
                f"{TARGET_P99_MS / p.cpu_ms:.0f} pushes at once fit in {TARGET_P99_MS:g} ms "
                "on this machine"
            )
    return met


# --- the relay process ----------------------------------------------------------------------


def relay_config(tmp: Path, port: int, ink_port: int, log_level: str) -> Path:
    config = {
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}"},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": log_level,
        "sandbox": {"enabled": False},
        # The receiver is on loopback, which the default network policy refuses.
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "providers": {
            PROVIDER: {
                "preset": "seedance2ink",
                "base_url": f"http://{HOST}:{ink_port}",
                "api_key": "sk-bench",
            }
        },
    }
    path = tmp / "relay.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


# --- the run --------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, tmp: Path, receiver_url: str) -> bool:
    ink = FakeInk()
    ink_port, relay_port = free_port(), free_port()
    runner = web.AppRunner(ink.app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, ink_port, backlog=1024).start()
    config = relay_config(tmp, relay_port, ink_port, args.log_level)
    _, api_key = await asyncio.to_thread(create_account, config)
    log = tmp / "relay.log"
    relay_url = f"http://{HOST}:{relay_port}"
    relay = start_relay(config, log)
    bench = Bench(
        relay_url, api_key, receiver_url, ink, f"http://{HOST}:{ink_port}", random.Random(args.seed)
    )
    spy: subprocess.Popen[bytes] | None = None
    steady: list[InkTask] = []
    burst: list[InkTask] = []
    cpu: dict[str, float] = {}
    loads: dict[str, float] = {}
    try:
        await wait_healthy(relay_url, relay, log)
        # Warm up every connection pool and code path once, unmeasured.
        warm = await asyncio.gather(*(bench.life(-1 - i, 0.2) for i in range(8)))
        await bench.arrivals(len(warm), within=15)
        if args.profile and args.tasks:
            spy = start_profiler(relay.pid, args.profile, rate=500)
        stop_probes = asyncio.Event()
        probes = asyncio.ensure_future(bench.baseline(max(args.tasks, 200), args.rate, stop_probes))
        used = cpu_seconds(relay.pid)
        if args.tasks:
            steady = await bench.steady(args.tasks, args.rate)
            stop_probes.set()
        await probes
        expected = len(warm) + len(steady) + len(bench.probes)
        arrived = await bench.arrivals(expected, within=30)
        cpu["steady"] = cpu_seconds(relay.pid) - used
        loads["steady"] = os.getloadavg()[0]
        if args.burst:
            burst = await bench.create_many(args.burst, args.tasks)
            await asyncio.sleep(1.0)  # let the creates' own work settle
            if args.profile and spy is None:
                spy = start_profiler(relay.pid, args.profile, rate=500)
            used = cpu_seconds(relay.pid)
            await asyncio.gather(*(bench.push(task) for task in burst))
            arrived = await bench.arrivals(expected + len(burst), within=60)
            cpu["burst"] = cpu_seconds(relay.pid) - used
            loads["burst"] = os.getloadavg()[0]
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 60)
    finally:
        if spy is not None:
            stop(spy, signal.SIGINT)
        await bench.close()
        await asyncio.to_thread(stop, relay)
        await runner.cleanup()
        errors = [
            line for line in tail(log).splitlines() if " ERROR " in line or " WARNING " in line
        ]
        if errors:
            print(f"relay log: {len(errors)} warnings/errors, e.g. {errors[0][:300]}")
    offset = time.time() - time.monotonic()
    stamps = await asyncio.to_thread(relay_stamps, tmp / "relay.db", offset)
    phases = []
    if steady:
        phases.append(
            phase(
                f"steady, Poisson {args.rate:g} tasks/s",
                steady,
                arrived,
                stamps,
                cpu["steady"] / len(steady),
                "create, push and callback",
            )
        )
        phases[-1].load = loads["steady"]
    if burst:
        phases.append(
            phase(
                f"burst of {args.burst} pushes at once",
                burst,
                arrived,
                stamps,
                cpu["burst"] / len(burst),
                "push and callback",
            )
        )
        phases[-1].load = loads["burst"]
    base = [(arrived[k] - v) * 1000 for k, v in bench.probes.items() if k in arrived]
    return report(args, relay.pid, base, bench.query_rtts, phases)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the steady phase")
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="tasks created (and, 1-3 s later, pushed) per second",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=200,
        help="tasks pushed all at once after the steady phase (0: none)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="the relay's log_level (info: its default, one access line per request)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy the relay into FILE (.svg, .json or collapsed stacks)",
    )
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        uvloop.run(serve_receiver(args.serve_receiver))
        return
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve-receiver", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory(prefix="push-latency-") as tmp:
            met = uvloop.run(measure(args, Path(tmp), f"http://{HOST}:{port}"))
    finally:
        receiver.kill()
        receiver.wait()
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
