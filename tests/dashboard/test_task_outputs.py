"""A task's stored files on its dashboard page: the ``<video>`` of the stored copy with its
size and checksum, the copy's tries and its deletion in the timeline, and a
Content-Security-Policy that lets the page load them and nothing else.

The pages are read from a real relay in-process (its sandbox served on loopback, a real
output directory or a real S3-compatible server); the timeline's lines are pure functions
of the copies, tested on values."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.copies.values import CopyState, CopyTry, OutputCopy, OutputKind, TaskOutput
from relay.dashboard.render import content_policy
from relay.dashboard.views import (
    bytes_label,
    copy_steps,
    media_origins,
    origin,
    output_state_line,
    timeline,
)
from relay.models import Event, EventType, Task, TaskStatus
from relay.sandbox.media import expected_sha256
from relay.transitions import envelope
from tests.api.conftest import InProcessFactory, start_relay
from tests.e2e.harness import Account, InProcessRelay, ark_input, eventually
from tests.outputs.conftest import REGION, S3Server, bucket, s3_env, s3_server
from tests.store.factories import NOW, at

__all__ = ["bucket", "s3_env", "s3_server", "start_relay"]

SIZE = 300_000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def kept(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {"store": f"file://{tmp_path / 'kept'}", "wait_seconds": 5, **overrides}


async def finished_task(relay: InProcessRelay, account: Account, status: str) -> dict[str, Any]:
    """A sandbox task (with a last frame) whose copy has come to ``status``, its last frame
    stored too (copied alongside, waited for by nobody), as the API shows it."""
    body = {"provider": "sandbox", "input": {**ark_input(), "return_last_frame": True}}
    async with relay.client(account) as client:
        created = await client.post("/v1/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def settled() -> dict[str, Any] | None:
            task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
            output = task["output"]
            if output is None or output["status"] != status or output["last_frame"] is None:
                return None
            return task

        return await eventually(settled, within=20, what=f"the copy to be {status}")


async def task_page(relay: InProcessRelay, account: Account, task_id: str) -> httpx.Response:
    """The task's dashboard page, read by a browser-like client signed in with the key."""
    async with relay.client() as browser:
        form = await browser.get("/dashboard/login")
        token = CSRF.search(form.text)
        assert token, form.text
        signed = await browser.post(
            "/dashboard/login", data={"csrf": token.group(1), "api_key": account.api_key}
        )
        assert signed.status_code == 303, signed.text
        page = await browser.get(f"/dashboard/tasks/{task_id}")
    assert page.status_code == 200, page.text
    return page


