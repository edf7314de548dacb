"""Copies of finished videos survive what processes do: a relay killed (SIGKILL) in the middle
of a large copy shows no half object, and once restarted stores the whole file and announces
it; two relay processes sharing one PostgreSQL database copy each file once, into one
object."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.sandbox.media import expected_sha256
from tests.e2e.harness import (
    Receiver,
    RelayProcess,
    api_client,
    ark_input,
    create_account,
    eventually,
    free_port,
    postgres_schema,
    provider_config,
    relay_config,
    sandbox_provider,
    write_config,
)

pytestmark = pytest.mark.slow

LARGE = 64 * 1024 * 1024
STALL_AFTER = 16 * 1024 * 1024


def visible(root: Path) -> list[str]:
    """The objects the store shows: its temporary files start with a dot."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def parts(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.part") if p.is_file()]


async def test_a_kill_during_a_large_copy_leaves_no_half_object_and_the_restart_stores_it(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "kept"
    port = free_port()
    config = relay_config(
        tmp_path,
        port,
        outputs={"store": f"file://{kept}", "wait_seconds": 120},
        sandbox={"video_bytes": LARGE},
    )
    config_path = write_config(tmp_path, config)
    first = RelayProcess(config_path, port, tmp_path / "relay-1.log")
    again = RelayProcess(config_path, port, tmp_path / "relay-2.log")
    receiver = Receiver()
    try:
        await receiver.start()
        account = await create_account(config_path, "patient")
        await first.start()
        auth = {"Authorization": f"Bearer {account.api_key}"}
        async with api_client(first.url, headers=auth) as client:
            # The video's transfer pauses after 16 MiB: the copy is under way when killed.
            stall = {
                "plan": ["stall"],
                "types": ["mp4"],
                "after_bytes": STALL_AFTER,
                "timeout_seconds": 60,
            }
            assert (await client.put("/sandbox/_control/file-faults", json=stall)).is_success
            body = {"provider": "sandbox", "input": ark_input(), "callback_url": receiver.url}
            created = await client.post("/v1/tasks", json=body)
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]

        async def halfway() -> bool:
            return any(p.stat().st_size >= STALL_AFTER // 2 for p in parts(kept))

        await eventually(halfway, within=30, what="the copy to be half written")
        await first.kill(signal.SIGKILL)
        assert visible(kept) == []  # the half copy is no object
        assert receiver.requests == []  # task.succeeded waits for the copy

        await again.start()
        (announced,) = await receiver.wait_for(1, within=60)
        envelope = announced.json()
        assert envelope["type"] == "task.succeeded"
        assert "relay_notice" not in envelope
        data = envelope["data"]
        assert data["id"] == task_id
        digest = expected_sha256(data["provider_task_id"], LARGE)
        assert data["output"]["video"]["sha256"] == digest
        (video,) = visible(kept)
        assert video.endswith(f"{task_id}/video.mp4")
        assert hashlib.sha256((kept / video).read_bytes()).hexdigest() == digest
        async with httpx.AsyncClient(timeout=30) as anyone:
            served = await anyone.get(data["video_url"], headers={"Range": "bytes=-1000"})
        assert served.status_code == 206
        assert served.content == (kept / video).read_bytes()[-1000:]
    finally:
        await first.ensure_dead()
        await again.ensure_dead()
        await receiver.stop()


@pytest.mark.postgres
async def test_two_instances_on_postgres_copy_each_file_once(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    size = 2 * 1024 * 1024
    provider_port = free_port()
    provider = RelayProcess(
        write_config(
            tmp_path,
            provider_config(tmp_path, provider_port, queued_seconds=0.3, running_seconds=0.5)
            | {"sandbox": {"queued_seconds": 0.3, "running_seconds": 0.5, "video_bytes": size}},
            "provider.yaml",
        ),
        provider_port,
        tmp_path / "provider.log",
    )
    relays: list[RelayProcess] = []
    try:
        await provider.start()
        async with postgres_schema() as url:
            for n in (1, 2):
                port = free_port()
                config = relay_config(
                    tmp_path,
                    port,
                    sandbox={"enabled": False},
                    providers={
                        "sandbox": sandbox_provider(
                            provider.url, min_interval=0.2, max_interval=0.5, expected_duration=1
                        )
                    },
                    outputs={"store": f"file://{kept}", "wait_seconds": 30, "max_concurrent": 2},
                ) | {"database_url": url}
                path = write_config(tmp_path, config, f"relay-{n}.yaml")
                relays.append(RelayProcess(path, port, tmp_path / f"relay-{n}.log"))
            for relay in relays:
                await relay.start()
            account = await create_account(relays[0].config_path, "shared")
            auth = {"Authorization": f"Bearer {account.api_key}"}
            ids: list[str] = []
            async with api_client(relays[0].url, headers=auth) as client:
                for n in range(12):
                    body = {"provider": "sandbox", "input": ark_input(f"video {n}")}
                    created = await client.post("/v1/tasks", json=body)
                    assert created.status_code == 201, created.text
                    ids.append(created.json()["id"])

                async def all_stored() -> list[dict[str, Any]] | None:
                    tasks = [(await client.get(f"/v1/tasks/{i}")).json() for i in ids]
                    done = all((t["output"] or {}).get("status") == "stored" for t in tasks)
                    return tasks if done else None

                tasks = await eventually(all_stored, within=60, what="every copy")
            async with api_client(provider.url) as control:
                log = (await control.get("/sandbox/_control/files")).json()["data"]
            videos = [r["path"] for r in log if r["path"].endswith(".mp4")]
            # Each video fetched once, by one instance or the other: never twice.
            assert sorted(videos) == sorted(set(videos))
            assert len(videos) == len(ids)
            objects = visible(kept)
            assert len(objects) == len(ids)
            for task in tasks:
                digest = expected_sha256(task["provider_task_id"], size)
                assert task["output"]["video"]["sha256"] == digest
                (found,) = [o for o in objects if task["id"] in o]
                assert hashlib.sha256((kept / found).read_bytes()).hexdigest() == digest
            # Both instances served the stable links: any instance can.
            async with httpx.AsyncClient(timeout=10) as anyone:
                for relay in relays:
                    link = tasks[0]["video_url"].replace(relays[0].url, relay.url)
                    assert (await anyone.head(link)).status_code == 200
    finally:
        for relay in relays:
            await relay.ensure_dead()
        await provider.ensure_dead()
        await asyncio.sleep(0)
