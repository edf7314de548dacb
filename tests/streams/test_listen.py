"""``relay listen`` as a developer runs it: a real process following a real relay's stream,
forwarding to a real local receiver that verifies each event with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from standardwebhooks import Webhook

from tests.api.conftest import InProcessFactory, receiver, start_receiver, start_relay
from tests.e2e.harness import Account, InProcessRelay, Receiver
from tests.streams.test_event_stream import create, feed

__all__ = ["receiver", "start_receiver", "start_relay"]


@asynccontextmanager
async def listening(
    relay: InProcessRelay, account: Account, tmp_path: Path, *args: str
) -> AsyncIterator[Path]:
    """``relay listen`` running until the block ends; yields the file its output goes to."""
    out = tmp_path / "listen.log"
    with out.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "listen",
            "--url",
            relay.url,
            *args,
            stdout=log,
            stderr=log,
            env={**os.environ, "RELAY_API_KEY": account.api_key, "PYTHONUNBUFFERED": "1"},
        )
    try:
        for _ in range(200):  # until it says it is following the stream
            if b"Ready:" in out.read_bytes():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # its stream request is on its way
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_listen_forwards_each_event_signed_as_a_delivery(
    start_relay: InProcessFactory, receiver: Receiver, tmp_path: Path
) -> None:
    relay = await start_relay()
    account = await relay.account("developer")
    async with listening(relay, account, tmp_path, "--forward-to", receiver.url) as out:
        task_id = await create(relay, account)
        got = await receiver.wait_for(3, within=60)
        for _ in range(600):  # each line is printed once the local server answered
            if out.read_text().count(" 200 in ") == 3:
                break
            await asyncio.sleep(0.05)
    listed = await feed(relay, account, task_id=task_id)
    assert [r.webhook_id for r in got] == [e["id"] for e in listed]
    verifier = Webhook(account.secret)
    for request in got:
        assert verifier.verify(request.body, request.headers) == json.loads(request.body)
    printed = out.read_text()
    assert "task.succeeded" in printed
    assert printed.count(" 200 in ") == 3


async def test_listen_filters_types_and_prints_without_forwarding(
    start_relay: InProcessFactory, receiver: Receiver, tmp_path: Path
) -> None:
    relay = await start_relay()
    account = await relay.account("reader")
    async with listening(relay, account, tmp_path, "--print", "--events", "task.succeeded") as out:
        task_id = await create(relay, account)
        for _ in range(1200):  # up to a minute on a loaded machine
            if "task.succeeded" in out.read_text():
                break
            await asyncio.sleep(0.05)
    printed = out.read_text()
    [line] = [x for x in printed.splitlines() if "task." in x]
    assert "task.succeeded" in line
    assert task_id in line
    assert receiver.requests == []  # printed only
