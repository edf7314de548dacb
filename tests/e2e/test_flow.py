"""The newcomer's flow, end to end: an account from the CLI (a real ``relay accounts create``
process), a relay serving on a loopback port, a sandbox task, one signed callback verified by
the ``standardwebhooks`` package, the read endpoints that explain it, and the video it points
at. The rest of the tasks API is in ``tests/api/test_tasks.py``.
"""

from __future__ import annotations

from tests.api.test_tasks import (
    ARK_ID,
    ISO,
    TOKENS_720P_5S,
    register,
    task_events,
    verified,
    wait_terminal,
)
from tests.e2e.harness import (
    MODEL,
    TASK_FIELDS,
    Receiver,
    RelayServer,
    api_client,
    ark_input,
    create_account,
)


async def test_newcomer_gets_one_signed_callback(relay: RelayServer, receiver: Receiver) -> None:
    account = await create_account(relay.config_path, "alice")

    async with relay.client() as anonymous:
        for headers in (
            {"Authorization": f"Bearer {account.api_key}"},
            {"X-API-Key": account.api_key},
        ):
            me = await anonymous.get("/v1/me", headers=headers)
            assert me.status_code == 200, me.text
            assert me.json()["id"] == account.id
            assert me.json()["name"] == "alice"
            assert ISO.match(me.json()["created_at"])

        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

    async with relay.client(account) as client:
        secret = await client.get("/v1/callback-secret")
        assert secret.status_code == 200
        assert secret.json() == {"secret": account.secret}

        task = await register(
            client,
            input=ark_input("a cat"),
            callback_url=receiver.url,
            reference="order-1234",
            metadata={"projectId": "proj_1001"},
        )
        assert set(task) == TASK_FIELDS
        assert task["id"].startswith("task_")
        assert task["provider"] == "sandbox"
        assert ARK_ID.match(task["provider_task_id"]), task["provider_task_id"]
        assert task["status"] == "queued"
        assert task["reference"] == "order-1234"
        assert task["metadata"] == {"projectId": "proj_1001"}
        assert task["video_url"] is None
        assert task["completed_at"] is None

        [request] = await receiver.wait_for(1)
        payload = verified(account, request)
        final = await wait_terminal(client, task["id"])
        events = await task_events(client, task["id"])

    assert payload["type"] == "task.succeeded"
    assert ISO.match(payload["timestamp"])
    assert set(payload) == {"id", "type", "timestamp", "sequence", "data"}
    # queued at registration, perhaps running, then succeeded: sequence counts them.
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "task.queued"
    assert events[-1]["id"] == payload["id"]
    assert payload["sequence"] == len(events)

    data = payload["data"]
    assert set(data) == TASK_FIELDS, "DESIGN §3: every field present, null when unknown"
    assert data == final
    assert data["id"] == task["id"]
    assert data["provider"] == "sandbox"
    assert data["provider_task_id"] == task["provider_task_id"]
    assert data["model"] == MODEL
    assert data["status"] == "succeeded"
    assert data["progress"] == 100
    assert data["video_url"].startswith(
        f"{relay.url}/sandbox/files/{task['provider_task_id']}.mp4?"
    )
    assert "X-Tos-Expires=86400" in data["video_url"]
    assert ISO.match(data["video_url_expires_at"])
    assert data["last_frame_url"] is None
    assert data["error"] is None
    assert data["usage"] == {"completion_tokens": TOKENS_720P_5S, "total_tokens": TOKENS_720P_5S}
    assert (data["resolution"], data["ratio"], data["duration"], data["fps"]) == (
        "720p",
        "16:9",
        5,
        24,
    )
    assert isinstance(data["seed"], int)
    assert data["reference"] == "order-1234"
    assert data["metadata"] == {"projectId": "proj_1001"}
    assert data["created_at"] == task["created_at"]
    assert ISO.match(data["completed_at"])

    # The video the callback points at is really there (the sandbox serves signed files).
    async with api_client(relay.url) as plain:
        video = await plain.get(data["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"

    # Exactly one delivery: the default filter is the terminal types only.
    await receiver.quiet_for(0.6)
    assert len(receiver.requests) == 1
