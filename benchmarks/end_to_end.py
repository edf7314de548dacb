"""End to end: relay CPU per task and tasks per second, from ``POST /v1/tasks`` to the signed
``task.succeeded`` callback, with every party in its own process.

    python benchmarks/end_to_end.py [--tasks 2000] [--concurrency 32] [--rate 0]
                                    [--baseline-tree /tmp/e2e-base] [--tree PATH]
                                    [--no-idempotency-key] [--log-level info] [--profile FILE]

Target (issue 17): relay CPU per task <= 1.5 ms, i.e. >= 2x the base commit's tasks/s; the
exit status is 1 when that misses.

Four processes, loopback only:

- the relay, ``python -m relay serve`` (SQLite in a temp dir, the default ``log_level:
  info``), with one provider ``ark`` on the Ark dialect whose ``base_url`` is the fake
  provider; its budget (no ``requests_per_second``, ``max_concurrency`` 64) and its poll
  policy (``min_interval`` 0.1 s, ``polling.tick_seconds`` 0.1) are set so that neither is
  the limit: a task is polled about 0.1 s after its creation and finishes at that poll;
- a fake Ark (this file with ``--serve-provider``, a bare asyncio protocol on uvloop): it
  answers the create with a ``cgt-`` id and every query with the task ``succeeded`` and its
  video URL;
- a receiver (this file with ``--serve-receiver``): answers every POST 204 and counts the
  ones that carry a ``webhook-signature``; ``GET /count`` says how many;
- this benchmark, which creates ``--tasks`` tasks (``POST /v1/tasks`` with a native Ark
  input, a ``callback_url`` to the receiver and an ``Idempotency-Key``, as a client that
  retries safely sends) from ``--concurrency`` workers as fast as the relay answers, or at
  ``--rate`` per second (Poisson), and asks the receiver (never the relay) when all the
  callbacks have come.

Figures, per run: tasks/s (tasks over the time from the first create to the last callback)
and the relay's CPU per task (``/proc/<pid>/stat`` utime + stime, all threads, over the same
span, so idle ticking between tasks counts too), and the load average before and after.

With ``--baseline-tree PATH`` (a checkout of the base commit, e.g. ``git worktree add
--detach /tmp/e2e-base HEAD``) the same run is made against the relay from that tree
(``PYTHONPATH``, account created by that tree's CLI, its own database) before and after the
run of this tree, and the ratios printed: tasks/s over the mean of the two baselines, CPU per
task likewise. ``--tree PATH`` measures another checkout as "this tree" (say, the base commit
with one change applied). ``--no-idempotency-key`` creates without the header (what the
key's reservation and recorded answer cost: the difference).

``--profile FILE`` records this tree's relay with py-spy (non-blocking) over its measured
phase (``.svg`` flame graph, ``.json`` speedscope, else collapsed stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop
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
PROVIDER = "ark"
PREFIX = "/api/v3"
MODEL = "doubao-seedance-2-0-260128"
HERE = Path(__file__).resolve().parent
THIS_TREE = HERE.parent
TARGET_CPU_MS = 1.5


# --- the fake Ark (its own process) ------------------------------------------------------


class FakeArk(asyncio.Protocol):
    """Ark's create and query, answered at once: every task has succeeded."""

    created = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, _, self.buffer = request
            if head.startswith(b"POST"):
                FakeArk.created += 1
                body = b'{"id":"cgt-%012d"}' % FakeArk.created
            else:
                path = head.split(b" ", 2)[1].split(b"?", 1)[0]
                task_id = path.rsplit(b"/", 1)[1]
                # Timestamps of now: Ark's links live 24 h from the task's end, and a link
                # already dead when polled would send every delivery to fetch a fresh one.
                now = int(time.time())
                body = (
                    b'{"id":"%s","model":"%s","status":"succeeded","content":{"video_url":'
                    b'"https://cdn.example.com/v/%s.mp4"},"usage":{"completion_tokens":108900},'
                    b'"created_at":%d,"updated_at":%d}'
                    % (task_id, MODEL.encode(), task_id, now - 10, now)
                )
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )


# --- the receiver (its own process) ------------------------------------------------------


