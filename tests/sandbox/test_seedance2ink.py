"""seedance2.ink's open API (page 004): create, read, cancel, models, refusals, results."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.clock import FakeClock
from tests.sandbox.support import AUTH, BASE, json_of, served

TASKS = "/sandbox/seedance2ink/api/open/v1/video/generations"
MODELS_PATH = "/sandbox/seedance2ink/api/open/v1/models"
PROMPT = "A river flowing through an autumn forest, aerial view, cinematic motion"
SAMPLE = {
    "model": "seedance-2.0",
    "prompt": PROMPT,
    "aspectRatio": "16:9",
    "duration": 5,
    "resolution": "720p",
    "webhookUrl": "https://your-app.com/webhooks/seedance",
    "metadata": {"projectId": "proj_1001", "sceneId": "scene_08"},
}
REQ_RE = re.compile(r"req_[0-9A-Za-z]{34}")
GET_KEYS = {
    "success",
    "requestId",
    "status",
    "model",
    "prompt",
    "duration",
    "aspectRatio",
    "output",
    "error",
}


@pytest.fixture
async def ink(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A sandbox whose pushes go nowhere (the page's sample has a webhookUrl)."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with served(clock, push_transport=transport) as (_, http):
        yield http


async def create(http: httpx.AsyncClient, **overrides: Any) -> str:
    body = {k: v for k, v in {**SAMPLE, **overrides}.items() if v is not None}
    answer = json_of(await http.post(TASKS, headers=AUTH, json=body))
    return str(answer["requestId"])


def task(request_id: str, status: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "success": True,
        "requestId": request_id,
        "status": status,
        "model": "seedance-2.0",
        "prompt": PROMPT,
        "duration": 5,
        "aspectRatio": "16:9",
        "output": None,
        "error": None,
    }
    return {**fields, **overrides}


def result_url(request_id: str) -> str:
    return f"{BASE}/sandbox/pub-bucket/open-api-results/{request_id}.mp4"


async def test_task_lifecycle_in_the_pages_shapes(ink: httpx.AsyncClient, clock: FakeClock) -> None:
    created = json_of(await ink.post(TASKS, headers=AUTH, json=SAMPLE))
    request_id = created["requestId"]
    assert REQ_RE.fullmatch(request_id)
    assert created == {
        "success": True,
        "requestId": request_id,
        "status": "queued",
        "creditsCharged": 40,
    }
    url = f"{TASKS}/{request_id}"
    assert json_of(await ink.get(url, headers=AUTH)) == task(request_id, "queued")
    assert (await ink.get(result_url(request_id))).status_code == 404
    clock.advance(2)
    processing = json_of(await ink.get(url, headers=AUTH))
    assert processing == task(request_id, "processing")
    assert set(processing) == GET_KEYS
    clock.advance(6)
    done = json_of(await ink.get(url, headers=AUTH))
    assert done == task(
        request_id, "succeeded", output={"type": "video", "url": result_url(request_id)}
    )
    # A public bucket: no credential, no expiry, an Authorization header does no harm.
    clock.advance(30 * 86400 // 5)
    for headers in ({}, AUTH):
        video = await ink.get(done["output"]["url"], headers=headers)
        assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
        assert video.content[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("x [fail]", {"code": "provider_error", "message": "Video generation failed upstream"}),
        (
            "x [expire]",
            {"code": "provider_error", "message": "Video generation timed out upstream"},
        ),
    ],
)
async def test_failures_are_http_200_success_true(
    ink: httpx.AsyncClient, clock: FakeClock, prompt: str, error: dict[str, str]
) -> None:
    request_id = await create(ink, prompt=prompt)
    clock.advance(8)
    answer = await ink.get(f"{TASKS}/{request_id}", headers=AUTH)
    assert json_of(answer) == task(request_id, "failed", prompt=prompt, error=error)
    assert (await ink.get(result_url(request_id))).status_code == 404


@pytest.mark.parametrize("wait", [0, 3])
async def test_cancel_a_queued_or_processing_task(
    ink: httpx.AsyncClient, clock: FakeClock, wait: float
) -> None:
    request_id = await create(ink)
    clock.advance(wait)
    cancelled = await ink.post(f"{TASKS}/{request_id}/cancel", headers=AUTH)
    assert json_of(cancelled) == {"success": True, "requestId": request_id, "status": "cancelled"}
    clock.advance(3600)
    assert json_of(await ink.get(f"{TASKS}/{request_id}", headers=AUTH)) == task(
        request_id, "cancelled"
    )
    again = await ink.post(f"{TASKS}/{request_id}/cancel", headers=AUTH)
    assert json_of(again, 400) == {
        "success": False,
        "error": {
            "code": "invalid_status",
            "message": "Task is already cancelled and can no longer be cancelled",
        },
    }


@pytest.mark.parametrize(("prompt", "word"), [("ok", "succeeded"), ("[fail]", "failed")])
async def test_a_finished_task_cannot_be_cancelled(
    ink: httpx.AsyncClient, clock: FakeClock, prompt: str, word: str
) -> None:
    request_id = await create(ink, prompt=prompt)
    clock.advance(8)
    refused = await ink.post(f"{TASKS}/{request_id}/cancel", headers=AUTH)
    assert json_of(refused, 400) == {
        "success": False,
        "error": {
            "code": "invalid_status",
            "message": f"Task is already {word} and can no longer be cancelled",
        },
    }
    assert json_of(await ink.get(f"{TASKS}/{request_id}", headers=AUTH))["status"] == word


async def test_unknown_ids_are_not_found(ink: httpx.AsyncClient) -> None:
    other = json_of(
        await ink.post(
            "/sandbox/naci/v1/video/generations", headers=AUTH, json={"model": "m", "prompt": "p"}
        )
    )["id"]
    for request_id in ("req_1234567890", "req_" + "A" * 34, other):
        for response in (
            await ink.get(f"{TASKS}/{request_id}", headers=AUTH),
            await ink.post(f"{TASKS}/{request_id}/cancel", headers=AUTH),
        ):
            assert json_of(response, 404) == {
                "success": False,
                "error": {"code": "not_found", "message": "Task not found"},
            }


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer invalid_sd2"}, {"Authorization": "Token sd2_live_x"}]
)
async def test_every_route_wants_a_key(ink: httpx.AsyncClient, headers: dict[str, str]) -> None:
    request_id = await create(ink)
    for response in (
        await ink.post(TASKS, headers=headers, json=SAMPLE),
        await ink.get(f"{TASKS}/{request_id}", headers=headers),
        await ink.post(f"{TASKS}/{request_id}/cancel", headers=headers),
        await ink.get(MODELS_PATH, headers=headers),
    ):
        assert json_of(response, 401) == {
            "success": False,
            "error": {"code": "unauthorized", "message": "Invalid API key"},
        }
    assert json_of(await ink.get(f"{TASKS}/{request_id}", headers=AUTH))["status"] == "queued"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"model": "seedance-3"},
            "model must be one of seedance-2.0, seedance-2.0-fast, seedance-1.5-pro",
        ),
        ({"model": None}, "model must be one of seedance-2.0, seedance-2.0-fast, seedance-1.5-pro"),
        ({"prompt": None}, "prompt is required"),
        ({"prompt": "  "}, "prompt is required"),
        ({"aspectRatio": "4:3"}, "aspectRatio must be one of 16:9, 9:16, 1:1"),
        ({"duration": 3}, "duration must be an integer between 4 and 15 for seedance-2.0"),
        (
            {"duration": 16, "model": "seedance-2.0-fast"},
            "duration must be an integer between 4 and 15 for seedance-2.0-fast",
        ),
        ({"duration": "5"}, "duration must be an integer between 4 and 15 for seedance-2.0"),
        (
            {"duration": 7, "model": "seedance-1.5-pro"},
            "duration must be 5 or 10 for seedance-1.5-pro",
        ),
        ({"resolution": "4k"}, "resolution must be one of 480p, 720p, 1080p"),
        ({"mediaUrls": ["http://example.com/a.png"]}, "mediaUrls must contain public https URLs"),
        ({"mediaUrls": ["https://"]}, "mediaUrls must contain public https URLs"),
        ({"mediaUrls": [5]}, "mediaUrls must contain public https URLs"),
        (
            {"mediaUrls": [f"https://example.com/{i}.png" for i in range(6)]},
            "mediaUrls must be an array of 1 to 5 URLs",
        ),
        ({"mediaUrls": "https://example.com/a.png"}, "mediaUrls must be an array of 1 to 5 URLs"),
        ({"webhookUrl": "ftp://example.com/hook"}, "webhookUrl must be an http(s) URL"),
        ({"metadata": ["x"]}, "metadata must be an object"),
    ],
)
async def test_invalid_bodies_are_400s(
    ink: httpx.AsyncClient, overrides: dict[str, Any], message: str
) -> None:
    body = {**SAMPLE, **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    response = await ink.post(TASKS, headers=AUTH, json=body)
    assert json_of(response, 400) == {
        "success": False,
        "error": {"code": "invalid_request", "message": message},
    }


async def test_malformed_and_non_object_bodies(ink: httpx.AsyncClient) -> None:
    response = await ink.post(TASKS, headers=AUTH, content=b'{"model"')
    assert json_of(response, 400)["error"] == {
        "code": "invalid_request",
        "message": "Invalid JSON body",
    }
    response = await ink.post(TASKS, headers=AUTH, json=[SAMPLE])
    assert json_of(response, 400)["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("overrides", "credits"),
    [
        ({"model": "seedance-1.5-pro", "duration": 10, "resolution": "1080p"}, 80),
        ({"model": "seedance-2.0-fast", "duration": 4, "resolution": "480p"}, 8),
        ({"duration": 15, "resolution": "1080p", "mediaUrls": []}, 240),
        ({"duration": None, "resolution": None, "aspectRatio": None}, 40),
    ],
)
async def test_credits_and_defaults(
    ink: httpx.AsyncClient, overrides: dict[str, Any], credits: int
) -> None:
    body = {k: v for k, v in {**SAMPLE, **overrides}.items() if v is not None}
    created = json_of(await ink.post(TASKS, headers=AUTH, json=body))
    assert created["creditsCharged"] == credits
    read = json_of(await ink.get(f"{TASKS}/{created['requestId']}", headers=AUTH))
    assert (read["model"], read["duration"], read["aspectRatio"]) == (
        body["model"],
        body.get("duration", 5),
        body.get("aspectRatio", "16:9"),
    )


async def test_models(ink: httpx.AsyncClient) -> None:
    models = json_of(await ink.get(MODELS_PATH, headers=AUTH))
    assert models["success"] is True
    assert [m["id"] for m in models["data"]] == [
        "seedance-2.0",
        "seedance-2.0-fast",
        "seedance-1.5-pro",
    ]
    pro = models["data"][2]
    assert pro == {
        "id": "seedance-1.5-pro",
        "name": "Seedance 1.5 Pro",
        "durations": [5, 10],
        "aspectRatios": ["16:9", "9:16", "1:1"],
        "resolutions": ["480p", "720p", "1080p"],
    }


async def test_a_restarted_sandbox_answers_for_old_request_ids(clock: FakeClock) -> None:
    async with served(clock) as (_, first):
        request_id = await create(
            first, webhookUrl=None, model="seedance-1.5-pro", duration=10, aspectRatio="9:16"
        )
    clock.advance(8)
    async with served(clock) as (_, second):
        answer = json_of(await second.get(f"{TASKS}/{request_id}", headers=AUTH))
        assert answer == task(
            request_id,
            "succeeded",
            model="seedance-1.5-pro",
            duration=10,
            aspectRatio="9:16",
            prompt="",
            output={"type": "video", "url": result_url(request_id)},
        )
        assert (await second.get(result_url(request_id))).status_code == 200
        assert (await second.get(result_url(request_id).replace(".mp4", ".png"))).status_code == 404
