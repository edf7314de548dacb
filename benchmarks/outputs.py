"""Copies of finished videos (issue 12): the copier's throughput next to a bare streamed copy,
the relay's memory while it copies a 1 GB video, and how long ``task.succeeded`` takes once the
copy is stored.

    python benchmarks/outputs.py [--figures throughput,memory,latency] [--stores local,s3]
        [--sources separate[,own]] [--videos 20] [--video-mb 50] [--rounds 3] ...

3 to 4 minutes on a 2-core machine (6 when other work keeps both cores busy);
``--figures``, ``--stores``, ``--rounds``, ``--videos``, ``--memory-bytes`` and
``--latency-tasks`` scale it down. Requirements (the exit status is 1 when one is missed):

1. Copy throughput, 20 videos of 50 MB from the sandbox into the local store and into an S3
   server: at least 0.8x a bare streamed copy of the same bytes measured in the same run.
2. Relay memory while copying a 1 GB video: RSS grows by less than 50 MB
   (``outputs_memory.py``).
3. ``task.succeeded`` for a 10 MB video with archiving on: p99 under 1 s above the copy time
   (``outputs_latency.py``).

Processes, loopback only (``outputs_relay.py``):

- the relay, ``python -m relay serve --config ...`` (SQLite in a temp dir, uvloop, the default
  ``log_level: info``) with ``outputs.store`` set; a fresh one for each figure and store;
- the sandbox serving the videos (``relay.sandbox``: ``sandbox.video_bytes`` of deterministic
  bytes, SHAKE-256 blocks made as they are streamed in 64 KiB chunks, the task's
  ``provider_video_url``). By default (``--sources separate``) a second ``relay serve`` whose
  sandbox the measured relay uses as its Ark provider; ``--sources own``: the measured relay's
  own sandbox, in its process (see "Which sandbox" below);
- for the S3 store, moto's server (``python -m moto.server``) in its own process, objects in
  its memory;
- for figure 3, a receiver process that stamps each callback's arrival;
- this benchmark: it creates the tasks through ``POST /v1/tasks``, runs the baselines, reads
  the relay's SQLite file (read-only: it never asks the relay's event loop while it copies)
  and the sandbox's file log (``/sandbox/_control/files``, each GET stamped on arrival).

**1. Throughput.** Per round, ``--videos`` tasks are created at once; each succeeds at the
sandbox 1.2 s later and the copier copies them ``outputs.max_concurrent`` (4) at a time. The
relay's time runs from the first copy's GET arriving at the sandbox to the last copy's
``stored_at`` (written in the transaction that records the stored file): claims, downloads
through the network guard, SHA-256, the store's writes (local: 1 MiB blocks in a thread,
fsync, rename; S3: obstore multipart puts, 5 MiB parts, 4 in flight), the transactions. It
also holds the time over which the successes are found by the polls (printed; 0.05 to 0.3 s),
which can only make the relay look slower. Then, from the same sandbox URLs (the tasks'
``provider_video_url``), the same 20 files 4 at a time into the same destination, timed from
the first request to the last file done:

- bare: httpx streaming GETs (``aiter_raw``), each chunk written to a file as it comes (no
  hash, no fsync), or handed to ``obstore.put_async`` on the same bucket with the relay's part
  size and parts in flight: the requirement's baseline;
- local store only, bare + SHA-256 + fsync: the same, also hashing every chunk and fsyncing
  each file, the work the relay must do besides copying (for information).

First an unmeasured round of relay copies (it warms the relay up and gives the first URLs)
and the bare copies of its files; then ``--rounds`` times the relay's copies of 20 new
videos, then the bare copies of those: each relay round lies between two bare rounds, so a
change in the machine's load hits both sides (the order of the two bare copies alternates).
The figure is the bytes over the time summed over the rounds; each relay round is also set
against the mean of the bare rounds just before and after it (printed). Before each phase
the page cache is written back (``sync``), after it what the bare copy wrote is removed (and
the bucket emptied). The stored copies' sizes and SHA-256 are checked against the sandbox's
bytes after the timing. The CPU seconds of each process during each phase are printed: where
this machine's cores went.

Which sandbox. The sandbox makes each video's bytes as it serves them: SHAKE-256, which holds
the GIL, about 2.5 CPU seconds per GB on the serving relay's event loop (in a profile of the
relay serving its own videos, the largest single item). In the relay's own process
(``--sources own``) that work shares one GIL and one event loop with the copier, while in the
baseline the copying client is another process: the comparison then charges the source to the
relay alone. Measured so, the local store reached 0.4x to 0.65x (the relay process pinned at
one core), which says nothing about the copier. A real provider's CDN is another machine, so
the default serves the videos from a second relay process, the same for the relay and the
baselines.

On a 2-core machine the local copies are bound by CPU: the sandbox takes a core at about
400 MB/s, and the copier spends 2.5 to 3.1 CPU s per GB where the bare copy spends 1.6 to 2.0
and the bare copy doing the relay's work (SHA-256, about 0.65 s per GB, and fsync) 2.1 to 2.6.
The local store's ratio therefore depends on how many of the two cores the rest of the machine
leaves (print ``uptime`` before and after) and moves from run to run. S3 runs at what moto's
server (one Python process, its CPU printed) takes, for the relay and the bare copy alike.

**2. Memory** and **3. Latency**: see ``outputs_memory.py`` and ``outputs_latency.py``. Both
use the first of ``--sources``.

Absolute numbers depend on the machine and its load; the ratios, measured in one run, are
what to compare. ``--profile DIR`` records the relay with py-spy (``.venv/bin/py-spy``) during
each of its copy phases in figure 1 (DIR/throughput-{store}-{source}-{round}.svg, round 0
the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import obstore
import uvloop  # what relay serve runs on too (uvicorn[standard])
from obstore.store import S3Store
from outputs_latency import latency, report_latency
from outputs_memory import memory, report_memory
from outputs_relay import (
    MB,
    REGION,
    CopyRow,
    Made,
    Moto,
    Relay,
    check_digests,
    create_task,
    file_requests,
    forget_file_requests,
    moto_server,
    provider_urls,
    receiver_process,
    running_relay,
    until_copied,
)
from push_latency import serve_receiver
from relay_process import (
    cpu_seconds,
    start_profiler,
)

from relay.outputs.s3 import MAX_PARTS, MIN_PART, UPLOADS_AT_ONCE

MAX_BYTES = 2 << 30
"""``outputs.max_bytes``'s default, which sets the relay's multipart part size."""
PART_SIZE = max(MIN_PART, -(-MAX_BYTES // (MAX_PARTS - 1)))
"""The relay's part size (``relay.outputs.s3.S3Store.put``), for the bare S3 copy."""
TARGET_RATIO = 0.8

