"""Stored outputs over HTTP (``relay.copies``):

    GET|HEAD /v1/outputs/{token}     the stable link a task's ``video_url`` holds: no API key
    DELETE   /v1/tasks/{id}/outputs  delete the task's stored files

The link serves the stored object: a local store's file streamed here (with range requests,
so a ``<video>`` element can seek), a bucket's through a redirect (307) to a presigned URL
signed for this request. While the copy is not stored (pending, or failed) it redirects to
the provider's own link if that still works; a deleted one answers 410.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from relay.api.http import authenticate, json_response, services
from relay.copier.fetch import EXTENSIONS
from relay.copier.removal import KeptOutputs
from relay.copies.values import CopyState, OutputCopy, OutputKind
from relay.errors import OutputDeleted, OutputNotAvailable, UnknownObject, UnsatisfiableRange
from relay.models import iso
from relay.outputs.interface import ByteRange, Opened

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$", re.IGNORECASE)
SERVED_SAFELY = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
"""A stored file is the provider's bytes on the relay's own origin (beside the dashboard):
never sniffed into something a browser runs, and sandboxed if it were."""


async def output(request: Request) -> Response:
    svc = services(request)
    kept = _kept(request)
    copy_id = kept.links.read(request.path_params["token"])
    copy = None if copy_id is None else await svc.store.get_copy(copy_id)
    if copy is None:
        raise UnknownObject("no output is behind this link")
    if copy.state is CopyState.DELETED:
        raise OutputDeleted(
            f"this output was deleted at {iso(copy.deleted_at)} ({copy.deleted_reason})"
        )
    if copy.state is not CopyState.STORED or copy.object_key is None:
        return await _provider_link(request, copy)
    headers = {
        **SERVED_SAFELY,
        "Accept-Ranges": "bytes",
        "ETag": f'"{copy.sha256}"',
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": _disposition(copy),
    }
    if request.method == "HEAD":
        # Answered here for any store: a presigned URL is signed for one method (GET).
        info = await kept.store.stat(copy.object_key)
        if info is None:
            raise UnknownObject("the stored output is missing")
        headers["Content-Length"] = str(info.size)
        return Response(None, 200, headers=headers, media_type=info.content_type)
    presigned = await kept.store.link(copy.object_key, kept.link_lifetime)
    if presigned is not None:
        return RedirectResponse(presigned, 307, headers={"Cache-Control": "no-store"})
    wanted = _range(request.headers.get("range"), request.headers.get("if-range"), copy)
    opened = await kept.store.open(copy.object_key, wanted)
    headers["Content-Length"] = str(opened.length)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {opened.start}-{opened.stop - 1}/{opened.info.size}"
    return StreamingResponse(
        _chunks(opened), status, headers=headers, media_type=opened.info.content_type
    )


async def _chunks(opened: Opened) -> AsyncIterator[bytes]:
    async with opened:
        async for chunk in opened.chunks:
            yield chunk


async def _provider_link(request: Request, copy: OutputCopy) -> Response:
    """The provider's link while the copy is not stored, if it still works."""
    svc = services(request)
    task = await svc.store.get_task(copy.account_id, copy.task_id)
    now = svc.clock.now()
    url = None
    if task is not None:
        url = (
            task.provider_video_url
            if copy.kind is OutputKind.VIDEO
            else task.provider_last_frame_url
        )
        expires = task.provider_video_url_expires_at
        if expires is not None and expires <= now:
            url = None
    if url is None:
        state = "is not stored yet" if copy.state is CopyState.PENDING else "could not be stored"
        raise OutputNotAvailable(f"this output {state} and the provider's link has expired")
    return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})


def _range(header: str | None, if_range: str | None, copy: OutputCopy) -> ByteRange | None:
    """One range of RFC 9110 (``bytes=a-b``, ``a-``, ``-n``); anything else, several ranges,
    or an ``If-Range`` naming another version, is the whole object."""
    if header is None or (if_range is not None and if_range.strip() != f'"{copy.sha256}"'):
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        if int(last) == 0:  # the last zero bytes: none to send (RFC 9110 14.1.2)
            raise UnsatisfiableRange(copy.size or 0)
        return ByteRange(-int(last))
    start = int(first)
    if last == "":
        return ByteRange(start)
    stop = int(last) + 1
    return ByteRange(start, stop) if stop > start else None


def _disposition(copy: OutputCopy) -> str:
    """Shown in the browser when it is a video or image the copier keeps, else saved."""
    how = "inline" if (copy.content_type or "") in EXTENSIONS else "attachment"
    return f'{how}; filename="{_filename(copy)}"'


def _filename(copy: OutputCopy) -> str:
    key = copy.object_key or ""
    extension = key[key.rfind(".") :] if "." in key.rsplit("/", 1)[-1] else ""
    return f"{copy.task_id}-{copy.kind.value}{extension}"


async def delete_outputs(request: Request) -> Response:
    """Delete the task's stored files; the task records when and why."""
    account = await authenticate(request)
    task = await _kept(request).remover.remove(account.id, request.path_params["task_id"])
    return json_response(task.to_json())


def _kept(request: Request) -> KeptOutputs:
    kept = services(request).outputs
    if kept is None:
        raise UnknownObject("this relay does not store outputs (outputs.store is not set)")
    return kept


def output_routes() -> list[Route]:
    return [
        Route("/v1/outputs/{token}", output, methods=["GET", "HEAD"]),
        Route("/v1/tasks/{task_id}/outputs", delete_outputs, methods=["DELETE"]),
    ]
