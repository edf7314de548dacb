"""A provider's request budget alone: the rate it achieves and the CPU each slot costs
(issue 17: "a budget of N/s achieves at least 0.98 N/s").

    python benchmarks/budget.py [--rate 1000] [--seconds 2] [--workers 32]

``--workers`` tasks each loop on ``await budget.wait()`` (as ``ProviderClient``'s concurrency
slots do, with the provider answering at once), for ``--seconds`` after a warm-up of a tenth
of that. Two budgets, each on asyncio and on uvloop, each in a fresh event loop, in one run:

- ``slots``: ``relay.tasks.request_budget.RequestBudget``, a slot per waiter released by one
  timer;
- ``recheck`` (the baseline): the budget ``ProviderClient`` had before, reproduced here: each
  waiter sleeps until the next slot and looks again, and takes the slot when it has come.

Reported per phase: the achieved rate (slots given in the window / its length, on
``time.perf_counter``) and its ratio to the configured one, CPU per slot
(``time.process_time``, this whole process: the budget, the workers' wake-ups, the loop),
event-loop sleeps per slot (``recheck`` only: its ``asyncio.sleep`` calls), the largest
number of slots given within one millisecond, and the machine's load average (1 min) before
and after the phase. For scale, a ``floor`` line per loop: one task woken by a timer once
per slot and doing nothing else, i.e. what one event-loop wake-up costs on this machine, which
a budget that wakes once per slot cannot go below. The exit status is 1 when ``slots`` misses
0.98 of the rate on either loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.tasks.request_budget import RequestBudget


class Budget(Protocol):
    async def wait(self) -> None: ...


class RecheckBudget:
    """The old ``ProviderClient._budget``: sleep until the next slot, look again."""

    def __init__(self, requests_per_second: float) -> None:
        self._spacing = 1.0 / requests_per_second
        self._next_slot = 0.0
        self.sleeps = 0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._next_slot - loop.time()) > 0:
            self.sleeps += 1
            await asyncio.sleep(wait)
        self._next_slot = loop.time() + self._spacing


async def wake_floor(rate: float, seconds: float) -> dict[str, Any]:
    """The floor: one task woken by a timer once per slot, doing nothing else (what one
    event-loop wake-up costs on this machine)."""
    loop = asyncio.get_running_loop()
    spacing = 1.0 / rate
    n = int(rate * seconds)
    at = loop.time()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        at += spacing
        woken = loop.create_future()
        loop.call_at(at, woken.set_result, None)
        await woken
    t1, cpu1 = time.perf_counter(), time.process_time()
    return {"slots": n, "rate": n / (t1 - t0), "cpu_us": (cpu1 - cpu0) / n * 1e6}


def load() -> float:
    return os.getloadavg()[0]


async def drive(budget: Budget, workers: int, warmup: float, seconds: float) -> dict[str, Any]:
    given: list[float] = []
    counting = False

    async def worker() -> None:
        while True:
            await budget.wait()
            if counting:
                given.append(time.perf_counter())

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(warmup)
    sleeps0 = getattr(budget, "sleeps", 0)
    counting = True
    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    counting = False
    t1, cpu1 = time.perf_counter(), time.process_time()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    slots = len(given)
    per_ms = Counter(int((g - t0) * 1000) for g in given)
    return {
        "slots": slots,
        "rate": slots / (t1 - t0),
        "cpu_us": (cpu1 - cpu0) / max(slots, 1) * 1e6,
        "sleeps": (getattr(budget, "sleeps", 0) - sleeps0) / max(slots, 1),
        "burst_ms": max(per_ms.values(), default=0),
    }


def run_on(loop_name: str, main: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    print(
        f"budget {args.rate:g}/s, {args.workers} waiters, {args.seconds:g} s per phase "
        f"(python {sys.version.split()[0]})"
    )
    print(
        f"{'loop':8} {'budget':8} {'achieved/s':>11} {'ratio':>6} {'CPU µs/slot':>12} "
        f"{'sleeps/slot':>12} {'max/ms':>7}  load 1m before→after"
    )
    ok = True
    makers: dict[str, Callable[[], Budget]] = {
        "recheck": lambda: RecheckBudget(args.rate),
        "slots": lambda: RequestBudget(args.rate),
    }
    for loop_name in ("asyncio", "uvloop"):
        before = load()
        r = run_on(loop_name, lambda: wake_floor(args.rate, args.seconds / 2))
        print(
            f"{loop_name:8} {'floor':8} {r['rate']:11.1f} {r['rate'] / args.rate:6.3f} "
            f"{r['cpu_us']:12.1f} {'-':>12} {'-':>7}  {before:.2f}→{load():.2f}"
        )
        for name in ("recheck", "slots", "recheck", "slots"):  # baseline before and after
            before = load()

            async def phase(make: Callable[[], Budget] = makers[name]) -> dict[str, Any]:
                return await drive(make(), args.workers, args.seconds / 10, args.seconds)

            r = run_on(loop_name, phase)
            ratio = r["rate"] / args.rate
            sleeps = f"{r['sleeps']:.1f}" if name == "recheck" else "-"
            print(
                f"{loop_name:8} {name:8} {r['rate']:11.1f} {ratio:6.3f} {r['cpu_us']:12.1f} "
                f"{sleeps:>12} {r['burst_ms']:7d}  {before:.2f}→{load():.2f}"
            )
            if name == "slots" and ratio < 0.98:
                ok = False
    print("slots >= 0.98 of the rate on both loops:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
