"""Figure 3 of the output-copy benchmark (``outputs.py`` runs it): how long ``task.succeeded``
takes to arrive once the copy is stored.

``--latency-tasks`` sandbox tasks with videos of ``--latency-mb`` MB are created as a Poisson
stream at ``--latency-rate`` a second, each with a ``callback_url`` to the receiver process
(``push_latency.py``'s, which stamps each callback's arrival on CLOCK_MONOTONIC once the whole
request is read), under the default ``outputs.wait_seconds`` (``task.succeeded`` waits for the
copy). Per task, the figure runs from ``stored`` to the arrival of its ``task.succeeded``:

- ``stored``, local store: the stored object's ``ctime``, which the rename that makes it
  visible sets (the kernel's coarse clock, a few ms behind at most, so it can only make the
  figure longer); the directory's fsync that follows counts in the figure. S3: the copy's
  ``stored_at``, taken once the put has returned and the task been read again.
- wall-clock stamps (the database's, the file's, the sandbox log's) are put on the monotonic
  clock with this process's offset between the two.

Printed with it: the wait from the success being recorded (the copy row's ``created_at``) to
``stored``; the copy itself (its GET arriving at the sandbox to ``stored``); and the stages
after the copy, from the relay's database: the ``task.succeeded`` event stamped
(``events.created_at``) and the callback's first attempt started (``attempts.started_at``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from outputs_relay import (
    MB,
    Made,
    Moto,
    check_digests,
    create_task,
    file_requests,
    read_db,
    running_relay,
    until_copied,
)
from push_latency import percentile

TARGET_P99_S = 1.0


def ms_summary(values: list[float]) -> str:
    if not values:
        return "count 0"
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):7.1f}  p90 {percentile(ms, 90):7.1f}  "
        f"p99 {percentile(ms, 99):7.1f}  max {max(ms):7.1f} ms"
    )


# --- figure 3: latency -----------------------------------------------------------------------


@dataclass
class Latency:
    kind: str
    above_copy: list[float]
    copy: list[float]
    waited: list[float]
    stages: dict[str, list[float]]
    missing: int
    bad_digests: int


async def arrivals(receiver: str, expect: int, within: float) -> dict[str, float]:
    """task id -> the task.succeeded callback's arrival (monotonic)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            rows = (await client.get(receiver + "/arrivals")).json()
            got = {str(t): float(at) for t, kind, at in rows if kind == "task.succeeded"}
            if len(got) >= expect:
                return got
            await asyncio.sleep(0.25)
    return got


def delivery_stamps(db: Path) -> dict[str, tuple[float, float]]:
    """task id -> (task.succeeded stamped, its first delivery attempt started), wall clock."""
    rows = read_db(
        db,
        "SELECT e.task_id, e.created_at, min(a.started_at) FROM events e "
        "JOIN deliveries d ON d.event_pk = e.pk JOIN attempts a ON a.delivery_pk = d.pk "
        "WHERE e.type = 'task.succeeded' GROUP BY e.task_id",
    )
    return {task_id: (created, started) for task_id, created, started in rows}


async def latency(
    args: argparse.Namespace, tmp: Path, kind: str, moto: Moto | None, receiver: str
) -> Latency:
    size = args.latency_mb * MB
    bucket = moto.bucket(f"bench-latency-{os.getpid()}") if moto is not None else ""
    rng = random.Random(args.seed)
    async with running_relay(
        args,
        tmp / f"latency-{kind}",
        kind=kind,
        video_bytes=size,
        moto=moto,
        bucket=bucket,
        wait_seconds=60.0,
    ) as relay:
        loop = asyncio.get_running_loop()
        at = loop.time()
        creating: list[asyncio.Task[Made]] = []
        for i in range(args.latency_tasks):
            at += rng.expovariate(args.latency_rate)
            await asyncio.sleep(max(0.0, at - loop.time()))
            creating.append(asyncio.ensure_future(create_task(relay, i, receiver + f"/{kind}")))
        tasks = await asyncio.gather(*creating)
        rows = await until_copied(relay, tasks, within=300)
        arrived = await arrivals(receiver, len(tasks), within=120)
        gets = await file_requests(relay)
        offset = time.time() - time.monotonic()
        stamps = await asyncio.to_thread(delivery_stamps, relay.db)
        bad = await asyncio.to_thread(check_digests, tasks, rows, size)
        if moto is not None:
            await asyncio.to_thread(moto.empty, bucket)
    out = Latency(
        kind,
        [],
        [],
        [],
        {"stored -> event stamped": [], "event -> attempt starts": [], "attempt -> arrival": []},
        0,
        bad,
    )
    for task in tasks:
        row = rows[task.id]
        assert row.stored_at is not None
        stored = row.stored_at
        if relay.store_root is not None and row.object_key is not None:
            # The rename that made the object visible set its ctime: when it was stored.
            stored = min(stored, (relay.store_root / row.object_key).stat().st_ctime)
        if task.id not in arrived:
            out.missing += 1
            continue
        came = arrived[task.id] + offset
        out.above_copy.append(came - stored)
        out.copy.append(stored - gets[task.provider_task_id])
        out.waited.append(stored - row.created_at)
        event, attempt = stamps.get(task.id, (math.nan, math.nan))
        first, second, third = out.stages.values()
        first.append(event - stored)
        second.append(attempt - event)
        third.append(came - attempt)
    return out


def report_latency(args: argparse.Namespace, results: list[Latency]) -> bool:
    met = True
    print(
        f"\n3. task.succeeded with archiving on: {args.latency_tasks} tasks of "
        f"{args.latency_mb} MB, Poisson {args.latency_rate:g}/s"
    )
    for lat in results:
        p99 = percentile(lat.above_copy, 99) if lat.above_copy else math.inf
        ok = p99 < TARGET_P99_S and not lat.missing and not lat.bad_digests
        met = met and ok
        print(f"  {lat.kind}:")
        print(f"    success recorded -> stored      {ms_summary(lat.waited)}")
        print(f"    copy: GET arrives -> stored     {ms_summary(lat.copy)}")
        print(f"    stored -> callback arrives      {ms_summary(lat.above_copy)}")
        for stage, values in lat.stages.items():
            print(f"      {stage:<30}{ms_summary(values)}")
        if lat.missing or lat.bad_digests:
            print(f"    MISSING {lat.missing}, wrong digests {lat.bad_digests}")
        print(
            f"    p99 above the copy {p99 * 1000:.0f} ms (target < {TARGET_P99_S * 1000:.0f} "
            f"ms: {'met' if ok else 'MISSED'})"
        )
    return met
