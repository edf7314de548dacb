"""The sandbox's Ark emulation, driven over HTTP as the relay's Ark adapter will drive it."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from relay.models import TaskStatus
from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import (
    DEFAULT_MODEL,
    Outcome,
    SandboxSettings,
    SandboxTask,
    decode_task_id,
    new_task,
    status_at,
    updated_at,
)
from tests.clock import FakeClock

T0 = datetime(2026, 6, 6, 8, 0, 57, tzinfo=UTC)  # apiyi's sample task: created_at 1780732857
T0_UNIX = 1780732857
FAST = "doubao-seedance-2-0-fast-260128"
STANDARD = "doubao-seedance-2-0-260128"
BASE = "http://relay.test"
TASKS = "/sandbox/ark/api/v3/contents/generations/tasks"
AUTH = {"Authorization": "Bearer sk-sandbox"}
PROMPT = "Drone shot flying over an autumn valley, golden forests and a winding river, cinematic"
ID_RE = re.compile(r"cgt-\d{14}-[a-z2-7]{40}")
REQUEST_ID_RE = re.compile(r"021\d{13}[0-9a-f]{32}")


def mounted(clock: FakeClock, settings: SandboxSettings | None = None) -> Starlette:
    """The sandbox where the relay puts it."""
    app = sandbox_app(settings or SandboxSettings(), clock)
    return Starlette(routes=[Mount("/sandbox", app=app)])


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(mounted(clock)) as http:
        yield http


async def create(http: httpx.AsyncClient, prompt: str = PROMPT, **options: Any) -> str:
    body = {"model": FAST, "content": [{"type": "text", "text": prompt}], **options}
    response = await http.post(TASKS, headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == ["id"]
    assert ID_RE.fullmatch(answer["id"])
    return str(answer["id"])


async def fetch(http: httpx.AsyncClient, task_id: str) -> Any:
    response = await http.get(f"{TASKS}/{task_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def signed(name: str, date: str) -> str:
    """The sandbox's TOS-style URL, recomputed independently of the code under test."""
    message = f"{name}\n{date}\n86400".encode()
    signature = hmac.new(b"seedance-relay-sandbox", message, hashlib.sha256).hexdigest()
    return (
        f"{BASE}/sandbox/files/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={date}"
        f"&X-Tos-Expires=86400&X-Tos-Signature={signature}"
    )


def common(task_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "id": task_id, "model": FAST, "created_at": T0_UNIX, "seed": 97151,
        "resolution": "720p", "ratio": "16:9", "duration": 5, "framespersecond": 24,
        "generate_audio": True, "draft": False,
    }
    return {**fields, **overrides}


