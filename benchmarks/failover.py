"""Failover overhead: what a route costs over a direct submission when its first provider
refuses the create at once (issue 13's figure).

    python benchmarks/failover.py [--requests 1000] [--warmup 50] [--rotation 128]

Requirement: a submission through a route ``[broken, healthy]`` whose first provider answers
429 at once takes, at the median, under 50 ms longer than a direct submission to the healthy
provider, measured in one run. The exit status is 1 when that misses (in either case below).
p99 is reported against the same 50 ms, for information.

Two processes besides this one, loopback only:

- the provider: ``python -m relay serve`` used only for its built-in sandbox (own SQLite
  file, tracking nothing), so the provider's work is not charged to the measured relay; its
  control API breaks one flavour at a time (``PUT /sandbox/_control/faults``);
- the measured relay: ``python -m relay serve`` (own SQLite file, sandbox disabled, the
  default ``log_level: info``) whose providers are all Ark-dialect entries against the
  provider process: ``healthy`` at the ``ark`` flavour (``/sandbox/ark/api/v3``) and the
  broken ones at the ``apiyi`` flavour (``/sandbox/apiyi/seedance/api/v3``). Two flavours,
  because the fault plan tells providers apart only by flavour; one dialect, so translating
  the input costs the same on both sides.

Every request is ``POST /v1/tasks`` with the same neutral input, sent by one client, one at a
time (keep-alive), timed from just before the client call to the whole answer read
(``time.perf_counter``):

- A, direct: ``{"provider": "healthy", ...}``;
- B, failover: ``{"provider": "<route>", ...}``, the route ``[broken, healthy]``.

A and B alternate (which goes first alternates too), so both see the same machine noise.
A 429 backs the provider off (``ProviderClient``: 2 s ±20 % after the first fault, doubling
with each more, reset by a success; not configurable), and a backed-off provider is skipped
without being asked. So there are two cases, measured in turn:

1. "refused at once": the broken provider is asked every time and answers 429. Each B
   request uses the next of ``--rotation`` routes ``failover_NN = [broken_NN, healthy]``
   (``broken_NN`` all at the apiyi flavour); just before it, a one-shot fault plan
   (``{"plan": ["429"], "flavors": ["apiyi"]}``) makes the next apiyi request a 429, and
   before a broken provider comes round again (no sooner than 2.5 s after its fault, the
   back-off's longest), an unmeasured direct submission to it succeeds, which ends its
   back-off and resets its fault count. Every B answer is checked: ``submissions`` is
   ``[(broken_NN, not_accepted), (healthy, accepted)]``. For scale, the round trip of the
   429 itself (this client straight to the provider's apiyi create) is timed too, each
   iteration.
2. "backed off": the route ``backed_off = [broken_bo, healthy]`` with the apiyi flavour
   answering 429 to every request (a repeating plan). The first B is refused and backs
   ``broken_bo`` off; later ones skip it without asking until the back-off ends, when it is
   asked once more (and backs off twice as long). The B answers are split by the first
   step's outcome: ``skipped`` (the backed-off case, judged) or ``not_accepted`` (asked).

Warm-up iterations (``--warmup``) of each case run first, unmeasured. Every task created is
left unpolled (poll intervals of an hour), so no background work of the relay's competes.
Reported: p50/p90/p99/max of each, the differences B - A at p50 and p99, the ratio B/A, the
median of the per-iteration differences, and the machine's load average before and after.
Absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop  # what relay serve runs on too (uvicorn[standard])
from relay_process import create_account, free_port, start_relay, stop, tail, wait_healthy

HOST = "127.0.0.1"
TARGET_MS = 50.0
HEALTHY = "healthy"
BACKED_OFF = "backed_off"
BROKEN_BO = "broken_bo"
BROKEN_FLAVOR = "apiyi"
ARK_PREFIX = "/sandbox/ark/api/v3"
APIYI_PREFIX = "/sandbox/apiyi/seedance/api/v3"
CREATE_PATH = "/contents/generations/tasks"
BACKOFF_LONGEST = 2.5
"""Seconds after its first fault by which a provider's back-off has surely ended (2 s +20 %)."""
NEUTRAL = {"model": "seedance-2.0-fast", "prompt": "a fox in snow, benchmark"}
UNPOLLED = {"min_interval": 3600, "max_interval": 3600, "expected_duration": 3600, "learn": False}
"""No poll within the run: the relay's only work is the submissions measured."""


