"""One try of a copy (``relay.copier.fetch``) against a real HTTP server on loopback and a real
local store: what is a file and what is not, and links the relay cannot fetch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from relay.config.outputs import OutputsSettings
from relay.copier.fetch import CopyFailed, FetchLimits, fetch_into
from relay.copies.values import OutputKind
from relay.net.downloads import download_pool
from relay.net.guard import DestinationGuard
from relay.outputs import OutputStore, open_output_store
from tests.e2e.harness import free_port

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40
LIMITS = FetchLimits(max_bytes=1 << 20, connect_timeout=2, stall_timeout=2, total_timeout=5)


@pytest.fixture
async def store(tmp_path: Path) -> OutputStore:
    opened = await open_output_store(OutputsSettings(store=f"file://{tmp_path / 'kept'}"))
    assert opened is not None
    return opened


class Source:
    """A file server on loopback answering each GET with the next scripted reply, bytes and
    headers exactly as given."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, bytes]] = []
        self.requests = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, content_type: str, body: bytes) -> None:
        self.replies.append((content_type, body))

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        content_type, body = self.replies.pop(0)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def __aenter__(self) -> Source:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def source() -> AsyncIterator[Source]:
    async with Source() as server:
        yield server


async def fetch(store: OutputStore, url: str, kind: OutputKind = OutputKind.VIDEO) -> str:
    pool = download_pool(None)
    try:
        stored = await fetch_into(
            pool, store, url, account_id="acct_1", task_id="task_1", kind=kind, limits=LIMITS
        )
    finally:
        await pool.aclose()
    return stored.key


def kept(tmp_path: Path) -> list[str]:
    root = tmp_path / "kept"
    return sorted(p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


async def test_a_video_is_stored_with_its_type(
    store: OutputStore, source: Source, tmp_path: Path
) -> None:
    source.script("video/mp4", MP4)
    assert await fetch(store, f"{source.base_url}/v.mp4") == "acct_1/task_1/video.mp4"


async def test_a_generic_type_is_guessed_from_the_path_among_the_kept_ones(
    store: OutputStore, source: Source
) -> None:
    source.script("application/octet-stream", b"\x89PNG\r\n\x1a\n" + b"x" * 100)
    key = await fetch(store, f"{source.base_url}/frame.png?sig=1", OutputKind.LAST_FRAME)
    assert key.endswith("last_frame.png")
    # A path naming a type the relay does not keep: the kind's default, never that type.
    source.script("binary/octet-stream", MP4)
    assert (await fetch(store, f"{source.base_url}/v.svg")).endswith("video.mp4")


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("image/svg+xml", "<svg onload='alert(1)'/>", "not a video or image"),
        ("video/mp4,text/html", "<html></html>", "ambiguous"),
        ("text/html", "<html>error</html>", "a page"),
        ("application/json", '{"error": "expired"}', "a page"),
        ("video/mp4", "\n\n  <!DOCTYPE html><html>AccessDenied</html>", "starts like one"),
        ("video/mp4", "<script>alert(1)</script>", "starts like one"),
        ("video/mp4", "", "empty"),
    ],
)
async def test_what_is_not_the_file_is_refused_and_nothing_is_stored(
    store: OutputStore,
    source: Source,
    tmp_path: Path,
    content_type: str,
    body: str,
    why: str,
) -> None:
    source.script(content_type, body.encode())
    with pytest.raises(CopyFailed, match=why):
        await fetch(store, f"{source.base_url}/v.mp4")
    assert kept(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://exämple.invalid/v.mp4",
        "http://127.0.0.1:99999/v.mp4",
        "http://[::1/v.mp4",
        "ftp://x/v",
    ],
)
async def test_links_the_relay_cannot_fetch_are_failed_tries(store: OutputStore, url: str) -> None:
    with pytest.raises(CopyFailed, match="not"):
        await fetch(store, url)


async def test_a_forbidden_address_is_never_connected_to(
    store: OutputStore, source: Source
) -> None:
    pool = download_pool(DestinationGuard())  # the default policy: public addresses only
    try:
        with pytest.raises(CopyFailed, match="not followed"):
            await fetch_into(
                pool,
                store,
                f"{source.base_url}/v.mp4",
                account_id="a",
                task_id="t",
                kind=OutputKind.VIDEO,
                limits=LIMITS,
            )
    finally:
        await pool.aclose()
    assert source.requests == 0
