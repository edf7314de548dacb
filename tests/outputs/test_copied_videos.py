"""Copies of finished videos, end to end: a real relay (in-process, served on loopback for its
sandbox), a sandbox task, a real receiver; the stable link in the callback serves the
sandbox's very bytes, keeps serving them after the provider forgot the task, and every kind of
bad source is a failed copy with its reason, never a stored object, never a lost event."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx

from relay.sandbox.media import expected_sha256, video_bytes
from tests.api.conftest import InProcessFactory, start_receiver, start_relay
from tests.e2e.harness import Account, InProcessRelay, Receiver, ark_input, eventually
from tests.outputs.conftest import REGION, S3Server, bucket, s3_env, s3_server

__all__ = ["bucket", "s3_env", "s3_server", "start_receiver", "start_relay"]

SIZE = 300_000
ARK = "/sandbox/ark/api/v3/contents/generations/tasks"
SANDBOX_AUTH = {"Authorization": "Bearer sandbox"}


def kept(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {"store": f"file://{tmp_path / 'kept'}", "wait_seconds": 10, **overrides}


async def submit(relay: InProcessRelay, account: Account, receiver: Receiver | None) -> str:
    """A sandbox task with a last frame too (Ark's return_last_frame)."""
    body: dict[str, Any] = {
        "provider": "sandbox",
        "input": {**ark_input(), "return_last_frame": True},
    }
    if receiver is not None:
        body["callback_url"] = receiver.url
    async with relay.client(account) as client:
        created = await client.post("/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def read_task(relay: InProcessRelay, account: Account, task_id: str) -> dict[str, Any]:
    async with relay.client(account) as client:
        answer = await client.get(f"/v1/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_the_callback_link_serves_the_sandbox_bytes_after_the_provider_forgot(
    start_relay: InProcessFactory, start_receiver: Any, tmp_path: Path
) -> None:
    relay = await start_relay(outputs=kept(tmp_path), sandbox={"video_bytes": SIZE})
    account = await relay.account("keeper")
    receiver = await start_receiver()
    task_id = await submit(relay, account, receiver)

    (first,) = await receiver.wait_for(1, within=20)
    envelope = first.json()
    assert envelope["type"] == "task.succeeded"
    assert "relay_notice" not in envelope
    data = envelope["data"]
    ptid = data["provider_task_id"]
    link = data["video_url"]
    assert link.startswith(f"{relay.url}/v1/outputs/")
    assert data["video_url_expires_at"] is None
    assert data["provider_video_url"].startswith(f"{relay.url}/sandbox/files/")
    assert data["output"]["status"] == "stored"
    assert data["output"]["video"] == {
        "size": SIZE,
        "sha256": expected_sha256(ptid, SIZE),
        "content_type": "video/mp4",
    }

    async def frame_stored() -> str | None:
        frame: str = (await read_task(relay, account, task_id))["last_frame_url"]
        return frame if frame.startswith(f"{relay.url}/v1/outputs/") else None

    # The last frame is copied alongside, waited for by nobody.
    await eventually(frame_stored, within=10, what="the last frame's copy")

    async with httpx.AsyncClient(timeout=10) as anyone:  # no API key
        whole = await anyone.get(link)
        assert whole.status_code == 200
        assert whole.content == video_bytes(ptid, SIZE)
        assert whole.headers["accept-ranges"] == "bytes"
        part = await anyone.get(link, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == video_bytes(ptid, SIZE)[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{SIZE}"
        tail = await anyone.get(link, headers={"Range": f"bytes={SIZE}-"})
        assert tail.status_code == 416
        assert tail.headers["content-range"] == f"bytes */{SIZE}"
        head = await anyone.head(link)
        assert (head.status_code, head.headers["content-length"]) == (200, str(SIZE))
        # Provider bytes on the relay's origin: never sniffed, and sandboxed.
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert whole.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert (await anyone.get(link, headers={"Range": "bytes=-0"})).status_code == 416
        huge = await anyone.get(link, headers={"Range": "bytes=" + "9" * 5000 + "-"})
        assert huge.status_code == 200  # a range nobody can mean is no range
        forged = await anyone.get(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"))
        assert forged.status_code == 404

        # The provider forgets the task (Ark's DELETE on a finished task): its link dies.
        forgot = await anyone.delete(f"{relay.url}{ARK}/{ptid}", headers=SANDBOX_AUTH)
        assert forgot.status_code == 200, forgot.text
        assert (await anyone.get(data["provider_video_url"])).status_code in (403, 404)

        async with relay.client(account) as client:
            again = await client.post(f"/v1/events/{envelope['id']}/redeliver")
        assert again.status_code == 202, again.text
        (_, second) = await receiver.wait_for(2, within=10)
        assert second.webhook_id == first.webhook_id
        replayed = await anyone.get(second.json()["data"]["video_url"])
        assert hashlib.sha256(replayed.content).hexdigest() == expected_sha256(ptid, SIZE)
        output = (await read_task(relay, account, task_id))["output"]
        metrics = (await anyone.get(f"{relay.url}/metrics")).text
    assert 'relay_output_copies_total{outcome="stored"} 2.0' in metrics
    copied = float(SIZE + output["last_frame"]["size"])
    assert f"relay_output_copied_bytes_total {copied}" in metrics
    assert 'relay_output_copies_by_state{state="stored"} 2.0' in metrics
    stored = files(tmp_path / "kept")
    assert [Path(f).name for f in stored if not Path(f).name.startswith(".")] == [
        "last_frame.png",
        "video.mp4",
    ]
    assert task_id in stored[0]


async def test_a_slow_copy_sends_the_provider_link_first_then_task_output_stored(
    start_relay: InProcessFactory, start_receiver: Any, tmp_path: Path
) -> None:
    relay = await start_relay(
        outputs=kept(tmp_path, wait_seconds=0.5), sandbox={"video_bytes": SIZE}
    )
    account = await relay.account("patient")
    receiver = await start_receiver()
    async with httpx.AsyncClient(base_url=relay.url) as sandbox:
        fault = {"plan": ["stall"], "types": ["mp4"], "after_bytes": 1000, "timeout_seconds": 2}
        assert (await sandbox.put("/sandbox/_control/file-faults", json=fault)).status_code == 200
    await submit(relay, account, receiver)

    first, second = await receiver.wait_for(2, within=20)
    succeeded, stored = first.json(), second.json()
    assert succeeded["type"] == "task.succeeded"
    assert succeeded["relay_notice"]["code"] == "output_pending"
    assert succeeded["data"]["video_url"] == succeeded["data"]["provider_video_url"]
    assert succeeded["data"]["output"]["status"] == "pending"
    assert stored["type"] == "task.output_stored"
    assert stored["sequence"] == succeeded["sequence"] + 1
    ptid = stored["data"]["provider_task_id"]
    async with httpx.AsyncClient(timeout=10) as anyone:
        video = await anyone.get(stored["data"]["video_url"])
        assert video.content == video_bytes(ptid, SIZE)
        # The provider forgets the task; task.succeeded went out with its link, so a
        # redelivery carries the stored copy's instead.
        forgot = await anyone.delete(f"{relay.url}{ARK}/{ptid}", headers=SANDBOX_AUTH)
        assert forgot.status_code == 200, forgot.text
        async with relay.client(account) as client:
            again = await client.post(f"/v1/events/{succeeded['id']}/redeliver")
        assert again.status_code == 202, again.text
        third = (await receiver.wait_for(3, within=10))[2].json()
        assert third["id"] == succeeded["id"]
        assert third["data"]["video_url"] == stored["data"]["video_url"]
        assert third["relay_notice"]["code"] == "video_url_refreshed"
        assert "stored copy" in third["relay_notice"]["message"]
        replayed = await anyone.get(third["data"]["video_url"])
    assert replayed.content == video_bytes(ptid, SIZE)


async def test_bad_sources_are_failed_copies_with_their_reasons_and_no_object(
    start_relay: InProcessFactory, start_receiver: Any, tmp_path: Path
) -> None:
    relay = await start_relay(
        outputs=kept(tmp_path, wait_seconds=30, max_attempts=4, retry_delays=[0.1]),
        sandbox={"video_bytes": SIZE},
    )
    account = await relay.account("unlucky")
    receiver = await start_receiver()
    async with httpx.AsyncClient(base_url=relay.url) as sandbox:
        fault = {"plan": ["html", "empty", "cut", "403"], "types": ["mp4"], "after_bytes": 5000}
        assert (await sandbox.put("/sandbox/_control/file-faults", json=fault)).status_code == 200
    task_id = await submit(relay, account, receiver)

    # The fourth failure is the last: the success goes out at once, not after 30 s.
    (first,) = await receiver.wait_for(1, within=20)
    envelope = first.json()
    assert envelope["type"] == "task.succeeded"
    assert envelope["relay_notice"]["code"] == "output_not_stored"
    assert "HTTP 403" in envelope["relay_notice"]["message"]
    assert envelope["data"]["video_url"] == envelope["data"]["provider_video_url"]
    task = await read_task(relay, account, task_id)
    assert task["output"]["status"] == "failed"
    copies = await relay.app.state.services.store.task_copies(task_id)
    video = next(c for c in copies if c.kind.value == "video")
    reasons = [t.error for t in video.tries]
    assert len(reasons) == 4
    assert "page" in (reasons[0] or "")
    assert "empty" in (reasons[1] or "")
    assert "cut" in (reasons[2] or "")
    assert "HTTP 403" in (reasons[3] or "")
    assert not [f for f in files(tmp_path / "kept") if f.endswith(".mp4")]
    await receiver.quiet_for(0.5)  # no task.output_stored: nothing was stored


async def test_a_body_over_the_cap_is_refused(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(
        outputs=kept(tmp_path, wait_seconds=0, max_attempts=1, max_bytes=SIZE - 1),
        sandbox={"video_bytes": SIZE},
    )
    account = await relay.account("big")
    task_id = await submit(relay, account, None)

    async def failed() -> bool:
        output = (await read_task(relay, account, task_id))["output"]
        return output is not None and output["status"] == "failed"

    await eventually(failed, within=15, what="the copy to fail")
    task = await read_task(relay, account, task_id)
    assert f"over the limit of {SIZE - 1} bytes" in task["output"]["error"]
    assert not [f for f in files(tmp_path / "kept") if f.endswith(".mp4")]


async def test_a_link_to_a_forbidden_address_is_not_followed(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    # The sandbox (and so its files) is on loopback, which this policy refuses.
    relay = await start_relay(
        outputs=kept(tmp_path, wait_seconds=0, max_attempts=1),
        network={"allow_networks": []},
    )
    account = await relay.account("ssrf")
    task_id = await submit(relay, account, None)

    async def failed() -> bool:
        output = (await read_task(relay, account, task_id))["output"]
        return output is not None and output["status"] == "failed"

    await eventually(failed, within=15, what="the copy to fail")
    error = (await read_task(relay, account, task_id))["output"]["error"]
    assert "not followed" in error
    assert "loopback" in error
    async with httpx.AsyncClient(base_url=relay.url) as sandbox:
        log = await sandbox.get("/sandbox/_control/files")
    assert log.json()["data"] == []  # not a single byte was asked for


async def test_deleting_a_tasks_outputs_removes_the_objects_and_the_link(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(outputs=kept(tmp_path, wait_seconds=0))
    account = await relay.account("forgetful")
    task_id = await submit(relay, account, None)

    async def stored() -> bool:
        output = (await read_task(relay, account, task_id))["output"]
        return output is not None and output["status"] == "stored"

    await eventually(stored, within=15, what="the copy")
    link = (await read_task(relay, account, task_id))["video_url"]
    async with relay.client(account) as client:
        other = await relay.account("other")
        async with relay.client(other) as stranger:
            assert (await stranger.delete(f"/v1/tasks/{task_id}/outputs")).status_code == 404
        deleted = await client.delete(f"/v1/tasks/{task_id}/outputs")
        assert deleted.status_code == 200, deleted.text
        task = deleted.json()
        assert task["output"]["status"] == "deleted"
        assert task["output"]["deleted_reason"] == "deleted at the account's request"
        assert task["video_url"] == task["provider_video_url"]
        assert (await client.delete(f"/v1/tasks/{task_id}/outputs")).status_code == 200
    assert [f for f in files(tmp_path / "kept") if not Path(f).name.startswith(".")] == []
    async with httpx.AsyncClient() as anyone:
        gone = await anyone.get(link)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "output_deleted"


async def test_a_bucket_link_redirects_to_a_presigned_url_of_the_same_bytes(
    start_relay: InProcessFactory, s3_server: S3Server, bucket: str
) -> None:
    relay = await start_relay(
        outputs={
            "store": f"s3://{bucket}/kept",
            "endpoint_url": s3_server.endpoint,
            "region": REGION,
            "wait_seconds": 10,
        },
        sandbox={"video_bytes": SIZE},
    )
    account = await relay.account("bucketeer")
    task_id = await submit(relay, account, None)

    async def stored() -> bool:
        output = (await read_task(relay, account, task_id))["output"]
        return output is not None and output["status"] == "stored"

    await eventually(stored, within=20, what="the copy")
    task = await read_task(relay, account, task_id)
    async with httpx.AsyncClient(timeout=10) as anyone:
        head = await anyone.head(task["video_url"])  # answered here: a presigned URL is GET's
        assert (head.status_code, head.headers["content-length"]) == (200, str(SIZE))
        moved = await anyone.get(task["video_url"])
        assert moved.status_code == 307
        assert moved.headers["location"].startswith(s3_server.endpoint)
        video = await anyone.get(moved.headers["location"])
    assert video.status_code == 200
    assert video.content == video_bytes(task["provider_task_id"], SIZE)
    keys = [o["Key"] for o in s3_server.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["last_frame.png", "video.mp4"]


async def test_outputs_off_leaves_the_task_as_it_was(
    start_relay: InProcessFactory, start_receiver: Any
) -> None:
    relay = await start_relay()
    account = await relay.account("plain")
    receiver = await start_receiver()
    await submit(relay, account, receiver)
    (first,) = await receiver.wait_for(1, within=15)
    data = first.json()["data"]
    assert data["output"] is None
    assert data["video_url"] == data["provider_video_url"]
    async with relay.client(account) as client:
        refused = await client.delete(f"/v1/tasks/{data['id']}/outputs")
    assert refused.status_code == 404


async def test_a_success_held_for_its_copy_goes_out_when_outputs_are_turned_off(
    start_relay: InProcessFactory, start_receiver: Any, tmp_path: Path
) -> None:
    # The copy's first try fails at once and the next is far off: the success is held.
    relay = await start_relay(
        outputs=kept(tmp_path, wait_seconds=5, retry_delays=[60]), sandbox={"video_bytes": SIZE}
    )
    account = await relay.account("fickle")
    receiver = await start_receiver()
    async with httpx.AsyncClient(base_url=relay.url) as sandbox:
        fault = {"plan": ["500"], "types": ["mp4"], "repeat": True}
        assert (await sandbox.put("/sandbox/_control/file-faults", json=fault)).status_code == 200
    task_id = await submit(relay, account, receiver)

    async def held() -> bool:
        output = (await read_task(relay, account, task_id))["output"]
        return output is not None and output["status"] == "pending"

    await eventually(held, within=15, what="the success held for its copy")
    await relay.stop()  # restarted on the same database without outputs.store
    again = await start_relay()
    (first,) = await receiver.wait_for(1, within=20)
    envelope = first.json()
    assert envelope["type"] == "task.succeeded"
    assert envelope["relay_notice"]["code"] == "output_not_stored"
    assert "outputs.store is no longer set" in envelope["relay_notice"]["message"]
    assert (await read_task(again, account, task_id))["output"]["status"] == "failed"
