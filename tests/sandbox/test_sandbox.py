"""The sandbox's Ark emulation, driven over HTTP as the relay's Ark adapter will drive it:
the timeline, signed files, cancel and delete, and answers surviving a restart."""

from __future__ import annotations

import httpx
import pytest

from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import DEFAULT_MODEL, SandboxSettings, decode_task_id
from tests.clock import FakeClock
from tests.sandbox.ark_support import (
    AUTH,
    STANDARD,
    TASKS,
    ark_error,
    client_for,
    common,
    create,
    fetch,
    mounted,
)
from tests.sandbox.support import BASE, T0_UNIX, signed

FAST = "doubao-seedance-2-0-fast-260128"


# -- the timeline over HTTP -----------------------------------------------------------------


async def test_task_goes_queued_running_succeeded(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client, seed=97151)
    assert task_id.startswith("cgt-20260606160057-")  # Beijing time, like Ark's ids

    queued = common(task_id, status="queued", updated_at=T0_UNIX)
    assert await fetch(client, task_id) == queued
    clock.advance(1.999)
    assert await fetch(client, task_id) == queued

    clock.advance(0.001)
    running = common(task_id, status="running", updated_at=T0_UNIX + 2)
    assert await fetch(client, task_id) == running
    clock.advance(5.999)
    assert await fetch(client, task_id) == running

    clock.advance(0.001)
    succeeded = common(
        task_id,
        status="succeeded",
        content={"video_url": signed(f"{task_id}.mp4", "20260606T080105Z")},
        usage={"completion_tokens": 108900, "total_tokens": 108900},
        updated_at=T0_UNIX + 8,
    )
    assert await fetch(client, task_id) == succeeded
    clock.advance(3600)
    assert await fetch(client, task_id) == succeeded


async def test_fail_keyword_fails_with_arks_moderation_error(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client, "A dancer [FAIL] on a rooftop", seed=7)
    clock.advance(7)
    assert (await fetch(client, task_id))["status"] == "running"
    clock.advance(1)
    assert await fetch(client, task_id) == common(
        task_id,
        status="failed",
        error={
            "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
            "message": "The request failed because the output video may be related to "
            "policy restrictions.",
        },
        updated_at=T0_UNIX + 8,
        seed=7,
    )


async def test_expire_keyword_expires_without_error_object(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client, "Timelapse [Expire]", seed=8)
    clock.advance(8)
    assert await fetch(client, task_id) == common(
        task_id, status="expired", updated_at=T0_UNIX + 8, seed=8
    )


async def test_slow_keyword_runs_five_times_longer(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client, "[slow] glacier calving")
    clock.advance(2 + 29.999)
    assert (await fetch(client, task_id))["status"] == "running"
    clock.advance(0.001)
    body = await fetch(client, task_id)
    assert (body["status"], body["updated_at"]) == ("succeeded", T0_UNIX + 32)


