"""The processes of the output-copy benchmarks (``outputs.py``, ``outputs_memory.py``,
``outputs_latency.py``), and what the relay recorded.

A relay (``relay serve``) copying into a local directory or an S3 bucket, its videos served
by its own sandbox or by the sandbox of a second relay process; moto's S3 server in a
process of its own; a receiver process that stamps callbacks. What the relay did is read
from its SQLite file (read-only: the benchmark never asks the relay's event loop while it
copies) and from its sandbox's file log (``/sandbox/_control/files``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from relay_process import (
    create_account,
    free_port,
    start_relay,
    stop,
    tail,
    wait_healthy,
)

from relay.sandbox.media import expected_sha256

HOST = "127.0.0.1"
MB = 1_000_000
REGION = "us-east-1"
MODEL = "doubao-seedance-2-0-fast-260128"
CONTROL = "/sandbox/_control"
"""The sandbox's control API (no auth): its file log."""

# --- the processes ---------------------------------------------------------------------------


def relay_config(
    tmp: Path,
    port: int,
    *,
    video_bytes: int,
    outputs: dict[str, Any] | None,
    source: str | None,
    log_level: str,
) -> Path:
    """A relay copying into ``outputs`` (None: a sandbox only) from its own sandbox, or from
    the sandbox of the relay at ``source``."""
    config: dict[str, Any] = {
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}"},
        "database_url": f"sqlite:///{tmp / 'relay.db'}",
        "log_level": log_level,
        # The sandbox's files and the receiver are on loopback, which the default refuses.
        "network": {"allow_networks": ["127.0.0.0/8", "::1"]},
        "polling": {"tick_seconds": 0.2},
        "sandbox": {
            "enabled": source is None,
            "queued_seconds": 0.2,
            "running_seconds": 1.0,
            "video_bytes": video_bytes,
        },
    }
    if outputs is not None:
        config["outputs"] = outputs
        config["providers"] = {
            "sandbox": {
                "dialect": "ark",
                "base_url": source,
                "path_prefix": "/sandbox/ark/api/v3",
                "api_key": "sandbox",
                "poll": {
                    "min_interval": 0.1,
                    "max_interval": 0.5,
                    "expected_duration": 1.2,
                    "learn": False,
                },
            }
        }
    path = tmp / "relay.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


@dataclass
class Relay:
    """A ``relay serve`` process with an account, its database file and its output store."""

    url: str
    proc: subprocess.Popen[bytes]
    db: Path
    log: Path
    api: httpx.AsyncClient
    store_root: Path | None
    """The local store's directory (None: S3)."""
    sandbox: str
    """The relay serving the sandbox (its files, its control API): this one, or another."""
    source_pid: int | None
    """The other relay serving the sandbox (``--sources separate``), else None."""

    @property
    def pid(self) -> int:
        return self.proc.pid


def _warn_from(log: Path) -> None:
    problems = [line for line in tail(log).splitlines() if " ERROR " in line or " WARNING " in line]
    if problems:
        print(f"  {log.parent.name}: {len(problems)} warnings/errors, e.g. {problems[0][:300]}")


@contextlib.asynccontextmanager
async def serving(config: Path, log: Path, url: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    proc = start_relay(config, log)
    try:
        await wait_healthy(url, proc, log)
        yield proc
    finally:
        await asyncio.to_thread(stop, proc)
        _warn_from(log)


@contextlib.asynccontextmanager
async def running_relay(
    args: argparse.Namespace,
    tmp: Path,
    *,
    kind: str,
    video_bytes: int,
    moto: Moto | None,
    bucket: str,
    source: str | None = None,
    wait_seconds: float = 600.0,
) -> AsyncIterator[Relay]:
    """A relay copying into ``kind``'s store from its own sandbox or (``--sources separate``)
    from a second relay process that serves only the sandbox."""
    await asyncio.to_thread((tmp / "source").mkdir, parents=True, exist_ok=True)
    root = tmp / "kept"
    outputs: dict[str, Any] = {
        "store": f"file://{root}",
        "max_concurrent": args.max_concurrent,
        "wait_seconds": wait_seconds,
    }
    if kind == "s3":
        assert moto is not None
        outputs |= {"store": f"s3://{bucket}/relay", "endpoint_url": moto.endpoint}
        outputs["region"] = REGION
    async with contextlib.AsyncExitStack() as stack:
        source_url, source_pid = None, None
        if (source or args.sources[0]) == "separate":
            port = free_port()
            source_url = f"http://{HOST}:{port}"
            config = relay_config(
                tmp / "source",
                port,
                video_bytes=video_bytes,
                outputs=None,
                source=None,
                log_level=args.log_level,
            )
            serving_sandbox = await stack.enter_async_context(
                serving(config, tmp / "source" / "relay.log", source_url)
            )
            source_pid = serving_sandbox.pid
        port = free_port()
        url = f"http://{HOST}:{port}"
        config = relay_config(
            tmp,
            port,
            video_bytes=video_bytes,
            outputs=outputs,
            source=source_url,
            log_level=args.log_level,
        )
        _, api_key = await asyncio.to_thread(create_account, config)
        proc = await stack.enter_async_context(serving(config, tmp / "relay.log", url))
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            )
        )
        yield Relay(
            url,
            proc,
            tmp / "relay.db",
            tmp / "relay.log",
            api,
            root if kind == "local" else None,
            source_url or url,
            source_pid,
        )


