"""One copy of one file: stream the provider's link into the output store, checking that
what arrives is the file and all of it.

A copy fails (``CopyFailed``, with a reason a person can act on) rather than store
anything doubtful: an answer other than 200, an HTML or text page (a provider's error page
served with 200), an empty body, a body larger than the cap, a transfer cut before the
length the server announced, a stall, a link to an address the network policy forbids.
The store's ``put`` keeps nothing of a failed copy (``relay.outputs.interface``).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpcore
import httpx

from relay.copies.values import OutputKind
from relay.errors import OutputRejected, OutputStorageUnavailable
from relay.net.guard import DestinationRefused
from relay.outputs.interface import OutputStore, Stored

USER_AGENT = b"seedance-relay (output copy)"

_DEFAULT_TYPES = {OutputKind.VIDEO: "video/mp4", OutputKind.LAST_FRAME: "image/jpeg"}
EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
}
"""The only content types stored (and so served from the relay's origin): videos and still
images a browser plays or shows, never a type it would run (HTML, SVG, XML)."""
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_PAGES = (
    b"<!doctype",
    b"<html",
    b"<?xml",
    b"<head",
    b"<body",
    b"<svg",
    b"<script",
    b"<!--",
    b"{",
    b"[",
)
"""How an error page starts: HTML, SVG, XML, or a JSON error body; no video or image does."""
SNIFF_BYTES = 64


class CopyFailed(Exception):
    """A try that stored nothing; ``str()`` says why, for the task's timeline."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int
    connect_timeout: float = 10.0
    stall_timeout: float = 60.0
    """Seconds without a byte from the source before the try is given up."""
    total_timeout: float = 3600.0


def object_key(account_id: str, task_id: str, kind: OutputKind, content_type: str) -> str:
    """Where a task's file is kept: one key per task and kind, so every try (and every
    instance) writes the same object."""
    return f"{account_id}/{task_id}/{kind.value}{EXTENSIONS.get(content_type, '')}"


async def fetch_into(
    pool: httpcore.AsyncConnectionPool,
    store: OutputStore,
    url: str,
    *,
    account_id: str,
    task_id: str,
    kind: OutputKind,
    limits: FetchLimits,
) -> Stored:
    """Copy ``url`` into ``store``; ``CopyFailed`` says why nothing was stored."""
    try:
        async with asyncio.timeout(limits.total_timeout):
            return await _fetch(pool, store, url, account_id, task_id, kind, limits)
    except CopyFailed:
        raise
    except (httpx.InvalidURL, httpcore.UnsupportedProtocol, ValueError, TypeError) as exc:
        raise CopyFailed(f"the link is not a URL the relay can fetch: {exc}") from None
    except TimeoutError:
        raise CopyFailed(
            f"the download took longer than {limits.total_timeout:g} s and was given up"
        ) from None
    except DestinationRefused as exc:
        raise CopyFailed(f"the link was not followed: {exc}") from None
    except OutputRejected as exc:
        raise CopyFailed(str(exc)) from None
    except OutputStorageUnavailable as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise CopyFailed(f"the output storage failed: {exc}{cause}") from None
    except httpcore.ReadTimeout:
        raise CopyFailed(
            f"the source sent nothing for {limits.stall_timeout:g} s and was given up"
        ) from None
    except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
        raise CopyFailed(
            f"could not connect to the link's server: {exc or type(exc).__name__}"
        ) from None
    except (httpcore.RemoteProtocolError, httpcore.ReadError) as exc:
        raise CopyFailed(f"the transfer was cut: {exc or type(exc).__name__}") from None
    except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException) as exc:
        raise CopyFailed(f"the download failed: {exc or type(exc).__name__}") from None


async def _fetch(
    pool: httpcore.AsyncConnectionPool,
    store: OutputStore,
    url: str,
    account_id: str,
    task_id: str,
    kind: OutputKind,
    limits: FetchLimits,
) -> Stored:
    timeouts = {
        "connect": limits.connect_timeout,
        "read": limits.stall_timeout,
        "write": limits.stall_timeout,
        "pool": limits.connect_timeout,
    }
    headers = [(b"User-Agent", USER_AGENT), (b"Accept", b"video/*, image/*, */*;q=0.1")]
    parsed = httpx.URL(url)  # percent-encodes what a provider left raw; InvalidURL if it cannot
    if parsed.scheme not in ("http", "https"):
        raise CopyFailed(f"the link is not an http(s) URL ({parsed.scheme or 'no scheme'})")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise CopyFailed(f"the link's port {parsed.port} is not a port")
    target = httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
    )
    async with pool.stream(
        "GET", target, headers=headers, extensions={"timeout": timeouts}
    ) as response:
        if response.status != 200:
            raise CopyFailed(f"the link answered HTTP {response.status}, not the file")
        content_type = _content_type(response.headers, parsed.path, kind)
        declared = _length(response.headers)
        if declared is not None and declared > limits.max_bytes:
            raise CopyFailed(
                f"the file is {declared} bytes, over the limit of {limits.max_bytes} bytes"
            )
        if declared == 0:
            raise CopyFailed("the link answered an empty body")
        stream = response.stream
        assert hasattr(stream, "__aiter__")
        return await store.put(
            object_key(account_id, task_id, kind, content_type),
            _checked(stream.__aiter__(), declared),
            content_type=content_type,
            max_bytes=limits.max_bytes,
        )


async def _checked(chunks: AsyncIterator[bytes], declared: int | None) -> AsyncIterator[bytes]:
    """The body, refused inside the put (so that nothing is stored) when it starts like a
    page rather than a file, or ends short of the length the server announced."""
    received = 0
    head = b""
    async for chunk in chunks:
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
            if head.lstrip().lower().startswith(_PAGES):
                raise CopyFailed("the link answered a page, not the file (it starts like one)")
        received += len(chunk)
        yield chunk
    if declared is not None and received != declared:
        raise CopyFailed(f"the transfer was cut: {received} of {declared} bytes arrived")


def _content_type(headers: list[tuple[bytes, bytes]], path: str, kind: OutputKind) -> str:
    """The file's type, one of ``EXTENSIONS``: as the server says, or guessed from the path
    (or the kind) when it says nothing useful; ``CopyFailed`` for anything else (a page, an
    SVG, several types at once)."""
    values = [
        raw.decode("latin-1").split(";")[0].strip().lower()
        for name, raw in headers
        if name.lower() == b"content-type"
    ]
    value = values[-1] if values else ""
    if len(values) > 1 or "," in value:
        raise CopyFailed(f"the link answered an ambiguous content type ({', '.join(values)})")
    if value in _GENERIC:
        guessed, _ = mimetypes.guess_type(path)
        return guessed if guessed in EXTENSIONS else _DEFAULT_TYPES[kind]
    if value.startswith(("text/", "application/json", "application/xhtml")):
        raise CopyFailed(f"the link answered a page ({value}), not the file")
    if value not in EXTENSIONS:
        raise CopyFailed(f"the link answered {value}, not a video or image the relay keeps")
    return value


def _length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, raw in headers:
        if name.lower() == b"content-length":
            try:
                return int(raw)
            except ValueError:
                return None
    return None
