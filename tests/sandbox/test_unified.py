"""The unified gateways (naci, vastnum, cubicspaces, newapi): their create, read and error
bodies, field by field against the provider pages, over the shared task timeline."""

from __future__ import annotations

import re
from typing import Any

import httpx

from relay.sandbox.ids import IdStyle, with_style
from relay.sandbox.simulation import Flavor, decode_task_id
from tests.clock import FakeClock
from tests.sandbox.support import AUTH, POLICY, STANDARD, T0_UNIX, json_of, signed

POLICY_CODE = "OutputVideoSensitiveContentDetected.PolicyViolation"
TIMEOUT_REASON = "任务超时（1440分钟）"  # noqa: RUF001 (new-api's own full-width brackets)
DONE = "20260606T080105Z"  # T0 + 8 s, when default tasks finish
CGT_RE = re.compile(r"cgt-20260606160057-[a-z2-7]{40}")

# The key sets of the pages' samples.
CREATED_KEYS = {"id", "task_id", "object", "model", "status", "progress", "created_at"}
FLAT_DONE_KEYS = CREATED_KEYS | {"completed_at", "metadata"}
NACI_WRAPPED_KEYS = {
    "task_id",
    "action",
    "status",
    "fail_reason",
    "submit_time",
    "start_time",
    "finish_time",
    "progress",
    "data",
    "usage",
}
NACI_RAW_KEYS = {
    "id",
    "model",
    "status",
    "content",
    "seed",
    "resolution",
    "ratio",
    "duration",
    "framespersecond",
    "usage",
    "created_at",
    "updated_at",
}
VASTNUM_KEYS = NACI_WRAPPED_KEYS - {"usage"}
VASTNUM_INTERMEDIATE_KEYS = {
    "id",
    "draft",
    "model",
    "ratio",
    "frames",
    "result",
    "status",
    "duration",
    "created_at",
    "resolution",
    "updated_at",
}
VASTNUM_RESULT_KEYS = {
    "id",
    "seed",
    "draft",
    "model",
    "ratio",
    "usage",
    "status",
    "content",
    "duration",
    "created_at",
    "resolution",
    "updated_at",
    "service_tier",
    "generate_audio",
    "framespersecond",
    "execution_expires_after",
}
TASK_DTO_KEYS = {
    "id",
    "created_at",
    "updated_at",
    "task_id",
    "platform",
    "user_id",
    "group",
    "channel_id",
    "quota",
    "action",
    "status",
    "fail_reason",
    "result_url",
    "submit_time",
    "start_time",
    "finish_time",
    "progress",
    "properties",
    "data",
}


def path(flavor: str, task_id: str = "") -> str:
    base = f"/sandbox/{flavor}/v1/video/generations"
    return f"{base}/{task_id}" if task_id else base


async def create(http: httpx.AsyncClient, flavor: str, body: dict[str, Any]) -> str:
    answer = json_of(await http.post(path(flavor), headers=AUTH, json=body))
    return str(answer["task_id"] if flavor == "vastnum" else answer["id"])


async def get(http: httpx.AsyncClient, flavor: str, task_id: str, query: str = "") -> Any:
    return json_of(await http.get(path(flavor, task_id) + query, headers=AUTH))


def raw_ark(task_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "id": task_id,
        "model": STANDARD,
        "status": "succeeded",
        "content": {"video_url": signed(f"{task_id}.mp4", DONE)},
        "usage": {"completion_tokens": 108900, "total_tokens": 108900},
        "created_at": T0_UNIX,
        "updated_at": T0_UNIX + 8,
        "seed": 1,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
        "generate_audio": True,
        "draft": False,
    }
    return {**fields, **overrides}


def simple(prompt: str = "A cat", **extra: Any) -> dict[str, Any]:
    return {"model": STANDARD, "prompt": prompt, "metadata": {"seed": 1}, **extra}


# -- naci --------------------------------------------------------------------------------------

NACI_SAMPLE = {
    "model": "sd2.0",
    "content": [{"type": "text", "text": "A Christmas bunny flying in the sky"}],
    "generate_audio": True,
    "ratio": "16:9",
    "duration": 11,
    "watermark": False,
    "seed": 1345,
}