# --- figure 1: throughput --------------------------------------------------------------------


def cpu_now(relay: Relay, moto: Moto | None) -> dict[str, float]:
    """CPU seconds so far of the relay, the sandbox's relay (when separate), moto, and this
    process (the bare copy's client)."""
    return {
        "relay": cpu_seconds(relay.pid),
        "sandbox": math.nan if relay.source_pid is None else cpu_seconds(relay.source_pid),
        "moto": math.nan if moto is None else cpu_seconds(moto.proc.pid),
        "benchmark": time.process_time(),
    }


def cpu_since(before: dict[str, float], relay: Relay, moto: Moto | None) -> dict[str, float]:
    return {k: v - before[k] for k, v in cpu_now(relay, moto).items()}


@dataclass
class Phase:
    seconds: float
    bytes: int
    per_copy: list[float]
    cpu: dict[str, float]
    """Each process's CPU seconds during the phase (``cpu_now``)."""
    found_over: float = math.nan
    """The relay's: seconds between the first and the last success recorded (the copy rows'
    ``created_at``), part of its time since it cannot copy a video before that."""

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds


@dataclass
class Throughput:
    kind: str
    source: str
    relay: list[Phase] = field(default_factory=list)
    bare: list[Phase] = field(default_factory=list)
    checked: list[Phase] = field(default_factory=list)
    """Local store only: the bare copy doing the work the relay must do too (SHA-256, fsync)."""
    bad_digests: int = 0

    @staticmethod
    def rate(phases: list[Phase]) -> float:
        return sum(p.bytes for p in phases) / MB / sum(p.seconds for p in phases)

    @property
    def ratio(self) -> float:
        return self.rate(self.relay) / self.rate(self.bare)


def _create_file(path: Path) -> IO[bytes]:
    return open(path, "wb")