@dataclass
class Moto:
    """moto's S3 server in its own process."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    client: Any  # boto3's S3 client: buckets, and removing what a phase stored

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def empty(self, bucket: str) -> None:
        """Remove every object (moto keeps them in its memory)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[Moto]:
    import boto3

    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    with open(tmp / "moto.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        )
        yield Moto(endpoint, proc, client)
    finally:
        stop(proc)


@contextlib.contextmanager
def receiver_process() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("outputs.py")),
            "--serve-receiver",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://{HOST}:{port}"
    finally:
        proc.kill()
        proc.wait()


# --- the relay's side: tasks, and what its database and sandbox recorded ---------------------


@dataclass(frozen=True)
class Made:
    id: str
    provider_task_id: str


async def create_task(relay: Relay, n: int, callback: str | None = None) -> Made:
    body: dict[str, Any] = {
        "provider": "sandbox",
        "input": {"model": MODEL, "content": [{"type": "text", "text": f"benchmark {n}"}]},
    }
    if callback is not None:
        body["callback_url"] = callback
    answer = await relay.api.post("/v1/tasks", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"POST /v1/tasks: {answer.status_code} {answer.text}")
    data = answer.json()
    return Made(str(data["id"]), str(data["provider_task_id"]))


def read_db(db: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass(frozen=True)
class CopyRow:
    task_id: str
    state: str
    created_at: float
    stored_at: float | None
    size: int | None
    sha256: str | None
    object_key: str | None
    error: str | None


def copies(relay: Relay, task_ids: Sequence[str]) -> dict[str, CopyRow]:
    rows = read_db(
        relay.db,
        "SELECT task_id, state, created_at, stored_at, size, sha256, object_key, error "
        f"FROM output_copies WHERE kind = 'video' AND task_id IN ({','.join('?' * len(task_ids))})",
        task_ids,
    )
    return {row[0]: CopyRow(*row) for row in rows}


async def until_copied(relay: Relay, tasks: Sequence[Made], within: float) -> dict[str, CopyRow]:
    """Wait (reading the database, not asking the relay) until every task's video copy is
    stored; a failed try is an error at once."""
    ids = [t.id for t in tasks]
    deadline = time.monotonic() + within
    while True:
        rows = await asyncio.to_thread(copies, relay, ids)
        failed = [r for r in rows.values() if r.error is not None or r.state == "failed"]
        if failed:
            raise RuntimeError(f"a copy failed: {failed[0]}")
        if len(rows) == len(ids) and all(r.state == "stored" for r in rows.values()):
            return rows
        if relay.proc.poll() is not None:
            raise RuntimeError(f"the relay exited:\n{tail(relay.log)}")
        if time.monotonic() > deadline:
            done = sum(r.state == "stored" for r in rows.values())
            raise RuntimeError(f"{done} of {len(ids)} copies stored after {within:g} s")
        await asyncio.sleep(0.2)


async def file_requests(relay: Relay) -> dict[str, float]:
    """The sandbox's file log: provider task id -> when its video's first GET arrived (unix
    seconds, millisecond precision)."""
    answer = await relay.api.get(relay.sandbox + CONTROL + "/files")
    answer.raise_for_status()
    first: dict[str, float] = {}
    for record in answer.json()["data"]:
        name = record["path"].rsplit("/", 1)[-1]
        if not name.endswith(".mp4"):
            continue
        at = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
        ptid = name.removesuffix(".mp4")
        first[ptid] = min(at, first.get(ptid, math.inf))
    return first


async def forget_file_requests(relay: Relay) -> None:
    (await relay.api.delete(relay.sandbox + CONTROL + "/files")).raise_for_status()


async def provider_urls(relay: Relay, tasks: Sequence[Made]) -> list[str]:
    urls = []
    for task in tasks:
        answer = await relay.api.get(f"/v1/tasks/{task.id}")
        answer.raise_for_status()
        urls.append(str(answer.json()["provider_video_url"]))
    return urls


def check_digests(tasks: Sequence[Made], rows: dict[str, CopyRow], size: int) -> int:
    """How many stored copies have the size and SHA-256 the sandbox's bytes must have."""
    bad = 0
    for task in tasks:
        row = rows[task.id]
        if row.size != size or row.sha256 != expected_sha256(task.provider_task_id, size):
            bad += 1
    return bad