def broken(i: int) -> str:
    return f"broken_{i:02d}"


def route(i: int) -> str:
    return f"failover_{i:02d}"


# --- configuration ------------------------------------------------------------------------


def provider_config(tmp: Path, port: int) -> Path:
    """A relay used only as the sandbox provider of the measured one."""
    config = {
        "server": {"host": HOST, "port": port},
        "database_url": f"sqlite:///{tmp / 'provider.db'}",
        "log_level": "warning",
        "polling": {"tick_seconds": 5},
        "delivery": {"tick_seconds": 5},
        "sandbox": {"enabled": True, "queued_seconds": 600, "running_seconds": 600},
    }
    path = tmp / "provider.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def ark_provider(base_url: str, prefix: str) -> dict[str, Any]:
    return {
        "dialect": "ark",
        "base_url": base_url,
        "path_prefix": prefix,
        "api_key": "sandbox",
        "poll": UNPOLLED,
    }


def relay_config(tmp: Path, port: int, provider_url: str, rotation: int) -> Path:
    providers = {HEALTHY: ark_provider(provider_url, ARK_PREFIX)}
    routes: dict[str, dict[str, Any]] = {}
    for i in range(rotation):
        providers[broken(i)] = ark_provider(provider_url, APIYI_PREFIX)
        routes[route(i)] = {"providers": [broken(i), HEALTHY], "strategy": "ordered"}
    providers[BROKEN_BO] = ark_provider(provider_url, APIYI_PREFIX)
    routes[BACKED_OFF] = {"providers": [BROKEN_BO, HEALTHY], "strategy": "ordered"}
    config = {
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}"},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": "info",
        "sandbox": {"enabled": False},
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "providers": providers,
        "routes": routes,
    }
    path = tmp / "relay.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


# --- the client -----------------------------------------------------------------------------


class Client:
    def __init__(self, relay_url: str, provider_url: str, api_key: str) -> None:
        self.relay_url = relay_url
        self.provider_url = provider_url
        self.api = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"},
            connector=aiohttp.TCPConnector(limit=1),
        )
        self.control = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))

    async def close(self) -> None:
        await self.api.close()
        await self.control.close()

    async def submit(self, provider: str) -> tuple[float, dict[str, Any]]:
        """``POST /v1/tasks`` naming ``provider`` (a provider or a route): (ms, task)."""
        body = {"provider": provider, "input": NEUTRAL}
        started = time.perf_counter()
        async with self.api.post(self.relay_url + "/v1/tasks", json=body) as response:
            raw = await response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 201:
            raise RuntimeError(f"POST /v1/tasks {provider}: {response.status} {raw[:500]!r}")
        task: dict[str, Any] = json.loads(raw)
        return elapsed, task

    async def faults(self, plan: dict[str, Any] | None) -> None:
        """Set the provider's fault plan (None: clear it)."""
        url = self.provider_url + "/sandbox/_control/faults"
        if plan is None:
            async with self.control.delete(url) as r:
                ok = r.status == 200
                text = await r.text()
        else:
            async with self.control.put(url, json=plan) as r:
                ok = r.status == 200
                text = await r.text()
        if not ok:
            raise RuntimeError(f"fault plan {plan}: {text[:300]}")

    async def refusal(self) -> float:
        """The round trip of one 429 from the broken flavour, this client straight to the
        provider (the fault plan must be set): the hop a failover adds, for scale."""
        started = time.perf_counter()
        async with self.control.post(
            self.provider_url + APIYI_PREFIX + CREATE_PATH,
            json={"model": "doubao-seedance-2-0-fast-260128", "content": []},
            headers={"Authorization": "Bearer sandbox"},
        ) as r:
            await r.read()
        elapsed = (time.perf_counter() - started) * 1000
        if r.status != 429:
            raise RuntimeError(f"the broken flavour answered {r.status}, not 429")
        return elapsed