async def bare_copies(
    urls: Sequence[str],
    concurrency: int,
    write: Any,
) -> tuple[float, list[float], int]:
    """``urls`` streamed ``concurrency`` at a time, each through ``write(i, response)``:
    (seconds from the first request to the last file done, each file's seconds, bytes)."""
    todo = iter(enumerate(urls))
    per_copy: list[float] = []
    total = 0
    async with httpx.AsyncClient(
        timeout=120, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            nonlocal total
            for i, url in todo:
                started = time.perf_counter()
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"GET {url}: {response.status_code}")
                    moved = await write(i, response)  # not `total += await`: a race
                total += moved
                per_copy.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, per_copy, total


async def bare_local(
    urls: Sequence[str], concurrency: int, into: Path, checked: bool
) -> tuple[float, list[float], int]:
    """Each file written as its chunks come; ``checked``: also hashed (SHA-256, chunk by
    chunk) and fsynced before it counts as done, the work the relay's copy must do."""
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)

    async def write(i: int, response: httpx.Response) -> int:
        size = 0
        sha = hashlib.sha256()
        file = _create_file(into / f"{i}.mp4")
        try:
            async for chunk in response.aiter_raw():
                if checked:
                    sha.update(chunk)
                file.write(chunk)
                size += len(chunk)
            if checked:
                file.flush()
                await asyncio.to_thread(os.fsync, file.fileno())
        finally:
            file.close()
        return size

    return await bare_copies(urls, concurrency, write)


async def bare_s3(
    urls: Sequence[str], concurrency: int, store: S3Store, prefix: str, checked: bool
) -> tuple[float, list[float], int]:
    """Each file handed to ``obstore.put_async`` as its chunks come; ``checked``: also hashed
    (SHA-256, chunk by chunk), the work the relay's copy must do."""

    async def write(i: int, response: httpx.Response) -> int:
        size = 0
        sha = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in response.aiter_raw():
                if checked:
                    sha.update(chunk)
                size += len(chunk)
                yield chunk

        await obstore.put_async(
            store,
            f"{prefix}/{i}.mp4",
            body(),
            attributes={"Content-Type": "video/mp4"},
            use_multipart=True,
            chunk_size=PART_SIZE,
            max_concurrency=UPLOADS_AT_ONCE,
        )
        return size

    return await bare_copies(urls, concurrency, write)


def s3_store(moto: Moto, bucket: str) -> S3Store:
    """The bucket through obstore, configured as ``relay.outputs.s3.S3Store.at`` does."""
    return S3Store(
        bucket,
        config={"endpoint": moto.endpoint, "region": REGION},
        client_options={"allow_http": True},
    )


async def settle_disk() -> None:
    """Let the page cache be written back, so that one phase's writes do not slow the next."""
    await asyncio.to_thread(os.sync)


async def relay_round(
    args: argparse.Namespace, relay: Relay, moto: Moto | None, first: int, name: str
) -> tuple[Phase, list[Made], dict[str, CopyRow]]:
    """``--videos`` tasks created at once and copied by the relay: its phase, the tasks, and
    their copies as recorded."""
    await forget_file_requests(relay)
    await settle_disk()
    spy = None
    if args.profile:
        spy = start_profiler(relay.pid, Path(args.profile) / f"{name}.svg", rate=200)
    cpu = cpu_now(relay, moto)
    tasks = await asyncio.gather(*(create_task(relay, first + i) for i in range(args.videos)))
    rows = await until_copied(relay, tasks, within=600)
    used = cpu_since(cpu, relay, moto)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 60)
    gets = await file_requests(relay)
    starts = [gets[t.provider_task_id] for t in tasks]
    stored = [rows[t.id].stored_at or math.nan for t in tasks]
    created = [r.created_at for r in rows.values()]
    phase = Phase(
        max(stored) - min(starts),
        sum(rows[t.id].size or 0 for t in tasks),
        [s - g for s, g in zip(stored, starts, strict=True)],
        used,
        max(created) - min(created),
    )
    return phase, list(tasks), rows