def timeline_rows(page: str) -> list[str]:
    """The timeline's rows as text (tags dropped, entities read)."""
    table = page.split('<table id="timeline">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"step[^\"]*\">(.*?)</tr>", table, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", r).split())) for r in rows]


def directive(response: httpx.Response, name: str) -> list[str]:
    policy = response.headers["content-security-policy"]
    (found,) = [d.split()[1:] for d in policy.split(";") if d.split()[:1] == [name]]
    return found


async def test_the_page_plays_the_stored_video_and_shows_its_size_and_checksum(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(outputs=kept(tmp_path), sandbox={"video_bytes": SIZE})
    account = await relay.account("viewer")
    task = await finished_task(relay, account, "stored")
    sha = expected_sha256(task["provider_task_id"], SIZE)
    assert task["video_url"].startswith(f"{relay.url}/v1/outputs/")

    page = await task_page(relay, account, task["id"])
    text = page.text
    assert (
        f'<video class="player" id="output-video" controls preload="metadata" '
        f'src="{task["video_url"]}"></video>'
    ) in text
    sha_cell = '<code class="copyable" id="output-sha256" title="SHA-256 of the stored video">'
    assert f"{sha_cell}{sha}</code>" in text
    assert f'<dd id="output-size">293.0 KiB ({SIZE:,} bytes)</dd>' in text
    assert ">video/mp4</dd>" in text
    assert f'id="output-last-frame" src="{task["last_frame_url"]}"' in text
    assert html.escape(task["provider_video_url"]) in text
    assert '<span class="status s-stored" id="output-status">stored</span>' in text
    rows = timeline_rows(text)
    copied = [r for r in rows if "video copied" in r]
    assert len(copied) == 1
    assert f"video copied ({SIZE} bytes) try 1: 293.0 KiB, video/mp4" in copied[0]
    assert [r for r in rows if "last frame copied" in r]
    # The player may load the video from here (the link is this relay's) and nothing else.
    assert directive(page, "media-src") == ["'self'", relay.url]
    assert directive(page, "img-src") == ["'self'", relay.url]
    assert directive(page, "default-src") == ["'none'"]
    assert directive(page, "script-src") == ["'self'"]  # the relay's own script, no other
    async with httpx.AsyncClient(timeout=10) as anyone:  # what the <video> element asks
        head = await anyone.get(task["video_url"], headers={"Range": "bytes=0-1023"})
    assert head.status_code == 206
    assert head.headers["content-type"] == "video/mp4"


async def test_a_failed_copy_shows_why_in_the_timeline_and_plays_nothing(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(
        outputs=kept(tmp_path, max_attempts=1, wait_seconds=0), sandbox={"video_bytes": SIZE}
    )
    account = await relay.account("unlucky")
    async with httpx.AsyncClient(base_url=relay.url) as sandbox:
        fault = {"plan": ["403"], "types": ["mp4"]}
        assert (await sandbox.put("/sandbox/_control/file-faults", json=fault)).status_code == 200
    task = await finished_task(relay, account, "failed")

    page = await task_page(relay, account, task["id"])
    rows = timeline_rows(page.text)
    (failed,) = [r for r in rows if "video copy failed" in r]
    assert "HTTP 403" in failed
    assert "try 1: the last, the copy gave up" in failed
    assert "<video" not in page.text
    assert '<span class="status s-failed" id="output-status">failed</span>' in page.text
    assert "Not stored: every try failed" in page.text
    assert "HTTP 403" in page.text.split('id="output-error">', 1)[1].split("</dd>", 1)[0]
    # The last frame (a PNG, not faulted) was stored: shown, and allowed by the policy.
    assert f'id="output-last-frame" src="{task["last_frame_url"]}"' in page.text
    assert html.escape(task["provider_video_url"]) in page.text


async def test_a_deletion_is_a_line_of_the_timeline(
    start_relay: InProcessFactory, tmp_path: Path
) -> None:
    relay = await start_relay(outputs=kept(tmp_path, wait_seconds=0))
    account = await relay.account("forgetful")
    task = await finished_task(relay, account, "stored")
    async with relay.client(account) as client:
        deleted = await client.delete(f"/v1/tasks/{task['id']}/outputs")
    assert deleted.status_code == 200, deleted.text

    page = await task_page(relay, account, task["id"])
    rows = timeline_rows(page.text)
    (gone,) = [r for r in rows if "stored video deleted" in r]
    assert "deleted at the account's request" in gone
    assert any("video copied" in r for r in rows)  # the copy that was, still told
    assert "<video" not in page.text
    assert 'id="output-deleted"' in page.text
    assert directive(page, "media-src") == ["'self'"]  # nothing stored, nothing more allowed


async def test_a_bucket_store_allows_the_bucket_origin_the_link_redirects_to(
    start_relay: InProcessFactory, s3_server: S3Server, bucket: str
) -> None:
    relay = await start_relay(
        outputs={
            "store": f"s3://{bucket}/kept",
            "endpoint_url": s3_server.endpoint,
            "region": REGION,
            "wait_seconds": 10,
        },
        sandbox={"video_bytes": SIZE},
    )
    account = await relay.account("bucketeer")
    task = await finished_task(relay, account, "stored")
    page = await task_page(relay, account, task["id"])
    assert f'preload="metadata" src="{task["video_url"]}"' in page.text
    async with httpx.AsyncClient(timeout=10) as anyone:
        moved = await anyone.get(task["video_url"])
    assert moved.status_code == 307
    assert origin(moved.headers["location"]) == s3_server.endpoint
    assert directive(page, "media-src") == ["'self'", relay.url, s3_server.endpoint]


# Pure: the lines of the timeline and what the page says.


def _copy(kind: OutputKind = OutputKind.VIDEO, **changes: Any) -> OutputCopy:
    base = OutputCopy(
        id="out_1",
        account_id="acct",
        task_id="task_1",
        kind=kind,
        state=CopyState.PENDING,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)


def test_each_try_and_the_deletion_is_a_line() -> None:
    video = _copy(
        state=CopyState.DELETED,
        attempts=3,
        size=2_500_000,
        content_type="video/mp4",
        tries=(
            CopyTry(at(seconds=10), "HTTP 403 from the provider"),
            CopyTry(at(seconds=20), "the transfer was cut after 5000 bytes"),
            CopyTry(at(seconds=40)),
        ),
        deleted_at=at(days=30),
        deleted_reason="retention (30 days)",
    )
    steps = copy_steps(video)
    assert [(s.at, s.kind, s.title, s.detail, s.ok) for s in steps] == [
        (at(seconds=10), "copy", "video copy failed: HTTP 403 from the provider", "try 1", False),
        (
            at(seconds=20),
            "copy",
            "video copy failed: the transfer was cut after 5000 bytes",
            "try 2",
            False,
        ),
        (
            at(seconds=40),
            "copy",
            "video copied (2500000 bytes)",
            "try 3: 2.38 MiB, video/mp4",
            True,
        ),
        (at(days=30), "copy", "stored video deleted", "retention (30 days)", None),
    ]


def test_tries_older_than_those_kept_are_counted_and_the_last_failure_says_so() -> None:
    frame = _copy(
        OutputKind.LAST_FRAME,
        state=CopyState.FAILED,
        attempts=12,
        tries=tuple(CopyTry(at(seconds=i), f"error {i}") for i in range(3, 13)),
    )
    steps = copy_steps(frame)
    assert [s.detail for s in steps][:2] == ["try 3", "try 4"]
    assert steps[-1].title == "last frame copy failed: error 12"
    assert steps[-1].detail == "try 12: the last, the copy gave up"
    pending = replace(frame, state=CopyState.PENDING)
    assert copy_steps(pending)[-1].detail == "try 12"  # more tries to come
    assert copy_steps(_copy()) == []


def test_copy_lines_take_their_place_in_the_task_timeline() -> None:
    task = Task(
        id="task_1",
        account_id="acct",
        provider="sandbox",
        provider_task_id="cgt-1",
        status=TaskStatus.SUCCEEDED,
        created_at=NOW,
        updated_at=at(seconds=9),
        completed_at=at(seconds=5),
        output=TaskOutput(CopyState.STORED),
    )
    video = _copy(
        state=CopyState.STORED,
        attempts=2,
        size=10,
        tries=(CopyTry(at(seconds=6), "HTTP 500"), CopyTry(at(seconds=8))),
    )
    # The success went out in the transaction of the try that stored the video: same instant.
    done = Event(
        id="evt_2",
        account_id="acct",
        task_id=task.id,
        type=EventType.TASK_SUCCEEDED,
        sequence=2,
        created_at=at(seconds=8),
        body=envelope("evt_2", EventType.TASK_SUCCEEDED, 2, at(seconds=8), {"id": task.id}),
    )
    steps = timeline(task, [done], {}, [video])
    assert [s.title for s in steps] == [
        "registered",
        "finished: succeeded",
        "video copy failed: HTTP 500",
        "video copied (10 bytes)",
        "task.succeeded",
    ]
    assert [s.title for s in timeline(task, [], {})] == ["registered", "finished: succeeded"]


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "-"),
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.00 KiB"),
        (300_000, "293.0 KiB"),
        (52_428_800, "50.0 MiB"),
        (2 * (1 << 30), "2.00 GiB"),
        (5 * (1 << 50), "5120.0 TiB"),
    ],
)
def test_sizes_for_people(size: int | None, shown: str) -> None:
    assert bytes_label(size) == shown


