"""The sandbox's result files over HTTP: real-sized bodies whose checksum follows from the
task id, range requests, links that expire on the sandbox's clock, files that go with a
task Ark's DELETE forgot, and the file faults of the control API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.app import create_app
from relay.config.settings import Settings
from relay.errors import ConfigError
from relay.sandbox.app import Sandbox
from relay.sandbox.media import expected_sha256, last_frame_png, video_bytes
from relay.sandbox.simulation import SandboxSettings
from tests.clock import FakeClock
from tests.sandbox.ark_support import AUTH, TASKS, create, fetch
from tests.sandbox.support import BASE, json_of, served, signed

SIZE = 300_000  # more than four of the stream's 64 KiB blocks
FILE_FAULTS = "/sandbox/_control/file-faults"
FILES = "/sandbox/_control/files"


@pytest.fixture
async def big(clock: FakeClock) -> Any:
    async with served(clock, SandboxSettings(video_bytes=SIZE)) as pair:
        yield pair


@pytest.fixture
def http(big: tuple[Sandbox, httpx.AsyncClient]) -> httpx.AsyncClient:
    return big[1]


async def finished(
    http: httpx.AsyncClient, clock: FakeClock, **options: Any
) -> tuple[str, dict[str, str]]:
    """A succeeded Ark task and its ``content`` (the signed URLs)."""
    task_id = await create(http, **options)
    clock.advance(8)
    return task_id, (await fetch(http, task_id))["content"]


def urls(value: Any) -> Iterator[str]:
    """Every file URL somewhere in a JSON answer."""
    if isinstance(value, dict):
        for item in value.values():
            yield from urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from urls(item)
    elif isinstance(value, str) and ("/files/" in value or "/pub-bucket/" in value):
        yield value


# -- sizes and checksums --------------------------------------------------------------------


async def test_the_video_is_the_configured_size_and_its_checksum_follows_from_the_id(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id, content = await finished(http, clock, return_last_frame=True)
    video = await http.get(content["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["content-length"] == str(SIZE)
    assert video.headers["accept-ranges"] == "bytes"
    assert len(video.content) == SIZE
    assert hashlib.sha256(video.content).hexdigest() == expected_sha256(task_id, SIZE)
    assert (await http.get(content["video_url"])).headers["etag"] == video.headers["etag"]

    frame = await http.get(content["last_frame_url"])
    assert (frame.status_code, frame.headers["content-type"]) == (200, "image/png")
    assert frame.content == last_frame_png(task_id)


async def test_the_default_size_is_small(clock: FakeClock) -> None:
    async with served(clock) as (_, http):
        task_id, content = await finished(http, clock)
        video = await http.get(content["video_url"])
        assert len(video.content) == 65_536
        assert video.content == video_bytes(task_id)


async def test_a_gateways_public_id_names_the_bytes_of_its_upstream_file(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    base = "/sandbox/newapi/v1/video/generations"
    body = {"model": "doubao-seedance-2-0-260128", "prompt": "A cat"}
    public_id = json_of(await http.post(base, headers=AUTH, json=body))["id"]
    assert public_id.startswith("task_")
    clock.advance(8)
    [url, *_] = set(urls(json_of(await http.get(f"{base}/{public_id}", headers=AUTH))))
    assert public_id not in url  # the file carries the upstream Ark id
    video = await http.get(url)
    assert hashlib.sha256(video.content).hexdigest() == expected_sha256(public_id, SIZE)


async def test_seedance2ink_bucket_files_are_real_sized_too(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    base = "/sandbox/seedance2ink/api/open/v1/video/generations"
    body = {"model": "seedance-2.0", "prompt": "x"}
    request_id = json_of(await http.post(base, headers=AUTH, json=body))["requestId"]
    clock.advance(8)
    url = json_of(await http.get(f"{base}/{request_id}", headers=AUTH))["output"]["url"]
    video = await http.get(url)
    assert video.headers["content-length"] == str(SIZE)
    assert hashlib.sha256(video.content).hexdigest() == expected_sha256(request_id, SIZE)
    part = await http.get(url, headers={"Range": "bytes=-10"})
    assert (part.status_code, part.content) == (206, video.content[-10:])


async def test_no_last_frame_unless_asked_for(http: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id, content = await finished(http, clock)
    assert "last_frame_url" not in content
    date = content["video_url"].split("X-Tos-Date=")[1].split("&")[0]
    answer = await http.get(signed(f"{task_id}.png", date))  # signed right, but no such object
    assert (answer.status_code, answer.json()["Code"]) == (404, "NoSuchKey")


async def test_the_configured_size_reaches_the_relays_own_sandbox(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = Settings.from_mapping(
        {"database_url": f"sqlite:///{tmp_path / 'relay.db'}", "sandbox": {"video_bytes": 5000}},
        env={},
    )
    app = create_app(settings, clock=clock)  # no lifespan: the sandbox needs no store
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        task_id, content = await finished(http, clock)
        video = await http.get(content["video_url"])
        assert video.content == video_bytes(task_id, 5000)
    with pytest.raises(ConfigError, match=r"sandbox\.video_bytes"):
        Settings.from_mapping({"sandbox": {"video_bytes": 63}}, env={})


# -- range requests -------------------------------------------------------------------------


async def test_range_requests(http: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id, content = await finished(http, clock)
    url = content["video_url"]
    whole = video_bytes(task_id, SIZE)
    etag = (await http.head(url)).headers["etag"]
    for header, start, stop in [
        ("bytes=0-99", 0, 100),
        ("bytes=65530-131080", 65530, 131081),  # across two blocks
        ("bytes=299990-", 299990, SIZE),
        ("bytes=-5", SIZE - 5, SIZE),
        ("bytes=299999-400000", 299999, SIZE),
    ]:
        part = await http.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
        assert part.headers["content-length"] == str(stop - start)
        assert part.content == whole[start:stop]
        assert part.headers["etag"] == etag

    refused = await http.get(url, headers={"Range": f"bytes={SIZE}-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{SIZE}"
    assert refused.json()["Code"] == "InvalidRange"

    for ignored in ("bytes=0-1,5-9", "bytes=9-1", "lines=1-2"):
        full = await http.get(url, headers={"Range": ignored})
        assert (full.status_code, len(full.content)) == (200, SIZE)

    # If-Range: the range only while the file is the one the caller started with.
    resumed = await http.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert (resumed.status_code, resumed.content) == (206, whole[10:20])
    changed = await http.get(url, headers={"Range": "bytes=10-19", "If-Range": '"other"'})
    assert (changed.status_code, len(changed.content)) == (200, SIZE)

    head = await http.head(url)
    assert (head.status_code, head.headers["content-length"], head.content) == (
        200,
        str(SIZE),
        b"",
    )


# -- links expire, tasks are forgotten ------------------------------------------------------


async def test_an_expired_link_refuses_ranges_too(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, content = await finished(http, clock)
    clock.advance(86400)
    expired = await http.get(content["video_url"], headers={"Range": "bytes=0-9"})
    assert (expired.status_code, expired.json()["Message"]) == (403, "Request has expired.")


async def test_deleting_a_finished_task_takes_its_files(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id, content = await finished(http, clock, return_last_frame=True)
    for url in content.values():
        assert (await http.get(url)).status_code == 200
    assert (await http.delete(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 200
    assert (await http.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404
    for url in content.values():  # still signed and within their 24 h, but gone
        gone = await http.get(url)
        assert (gone.status_code, gone.json()) == (
            404,
            {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
        )


async def test_files_go_with_the_task_after_the_providers_seven_days(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create(http)
    clock.advance(6.5 * 86400)
    url = (await fetch(http, task_id))["content"]["video_url"]  # signed on day 6
    assert (await http.get(url)).status_code == 200
    clock.advance(0.5 * 86400)
    assert (await http.get(f"{TASKS}/{task_id}", headers=AUTH)).status_code == 404
    assert (await http.get(url)).status_code == 404


# -- file faults ----------------------------------------------------------------------------


async def plan(http: httpx.AsyncClient, **body: Any) -> Any:
    return json_of(await http.put(FILE_FAULTS, json=body))


async def test_html_empty_and_error_faults(http: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id, content = await finished(http, clock)
    url = content["video_url"]
    state = await plan(http, plan=["html", "empty", 403, "404", "500", "503", "ok"])
    assert (state["active"], state["position"], state["types"]) == (True, 0, None)

    page = await http.get(url)
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert page.content.startswith(b"<!DOCTYPE html>")
    empty = await http.get(url)
    assert (empty.status_code, empty.headers["content-type"], empty.content) == (
        200,
        "video/mp4",
        b"",
    )
    assert empty.headers["content-length"] == "0"
    for status, code in [
        (403, "AccessDenied"),
        (404, "NoSuchKey"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
    ]:
        answer = await http.get(url)
        assert (answer.status_code, answer.json()["Code"]) == (status, code)
    assert (await http.get(url)).content == video_bytes(task_id, SIZE)  # "ok"
    assert json_of(await http.get(FILE_FAULTS))["active"] is False
    assert (await http.get(url)).status_code == 200  # used up: normal again


async def test_file_faults_by_type_repeat_and_spare_head_and_the_api(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, content = await finished(http, clock, return_last_frame=True)
    await plan(http, plan=["500"], types=["png"], repeat=True)
    assert (await http.get(content["video_url"])).status_code == 200
    assert (await http.head(content["last_frame_url"])).status_code == 200
    for _ in range(3):
        assert (await http.get(content["last_frame_url"])).status_code == 500
    assert (await http.get(f"{TASKS}/x", headers=AUTH)).status_code == 404  # the API: no fault
    state = json_of(await http.get(FILE_FAULTS))
    assert (state["taken"], state["position"], state["repeat"]) == (3, 0, True)
    cleared = json_of(await http.delete(FILE_FAULTS))
    assert (cleared["plan"], cleared["active"]) == ([], False)
    assert (await http.get(content["last_frame_url"])).status_code == 200


async def test_body_faults_leave_refusals_alone(http: httpx.AsyncClient, clock: FakeClock) -> None:
    _, content = await finished(http, clock)
    await plan(http, plan=["empty"])
    tampered = content["video_url"].replace("X-Tos-Expires=86400", "X-Tos-Expires=90000")
    assert (await http.get(tampered)).status_code == 403
    assert json_of(await http.get(FILE_FAULTS))["taken"] == 1  # the entry is spent anyway


async def test_the_file_log(http: httpx.AsyncClient, clock: FakeClock) -> None:
    _, content = await finished(http, clock)
    url = content["video_url"]
    await plan(http, plan=["ok", "html"])
    await http.get(url, headers={"Range": "bytes=0-9"})
    page = await http.get(url)
    await http.head(url)
    log = json_of(await http.get(FILES))["data"]
    path = httpx.URL(url).path
    assert [(r["path"], r["range"], r["fault"], r["status"], r["bytes"]) for r in log] == [
        (path, "bytes=0-9", None, 206, 10),
        (path, None, "html", 200, len(page.content)),
        (path, None, None, 200, 0),  # HEAD: headers only
    ]
    assert log[0]["time"] == "2026-06-06T08:01:05.000Z"
    assert (await http.delete(FILES)).status_code == 204
    assert json_of(await http.get(FILES))["data"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        (
            {"plan": ["nope"]},
            "plan.0 must be one of ok, html, empty, cut, stall, 403, 404, 500, 503",
        ),
        ({"plan": ["cut"], "after": 1}, "unknown field 'after'"),
        ({"plan": "cut"}, "plan must be a list of at most 10000 entries"),
        ({"plan": [], "types": ["gif"]}, "types must be a non-empty list of mp4, png"),
        ({"plan": [], "after_bytes": -1}, "after_bytes must be an integer from 0 to"),
        ({"plan": [], "timeout_seconds": 601}, "timeout_seconds must be a number from 0 to 600"),
        ({"plan": [], "repeat": "yes"}, "repeat must be a boolean"),
    ],
)
async def test_bad_file_plans_are_refused(http: httpx.AsyncClient, body: Any, message: str) -> None:
    await plan(http, plan=["html"])
    answer = json_of(await http.put(FILE_FAULTS, json=body), 400)
    assert answer["error"]["code"] == "invalid_request"
    assert answer["error"]["message"].startswith(message)
    assert json_of(await http.get(FILE_FAULTS))["plan"] == ["html"]  # unchanged
