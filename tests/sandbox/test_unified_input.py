"""How the unified gateways read a create body, and how they refuse one: new-api's rules
(DIALECTS §3, §4), the reseller extensions, keys, unknown ids, restarts."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.clock import FakeClock
from tests.sandbox.support import AUTH, FAST, STANDARD, json_of, served

FLAVORS = ("naci", "vastnum", "cubicspaces", "newapi")
GATEWAY_ID_RE = re.compile(r"\d{14}\d+[0-9a-f]{8}")


def path(flavor: str, task_id: str = "") -> str:
    base = f"/sandbox/{flavor}/v1/video/generations"
    return f"{base}/{task_id}" if task_id else base


async def newapi_raw(
    http: httpx.AsyncClient, clock: FakeClock, body: dict[str, Any], flavor: str = "newapi"
) -> tuple[dict[str, Any], str]:
    """The upstream Ark task a create body became once done, and the gateway's action."""
    answer = json_of(await http.post(path(flavor), headers=AUTH, json=body))
    task_id = answer.get("id") or answer["task_id"]
    clock.advance(8)
    if flavor == "naci":
        raw = json_of(await http.get(path(flavor, task_id) + "?raw=true", headers=AUTH))
        return raw, "generate"
    data = json_of(await http.get(path(flavor, task_id), headers=AUTH))["data"]
    raw = data["data"]["result"] if flavor == "vastnum" else data["data"]["data"]
    return raw, data["action"]


@pytest.mark.parametrize(
    ("extra", "duration"),
    [
        ({"duration": 7, "seconds": "9", "metadata": {"duration": 11}}, 7),
        ({"seconds": "9", "metadata": {"duration": 11}}, 9),
        ({"metadata": {"duration": 11}}, 11),
        ({"metadata": {"duration": "12"}}, 12),  # new-api's IntValue reads strings too
        ({"seconds": "-1", "metadata": {"duration": -1}}, 5),  # -1: the model chooses
        ({"seconds": "abc"}, 5),
        ({}, 5),
    ],
)
async def test_duration_comes_from_duration_then_seconds_then_metadata(
    http: httpx.AsyncClient, clock: FakeClock, extra: dict[str, Any], duration: int
) -> None:
    raw, _ = await newapi_raw(http, clock, {"model": STANDARD, "prompt": "p", **extra})
    assert raw["duration"] == duration