def steps(task: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["provider"], s["outcome"]) for s in task.get("submissions") or []]


ONE_SHOT = {"plan": ["429"], "repeat": False, "flavors": [BROKEN_FLAVOR]}
ALWAYS = {"plan": ["429"], "repeat": True, "flavors": [BROKEN_FLAVOR]}


# --- the two cases ----------------------------------------------------------------------------


@dataclass
class Case:
    direct: list[float] = field(default_factory=list)
    failover: list[float] = field(default_factory=list)
    paired: list[float] = field(default_factory=list)
    """B - A of the same iteration."""
    asked: list[float] = field(default_factory=list)
    """Backed-off case: the B requests whose broken provider was asked after all."""
    refusal: list[float] = field(default_factory=list)
    """Refused-at-once case: the 429's own round trip."""


async def refused_at_once(client: Client, n: int, warmup: int, rotation: int) -> Case:
    case = Case()
    faulted: dict[int, float] = {}
    for j in range(warmup + n):
        i = j % rotation
        if i in faulted:
            # End broken_NN's back-off (it has surely expired) with a success, unmeasured.
            await asyncio.sleep(max(0.0, faulted.pop(i) + BACKOFF_LONGEST - time.perf_counter()))
            _, task = await client.submit(broken(i))
            if task["provider"] != broken(i):
                raise RuntimeError(f"the reset of {broken(i)} went to {task['provider']}")
        await client.faults(ONE_SHOT)
        hop = await client.refusal()
        await client.faults(ONE_SHOT)
        a_first = j % 2 == 0
        if a_first:
            a, _ = await client.submit(HEALTHY)
        b, task = await client.submit(route(i))
        faulted[i] = time.perf_counter()
        if not a_first:
            a, _ = await client.submit(HEALTHY)
        expected = [(broken(i), "not_accepted"), (HEALTHY, "accepted")]
        if steps(task) != expected:
            raise RuntimeError(f"failover {route(i)}: steps {steps(task)}, expected {expected}")
        if j >= warmup:
            case.direct.append(a)
            case.failover.append(b)
            case.paired.append(b - a)
            case.refusal.append(hop)
    return case


async def backed_off(client: Client, n: int, warmup: int) -> Case:
    case = Case()
    await client.faults(ALWAYS)
    try:
        for j in range(warmup + n):
            a_first = j % 2 == 0
            if a_first:
                a, _ = await client.submit(HEALTHY)
            b, task = await client.submit(BACKED_OFF)
            if not a_first:
                a, _ = await client.submit(HEALTHY)
            first, took = steps(task)
            if first[0] != BROKEN_BO or took != (HEALTHY, "accepted"):
                raise RuntimeError(f"failover {BACKED_OFF}: steps {steps(task)}")
            if j < warmup:
                continue
            case.direct.append(a)
            if first[1] == "skipped":
                case.failover.append(b)
                case.paired.append(b - a)
            elif first[1] == "not_accepted":
                case.asked.append(b)
            else:
                raise RuntimeError(f"failover {BACKED_OFF}: steps {steps(task)}")
    finally:
        await client.faults(None)
    return case


# --- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    if not values:
        return "count    0"
    return (
        f"count {len(values):4d}  p50 {percentile(values, 50):7.2f}  "
        f"p90 {percentile(values, 90):7.2f}  p99 {percentile(values, 99):7.2f}  "
        f"max {max(values):7.2f} ms"
    )