def ark_error(response: httpx.Response, code: str, message: str, param: str, kind: str) -> None:
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID_RE.fullmatch(request_id)
    assert response.json() == {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": param,
            "type": kind,
        }
    }


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
        body = (await http.get(f"/ark/api/v3/contents/generations/tasks/{task_id}",
                               headers=AUTH)).json()
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
        "Code": "SignatureDoesNotMatch", "Message": "The signature does not match."
    }

    clock.advance(86400 - 0.001)
    assert (await client.get(content["video_url"])).status_code == 200
    clock.advance(0.001)
    expired = await client.get(content["video_url"])
    assert (expired.status_code, expired.json()) == (
        403, {"Code": "AccessDenied", "Message": "Request has expired."}
    )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic c2s6eA=="}]
)
async def test_every_endpoint_requires_a_bearer_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    task_id = await create(client)
    body = {"model": FAST, "content": [{"type": "text", "text": "x"}]}
    for response in (
        await client.post(TASKS, headers=headers, json=body),
        await client.get(f"{TASKS}/{task_id}", headers=headers),
        await client.delete(f"{TASKS}/{task_id}", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["x-request-id"].startswith("0211780732857000")
        ark_error(
            response,
            "AuthenticationError",
            "the API key or AK/SK in the request is missing or invalid.",
            "",
            "Unauthorized",
        )
    assert (await fetch(client, task_id))["status"] == "queued"


TEXT = [{"type": "text", "text": PROMPT}]


@pytest.mark.parametrize(
    ("body", "code", "param", "message"),
    [
        pytest.param(
            {"model": FAST}, "MissingParameter", "content",
            "The request failed because it is missing one or multiple required parameters: "
            "`content`.",
            id="missing-content",
        ),
        pytest.param(
            {"model": FAST, "content": []}, "MissingParameter", "content",
            "The request failed because it is missing one or multiple required parameters: "
            "`content`.",
            id="empty-content",
        ),
        pytest.param(
            {"content": TEXT}, "MissingParameter", "model",
            "The request failed because it is missing one or multiple required parameters: "
            "`model`.",
            id="missing-model",
        ),
        pytest.param(
            {"model": 5, "content": TEXT}, "InvalidParameter", "model",
            "The parameter `model` specified in the request is not valid: "
            "must be a non-empty string.",
            id="model-not-string",
        ),
        pytest.param(
            {"model": FAST, "content": "hello"}, "InvalidParameter", "content",
            "The parameter `content` specified in the request is not valid: "
            "must be an array of content items.",
            id="content-not-list",
        ),
        pytest.param(
            {"model": FAST, "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "InvalidParameter", "content",
            "The parameter `content` specified in the request is not valid: "
            "must hold at least one text item.",
            id="no-text-item",
        ),
        pytest.param(
            {"model": FAST, "content": [{"type": "text", "text": 3}]},
            "InvalidParameter", "content.text",
            "The parameter `content.text` specified in the request is not valid: "
            "must be a non-empty string.",
            id="text-not-string",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "resolution": "1080p"},
            "InvalidParameter", "resolution",
            "The parameter `resolution` specified in the request is not valid: "
            "1080p is not supported by model doubao-seedance-2-0-fast-260128.",
            id="1080p-on-fast",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "resolution": "4k"},
            "InvalidParameter", "resolution",
            "The parameter `resolution` specified in the request is not valid: "
            "must be one of 480p, 720p, 1080p.",
            id="unknown-resolution",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "ratio": "2:1"},
            "InvalidParameter", "ratio",
            "The parameter `ratio` specified in the request is not valid: "
            "must be one of 16:9, 4:3, 1:1, 3:4, 9:16, 21:9, adaptive.",
            id="unknown-ratio",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "duration": 3},
            "InvalidParameter", "duration",
            "The parameter `duration` specified in the request is not valid: "
            "must be an integer in [4, 15] or -1.",
            id="duration-too-short",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "seed": True},
            "InvalidParameter", "seed",
            "The parameter `seed` specified in the request is not valid: "
            "must be an integer in [-1, 4294967295].",
            id="seed-bool",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "generate_audio": "yes"},
            "InvalidParameter", "generate_audio",
            "The parameter `generate_audio` specified in the request is not valid: "
            "must be a boolean.",
            id="audio-not-bool",
        ),
        pytest.param(
            [1, 2], "InvalidParameter", "", "The request body must be a JSON object.",
            id="not-an-object",
        ),
    ],
)
async def test_invalid_create_bodies_answer_ark_400s(
    client: httpx.AsyncClient, body: Any, code: str, param: str, message: str
) -> None:
    response = await client.post(TASKS, headers=AUTH, json=body)
    assert response.status_code == 400
    ark_error(response, code, message, param, "BadRequest")


async def test_malformed_json_answers_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        TASKS, headers={**AUTH, "Content-Type": "application/json"}, content=b'{"model": '
    )
    assert response.status_code == 400
    ark_error(response, "InvalidParameter", "The request body is not valid JSON.", "",
              "BadRequest")


@pytest.mark.parametrize(
    "task_id",
    [
        "cgt-20260606160057-6bbjd",  # a real Ark id the sandbox never issued
        "nope",
        "cgt-20260606160057-" + "a" * 40,  # well-formed, wrong checksum
    ],
)
async def test_unknown_task_answers_404(client: httpx.AsyncClient, task_id: str) -> None:
    for response in (
        await client.get(f"{TASKS}/{task_id}", headers=AUTH),
        await client.delete(f"{TASKS}/{task_id}", headers=AUTH),
    ):
        assert response.status_code == 404
        ark_error(response, "ResourceNotFound", "The specified task was not found.", "",
                  "NotFound")