async def bare_round(
    args: argparse.Namespace,
    tmp: Path,
    relay: Relay,
    moto: Moto | None,
    bucket: str,
    urls: Sequence[str],
    checked: bool,
) -> Phase:
    """The bare copy of ``urls`` into the relay's kind of store (``checked``: doing the
    relay's work besides, local store only)."""
    if moto is not None:
        await asyncio.to_thread(moto.empty, bucket)
    await settle_disk()
    cpu = cpu_now(relay, moto)
    name = f"bare-{checked}"
    if relay.store_root is not None:
        took, per_copy, moved = await bare_local(urls, args.max_concurrent, tmp / name, checked)
    else:
        assert moto is not None
        store = s3_store(moto, bucket)
        took, per_copy, moved = await bare_s3(urls, args.max_concurrent, store, name, checked)
    phase = Phase(took, moved, per_copy, cpu_since(cpu, relay, moto))
    if moved != args.video_mb * MB * len(urls):
        raise RuntimeError(f"a bare copy moved {moved} bytes, not {args.video_mb * MB * len(urls)}")
    if relay.store_root is not None:
        await asyncio.to_thread(_remove_tree, tmp / name)
    elif moto is not None:
        await asyncio.to_thread(moto.empty, bucket)
    return phase


async def throughput(
    args: argparse.Namespace, tmp: Path, kind: str, moto: Moto | None, source: str
) -> Throughput:
    """A warm-up round of relay copies (unmeasured: it gives the first URLs), then bare
    copies, then ``--rounds`` times: relay copies, bare copies. Each relay phase lies between
    two bare phases, so that a change in the machine's load hits both sides alike."""
    size = args.video_mb * MB
    bucket = moto.bucket(f"bench-throughput-{source}") if moto is not None else ""
    result = Throughput(kind, source)
    copied: list[tuple[list[Made], dict[str, CopyRow]]] = []
    work = tmp / f"throughput-{kind}-{source}"
    async with running_relay(
        args, work, kind=kind, video_bytes=size, moto=moto, bucket=bucket, source=source
    ) as relay:
        # The bare copy; for the local store also the bare copy doing the relay's work (for
        # S3 it would time moto once more). Their order alternates.
        variants = [False, True] if kind == "local" else [False]
        for round_no in range(args.rounds + 1):
            name = f"throughput-{kind}-{source}-{round_no}"
            phase, tasks, rows = await relay_round(args, relay, moto, round_no * args.videos, name)
            copied.append((tasks, rows))
            if round_no:
                result.relay.append(phase)
            if moto is not None:
                await asyncio.to_thread(moto.empty, bucket)
            urls = await provider_urls(relay, tasks)
            for checked in variants if round_no % 2 == 0 else variants[::-1]:
                phase = await bare_round(args, work, relay, moto, bucket, urls, checked)
                (result.checked if checked else result.bare).append(phase)
            print(
                f"  {kind} {'warm-up' if not round_no else f'round {round_no}'}: relay "
                + (f"{result.relay[-1].mb_per_s:.0f} MB/s, " if round_no else "(unmeasured), ")
                + f"bare {result.bare[-1].mb_per_s:.0f} MB/s"
                + (
                    f", bare + SHA-256 + fsync {result.checked[-1].mb_per_s:.0f} MB/s"
                    if result.checked
                    else ""
                ),
                flush=True,
            )
    # Every stored copy holds the sandbox's bytes (checked after the timing: it takes CPU).
    for tasks, rows in copied:
        result.bad_digests += await asyncio.to_thread(check_digests, tasks, rows, size)
    return result


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        if child.is_dir():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


