"""The Ark emulation's refusals: keys, create bodies, unknown and aged-out tasks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.clock import FakeClock
from tests.sandbox.ark_support import (
    AUTH,
    FAST,
    TASKS,
    TEXT,
    ark_error,
    create,
    fetch,
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


@pytest.mark.parametrize(
    ("body", "code", "param", "message"),
    [
        pytest.param(
            {"model": FAST},
            "MissingParameter",
            "content",
            "The request failed because it is missing one or multiple required parameters: "
            "`content`.",
            id="missing-content",
        ),
        pytest.param(
            {"model": FAST, "content": []},
            "MissingParameter",
            "content",
            "The request failed because it is missing one or multiple required parameters: "
            "`content`.",
            id="empty-content",
        ),
        pytest.param(
            {"content": TEXT},
            "MissingParameter",
            "model",
            "The request failed because it is missing one or multiple required parameters: "
            "`model`.",
            id="missing-model",
        ),
        pytest.param(
            {"model": 5, "content": TEXT},
            "InvalidParameter",
            "model",
            "The parameter `model` specified in the request is not valid: "
            "must be a non-empty string.",
            id="model-not-string",
        ),
        pytest.param(
            {"model": FAST, "content": "hello"},
            "InvalidParameter",
            "content",
            "The parameter `content` specified in the request is not valid: "
            "must be an array of content items.",
            id="content-not-list",
        ),
        pytest.param(
            {
                "model": FAST,
                "content": [
                    {"type": "image_url", "image_url": {"url": "x"}, "role": "reference_image"}
                ],
            },
            "InvalidParameter",
            "content",
            "The parameter `content` specified in the request is not valid: "
            "must hold a text prompt or a first-frame image.",
            id="references-without-text",
        ),
        pytest.param(
            {
                "model": FAST,
                "content": [
                    *TEXT,
                    {"type": "image_url", "image_url": {"url": "x"}, "role": "middle_frame"},
                ],
            },
            "InvalidParameter",
            "content.role",
            "The parameter `content.role` specified in the request is not valid: "
            "must be one of first_frame, last_frame, reference_image.",
            id="unknown-role",
        ),
        pytest.param(
            {"model": FAST, "content": [*TEXT, {"type": "video_url", "video_url": {}}]},
            "InvalidParameter",
            "content.video_url.url",
            "The parameter `content.video_url.url` specified in the request is not valid: "
            "must be a non-empty string.",
            id="video-without-url",
        ),
        pytest.param(
            {"model": FAST, "content": [*TEXT, {"type": "sticker"}]},
            "InvalidParameter",
            "content.type",
            "The parameter `content.type` specified in the request is not valid: "
            "must be one of text, image_url, video_url, audio_url.",
            id="unknown-item-type",
        ),
        pytest.param(
            {"model": FAST, "content": [{"type": "text", "text": 3}]},
            "InvalidParameter",
            "content.text",
            "The parameter `content.text` specified in the request is not valid: "
            "must be a non-empty string.",
            id="text-not-string",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "resolution": "1080p"},
            "InvalidParameter",
            "resolution",
            "The parameter `resolution` specified in the request is not valid: "
            "1080p is not supported by model doubao-seedance-2-0-fast-260128.",
            id="1080p-on-fast",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "resolution": "4k"},
            "InvalidParameter",
            "resolution",
            "The parameter `resolution` specified in the request is not valid: "
            "must be one of 480p, 720p, 1080p.",
            id="unknown-resolution",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "ratio": "2:1"},
            "InvalidParameter",
            "ratio",
            "The parameter `ratio` specified in the request is not valid: "
            "must be one of 16:9, 4:3, 1:1, 3:4, 9:16, 21:9, adaptive.",
            id="unknown-ratio",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "duration": 3},
            "InvalidParameter",
            "duration",
            "The parameter `duration` specified in the request is not valid: "
            "must be an integer in [4, 15] or -1.",
            id="duration-too-short",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "seed": True},
            "InvalidParameter",
            "seed",
            "The parameter `seed` specified in the request is not valid: "
            "must be an integer in [-1, 4294967295].",
            id="seed-bool",
        ),
        pytest.param(
            {"model": FAST, "content": TEXT, "generate_audio": "yes"},
            "InvalidParameter",
            "generate_audio",
            "The parameter `generate_audio` specified in the request is not valid: "
            "must be a boolean.",
            id="audio-not-bool",
        ),
        pytest.param(
            [1, 2],
            "InvalidParameter",
            "",
            "The request body must be a JSON object.",
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
    ark_error(response, "InvalidParameter", "The request body is not valid JSON.", "", "BadRequest")


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
        ark_error(response, "ResourceNotFound", "The specified task was not found.", "", "NotFound")


async def test_tasks_are_gone_after_seven_days(client: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await create(client)
    clock.advance(7 * 86400 - 1)
    assert (await fetch(client, task_id))["status"] == "succeeded"
    clock.advance(1)
    assert (await client.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404