def test_the_state_of_the_copy_in_a_sentence() -> None:
    assert output_state_line(TaskOutput(CopyState.STORED)).startswith("Stored")
    assert "HTTP 503" in output_state_line(TaskOutput(CopyState.PENDING, error="video: HTTP 503"))
    failed = output_state_line(TaskOutput(CopyState.FAILED, error="video: HTTP 403"))
    assert failed.startswith("Not stored: every try failed (video: HTTP 403)")
    gone = TaskOutput(CopyState.DELETED, deleted_at=NOW, deleted_reason="asked")
    assert output_state_line(gone).startswith("Deleted at 2")
    assert "(asked)" in output_state_line(gone)


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://relay.example.com/v1/outputs/abc", "https://relay.example.com"),
        ("http://127.0.0.1:8791/v1/outputs/abc", "http://127.0.0.1:8791"),
        (
            "https://S3.eu-west-3.amazonaws.com/b/k?X-Amz-Signature=1",
            "https://s3.eu-west-3.amazonaws.com",
        ),
        ("http://[::1]:9000/b/k", "http://[::1]:9000"),
        ("https://user:pw@host.example/x", "https://host.example"),
        ("javascript:alert(1)", None),
        ("data:video/mp4;base64,AAAA", None),
        ("https://evil.example;script-src *", None),
        ("https://a b.example/", None),
        ("https://host.example:99999/", None),
        ("", None),
        (None, None),
    ],
)
def test_only_plain_origins_go_into_the_policy(url: str | None, found: str | None) -> None:
    assert origin(url) == found


def test_the_policy_names_the_media_origins_once() -> None:
    urls = ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b", None, "http://minio.local:9000/x"]
    media = media_origins(urls)
    assert media == ("http://127.0.0.1:1", "http://minio.local:9000")
    policy = content_policy(media)
    assert "media-src 'self' http://127.0.0.1:1 http://minio.local:9000;" in policy
    assert "img-src 'self' http://127.0.0.1:1 http://minio.local:9000;" in policy
    assert "media-src 'self';" in content_policy()