async def test_options_are_honoured(client: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await create(
        client,
        model=STANDARD,
        resolution="1080p",
        ratio="9:16",
        duration=10,
        seed=4294967295,
        generate_audio=False,
        return_last_frame=True,
    )
    clock.advance(8)
    assert await fetch(client, task_id) == common(
        task_id,
        model=STANDARD,
        status="succeeded",
        content={
            "video_url": signed(f"{task_id}.mp4", "20260606T080105Z"),
            "last_frame_url": signed(f"{task_id}.png", "20260606T080105Z"),
        },
        usage={"completion_tokens": 488025, "total_tokens": 488025},  # 241 x 1920 x 1080 / 1024
        updated_at=T0_UNIX + 8,
        seed=4294967295,
        resolution="1080p",
        ratio="9:16",
        duration=10,
        generate_audio=False,
    )


async def test_defaults_adaptive_ratio_auto_duration_and_random_seed(
    client: httpx.AsyncClient,
) -> None:
    task_id = await create(
        client, resolution="480p", ratio="adaptive", duration=-1, seed=-1, generate_audio=None
    )
    body = await fetch(client, task_id)
    decoded = decode_task_id(task_id)
    assert decoded is not None
    assert body == common(
        task_id, status="queued", updated_at=T0_UNIX, seed=decoded.seed, resolution="480p"
    )
    assert 0 <= decoded.seed < 2**32
    other = await create(client)
    assert other != task_id


async def test_unmounted_app_builds_urls_where_it_is_served(clock: FakeClock) -> None:
    async with client_for(sandbox_app(SandboxSettings(0, 0), clock)) as http:
        created = await http.post(
            "/ark/api/v3/contents/generations/tasks",
            headers=AUTH,
            json={"model": FAST, "content": [{"type": "text", "text": "x"}]},
        )
        task_id = created.json()["id"]
        body = (
            await http.get(f"/ark/api/v3/contents/generations/tasks/{task_id}", headers=AUTH)
        ).json()
        url = body["content"]["video_url"]
        assert url.startswith(f"{BASE}/files/{task_id}.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256&")
        assert (await http.get(url)).status_code == 200


# -- signed files ---------------------------------------------------------------------------


async def test_signed_files_download_without_authorization_until_they_expire(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client, return_last_frame=True)
    clock.advance(8)
    content = (await fetch(client, task_id))["content"]

    video = await client.get(content["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    frame = await client.get(content["last_frame_url"])
    assert (frame.status_code, frame.headers["content-type"]) == (200, "image/png")

    with_auth = await client.get(content["video_url"], headers=AUTH)
    assert with_auth.status_code == 400
    assert with_auth.json()["Code"] == "InvalidArgument"

    tampered = content["video_url"].replace("X-Tos-Expires=86400", "X-Tos-Expires=999999")
    assert (await client.get(tampered)).json() == {
        "Code": "SignatureDoesNotMatch",
        "Message": "The signature does not match.",
    }

    clock.advance(86400 - 0.001)
    assert (await client.get(content["video_url"])).status_code == 200
    clock.advance(0.001)
    expired = await client.get(content["video_url"])
    assert (expired.status_code, expired.json()) == (
        403,
        {"Code": "AccessDenied", "Message": "Request has expired."},
    )


async def test_a_query_after_the_urls_expire_hands_out_freshly_signed_ones(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client)
    clock.advance(8)
    first = (await fetch(client, task_id))["content"]["video_url"]
    clock.advance(86400 - 0.001)  # the last instant of the first window: the same URL
    assert (await fetch(client, task_id))["content"]["video_url"] == first
    clock.advance(0.001)
    assert (await client.get(first)).status_code == 403
    fresh = (await fetch(client, task_id))["content"]["video_url"]
    # Signed at the start of the second 24 h window (finished 08:01:05 UTC + 24 h).
    assert fresh == signed(f"{task_id}.mp4", "20260607T080105Z")
    assert (await client.get(fresh)).status_code == 200


# -- cancel and delete ----------------------------------------------------------------------


async def test_cancel_a_queued_task(client: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await create(client, seed=97151)
    clock.advance(1)
    response = await client.delete(f"{TASKS}/{task_id}", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {})

    cancelled = common(task_id, status="cancelled", updated_at=T0_UNIX + 1)
    assert await fetch(client, task_id) == cancelled
    clock.advance(3600)  # long past when it would have succeeded
    assert await fetch(client, task_id) == cancelled
    clock.advance(86400 - 3600)  # Ark drops cancelled records after 24 hours
    assert (await client.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404


async def test_delete_a_cancelled_task_forgets_it(client: httpx.AsyncClient) -> None:
    task_id = await create(client)
    assert (await client.delete(f"{TASKS}/{task_id}", headers=AUTH)).json() == {}
    assert (await client.delete(f"{TASKS}/{task_id}", headers=AUTH)).json() == {}
    assert (await client.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404


async def test_a_running_task_cannot_be_cancelled(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client)
    clock.advance(2)
    response = await client.delete(f"{TASKS}/{task_id}", headers=AUTH)
    assert response.status_code == 400
    ark_error(
        response,
        "InvalidParameter",
        "The parameter `id` specified in the request is not valid: "
        "task cannot be cancelled while running.",
        "id",
        "BadRequest",
    )
    clock.advance(6)
    assert (await fetch(client, task_id))["status"] == "succeeded"


@pytest.mark.parametrize("prompt", ["ok", "[fail]", "[expire]"])
async def test_deleting_a_finished_task_removes_it(
    client: httpx.AsyncClient, clock: FakeClock, prompt: str
) -> None:
    task_id = await create(client, prompt)
    clock.advance(8)
    assert (await fetch(client, task_id))["status"] != "running"
    response = await client.delete(f"{TASKS}/{task_id}", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {})
    assert (await client.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404
    assert (await client.delete(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404


# -- stateless ids --------------------------------------------------------------------------


async def test_a_restarted_sandbox_answers_for_old_ids(clock: FakeClock) -> None:
    async with client_for(mounted(clock)) as first:
        task_id = await create(
            first,
            model=STANDARD,
            resolution="480p",
            ratio="21:9",
            duration=12,
            generate_audio=False,
            return_last_frame=True,
        )
        alias_id = await create(first, model="my-gateway-alias")
        clock.advance(5)
        before = await fetch(first, task_id)

    async with client_for(mounted(clock)) as second:
        assert await fetch(second, task_id) == before
        clock.advance(3)
        after = await fetch(second, task_id)
        assert after["status"] == "succeeded"
        assert after["usage"] == {"completion_tokens": 115690, "total_tokens": 115690}
        assert list(after["content"]) == ["video_url", "last_frame_url"]
        # A model name an id cannot carry falls back to the default after a restart.
        assert (await fetch(second, alias_id))["model"] == DEFAULT_MODEL


# -- the app ------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/ark/api/v3/contents/generations/tasks"),
    ("GET", "/ark/api/v3/contents/generations/tasks/x"),
    ("DELETE", "/ark/api/v3/contents/generations/tasks/x"),
    ("POST", "/apiyi/seedance/api/v3/contents/generations/tasks"),
    ("GET", "/apiyi/seedance/api/v3/contents/generations/tasks/x"),
    ("DELETE", "/apiyi/seedance/api/v3/contents/generations/tasks/x"),
    ("POST", "/cubicspaces/api/v3/contents/generations/tasks"),
    ("GET", "/cubicspaces/api/v3/contents/generations/tasks/x"),
    ("POST", "/cubicspaces/v1/video/generations"),
    ("GET", "/cubicspaces/v1/video/generations/x"),
    ("POST", "/cubicspaces/v1/images/moderations"),
    ("POST", "/cubicspaces/v1/assets/moderations"),
    ("POST", "/naci/v1/video/generations"),
    ("GET", "/naci/v1/video/generations/x"),
    ("POST", "/vastnum/v1/video/generations"),
    ("GET", "/vastnum/v1/video/generations/x"),
    ("POST", "/newapi/v1/video/generations"),
    ("GET", "/newapi/v1/video/generations/x"),
    # new-api's OpenAI-compatible video routes, on every new-api flavour (issue 14)
    *[
        (method, f"/{flavor}/v1/videos{tail}")
        for flavor in ("naci", "vastnum", "cubicspaces", "newapi")
        for method, tail in (("POST", ""), ("GET", "/x"), ("GET", "/x/content"))
    ],
    ("POST", "/seedance2ink/api/open/v1/video/generations"),
    ("GET", "/seedance2ink/api/open/v1/video/generations/x"),
    ("POST", "/seedance2ink/api/open/v1/video/generations/x/cancel"),
    ("GET", "/seedance2ink/api/open/v1/models"),
]


async def test_every_provider_path_is_served_and_logged(clock: FakeClock) -> None:
    app = sandbox_app(SandboxSettings(), clock)
    sandbox = app.state.sandbox
    async with client_for(app) as http:
        for method, path in ROUTES:
            response = await http.request(method, path)  # no key: each provider's 401
            assert response.status_code == 401, (method, path)
        assert (await http.get("/seedance2ink/v1/videos/x")).status_code == 404
        log = (await http.get("/_control/requests")).json()["data"]
    assert [(r["method"], r["path"]) for r in log] == ROUTES
    await sandbox.aclose()