async def test_tasks_are_gone_after_seven_days(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(client)
    clock.advance(7 * 86400 - 1)
    assert (await fetch(client, task_id))["status"] == "succeeded"
    clock.advance(1)
    assert (await client.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404


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
            first, model=STANDARD, resolution="480p", ratio="21:9", duration=12,
            generate_audio=False, return_last_frame=True,
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


@pytest.mark.parametrize(
    ("prompt", "options"),
    [
        ("plain", {}),
        ("[fail] please", {"model": STANDARD, "resolution": "1080p", "seed": 0}),
        ("[EXPIRE]", {"ratio": "3:4", "duration": 15, "generate_audio": False}),
        ("[slow]", {"resolution": "480p", "ratio": "1:1", "duration": 4,
                    "return_last_frame": True, "seed": 2**32 - 1}),
        ("x", {"model": "dreamina-seedance-2-0-260128", "ratio": "4:3"}),
    ],
)
def test_ids_round_trip(prompt: str, options: dict[str, Any]) -> None:
    now = datetime(2026, 6, 6, 23, 59, 59, 123456, tzinfo=UTC)
    settings = SandboxSettings(queued_seconds=1.25, running_seconds=61.5)
    task = new_task(now=now, settings=settings, nonce=0xABCDEF, prompt=prompt, **options)
    assert ID_RE.fullmatch(task.id)
    assert task.id.startswith("cgt-20260607075959-")
    assert task.created_at == datetime(2026, 6, 6, 23, 59, 59, 123000, tzinfo=UTC)
    assert decode_task_id(task.id) == task


def test_unknown_model_round_trips_to_the_default() -> None:
    task = new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x", model="custom")
    assert decode_task_id(task.id) == replace(task, model=DEFAULT_MODEL)


def test_outcome_and_timing_come_from_the_prompt() -> None:
    settings = SandboxSettings(queued_seconds=2, running_seconds=6)
    failed = new_task(now=T0, settings=settings, nonce=1, prompt="X [Fail] [expire]")
    slow = new_task(now=T0, settings=settings, nonce=1, prompt="[SLOW] [expire]")
    assert (failed.outcome, failed.running_seconds) == (Outcome.FAILED, 6)
    assert (slow.outcome, slow.running_seconds) == (Outcome.EXPIRED, 30)
    assert status_at(slow, T0 + timedelta(seconds=31.999)) is TaskStatus.RUNNING
    assert status_at(slow, T0 + timedelta(seconds=32)) is TaskStatus.EXPIRED
    assert updated_at(slow, T0 + timedelta(seconds=1)) == T0
    assert updated_at(slow, T0 + timedelta(seconds=3)) == T0 + timedelta(seconds=2)
    assert updated_at(slow, T0 + timedelta(days=1)) == T0 + timedelta(seconds=32)


def test_same_millisecond_tasks_get_distinct_ids_and_seeds() -> None:
    one = new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x")
    two = new_task(now=T0, settings=SandboxSettings(), nonce=2, prompt="x")
    assert one.id != two.id
    assert one.seed != two.seed
    assert new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x") == one


def _flip(task_id: str, index: int) -> str:
    char = "b" if task_id[index] != "b" else "c"
    return task_id[:index] + char + task_id[index + 1:]


def test_malformed_ids_decode_to_none() -> None:
    good = new_task(now=T0, settings=SandboxSettings(), nonce=9, prompt="x").id
    assert isinstance(decode_task_id(good), SandboxTask)
    bad = [
        "",
        good.upper(),
        good + "a",
        good[:-1],
        good.replace("cgt-", "cgx-"),
        good.replace("-20260606", "-20260605"),  # timestamp disagrees with the payload
        _flip(good, len(good) - 1),
        _flip(good, 19),
        good[:19] + "1" * 40,  # not base32
    ]
    assert [decode_task_id(task_id) for task_id in bad] == [None] * len(bad)


@pytest.mark.parametrize(
    ("queued", "running"), [(-1, 6), (2, -0.5), (2, 10 * 86400)]
)
def test_settings_out_of_range_are_refused(queued: float, running: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        SandboxSettings(queued_seconds=queued, running_seconds=running)
