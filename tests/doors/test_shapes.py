"""The doors' pure shapes: Ark's and OpenAI's bodies from a relay task, their create bodies as
the relay's neutral input, and a callback's body rendered per destination format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from relay.delivery.formats import render
from relay.doors.ark_shapes import ArkCreate, Refusal, ark_status, ark_task, read_create, read_list
from relay.doors.openai_shapes import Refusal as OpenAIRefusal
from relay.doors.openai_shapes import neutral_input, openai_video, read_size, size_of

TASK: dict[str, Any] = {
    "id": "task_1",
    "provider": "sandbox",
    "model": "m",
    "status": "succeeded",
    "progress": None,
    "video_url": "https://relay.example/v1/outputs/abc",
    "last_frame_url": None,
    "error": None,
    "usage": {"completion_tokens": 10, "total_tokens": 10},
    "resolution": "720p",
    "ratio": "9:16",
    "duration": 8,
    "fps": 24,
    "seed": 7,
    "created_at": "2026-01-02T03:04:05Z",
    "updated_at": "2026-01-02T03:05:05Z",
    "completed_at": "2026-01-02T03:05:05Z",
}


def test_ark_task_of_a_succeeded_task() -> None:
    assert ark_task(TASK) == {
        "id": "task_1",
        "model": "m",
        "status": "succeeded",
        "content": {"video_url": "https://relay.example/v1/outputs/abc"},
        "usage": {"completion_tokens": 10, "total_tokens": 10},
        "created_at": 1767323045,
        "updated_at": 1767323105,
        "seed": 7,
        "resolution": "720p",
        "ratio": "9:16",
        "duration": 8,
        "framespersecond": 24,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }


@pytest.mark.parametrize("status", ["failed", "expired"])
def test_ark_task_of_a_failure_keeps_the_providers_code(status: str) -> None:
    error = {"code": "content_policy", "message": "no", "provider_code": "OutputVideoSensitive"}
    body = ark_task({**TASK, "status": status, "error": error, "video_url": None})
    assert body["error"] == {"code": "OutputVideoSensitive", "message": "no"}
    assert "content" not in body
    assert "usage" not in body


def test_read_create_makes_the_neutral_input() -> None:
    read = read_create(
        {
            "model": "m",
            "content": [
                {"type": "text", "text": "a fox"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x/a.png"},
                    "role": "first_frame",
                },
                {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}},
            ],
            "duration": 5,
            "callback_url": "https://hooks.example/in",
            "service_tier": None,  # the SDK sends every option, unset ones as null
            "camera_fixed": None,
        }
    )
    assert isinstance(read, ArkCreate)
    assert read.neutral == {
        "model": "m",
        "prompt": "a fox",
        "images": [{"url": "https://x/a.png", "role": "first_frame"}],
        "videos": ["https://x/v.mp4"],
        "duration": 5,
    }
    assert read.callback_url == "https://hooks.example/in"
    assert read.ark_only == ()
    assert "callback_url" not in read.native


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"content": [{"type": "text", "text": "x"}]}, "MissingParameter", "model"),
        ({"model": "m"}, "MissingParameter", "content"),
        ({"model": "m", "content": [{"type": "gif"}]}, "InvalidParameter", "content.type"),
        ({"model": "m", "content": [{"type": "text", "text": "x"}], "nope": 1}, None, "nope"),
        (
            {"model": "m", "content": [{"type": "text", "text": "x"}], "service_tier": "flex"},
            None,
            "service_tier",
        ),
    ],
)
def test_read_create_refuses(body: dict[str, Any], code: str | None, param: str) -> None:
    read = read_create(body)
    assert isinstance(read, Refusal)
    assert read.param == param
    assert read.code == (code or "InvalidParameter")


def test_read_create_notes_what_only_ark_takes() -> None:
    read = read_create({"model": "m", "content": [{"type": "text", "text": "x"}], "frames": 121})
    assert isinstance(read, ArkCreate)
    assert read.ark_only == ("frames",)
    assert read.native["frames"] == 121


def test_read_list() -> None:
    query = read_list(
        QueryParams("page_num=2&filter.task_ids=a&filter.task_ids=b&filter.status=queued")
    )
    assert not isinstance(query, Refusal)
    assert (query.page_num, query.page_size, query.task_ids, query.status) == (
        2,
        10,
        ("a", "b"),
        "queued",
    )
    for bad in ("page_size=0", "page_size=501", "page_num=x", "filter.status=done"):
        assert isinstance(read_list(QueryParams(bad)), Refusal), bad


def test_ark_status_maps_the_relays_answers() -> None:
    assert ark_status(401) == (401, "AuthenticationError", "Unauthorized")
    assert ark_status(404) == (404, "ResourceNotFound", "NotFound")
    assert ark_status(409) == (400, "InvalidParameter", "BadRequest")
    assert ark_status(402) == (429, "SetLimitExceeded", "TooManyRequests")
    assert ark_status(502) == (500, "InternalServiceError", "InternalServerError")


@pytest.mark.parametrize(
    ("relay", "openai"),
    [
        ("queued", "queued"),
        ("running", "in_progress"),
        ("succeeded", "completed"),
        ("failed", "failed"),
        ("expired", "failed"),
        ("cancelled", "failed"),
    ],
)
def test_openai_statuses_are_never_unknown(relay: str, openai: str) -> None:
    video = openai_video({**TASK, "status": relay})
    assert video["status"] == openai
    assert (video["error"] is None) == (openai != "failed")


def test_openai_video_before_the_first_poll_shows_what_was_asked() -> None:
    bare = {**TASK, "status": "queued", "model": None, "ratio": None, "resolution": None}
    bare["duration"] = None
    video = openai_video(bare, {"model": "seedance-2.0", "duration": 4, "ratio": "1:1"})
    assert (video["model"], video["seconds"], video["size"], video["progress"]) == (
        "seedance-2.0",
        "4",
        "720x720",
        0,
    )


@pytest.mark.parametrize(
    ("size", "ratio", "resolution"),
    [
        ("1280x720", "16:9", "720p"),
        ("720x1280", "9:16", "720p"),
        ("1792x1024", "16:9", "1080p"),
        ("1024x1792", "9:16", "1080p"),
        ("854x480", "16:9", "480p"),
        ("720x720", "1:1", "720p"),
    ],
)
def test_sizes(size: str, ratio: str, resolution: str) -> None:
    assert read_size(size) == (ratio, resolution)
    if size not in ("1792x1024", "1024x1792"):
        assert size_of(ratio, resolution) == size


def test_openai_create_refusals() -> None:
    assert isinstance(neutral_input({"model": "m"}, "d"), OpenAIRefusal)
    assert isinstance(neutral_input({"prompt": "x", "seconds": "4.5"}, "d"), OpenAIRefusal)
    assert isinstance(neutral_input({"prompt": "x", "size": "0x0"}, "d"), OpenAIRefusal)
    assert isinstance(neutral_input({"prompt": "x", "quality": "hd"}, "d"), OpenAIRefusal)
    assert neutral_input({"prompt": "x", "seconds": "8"}, "d") == {
        "model": "d",
        "prompt": "x",
        "duration": 8,
    }


def test_render_per_destination_format() -> None:
    envelope = json.dumps({"id": "evt_1", "type": "task.succeeded", "data": TASK})
    assert render("standard", envelope) == envelope
    assert json.loads(render("ark", envelope)) == ark_task(TASK)
    test_event = json.dumps({"id": "evt_2", "type": "relay.test", "data": {"message": "hi"}})
    assert render("ark", test_event) == test_event