class Counter(asyncio.Protocol):
    """204 to every POST; counts the signed ones; ``GET /count`` answers the count."""

    signed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, _, self.buffer = request
            if head.startswith(b"GET"):
                payload = str(Counter.signed).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
                continue
            if b"\r\nwebhook-signature: v1," in head.lower():
                Counter.signed += 1
            self.transport.write(b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n")


async def serve(protocol: type[asyncio.Protocol], port: int) -> None:
    server = await asyncio.get_running_loop().create_server(protocol, HOST, port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def start_helper(flag: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, flag, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{flag} did not start")
    return proc


# --- the relay ------------------------------------------------------------------------------


def relay_config(tmp: Path, port: int, provider_port: int, log_level: str) -> Path:
    config = {
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}"},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": log_level,
        "sandbox": {"enabled": False},
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "polling": {"tick_seconds": 0.1},
        "delivery": {"tick_seconds": 0.1},
        "providers": {
            PROVIDER: {
                "dialect": "ark",
                "base_url": f"http://{HOST}:{provider_port}",
                "path_prefix": PREFIX,
                "api_key": "sk-bench",
                "max_concurrency": 64,
                "poll": {
                    "min_interval": 0.1,
                    "max_interval": 1.0,
                    "expected_duration": 0.2,
                    "jitter": 0.1,
                    "learn": False,
                },
            }
        },
    }
    path = tmp / "relay.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


# --- driving the load -----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    tasks: int
    seconds: float
    cpu: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    warnings: int

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.tasks * 1000


class Driver:
    def __init__(self, relay_url: str, api_key: str, receiver_url: str, keyed: bool) -> None:
        self.relay_url = relay_url
        self.keyed = keyed
        self.receiver_url = receiver_url
        self.api = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"},
            connector=aiohttp.TCPConnector(limit=0),
        )
        self.tag = random.getrandbits(32)

    async def close(self) -> None:
        await self.api.close()

    async def create(self, n: int) -> None:
        body = {
            "provider": PROVIDER,
            "input_format": "native",
            "input": {"model": MODEL, "content": [{"type": "text", "text": f"bench {n}"}]},
            "callback_url": f"{self.receiver_url}/hook",
            "reference": f"bench-{n}",
        }
        headers = {"Idempotency-Key": f"bench-{self.tag}-{n}"} if self.keyed else {}
        async with self.api.post(self.relay_url + "/v1/tasks", json=body, headers=headers) as r:
            answer = await r.read()
            if r.status != 201:
                raise RuntimeError(f"POST /v1/tasks: {r.status} {answer[:300]!r}")

    async def saturate(self, first: int, n: int, workers: int) -> None:
        todo = iter(range(first, first + n))

        async def worker() -> None:
            for i in todo:
                await self.create(i)

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def poisson(self, first: int, n: int, rate: float, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time()
        sent: list[asyncio.Future[None]] = []
        for i in range(first, first + n):
            at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, at - loop.time()))
            sent.append(asyncio.ensure_future(self.create(i)))
        await asyncio.gather(*sent)

    async def delivered(self) -> int:
        async with self.api.get(self.receiver_url + "/count") as r:
            return int(await r.text())

    async def until_delivered(self, expect: int, within: float) -> float:
        """Waits (polling the receiver every 20 ms) until ``expect`` callbacks have come;
        the monotonic time it saw them."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.delivered() >= expect:
                return time.monotonic()
            await asyncio.sleep(0.02)
        raise RuntimeError(f"only {await self.delivered()} of {expect} callbacks came")


async def run_one(
    name: str,
    tree: Path,
    args: argparse.Namespace,
    provider_port: int,
    receiver_url: str,
    profile: str | None,
) -> Result:
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        config = relay_config(tmp, port, provider_port, args.log_level)
        _, api_key = await asyncio.to_thread(create_account, config, tree)
        log = tmp / "relay.log"
        relay = start_relay(config, log, tree)
        relay_url = f"http://{HOST}:{port}"
        driver = Driver(relay_url, api_key, receiver_url, not args.no_idempotency_key)
        spy: subprocess.Popen[bytes] | None = None
        try:
            await wait_healthy(relay_url, relay, log)
            base = await driver.delivered()
            # Warm-up, unmeasured: connection pools, code paths, the first poll.
            await driver.saturate(-args.warmup, args.warmup, min(8, args.concurrency))
            await driver.until_delivered(base + args.warmup, 60)
            base += args.warmup
            await asyncio.sleep(0.5)
            if profile:
                spy = start_profiler(relay.pid, profile, rate=250, threads=True)
            load_before = os.getloadavg()
            used = cpu_seconds(relay.pid)
            started = time.monotonic()
            if args.rate > 0:
                await driver.poisson(0, args.tasks, args.rate, random.Random(args.seed))
            else:
                await driver.saturate(0, args.tasks, args.concurrency)
            ended = await driver.until_delivered(base + args.tasks, 120 + args.tasks / 50)
            cpu = cpu_seconds(relay.pid) - used
            load_after = os.getloadavg()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 60)
        finally:
            if spy is not None:
                stop(spy, signal.SIGINT)
            await driver.close()
            await asyncio.to_thread(stop, relay)
        text = tail(log)
        warnings = [line for line in text.splitlines() if " ERROR " in line or " WARNING " in line]
        return Result(
            name,
            args.tasks,
            ended - started,
            cpu,
            load_before,
            load_after,
            len(warnings),
        )


def show(r: Result) -> None:
    load = f"load {r.load_before[0]:.2f} -> {r.load_after[0]:.2f}"
    warn = f"  ({r.warnings} warnings/errors in its log)" if r.warnings else ""
    print(
        f"{r.name:<22} {r.tasks} tasks in {r.seconds:6.2f} s: {r.rate:7.1f} tasks/s, "
        f"relay CPU {r.cpu_ms:5.2f} ms/task   [{load}]{warn}",
        flush=True,
    )


async def measure(args: argparse.Namespace, provider_port: int, receiver_url: str) -> bool:
    tree = args.tree
    plan: list[tuple[str, Path]] = [("this tree", tree)]
    if args.baseline_tree:
        base = args.baseline_tree
        plan = [("baseline (before)", base), ("this tree", tree), ("baseline (after)", base)]
    mode = f"Poisson {args.rate:g}/s" if args.rate > 0 else f"{args.concurrency} creators"
    print(
        f"end to end: POST /v1/tasks -> poll (fake Ark, own process) -> signed callback "
        f"(receiver, own process); relay: python -m relay serve, SQLite, log_level "
        f"{args.log_level}; {mode}"
        f"{', no Idempotency-Key' if args.no_idempotency_key else ''}; {os.cpu_count()} CPUs; "
        f"load average before {os.getloadavg()}",
        flush=True,
    )
    results = []
    against = f"; baseline: {args.baseline_tree}" if args.baseline_tree else ""
    print(f"this tree: {tree}{against}")
    for name, path in plan:
        profile = args.profile if name == "this tree" else None
        result = await run_one(name, path, args, provider_port, receiver_url, profile)
        show(result)
        results.append(result)
    ours = next(r for r in results if r.name == "this tree")
    met = ours.cpu_ms <= TARGET_CPU_MS
    print(f"target: relay CPU per task <= {TARGET_CPU_MS} ms: {'met' if met else 'MISSED'}")
    bases = [r for r in results if r.name != "this tree"]
    if bases:
        rate = sum(r.rate for r in bases) / len(bases)
        cpu = sum(r.cpu_ms for r in bases) / len(bases)
        print(
            f"this tree / baseline: tasks/s {ours.rate / rate:.2f}x, "
            f"CPU per task {ours.cpu_ms / cpu:.2f}x (baseline mean {rate:.1f} tasks/s, "
            f"{cpu:.2f} ms/task)"
        )
        met = met and ours.rate >= 2 * rate
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--concurrency", type=int, default=32, help="creates in flight (without --rate)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="creates per second, Poisson (0: saturate)"
    )
    parser.add_argument("--log-level", default="info", help="the relay's log_level")
    parser.add_argument(
        "--no-idempotency-key", action="store_true", help="create without an Idempotency-Key"
    )
    parser.add_argument("--baseline-tree", metavar="PATH", help="a checkout of the base commit")
    parser.add_argument(
        "--tree",
        metavar="PATH",
        default=THIS_TREE,
        help="the tree measured as 'this tree' (default: the one holding this benchmark)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="FILE", help="py-spy this tree's relay into FILE")
    parser.add_argument("--serve-provider", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_provider:
        uvloop.run(serve(FakeArk, args.serve_provider))
        return
    if args.serve_receiver:
        uvloop.run(serve(Counter, args.serve_receiver))
        return
    args.tree = Path(args.tree).resolve()
    for flag, tree in (("--tree", args.tree), ("--baseline-tree", args.baseline_tree)):
        if tree is not None and not (Path(tree) / "relay" / "__main__.py").is_file():
            parser.error(f"{flag}: no relay package in {tree}")
    if args.baseline_tree:
        args.baseline_tree = Path(args.baseline_tree).resolve()
    provider_port, receiver_port = free_port(), free_port()
    helpers = [
        start_helper("--serve-provider", provider_port),
        start_helper("--serve-receiver", receiver_port),
    ]
    try:
        met = uvloop.run(measure(args, provider_port, f"http://{HOST}:{receiver_port}"))
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait()
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