def report_throughput(args: argparse.Namespace, results: list[Throughput]) -> bool:
    met = True
    print(
        f"\n1. Copy throughput: {args.videos} videos of {args.video_mb} MB a round, "
        f"{args.rounds} rounds, {args.max_concurrent} copies at once (outputs.max_concurrent); "
        "MB/s = the bytes over the time, summed over the rounds; bare rounds: one before the "
        "first relay round, one after each"
    )
    for r in results:
        judged = r.source == args.sources[0]
        ok = r.ratio >= TARGET_RATIO and not r.bad_digests
        met = met and (ok or not judged)
        where = "a second relay process" if r.source == "separate" else "the relay's own"
        to = "file" if r.kind == "local" else "obstore put_async"
        print(f"  {r.kind} store, videos served by {where} sandbox:")
        rows = [
            ("relay (the copier)", r.relay),
            (f"bare: httpx stream -> {to}", r.bare),
        ]
        if r.checked:
            rows.append(("bare + SHA-256 + fsync", r.checked))
        for name, runs in rows:
            per_round = ", ".join(f"{p.mb_per_s:.0f}" for p in runs)
            one = statistics.mean(s for p in runs for s in p.per_copy)
            used = {k: sum(p.cpu[k] for p in runs) for k in runs[0].cpu}
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in used.items() if not math.isnan(v))
            print(
                f"    {name:<34} {Throughput.rate(runs):6.1f} MB/s (rounds {per_round}); "
                f"one copy {one:.2f} s; CPU s {cpu}"
            )
        found = max(p.found_over for p in r.relay)
        print(f"    (the relay's time includes its successes being found, within {found:.2f} s)")
        if r.bad_digests:
            print(f"    {r.bad_digests} stored copies with the wrong size or SHA-256")
        # Each relay round against the bare copies just before and after it.
        per_round = ", ".join(
            f"{p.mb_per_s / statistics.mean((b.mb_per_s, c.mb_per_s)):.2f}"
            for p, b, c in zip(r.relay, r.bare, r.bare[1:], strict=False)
        )
        print(
            f"    relay / bare: {r.ratio:.2f}x (rounds {per_round})  "
            f"({'' if judged else 'for information: '}target >= {TARGET_RATIO}x: "
            f"{'met' if ok else 'MISSED'})"
        )
        if r.checked:
            print(
                "    relay / bare + SHA-256 + fsync: "
                f"{Throughput.rate(r.relay) / Throughput.rate(r.checked):.2f}x"
            )
    return met


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, tmp: Path) -> bool:
    figures = set(args.figures.split(","))
    stores = args.stores.split(",")
    moto_needed = "s3" in stores
    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(moto_server(tmp)) if moto_needed else None
        receiver = stack.enter_context(receiver_process()) if "latency" in figures else ""
        met = True
        if "throughput" in figures:
            results = []
            for source in args.sources:
                for kind in stores:
                    print(f"throughput, {kind}, {source} sandbox ...", flush=True)
                    results.append(await throughput(args, tmp, kind, moto, source))
            met = report_throughput(args, results) and met
        if "memory" in figures:
            mems = []
            for kind in stores:
                print(f"memory, {kind} ...", flush=True)
                mems.append(await memory(args, tmp, kind, moto))
            met = report_memory(mems) and met
        if "latency" in figures:
            lats = []
            for kind in args.latency_stores.split(","):
                print(f"latency, {kind} ...", flush=True)
                lats.append(await latency(args, tmp, kind, moto, receiver))
            met = report_latency(args, lats) and met
        return met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--figures", default="throughput,memory,latency")
    parser.add_argument("--stores", default="local,s3", help="for figures 1 and 2")
    parser.add_argument("--videos", type=int, default=20, help="videos a round (figure 1)")
    parser.add_argument("--video-mb", type=int, default=50, help="their size (figure 1)")
    parser.add_argument("--rounds", type=int, default=3, help="relay rounds (figure 1)")
    parser.add_argument("--max-concurrent", type=int, default=4, help="outputs.max_concurrent")
    parser.add_argument("--memory-bytes", type=int, default=1 << 30, help="figure 2's video")
    parser.add_argument("--latency-tasks", type=int, default=50)
    parser.add_argument("--latency-mb", type=int, default=10)
    parser.add_argument("--latency-rate", type=float, default=5.0, help="tasks created a second")
    parser.add_argument("--latency-stores", default="local", help="for figure 3")
    parser.add_argument(
        "--sources",
        default="separate",
        help="the sandboxes serving the videos, the first judged (figure 1; figures 2 and 3 "
        "use the first): separate (a second relay process), own (the relay's)",
    )
    parser.add_argument("--log-level", default="info", help="the relay's log_level")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="DIR", help="py-spy the relay's copies (figure 1)")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sources = args.sources.split(",")
    if not set(args.sources) <= {"own", "separate"}:
        parser.error("--sources: own and/or separate")
    if args.serve_receiver:
        uvloop.run(serve_receiver(args.serve_receiver))
        return
    # The S3 store's credentials, as an operator gives them (moto takes any).
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ |= {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-outputs-") as tmp:
        met = uvloop.run(run(args, Path(tmp)))
    print(
        f"\n{time.monotonic() - started:.0f} s in all; load average {os.getloadavg()}; "
        f"{'every requirement met' if met else 'a requirement MISSED'}"
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
