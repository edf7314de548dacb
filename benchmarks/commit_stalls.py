"""Commit latency on SQLite while the write-ahead log is checkpointed (issue 17, item 5: "a
40-150 ms stall in every 10 s run").

    python benchmarks/commit_stalls.py [--seconds 10] [--rate 500] [--reads 200]

Small write transactions at a steady rate through the relay's SQLite runner
(``relay.store.sqlite.runner.SqliteRunner``), each one a task started on schedule (so a write
that waits behind a stall is timed with its wait, as the relay's own writes would be): an
insert of a 1 KiB row into a table with an index, on the migrated relay schema, in a database
file on this machine's disk (the directory of ``--dir``, default the system's temporary one).
Meanwhile ``--reads`` small read transactions a second go through the reader thread, as the
API's would. Two phases in one run, each on a fresh database, in turn:

- ``inline`` (the baseline): the runner as it was: SQLite's automatic checkpoint on the
  committing connection (every 1,000 pages) and a ``TRUNCATE`` on the writer thread every
  1,000 writes or above 8 MiB (``SqliteRunner(checkpoints="inline")``);
- ``background``: the runner's checkpointer (relay/store/sqlite/checkpointer.py).

Reported per phase: writes done, commit latency (from the write's start to its commit,
``time.perf_counter``) p50 / p99 / max, writes over 20 ms, the checkpoint rounds
(background), the largest log file seen, and the machine's load average (1 min) before and
after. Absolute figures depend on the disk and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from relay.store.sqlite.runner import SqliteRunner, migrate

Mode = Literal["inline", "background"]

TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_rows "
    "(id INTEGER PRIMARY KEY, key TEXT NOT NULL, body TEXT NOT NULL)"
)
INDEX = "CREATE INDEX IF NOT EXISTS bench_rows_key ON bench_rows (key)"
INSERT = "INSERT INTO bench_rows (key, body) VALUES (?, ?)"
BODY = "b" * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(mode: Mode, args: argparse.Namespace, directory: str) -> dict[str, Any]:
    db = os.path.join(tempfile.mkdtemp(prefix=f"stalls-{mode}-", dir=directory), "relay.db")
    runner = SqliteRunner(db, checkpoints=mode)
    wal = db + "-wal"
    try:
        await runner.write_untransacted(migrate)
        await runner.write_untransacted(lambda c: (c.execute(TABLE), c.execute(INDEX)))
        latencies: list[float] = []
        largest = 0
        tasks: set[asyncio.Task[None]] = set()

        def insert(n: int) -> Any:
            def write(c: sqlite3.Connection) -> None:
                c.execute(INSERT, (f"key-{n:09d}", BODY))

            return write

        async def one(n: int) -> None:
            nonlocal largest
            started = time.perf_counter()
            await runner.write(insert(n))
            latencies.append(time.perf_counter() - started)
            with contextlib.suppress(OSError):
                largest = max(largest, os.stat(wal).st_size)

        async def reads() -> None:
            spacing = 1.0 / args.reads
            while True:
                await runner.read(
                    lambda c: c.execute("SELECT count(*) FROM bench_rows WHERE id > 0").fetchone()
                )
                await asyncio.sleep(spacing)

        reader = asyncio.create_task(reads()) if args.reads else None
        loop = asyncio.get_running_loop()
        spacing = 1.0 / args.rate
        start = loop.time()
        n = 0
        while (now := loop.time()) - start < args.seconds:
            due = start + n * spacing
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)
        if reader is not None:
            reader.cancel()
        checkpointer = runner.checkpointer
        return {
            "writes": len(latencies),
            "p50": statistics.median(latencies) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "max": max(latencies) * 1000,
            "over20": sum(1 for v in latencies if v > 0.020),
            "rounds": "-" if checkpointer is None else str(checkpointer.rounds),
            "truncations": "-" if checkpointer is None else str(checkpointer.truncations),
            "largest": largest / 2**20,
        }
    finally:
        await runner.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="write transactions a second")
    parser.add_argument("--reads", type=float, default=200.0, help="read transactions a second")
    parser.add_argument("--dir", default=None, help="where the databases go")
    parser.add_argument("--phases", default="inline,background,inline,background")
    args = parser.parse_args()
    directory = args.dir or tempfile.gettempdir()
    print(
        f"{args.rate:g} writes/s and {args.reads:g} reads/s for {args.seconds:g} s per phase, "
        f"databases under {directory} (python {sys.version.split()[0]}, "
        f"sqlite {sqlite3.sqlite_version})"
    )
    print(
        f"{'phase':11} {'writes':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>20ms':>6} "
        f"{'rounds':>7} {'trunc':>6} {'log MiB':>8}  load 1m before→after"
    )
    for mode in args.phases.split(","):
        assert mode in ("inline", "background"), mode
        before = os.getloadavg()[0]
        r = asyncio.run(phase(mode, args, directory))
        print(
            f"{mode:11} {r['writes']:7d} {r['p50']:7.2f} {r['p99']:7.2f} {r['max']:7.1f} "
            f"{r['over20']:6d} {r['rounds']:>7} {r['truncations']:>6} {r['largest']:8.1f}  "
            f"{before:.2f}→{os.getloadavg()[0]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