async def test_naci_create_and_every_read_shape(http: httpx.AsyncClient, clock: FakeClock) -> None:
    created = json_of(await http.post(path("naci"), headers=AUTH, json=NACI_SAMPLE))
    task_id = created["id"]
    assert CGT_RE.fullmatch(task_id)
    assert created == {
        "id": task_id,
        "task_id": task_id,
        "object": "video",
        "model": STANDARD,
        "status": "queued",
        "progress": 0,
        "created_at": T0_UNIX,
    }
    assert set(created) == CREATED_KEYS
    clock.advance(8)
    url = signed(f"{task_id}.mp4", DONE)
    flat = await get(http, "naci", task_id)
    assert flat == {
        "id": task_id,
        "task_id": task_id,
        "object": "video",
        "model": STANDARD,
        "status": "completed",
        "progress": 100,
        "created_at": T0_UNIX,
        "completed_at": T0_UNIX + 8,
        "metadata": {"url": url},
    }
    assert set(flat) == FLAT_DONE_KEYS
    raw = raw_ark(
        task_id, seed=1345, duration=11, usage={"completion_tokens": 238500, "total_tokens": 238500}
    )
    wrapped = await get(http, "naci", task_id, "?show_raw=true&show_usage=true")
    assert wrapped == {
        "code": "success",
        "data": {
            "task_id": task_id,
            "action": "generate",
            "status": "SUCCESS",
            "fail_reason": "",
            "submit_time": T0_UNIX,
            "start_time": T0_UNIX + 2,
            "finish_time": T0_UNIX + 8,
            "progress": "100%",
            "data": raw,
            "usage": {
                "completion_details": {"video_durations": 11, "video_tokens": 238500},
                "ratio": "16:9",
                "watermark": False,
                "generate_audio": True,
            },
        },
    }
    assert set(wrapped["data"]) == NACI_WRAPPED_KEYS
    assert set(raw) >= NACI_RAW_KEYS
    assert await get(http, "naci", task_id, "?raw=true") == raw
    only_raw = (await get(http, "naci", task_id, "?show_raw=1"))["data"]
    assert "usage" not in only_raw
    assert only_raw["data"] == raw
    only_usage = (await get(http, "naci", task_id, "?show_usage=true"))["data"]
    assert "data" not in only_usage
    assert only_usage["usage"]["completion_details"]["video_tokens"] == 238500