def judge(name: str, case: Case) -> bool:
    """Print B - A and B / A of ``case``; True when its p50 difference is under target."""
    if not case.failover or not case.direct:
        print(f"  {name}: no samples: MISSED")
        return False
    d50 = percentile(case.failover, 50) - percentile(case.direct, 50)
    d99 = percentile(case.failover, 99) - percentile(case.direct, 99)
    r50 = percentile(case.failover, 50) / percentile(case.direct, 50)
    r99 = percentile(case.failover, 99) / percentile(case.direct, 99)
    ok = d50 < TARGET_MS
    print(
        f"  B - A: p50 {d50:+.2f} ms, p99 {d99:+.2f} ms; B / A: p50 {r50:.2f}x, p99 {r99:.2f}x;"
        f" median of per-iteration B - A {statistics.median(case.paired):+.2f} ms"
    )
    print(
        f"  {name}: p50 difference {d50:.2f} ms < {TARGET_MS:g} ms "
        f"{'met' if ok else 'MISSED'}; (for information) p99 difference "
        f"{d99:.2f} ms {'<' if d99 < TARGET_MS else '>='} {TARGET_MS:g} ms"
    )
    return ok


def report(refused: Case, skipped: Case, load: tuple[str, str], seconds: float) -> bool:
    print(
        f"POST /v1/tasks, sequential, one client; relay and provider are separate "
        f"relay serve processes (SQLite); {os.cpu_count()} CPUs; load average before "
        f"{load[0]}, after {load[1]}; run {seconds:.1f} s"
    )
    print("1. refused at once: the broken provider is asked every time and answers 429")
    print(f"  A direct -> healthy                    {summary(refused.direct)}")
    print(f"  B route [broken_NN, healthy]           {summary(refused.failover)}")
    print(f"  (the 429's own round trip, no relay)   {summary(refused.refusal)}")
    ok = judge("refused at once", refused)
    print("2. backed off: the broken provider is skipped without being asked")
    print(f"  A direct -> healthy                    {summary(skipped.direct)}")
    print(f"  B route [broken_bo, healthy], skipped  {summary(skipped.failover)}")
    print(f"  (B requests that asked broken_bo)      {summary(skipped.asked)}")
    return judge("backed off", skipped) and ok


# --- the run ----------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def measure(args: argparse.Namespace, tmp: Path) -> bool:
    load_before = load_average()
    began = time.monotonic()
    provider_port, relay_port = free_port(), free_port()
    provider_url = f"http://{HOST}:{provider_port}"
    relay_url = f"http://{HOST}:{relay_port}"
    provider_log, relay_log = tmp / "provider.log", tmp / "relay.log"
    provider = start_relay(provider_config(tmp, provider_port), provider_log)
    relay = None
    client = None
    try:
        config = relay_config(tmp, relay_port, provider_url, args.rotation)
        _, api_key = await asyncio.to_thread(create_account, config)
        relay = start_relay(config, relay_log)
        await wait_healthy(provider_url, provider, provider_log)
        await wait_healthy(relay_url, relay, relay_log)
        client = Client(relay_url, provider_url, api_key)
        refused = await refused_at_once(client, args.requests, args.warmup, args.rotation)
        skipped = await backed_off(client, args.requests, args.warmup)
    finally:
        if client is not None:
            await client.close()
        if relay is not None:
            await asyncio.to_thread(stop, relay)
        await asyncio.to_thread(stop, provider)
        if relay is not None:
            errors = [line for line in tail(relay_log).splitlines() if " ERROR " in line]
            if errors:
                print(f"relay log: {len(errors)} errors, e.g. {errors[0][:300]}")
    return report(refused, skipped, (load_before, load_average()), time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured A/B pairs per case")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured pairs per case first")
    parser.add_argument(
        "--rotation",
        type=int,
        default=128,
        help="broken providers (and routes) taken in turn in the refused-at-once case",
    )
    args = parser.parse_args()
    if args.requests < 1 or args.rotation < 1:
        parser.error("--requests and --rotation must be at least 1")
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        met = uvloop.run(measure(args, Path(tmp)))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