async def test_metadata_options_reach_the_upstream(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    raw, action = await newapi_raw(
        http,
        clock,
        {
            "model": STANDARD,
            "prompt": "p",
            "ratio": "1:1",  # top-level ratio: not new-api's
            "metadata": {
                "ratio": "9:16",
                "resolution": "480p",
                "seed": "42",
                "generate_audio": "false",
                "return_last_frame": True,
                "model": "ignored",
                "content": [{"type": "text", "text": "dropped"}],
            },
        },
    )
    assert (raw["ratio"], raw["resolution"], raw["seed"], raw["generate_audio"]) == (
        "9:16",
        "480p",
        42,
        False,
    )
    assert set(raw["content"]) == {"video_url", "last_frame_url"}
    assert raw["model"] == STANDARD
    assert action == "textGenerate"


@pytest.mark.parametrize(
    "extra",
    [
        {"images": ["https://example.com/a.png"]},
        {"image": "https://example.com/a.png"},
        {
            "metadata": {
                "content": [
                    {
                        "type": "image_url",
                        "role": "first_frame",
                        "image_url": {"url": "asset://reviewed"},
                    }
                ]
            }
        },
    ],
)
async def test_images_make_a_generate_action(
    http: httpx.AsyncClient, clock: FakeClock, extra: dict[str, Any]
) -> None:
    _, action = await newapi_raw(http, clock, {"model": STANDARD, "prompt": "p", **extra})
    assert action == "generate"


async def test_metadata_content_replaces_images(http: httpx.AsyncClient) -> None:
    # The images would be fine; the replacing content holds a bad item, so Ark refuses it.
    response = await http.post(
        path("newapi"),
        headers=AUTH,
        json={
            "model": STANDARD,
            "prompt": "p",
            "images": ["https://example.com/a.png"],
            "metadata": {"content": [{"type": "image_url", "image_url": {}}]},
        },
    )
    refusal = json_of(response, 400)
    assert refusal["code"] == "fail_to_fetch_task"
    assert json.loads(refusal["message"])["error"]["param"] == "content.image_url.url"


async def test_naci_reads_ark_style_bodies(http: httpx.AsyncClient, clock: FakeClock) -> None:
    raw, _ = await newapi_raw(
        http,
        clock,
        {
            "model": "sd2.0-fast",
            "ratio": "9:16",
            "resolution": "480p",
            "duration": 4,
            "content": [{"type": "text", "text": "a bunny"}],
        },
        flavor="naci",
    )
    assert (raw["model"], raw["ratio"], raw["resolution"], raw["duration"]) == (
        FAST,
        "9:16",
        "480p",
        4,
    )


async def test_vastnum_and_cubicspaces_extensions(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, action = await newapi_raw(
        http,
        clock,
        {
            "model": STANDARD,
            "prompt": "p",
            "videos": ["https://example.com/v.mp4"],
            "audios": ["https://example.com/a.mp3"],
            "images": ["https://example.com/i.png"],
        },
        flavor="vastnum",
    )
    assert action == "generate"
    created = await http.post(
        path("cubicspaces"),
        headers=AUTH,
        json={
            "model": "doubao-seedance-2.0",
            "prompt": "p",
            "input_reference": "https://example.com/i.png",
        },
    )
    assert json_of(created)["status"] == "queued"


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("prompt", [None, "", "   "])
async def test_prompt_is_required(http: httpx.AsyncClient, flavor: str, prompt: str | None) -> None:
    body: dict[str, Any] = {"model": STANDARD, "images": ["https://example.com/a.png"]}
    if prompt is not None:
        body["prompt"] = prompt
    response = await http.post(path(flavor), headers=AUTH, json=body)
    assert json_of(response, 400) == {
        "code": "invalid_request",
        "message": "prompt is required",
        "data": None,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "json: cannot unmarshal array into Go value of type relaycommon.TaskSubmitReq"),
        (
            {"model": STANDARD, "prompt": 5},
            "json: cannot unmarshal number into Go struct field TaskSubmitReq.prompt of type "
            "string",
        ),
        (
            {"model": STANDARD, "prompt": "p", "seconds": 5},
            "json: cannot unmarshal number into Go struct field TaskSubmitReq.seconds of type "
            "string",
        ),
        (
            {"model": STANDARD, "prompt": "p", "images": "https://example.com/a.png"},
            "json: cannot unmarshal string into Go struct field TaskSubmitReq.images of type "
            "[]string",
        ),
        (
            {"model": STANDARD, "prompt": "p", "metadata": []},
            "json: cannot unmarshal array into Go struct field TaskSubmitReq.metadata of type "
            "map[string]interface {}",
        ),
    ],
)
async def test_wrongly_typed_bodies(http: httpx.AsyncClient, body: Any, message: str) -> None:
    response = await http.post(path("newapi"), headers=AUTH, json=body)
    assert json_of(response, 400) == {"code": "invalid_request", "message": message, "data": None}


async def test_malformed_json(http: httpx.AsyncClient) -> None:
    response = await http.post(
        path("naci"), headers={**AUTH, "content-type": "application/json"}, content=b'{"model": '
    )
    refusal = json_of(response, 400)
    assert (refusal["code"], refusal["data"]) == ("invalid_request", None)