async def test_naci_usage_only_once_succeeded(http: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = await create(http, "naci", simple())
    clock.advance(3)
    running = (await get(http, "naci", task_id, "?show_raw=true&show_usage=true"))["data"]
    assert (running["status"], running["progress"], "usage" in running) == (
        "IN_PROGRESS",
        "50%",
        False,
    )
    assert running["data"]["status"] == "running"


# -- the gateway status machine, through the flat object ----------------------------------------


async def test_flat_object_follows_the_gateway_status_machine(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = simple(input_reference="https://example.com/product.png", seconds="5")
    created = json_of(await http.post(path("cubicspaces"), headers=AUTH, json=body))
    task_id = created["id"]
    assert re.fullmatch(r"video_[0-9A-Za-z]{34}", task_id)
    assert set(created) == CREATED_KEYS
    expected = [
        (0.0, "unknown", 0, T0_UNIX, ""),  # NOT_START: before the gateway's first poll
        (0.999, "unknown", 0, T0_UNIX, ""),
        (0.001, "queued", 10, T0_UNIX, ""),
        (1.0, "in_progress", 50, T0_UNIX + 2, ""),
        (6.0, "completed", 100, T0_UNIX + 8, signed(f"{_upstream(task_id)}.mp4", DONE)),
    ]
    for advance, status, progress, completed_at, url in expected:
        clock.advance(advance)
        assert await get(http, "cubicspaces", task_id) == {
            "id": task_id,
            "task_id": task_id,
            "object": "video",
            "model": STANDARD,
            "status": status,
            "progress": progress,
            "created_at": T0_UNIX,
            "completed_at": completed_at,
            "metadata": {"url": url},
        }


def _upstream(task_id: str) -> str:
    task = decode_task_id(task_id)
    assert task is not None
    return with_style(task, IdStyle.CGT).id


async def test_fail_reads_failed_with_the_upstream_error(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(http, "cubicspaces", simple("x [fail]"))
    clock.advance(8)
    flat = await get(http, "cubicspaces", task_id)
    assert (flat["status"], flat["progress"], flat["metadata"]) == ("failed", 100, {"url": ""})
    assert flat["error"] == {"message": POLICY, "code": POLICY_CODE}
    naci_id = await create(http, "naci", simple("x [fail]"))
    clock.advance(8)
    wrapped = (await get(http, "naci", naci_id, "?show_raw=true"))["data"]
    assert (wrapped["status"], wrapped["fail_reason"], wrapped["progress"]) == (
        "FAILURE",
        POLICY,
        "100%",
    )
    assert wrapped["data"]["error"] == {"code": POLICY_CODE, "message": POLICY}


async def test_expired_upstream_stays_in_progress_until_the_gateway_times_out(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(http, "newapi", simple("x [expire]"))
    clock.advance(8)
    dto = (await get(http, "newapi", task_id))["data"]
    assert (dto["status"], dto["progress"], dto["finish_time"]) == ("IN_PROGRESS", "30%", 0)
    assert dto["data"]["data"]["status"] == "expired"
    video = json_of(await http.get(f"/sandbox/newapi/v1/videos/{task_id}", headers=AUTH))
    assert (video["status"], video["progress"]) == ("in_progress", 30)
    clock.advance(86400 - 8 - 0.001)
    assert (await get(http, "newapi", task_id))["data"]["status"] == "IN_PROGRESS"
    clock.advance(0.001)
    dto = (await get(http, "newapi", task_id))["data"]
    assert (dto["status"], dto["progress"], dto["fail_reason"], dto["finish_time"]) == (
        "FAILURE",
        "100%",
        TIMEOUT_REASON,
        T0_UNIX + 86400,
    )
    assert "result_url" not in dto
    video = json_of(await http.get(f"/sandbox/newapi/v1/videos/{task_id}", headers=AUTH))
    # new-api's Task.ToOpenAIVideo falls back to fail_reason for the URL.
    assert (video["status"], video["metadata"]) == ("failed", {"url": TIMEOUT_REASON})
    assert "error" not in video


# -- vastnum -----------------------------------------------------------------------------------

VASTNUM_SAMPLE = {
    "model": STANDARD,
    "prompt": "First-person POV throughout, a fruit-tea promo",
    "images": [
        "https://ark-project.tos-cn-beijing.volces.com/doc_image/r2v_tea_pic1.jpg",
        "https://ark-project.tos-cn-beijing.volces.com/doc_image/r2v_tea_pic2.jpg",
    ],
    "videos": ["https://ark-project.tos-cn-beijing.volces.com/doc_video/r2v_tea_video1.mp4"],
    "audios": ["https://ark-project.tos-cn-beijing.volces.com/doc_audio/r2v_tea_audio1.mp3"],
    "metadata": {
        "generate_audio": True,
        "resolution": "480p",
        "ratio": "4:3",
        "duration": 5,
        "watermark": False,
        "seed": 40141,
    },
}


async def test_vastnum_create_and_wrapped_read(http: httpx.AsyncClient, clock: FakeClock) -> None:
    created = json_of(await http.post(path("vastnum"), headers=AUTH, json=VASTNUM_SAMPLE))
    assert list(created) == ["task_id"]
    task_id = created["task_id"]
    assert re.fullmatch(r"task_[0-9A-Za-z]{34}", task_id)
    before = await get(http, "vastnum", task_id)
    assert before == {
        "code": "success",
        "message": "",
        "data": {
            "task_id": task_id,
            "action": "generate",
            "status": "NOT_START",
            "fail_reason": "",
            "submit_time": T0_UNIX,
            "start_time": 0,
            "finish_time": 0,
            "progress": "0%",
            "data": None,
        },
    }
    clock.advance(1)
    queued = (await get(http, "vastnum", task_id))["data"]
    assert (queued["status"], queued["progress"], queued["data"]["status"]) == (
        "QUEUED",
        "10%",
        "submitted",
    )
    clock.advance(7)
    done = await get(http, "vastnum", task_id)
    raw_id = done["data"]["data"]["result"]["id"]
    assert CGT_RE.fullmatch(raw_id)
    upstream = decode_task_id(raw_id)
    assert upstream is not None
    assert upstream.flavor is Flavor.VASTNUM
    result = raw_ark(
        raw_id,
        seed=40141,
        resolution="480p",
        ratio="4:3",
        usage={"completion_tokens": 48438, "total_tokens": 48438},
        service_tier="default",
        execution_expires_after=172800,
    )
    assert done == {
        "code": "success",
        "message": "",
        "data": {
            "task_id": task_id,
            "action": "generate",
            "status": "SUCCESS",
            "fail_reason": "",
            "submit_time": T0_UNIX,
            "start_time": T0_UNIX + 2,
            "finish_time": T0_UNIX + 8,
            "progress": "100%",
            "data": {
                "id": task_id,
                "draft": False,
                "model": f"volcengine/{STANDARD}",
                "ratio": "4:3",
                "frames": 0,
                "result": result,
                "status": "succeed",
                "duration": 5,
                "created_at": "2026-06-06T08:00:57Z",
                "resolution": "480p",
                "updated_at": "2026-06-06T08:01:05Z",
            },
        },
    }
    assert set(done["data"]) == VASTNUM_KEYS
    assert set(done["data"]["data"]) == VASTNUM_INTERMEDIATE_KEYS
    assert set(result) == VASTNUM_RESULT_KEYS | {"framespersecond"}
    # The raw id is the upstream's: no endpoint of the sandbox answers for it.
    assert (await http.get(path("vastnum", raw_id), headers=AUTH)).status_code == 400
    assert (
        await http.get(f"/sandbox/ark/api/v3/contents/generations/tasks/{raw_id}", headers=AUTH)
    ).status_code == 404


# -- newapi ------------------------------------------------------------------------------------


async def test_newapi_task_dto_nests_an_upstream_new_api(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    created = json_of(await http.post(path("newapi"), headers=AUTH, json=simple(seconds="6")))
    task_id = created["id"]
    assert re.fullmatch(r"task_[0-9A-Za-z]{34}", task_id)
    assert set(created) == CREATED_KEYS
    first = (await get(http, "newapi", task_id))["data"]
    assert (first["status"], first["progress"], first["data"]) == ("NOT_START", "0%", None)
    clock.advance(8)
    body = await get(http, "newapi", task_id)
    assert (body["code"], body["message"]) == ("success", "")
    outer = body["data"]
    inner = outer["data"]
    raw_id = inner["data"]["id"]
    url = signed(f"{raw_id}.mp4", DONE)
    raw = raw_ark(raw_id, duration=6, usage={"completion_tokens": 130500, "total_tokens": 130500})
    assert isinstance(outer["id"], int)
    assert isinstance(inner["id"], int)
    assert re.fullmatch(r"task_[0-9a-f]{32}", inner["task_id"])
    common = {
        "created_at": T0_UNIX,
        "updated_at": T0_UNIX + 8,
        "platform": "54",
        "user_id": 1,
        "group": "default",
        "channel_id": 1,
        "quota": 130500,
        "action": "textGenerate",
        "status": "SUCCESS",
        "fail_reason": "",
        "result_url": url,
        "submit_time": T0_UNIX,
        "start_time": T0_UNIX + 2,
        "finish_time": T0_UNIX + 8,
        "progress": "100%",
        "properties": {
            "input": "A cat",
            "upstream_model_name": STANDARD,
            "origin_model_name": STANDARD,
        },
    }
    assert inner == {**common, "id": inner["id"], "task_id": inner["task_id"], "data": raw}
    assert outer == {**common, "id": outer["id"], "task_id": task_id, "data": inner}
    assert set(outer) == TASK_DTO_KEYS
    assert (await get(http, "newapi", task_id))["data"]["id"] == outer["id"]
    video = json_of(await http.get(f"/sandbox/newapi/v1/videos/{task_id}", headers=AUTH))
    assert video == {
        "id": task_id,
        "object": "video",
        "model": STANDARD,
        "status": "completed",
        "progress": 100,
        "created_at": T0_UNIX,
        "completed_at": T0_UNIX + 8,
        "metadata": {"url": url},
    }
    assert (await http.get(url)).status_code == 200
