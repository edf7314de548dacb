"""apiyi and cubicspaces: the Ark API at their own paths, in their own words."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.clock import FakeClock
from tests.sandbox.support import AUTH, FAST, POLICY, STANDARD, T0_UNIX, json_of, signed

APIYI = "/sandbox/apiyi/seedance/api/v3/contents/generations/tasks"
CUBIC = "/sandbox/cubicspaces/api/v3/contents/generations/tasks"
ARK = "/sandbox/ark/api/v3/contents/generations/tasks"
GATEWAY_ID_RE = re.compile(r"\d{14}\d+[0-9a-f]{8}")

# The key sets of the pages' samples: every one must be in what the sandbox answers.
APIYI_SUCCEEDED_KEYS = {
    "id",
    "model",
    "status",
    "content",
    "usage",
    "created_at",
    "updated_at",
    "seed",
    "resolution",
    "ratio",
    "duration",
    "framespersecond",
    "generate_audio",
    "draft",
}
CUBIC_CREATED_KEYS = {
    "id",
    "model",
    "status",
    "created_at",
    "updated_at",
    "service_tier",
    "execution_expires_after",
}
CUBIC_FAILED_KEYS = {"id", "model", "status", "error", "created_at", "updated_at"}


def body(prompt: str = "Drone shot", **options: Any) -> dict[str, Any]:
    return {"model": FAST, "content": [{"type": "text", "text": prompt}], **options}


def ark_fields(task_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "id": task_id,
        "model": FAST,
        "created_at": T0_UNIX,
        "seed": 97151,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
        "generate_audio": True,
        "draft": False,
    }
    return {**fields, **overrides}


async def test_apiyi_answers_arks_bodies_at_its_own_path(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    created = json_of(await http.post(APIYI, headers=AUTH, json=body(seed=97151)))
    assert list(created) == ["id"]
    task_id = created["id"]
    assert re.fullmatch(r"cgt-20260606160057-[a-z2-7]{40}", task_id)
    assert json_of(await http.get(f"{APIYI}/{task_id}", headers=AUTH)) == ark_fields(
        task_id, status="queued", updated_at=T0_UNIX
    )
    clock.advance(8)
    done = json_of(await http.get(f"{APIYI}/{task_id}", headers=AUTH))
    assert done == ark_fields(
        task_id,
        status="succeeded",
        updated_at=T0_UNIX + 8,
        content={"video_url": signed(f"{task_id}.mp4", "20260606T080105Z")},
        usage={"completion_tokens": 108900, "total_tokens": 108900},
    )
    assert set(done) == APIYI_SUCCEEDED_KEYS


async def test_apiyi_cancels_like_ark(http: httpx.AsyncClient) -> None:
    task_id = json_of(await http.post(APIYI, headers=AUTH, json=body()))["id"]
    assert json_of(await http.delete(f"{APIYI}/{task_id}", headers=AUTH)) == {}
    assert json_of(await http.get(f"{APIYI}/{task_id}", headers=AUTH))["status"] == "cancelled"


@pytest.mark.parametrize("path", [APIYI, CUBIC])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer invalid-key"}])
async def test_gateway_mirrors_refuse_keys_in_new_api_words(
    http: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    for response in (
        await http.post(path, headers=headers, json=body()),
        await http.get(f"{path}/whatever", headers=headers),
    ):
        request_id = response.headers["x-oneapi-request-id"]
        assert GATEWAY_ID_RE.fullmatch(request_id)
        assert json_of(response, 401) == {
            "error": {
                "message": f"Invalid token (request id: {request_id})",
                "type": "new_api_error",
                "code": "",
            }
        }


async def test_ids_answer_only_where_they_were_issued(http: httpx.AsyncClient) -> None:
    ark_id = json_of(await http.post(ARK, headers=AUTH, json=body()))["id"]
    apiyi_id = json_of(await http.post(APIYI, headers=AUTH, json=body()))["id"]
    assert (await http.get(f"{ARK}/{apiyi_id}", headers=AUTH)).status_code == 404
    assert (await http.get(f"{APIYI}/{ark_id}", headers=AUTH)).status_code == 404
    assert (await http.delete(f"{ARK}/{apiyi_id}", headers=AUTH)).status_code == 404
    assert (await http.get(f"{CUBIC}/{ark_id}", headers=AUTH)).status_code == 404


async def test_cubicspaces_mirror_creates_a_running_task_object(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    created = json_of(
        await http.post(
            CUBIC,
            headers=AUTH,
            json={
                "model": "doubao-seedance-2.0",
                "duration": 5,
                "ratio": "16:9",
                "seed": 7,
                "generate_audio": True,
                "content": [
                    {"type": "text", "text": "Use image 1 to generate a product showcase video."},
                    {
                        "type": "image_url",
                        "image_url": {"url": "asset://reviewed-image-asset-id"},
                        "role": "reference_image",
                        "duration": 5,
                    },
                ],
            },
        )
    )
    task_id = created["id"]
    assert re.fullmatch(r"task_[0-9A-Za-z]{34}", task_id)
    assert created == {
        "id": task_id,
        "model": "doubao-seedance-2.0",
        "status": "running",
        "created_at": T0_UNIX,
        "updated_at": T0_UNIX,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }
    assert set(created) == CUBIC_CREATED_KEYS

    mirror = {
        "model": "doubao-seedance-2.0",
        "seed": 7,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }
    queued = json_of(await http.get(f"{CUBIC}/{task_id}", headers=AUTH))
    assert queued == ark_fields(task_id, status="running", updated_at=T0_UNIX, **mirror)
    clock.advance(8)
    done = json_of(await http.get(f"{CUBIC}/{task_id}", headers=AUTH))
    assert done == ark_fields(
        task_id,
        status="succeeded",
        updated_at=T0_UNIX + 8,
        **mirror,
        content={"video_url": signed(f"{task_id}.mp4", "20260606T080105Z")},
        usage={"completion_tokens": 108900, "total_tokens": 108900},
    )
    assert (await http.get(done["content"]["video_url"])).status_code == 200


async def test_cubicspaces_mirror_words_failures_as_task_failed(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = json_of(await http.post(CUBIC, headers=AUTH, json=body("x [fail]")))["id"]
    clock.advance(8)
    failed = json_of(await http.get(f"{CUBIC}/{task_id}", headers=AUTH))
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "task_failed", "message": POLICY}
    assert set(failed) >= CUBIC_FAILED_KEYS
    assert "content" not in failed


async def test_cubicspaces_mirror_has_no_delete(http: httpx.AsyncClient) -> None:
    task_id = json_of(await http.post(CUBIC, headers=AUTH, json=body()))["id"]
    assert (await http.delete(f"{CUBIC}/{task_id}", headers=AUTH)).status_code == 405


async def test_a_first_frame_alone_needs_no_prompt(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    for content in ([image], [{**image, "role": "first_frame"}]):
        created = await http.post(ARK, headers=AUTH, json={"model": STANDARD, "content": content})
        task_id = json_of(created)["id"]
        clock.advance(8)
        assert json_of(await http.get(f"{ARK}/{task_id}", headers=AUTH))["status"] == "succeeded"