async def test_no_model_is_the_distributors_refusal(http: httpx.AsyncClient) -> None:
    response = await http.post(path("vastnum"), headers=AUTH, json={"prompt": "p"})
    request_id = response.headers["x-oneapi-request-id"]
    assert json_of(response, 400) == {
        "error": {
            "message": f"model name is not specified (request id: {request_id})",
            "type": "new_api_error",
            "code": "",
        }
    }


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({"ratio": "2:1"}, "ratio"),
        ({"resolution": "4k"}, "resolution"),
        ({"duration": 30}, "duration"),
        ({"seed": -5}, "seed"),
    ],
)
async def test_upstream_refusals_come_back_as_fail_to_fetch_task(
    http: httpx.AsyncClient, metadata: dict[str, Any], param: str
) -> None:
    response = await http.post(
        path("cubicspaces"),
        headers=AUTH,
        json={"model": STANDARD, "prompt": "p", "metadata": metadata},
    )
    refusal = json_of(response, 400)
    assert (refusal["code"], refusal["data"]) == ("fail_to_fetch_task", None)
    upstream = json.loads(refusal["message"])["error"]
    assert (upstream["code"], upstream["param"], upstream["type"]) == (
        "InvalidParameter",
        param,
        "BadRequest",
    )
    assert re.search(r"Request id: 021\d{13}[0-9a-f]{32}$", upstream["message"])


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer invalid-sk"},
        {"Authorization": "Basic c2s6eA=="},
    ],
)
async def test_keys_are_checked_everywhere(
    http: httpx.AsyncClient, flavor: str, headers: dict[str, str]
) -> None:
    task_id = json_of(
        await http.post(path(flavor), headers=AUTH, json={"model": STANDARD, "prompt": "p"})
    )
    task_id = task_id.get("id") or task_id["task_id"]
    for response in (
        await http.post(path(flavor), headers=headers, json={}),
        await http.get(path(flavor, task_id), headers=headers),
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


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_unknown_tasks_are_task_not_exist(http: httpx.AsyncClient, flavor: str) -> None:
    others = {}
    for other in FLAVORS:
        answer = json_of(
            await http.post(path(other), headers=AUTH, json={"model": STANDARD, "prompt": "p"})
        )
        others[other] = answer.get("id") or answer["task_id"]
    unknown = [
        "nope",
        "cgt-20260330164007-wnc8k",
        "task_" + "a" * 34,
        *(task_id for other, task_id in others.items() if other != flavor),
    ]
    for task_id in unknown:
        response = await http.get(path(flavor, task_id), headers=AUTH)
        assert json_of(response, 400) == {
            "code": "task_not_exist",
            "message": "task_not_exist",
            "data": None,
        }
    response = await http.get("/sandbox/newapi/v1/videos/nope", headers=AUTH)
    assert json_of(response, 400)["code"] == "task_not_exist"


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_restarted_sandbox_answers_the_same(clock: FakeClock, flavor: str) -> None:
    body = {
        "model": STANDARD,
        "prompt": "steady",
        "images": ["https://example.com/a.png"],
        "metadata": {
            "ratio": "3:4",
            "resolution": "480p",
            "duration": 9,
            "watermark": True,
            "generate_audio": False,
        },
    }
    query = "?show_raw=true&show_usage=true" if flavor == "naci" else ""
    async with served(clock) as (_, first):
        answer = json_of(await first.post(path(flavor), headers=AUTH, json=body))
        task_id = answer.get("id") or answer["task_id"]
        clock.advance(5)
        before = json_of(await first.get(path(flavor, task_id) + query, headers=AUTH))
    async with served(clock) as (_, second):
        after = json_of(await second.get(path(flavor, task_id) + query, headers=AUTH))
        clock.advance(3)
        done = json_of(await second.get(path(flavor, task_id) + query, headers=AUTH))
    if flavor == "newapi":  # the prompt echo is the one thing an id cannot carry
        for dto in (before["data"], before["data"]["data"]):
            assert dto["properties"]["input"] == "steady"
            dto["properties"]["input"] = ""
    assert after == before
    status = done["data"]["status"] if "code" in done else done["status"]
    assert status in ("SUCCESS", "completed")
    if flavor == "naci":
        assert done["data"]["usage"] == {
            "completion_details": {"video_durations": 9, "video_tokens": 86868},
            "ratio": "3:4",
            "watermark": True,
            "generate_audio": False,
        }
