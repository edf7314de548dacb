"""Figure 2 of the output-copy benchmark (``outputs.py`` runs it): the relay's memory while it
copies one large video.

The relay process's ``VmRSS`` is read from ``/proc/PID/status`` every 50 ms by a thread of
this process: for a second before the task is created (the baseline is the median), then
until the copy is stored. The growth is the peak minus the baseline; ``VmHWM`` (the kernel's
own high-water mark) is read before and after the copy, so that a spike between two samples
counts too. Only the relay's process is sampled: with ``--sources separate`` the sandbox
serving the video runs in another process; with ``own`` its buffers count against the relay.
The relay has copied nothing before, so its first copy's one-off costs (threads, connection
pools) count too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from outputs_relay import MB, Moto, create_task, file_requests, running_relay, until_copied

from relay.sandbox.media import expected_sha256

TARGET_GROWTH_MB = 50.0

# --- figure 2: memory ------------------------------------------------------------------------


def status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/{pid}/status")


class Sampler:
    """``VmRSS`` of a process every ``interval`` seconds, in a thread: [(monotonic, kB)]."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.monotonic(), status_kb(self.pid, "VmRSS")))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[int]:
        return [kb for at, kb in self.samples if start <= at <= end]


@dataclass
class Memory:
    kind: str
    source: str
    baseline_mb: float
    sampled_peak_mb: float
    hwm_before_mb: float
    hwm_after_mb: float
    after_mb: float
    """RSS once the copy is stored."""
    samples: int
    seconds: float
    size: int
    digest_ok: bool

    @property
    def peak_mb(self) -> float:
        """The sampled peak, or the kernel's if it rose during the copy (a spike between two
        samples)."""
        if self.hwm_after_mb > self.hwm_before_mb:
            return max(self.sampled_peak_mb, self.hwm_after_mb)
        return self.sampled_peak_mb

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


async def memory(args: argparse.Namespace, tmp: Path, kind: str, moto: Moto | None) -> Memory:
    size = args.memory_bytes
    bucket = moto.bucket(f"bench-memory-{os.getpid()}") if moto is not None else ""
    async with running_relay(
        args, tmp / f"memory-{kind}", kind=kind, video_bytes=size, moto=moto, bucket=bucket
    ) as relay:
        await asyncio.sleep(1.0)  # let the start-up settle
        with Sampler(relay.pid) as sampler:
            idle_from = time.monotonic()
            await asyncio.sleep(1.0)
            idle_to = time.monotonic()
            hwm_before = status_kb(relay.pid, "VmHWM")
            task = await create_task(relay, 0)
            rows = await until_copied(relay, [task], within=600)
            done = time.monotonic()
            hwm_after = status_kb(relay.pid, "VmHWM")
            await asyncio.sleep(0.3)
        after = status_kb(relay.pid, "VmRSS")
        gets = await file_requests(relay)
        row = rows[task.id]
        copy_seconds = (row.stored_at or math.nan) - gets[task.provider_task_id]
        idle = sampler.between(idle_from, idle_to)
        during = sampler.between(idle_to, done)
        ok = row.size == size and row.sha256 == await asyncio.to_thread(
            expected_sha256, task.provider_task_id, size
        )
        if moto is not None:
            await asyncio.to_thread(moto.empty, bucket)
    return Memory(
        kind,
        "own" if relay.source_pid is None else "separate",
        statistics.median(idle) / 1024,
        max(during) / 1024,
        hwm_before / 1024,
        hwm_after / 1024,
        after / 1024,
        len(during),
        copy_seconds,
        size,
        ok,
    )


def report_memory(results: list[Memory]) -> bool:
    met = True
    print("\n2. Relay memory while copying one video (VmRSS every 50 ms)")
    for m in results:
        ok = m.growth_mb < TARGET_GROWTH_MB and m.digest_ok
        met = met and ok
        where = "another process" if m.source == "separate" else "the relay's own sandbox"
        print(
            f"  {m.kind} store: {m.size:,} bytes (served by {where}) copied in "
            f"{m.seconds:.1f} s ({m.size / MB / m.seconds:.0f} MB/s)"
        )
        print(
            f"    RSS before {m.baseline_mb:.1f} MB, sampled peak {m.sampled_peak_mb:.1f} MB "
            f"({m.samples} samples), after {m.after_mb:.1f} MB; VmHWM {m.hwm_before_mb:.1f} -> "
            f"{m.hwm_after_mb:.1f} MB"
        )
        print(
            f"    growth {m.growth_mb:.1f} MB (target < {TARGET_GROWTH_MB:g} MB: "
            f"{'met' if ok else 'MISSED'})" + ("" if m.digest_ok else "  WRONG SIZE OR SHA-256")
        )
    return met
