"""Switchable faults and the request log, through the control API."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from relay.clock import SystemClock
from relay.sandbox.app import Sandbox
from relay.sandbox.faults import RequestLog, RequestRecord
from relay.sandbox.simulation import Flavor, SandboxSettings
from tests.clock import FakeClock
from tests.sandbox.support import AUTH, T0, json_of

FAULTS = "/sandbox/_control/faults"
REQUESTS = "/sandbox/_control/requests"
ARK = "/sandbox/ark/api/v3/contents/generations/tasks"
NACI = "/sandbox/naci/v1/video/generations"
INK = "/sandbox/seedance2ink/api/open/v1/video/generations"
MODERATION = "/sandbox/cubicspaces/v1/images/moderations"
ARK_BODY = {"model": "m", "content": [{"type": "text", "text": "x"}]}
NACI_BODY = {"model": "m", "prompt": "x"}
INK_BODY = {"model": "seedance-2.0", "prompt": "x"}
MODERATION_BODY = {"model": "m", "images": ["https://example.com/a.png"]}

# (label, method, path, body) of one request per error family.
TARGETS = [
    ("ark", "POST", ARK, ARK_BODY),
    ("gateway", "POST", NACI, NACI_BODY),
    ("gateway", "POST", MODERATION, MODERATION_BODY),
    ("seedance2ink", "POST", INK, INK_BODY),
]


async def plan(http: httpx.AsyncClient, **body: Any) -> Any:
    return json_of(await http.put(FAULTS, json=body))


async def call(http: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    return await http.request(method, path, headers=AUTH, json=body)


@pytest.mark.parametrize(("family", "method", "path", "body"), TARGETS)
async def test_500_is_the_dialects_internal_error(
    http: httpx.AsyncClient, family: str, method: str, path: str, body: Any
) -> None:
    await plan(http, plan=["500"])
    response = await call(http, method, path, body)
    answer = json_of(response, 500)
    if family == "ark":
        request_id = response.headers["x-request-id"]
        assert answer == {
            "error": {
                "code": "InternalServiceError",
                "message": "The service encountered an unexpected internal error. "
                f"Request id: {request_id}",
                "param": "",
                "type": "InternalServerError",
            }
        }
    elif family == "gateway":
        assert answer["error"]["type"] == "new_api_panic"
        assert answer["error"]["message"].startswith("Panic detected, error: ")
    else:
        assert answer == {
            "success": False,
            "error": {"code": "internal_error", "message": "Internal server error"},
        }
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(("family", "method", "path", "body"), TARGETS)
async def test_429_carries_retry_after_and_the_dialects_rate_limit_body(
    http: httpx.AsyncClient, family: str, method: str, path: str, body: Any
) -> None:
    await plan(http, plan=["429"], retry_after=7)
    response = await call(http, method, path, body)
    answer = json_of(response, 429)
    assert response.headers["retry-after"] == "7"
    if family == "ark":
        assert answer["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"
        assert answer["error"]["type"] == "TooManyRequests"
        assert answer["error"]["message"].endswith(
            f"Request id: {response.headers['x-request-id']}"
        )
    elif family == "gateway":
        assert answer == {
            "code": "fail_to_fetch_task",
            "message": "当前分组上游负载已饱和，请稍后再试",  # noqa: RUF001
            "data": None,
        }
    else:
        assert answer == {
            "success": False,
            "error": {
                "code": "rate_limited",
                "message": "Too many requests, please try again later",
            },
        }


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (502, "502 Bad Gateway"),
        (503, "503 Service Temporarily Unavailable"),
        (504, "504 Gateway Time-out"),
    ],
)
@pytest.mark.parametrize(("family", "method", "path", "body"), TARGETS[::3])
async def test_5xx_from_the_proxy_are_nginx_pages(
    http: httpx.AsyncClient,
    status: int,
    title: str,
    family: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    await plan(http, plan=[status])  # integers are accepted too
    response = await call(http, method, path, body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text
    assert "<center>nginx</center>" in response.text


async def test_garbage_is_a_200_with_half_a_body(http: httpx.AsyncClient) -> None:
    await plan(http, plan=["garbage", "ok", "garbage", "garbage"])
    created = await call(http, "POST", NACI, NACI_BODY)
    assert created.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(created.content)
    found = re.search(r'"id":"(cgt-[^"]+)"', created.text)
    assert found is not None  # the task was made: only the answer got cut
    url = f"{NACI}/{found.group(1)}"
    normal = await http.get(url, headers=AUTH)
    cut = await http.get(url, headers=AUTH)
    assert (normal.status_code, cut.status_code) == (200, 200)
    assert cut.content == normal.content[: len(normal.content) // 2]
    refused = await http.get(url, headers={})  # a 401 cut in half, served as a 200
    assert refused.status_code == 200
    assert refused.content.startswith(b'{"error":{"message":"Invalid token')
    assert [r["status"] for r in json_of(await http.get(REQUESTS))["data"]] == [200] * 4


async def test_timeout_waits_then_answers_normally(http: httpx.AsyncClient) -> None:
    await plan(http, plan=["timeout"], timeout_seconds=0.2)
    started = time.monotonic()
    response = await call(http, "POST", INK, INK_BODY)
    assert time.monotonic() - started >= 0.2
    assert json_of(response)["status"] == "queued"
    [record] = json_of(await http.get(REQUESTS))["data"]
    assert (record["fault"], record["status"]) == ("timeout", 200)


async def test_a_stalled_request_ends_when_its_caller_hangs_up() -> None:
    sandbox = Sandbox(SandboxSettings(), SystemClock())
    server = uvicorn.Server(
        uvicorn.Config(sandbox.app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as real:
            json_of(
                await real.put(
                    "/_control/faults", json={"plan": ["timeout"], "timeout_seconds": 30}
                )
            )
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await real.post(
                    "/seedance2ink/api/open/v1/video/generations",
                    headers=AUTH,
                    json=INK_BODY,
                    timeout=0.3,
                )
            while not sandbox.control.requests.records():
                assert time.monotonic() - started < 5, "the stalled request never ended"
                await asyncio.sleep(0.02)
            [record] = sandbox.control.requests.records()
            assert (record.fault, record.status) == ("timeout", 499)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        await sandbox.aclose()


async def test_a_plan_is_used_once_in_order(http: httpx.AsyncClient) -> None:
    state = await plan(http, plan=["500", "ok", "429"], retry_after=2)
    assert state == {
        "plan": ["500", "ok", "429"],
        "repeat": False,
        "flavors": None,
        "retry_after": 2,
        "timeout_seconds": 60.0,
        "position": 0,
        "taken": 0,
        "active": True,
    }
    statuses = [(await call(http, "POST", ARK, ARK_BODY)).status_code for _ in range(5)]
    assert statuses == [500, 200, 429, 200, 200]
    state = json_of(await http.get(FAULTS))
    assert (state["position"], state["taken"], state["active"]) == (3, 3, False)


async def test_a_repeating_plan_starts_over(http: httpx.AsyncClient) -> None:
    await plan(http, plan=["503", "ok"], repeat=True)
    statuses = [(await call(http, "POST", INK, INK_BODY)).status_code for _ in range(5)]
    assert statuses == [503, 200, 503, 200, 503]
    state = json_of(await http.get(FAULTS))
    assert (state["position"], state["taken"], state["active"]) == (1, 5, True)
    cleared = json_of(await http.delete(FAULTS))
    assert (cleared["plan"], cleared["active"]) == ([], False)
    assert (await call(http, "POST", INK, INK_BODY)).status_code == 200


async def test_flavors_limit_who_takes_the_plan(http: httpx.AsyncClient) -> None:
    await plan(http, plan=["500"], flavors=["naci", "seedance2ink"])
    assert (await call(http, "POST", ARK, ARK_BODY)).status_code == 200
    assert (await call(http, "POST", MODERATION, MODERATION_BODY)).status_code == 200
    assert (await call(http, "POST", NACI, NACI_BODY)).status_code == 500
    assert (await call(http, "POST", INK, INK_BODY)).status_code == 200


async def test_files_and_control_never_take_faults(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = json_of(await call(http, "POST", ARK, ARK_BODY))["id"]
    clock.advance(8)
    url = json_of(await http.get(f"{ARK}/{task_id}", headers=AUTH))["content"]["video_url"]
    await plan(http, plan=["500"], repeat=True)
    assert (await http.get(url)).status_code == 200
    assert (await http.get(FAULTS)).status_code == 200
    assert (await http.get(REQUESTS)).status_code == 200
    assert json_of(await http.get(FAULTS))["taken"] == 0


async def test_the_request_log(http: httpx.AsyncClient, clock: FakeClock) -> None:
    await plan(http, plan=["ok", "429"], flavors=["naci"])
    json_of(await call(http, "POST", ARK, ARK_BODY))
    task_id = json_of(await call(http, "POST", NACI, NACI_BODY))["id"]
    clock.advance(1.5)
    await http.get(f"{NACI}/{task_id}?show_raw=true", headers=AUTH)
    await http.get(f"{NACI}/{task_id}", headers={})
    log = json_of(await http.get(REQUESTS))["data"]
    assert log == [
        {
            "time": "2026-06-06T08:00:57.000Z",
            "flavor": "ark",
            "method": "POST",
            "path": ARK,
            "query": "",
            "fault": None,
            "status": 200,
        },
        {
            "time": "2026-06-06T08:00:57.000Z",
            "flavor": "naci",
            "method": "POST",
            "path": NACI,
            "query": "",
            "fault": None,
            "status": 200,
        },
        {
            "time": "2026-06-06T08:00:58.500Z",
            "flavor": "naci",
            "method": "GET",
            "path": f"{NACI}/{task_id}",
            "query": "show_raw=true",
            "fault": "429",
            "status": 429,
        },
        {
            "time": "2026-06-06T08:00:58.500Z",
            "flavor": "naci",
            "method": "GET",
            "path": f"{NACI}/{task_id}",
            "query": "",
            "fault": None,
            "status": 401,
        },
    ]
    only_ark = json_of(await http.get(REQUESTS + "?flavor=ark"))["data"]
    assert [r["flavor"] for r in only_ark] == ["ark"]
    assert (
        json_of(await http.get(REQUESTS + "?flavor=nope"), 400)["error"]["code"]
        == "invalid_request"
    )
    assert (await http.delete(REQUESTS)).status_code == 204
    assert json_of(await http.get(REQUESTS)) == {"data": []}


def test_the_request_log_is_bounded() -> None:
    log = RequestLog(limit=3)
    for i in range(5):
        log.add(RequestRecord(T0 + timedelta(seconds=i), Flavor.ARK, "GET", f"/{i}", "", None, 200))
    assert [r.path for r in log.records()] == ["/2", "/3", "/4"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({}, "plan must be a list of at most 10000 entries"),
        ({"plan": "500"}, "plan must be a list of at most 10000 entries"),
        (
            {"plan": ["500", "418"]},
            "plan.1 must be one of ok, 500, 502, 503, 504, 429, timeout, slow, garbage",
        ),
        (
            {"plan": [True]},
            "plan.0 must be one of ok, 500, 502, 503, 504, 429, timeout, slow, garbage",
        ),
        ({"plan": [], "repeat": "yes"}, "repeat must be a boolean"),
        (
            {"plan": [], "flavors": []},
            "flavors must be a non-empty list of flavors, or null for all",
        ),
        (
            {"plan": [], "flavors": ["naci", "sora"]},
            "flavors.1 must be one of ark, apiyi, cubicspaces, naci, vastnum, newapi, seedance2ink",
        ),
        (
            {"plan": [], "retry_after": -1},
            "retry_after must be an integer number of seconds from 0 to 86400",
        ),
        (
            {"plan": [], "retry_after": 1.5},
            "retry_after must be an integer number of seconds from 0 to 86400",
        ),
        ({"plan": [], "timeout_seconds": 601}, "timeout_seconds must be a number from 0 to 600"),
        (
            {"plan": [], "timeout": 5},
            "unknown field 'timeout' (fields: flavors, plan, repeat, retry_after, timeout_seconds)",
        ),
    ],
)
async def test_bad_plans_are_refused(http: httpx.AsyncClient, body: Any, message: str) -> None:
    await plan(http, plan=["500"])
    response = await http.put(FAULTS, json=body)
    assert json_of(response, 400) == {"error": {"code": "invalid_request", "message": message}}
    assert json_of(await http.get(FAULTS))["plan"] == ["500"]  # unchanged


async def test_a_non_json_plan_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.put(FAULTS, content=b"plan=500")
    assert json_of(response, 400)["error"]["message"] == "the body is not JSON"


async def test_the_default_state(http: httpx.AsyncClient) -> None:
    assert json_of(await http.get(FAULTS)) == {
        "plan": [],
        "repeat": False,
        "flavors": None,
        "retry_after": 1,
        "timeout_seconds": 60.0,
        "position": 0,
        "taken": 0,
        "active": False,
    }
