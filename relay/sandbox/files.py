"""The sandbox's result files over HTTP, served the way object storage serves them.

Two routes: ``/files/{id}.mp4|png`` behind Ark's TOS-style signed URLs, and seedance2.ink's
public bucket ``/pub-bucket/open-api-results/{id}.mp4``. A file exists while its task does:
succeeded, not deleted (Ark's ``DELETE`` of a finished task), within the provider's 7-day
window, and for a last frame, asked for. Otherwise: 404 ``NoSuchKey``.

A signed URL is refused (403) when its signature does not match (the lifetime is signed,
so it cannot be stretched) and once ``X-Tos-Expires`` seconds have passed since
``X-Tos-Date`` on the sandbox's clock, as TOS does; checked before whether the object
exists, as TOS does. An ``Authorization`` header next to the signed query is a 400.

The bodies (:mod:`relay.sandbox.media`) are streamed in chunks, never held whole, with
``Content-Length``, ``ETag`` and ``Accept-Ranges: bytes``; a single range is answered 206
with ``Content-Range`` (``If-Range`` honoured), one past the end 416. A caller that hangs
up stops the stream. File faults and the file log: :mod:`relay.sandbox.file_faults`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Final

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from relay.models import TaskStatus
from relay.sandbox.control import CLIENT_CLOSED, Control
from relay.sandbox.file_faults import FileFault, FileRecord
from relay.sandbox.media import (
    Unsatisfiable,
    last_frame_png,
    parse_range,
    video_chunks,
    video_etag,
)
from relay.sandbox.simulation import (
    URL_LIFETIME_SECONDS,
    TaskView,
    file_signature,
    parse_tos_date,
)
from relay.sandbox.web import BUCKET_PATH, FILES_PATH, SandboxContext

Reader = Callable[[int, int], Iterator[bytes]]
"""Bytes ``[start, stop)`` of a file, in chunks."""
_MEDIA_TYPES: Final = {"mp4": "video/mp4", "png": "image/png"}
_SOFT_ERROR_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>"
    b"<h1>Sorry, the page you are looking for is currently unavailable.</h1>"
    b"<p>Please try again later.</p></body></html>\n"
)


class FileServer:
    """The two file routes of one sandbox; ``ink_lookup`` finds seedance2.ink's tasks."""

    def __init__(
        self,
        ctx: SandboxContext,
        control: Control,
        ink_lookup: Callable[[str], TaskView | None],
    ) -> None:
        self._ctx = ctx
        self._control = control
        self._ink_lookup = ink_lookup

    def routes(self) -> list[BaseRoute]:
        return [
            Route(FILES_PATH + "/{name}", self.signed, methods=["GET"]),
            Route(BUCKET_PATH + "/open-api-results/{name}", self.bucket, methods=["GET"]),
        ]

    async def signed(self, request: Request) -> Response:
        """A TOS-style signed file: the query string is the credential.

        Real TOS refuses a presigned URL that also carries an ``Authorization`` header,
        which is exactly the mistake the provider pages warn about; so does the sandbox.
        """
        arrived = self._ctx.clock.now()
        name = request.path_params["name"]
        task_id, _, extension = name.rpartition(".")
        fault = self._take(request, extension)
        refusal = _fault_answer(fault) or self._check_signed(request, name, extension, task_id)
        if refusal is not None:
            return self._logged(request, arrived, fault, refusal)
        return self._serve(request, arrived, fault, task_id, extension)

    async def bucket(self, request: Request) -> Response:
        """seedance2.ink's results sit in a public bucket: no credential, no expiry, there
        for as long as the task is (and only once it has succeeded)."""
        arrived = self._ctx.clock.now()
        task_id, _, extension = request.path_params["name"].rpartition(".")
        fault = self._take(request, extension)
        refusal = _fault_answer(fault)
        if refusal is None:
            view = self._ink_lookup(task_id) if extension == "mp4" else None
            if view is None or view.status is not TaskStatus.SUCCEEDED:
                refusal = _no_such_key()
        if refusal is not None:
            return self._logged(request, arrived, fault, refusal)
        return self._serve(request, arrived, fault, task_id, extension)

    def _take(self, request: Request, extension: str) -> FileFault | None:
        if request.method != "GET":
            return None
        return self._control.file_faults.take(extension)

    def _check_signed(
        self, request: Request, name: str, extension: str, task_id: str
    ) -> Response | None:
        if "authorization" in request.headers:
            return storage_error(
                400, "InvalidArgument", "Only one auth mechanism allowed: query or header."
            )
        query = request.query_params
        date, expires = query.get("X-Tos-Date", ""), query.get("X-Tos-Expires", "")
        signed_at = parse_tos_date(date)
        if (
            extension not in _MEDIA_TYPES
            or signed_at is None
            or expires != str(URL_LIFETIME_SECONDS)
            or not hmac.compare_digest(
                query.get("X-Tos-Signature", ""), file_signature(name, date, expires)
            )
        ):
            return storage_error(403, "SignatureDoesNotMatch", "The signature does not match.")
        now = self._ctx.clock.now()
        if now >= signed_at + timedelta(seconds=URL_LIFETIME_SECONDS):
            return storage_error(403, "AccessDenied", "Request has expired.")
        view = self._ctx.book.lookup(task_id, now)
        if (
            view is None
            or view.status is not TaskStatus.SUCCEEDED
            or (extension == "png" and not view.task.return_last_frame)
        ):
            return _no_such_key()
        return None

    def _serve(
        self,
        request: Request,
        arrived: datetime,
        fault: FileFault | None,
        task_id: str,
        extension: str,
    ) -> Response:
        media_type = _MEDIA_TYPES[extension]
        if fault is not None and fault.kind == "empty":
            return self._logged(request, arrived, fault, Response(b"", media_type=media_type))
        size, etag, read = self._object(task_id, extension)
        if_range = request.headers.get("if-range")
        wanted = (
            parse_range(request.headers.get("range"), size)
            if if_range is None or if_range == etag
            else None
        )
        headers = {"accept-ranges": "bytes", "etag": etag}
        if isinstance(wanted, Unsatisfiable):
            headers["content-range"] = wanted.content_range
            refused = storage_error(
                416, "InvalidRange", "The requested range is not satisfiable.", headers
            )
            return self._logged(request, arrived, fault, refused)
        start, stop, status = (0, size, 200) if wanted is None else (wanted.start, wanted.stop, 206)
        if wanted is not None:
            headers["content-range"] = wanted.content_range
        headers["content-length"] = str(stop - start)

        def record(status: int, sent: int) -> None:
            self._record(request, arrived, fault, status, sent)

        return MediaResponse(
            status, headers, media_type, read(start, stop), stop - start, fault, record
        )

    def _object(self, task_id: str, extension: str) -> tuple[int, str, Reader]:
        """A file's size, its ``ETag`` and how to read a part of it."""
        if extension == "mp4":
            size = self._ctx.settings.video_bytes
            return size, video_etag(task_id, size), partial(video_chunks, task_id, size)
        frame = last_frame_png(task_id)

        def read_frame(start: int, stop: int) -> Iterator[bytes]:
            yield frame[start:stop]

        return len(frame), f'"{hashlib.sha256(frame).hexdigest()[:32]}"', read_frame

    def _logged(
        self, request: Request, arrived: datetime, fault: FileFault | None, response: Response
    ) -> Response:
        self._record(request, arrived, fault, response.status_code, len(response.body))
        return response

    def _record(
        self, request: Request, arrived: datetime, fault: FileFault | None, status: int, sent: int
    ) -> None:
        self._control.files.add(
            FileRecord(
                arrived,
                request.url.path,
                request.headers.get("range"),
                None if fault is None else fault.kind,
                status,
                sent,
            )
        )


class MediaResponse(Response):
    """A body streamed chunk by chunk, with a ``cut`` or ``stall`` fault applied.

    Hand-written rather than Starlette's ``StreamingResponse``: a cut must end without the
    final body message, which is how an ASGI app has the server drop the connection.
    """

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        media_type: str,
        chunks: Iterator[bytes],
        length: int,
        fault: FileFault | None,
        record: Callable[[int, int], None],
    ) -> None:
        self.status_code = status
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._chunks = chunks
        self._length = length
        self._fault = fault
        self._record = record
        self._sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self._record(self.status_code, 0)
            return
        outcome = CLIENT_CLOSED
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                # A server may keep taking body messages after a hang-up without a word
                # (uvicorn does): without this, a gone reader would cost the whole video.
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self._stream(send)
                outcome = self.status_code
            except OSError:  # servers that do report a hang-up on send
                pass
            finally:
                group.cancel_scope.cancel()
        self._record(outcome, self._sent)

    async def _stream(self, send: Send) -> None:
        fault = self._fault
        kind = None if fault is None else fault.kind
        at: int | None = None
        if fault is not None and kind == "cut":
            at = min(fault.after_bytes, self._length - 1)
        elif fault is not None and kind == "stall":
            at = min(fault.after_bytes, self._length)
        for chunk in self._chunks:
            if fault is not None and at is not None and self._sent + len(chunk) > at:
                head, chunk = chunk[: at - self._sent], chunk[at - self._sent :]
                await self._body(send, head)
                if kind == "cut":
                    return  # no final message: the server closes the connection
                await anyio.sleep(fault.timeout_seconds)
                at = None
            await self._body(send, chunk)
        if fault is not None and at is not None:  # a stall after the last byte
            await anyio.sleep(fault.timeout_seconds)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _body(self, send: Send, chunk: bytes) -> None:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._sent += len(chunk)
        # uvicorn's send returns at once after a hang-up, and at once while its buffer has
        # room: without a checkpoint the hang-up is never seen (and the loop starves).
        await anyio.lowlevel.checkpoint()


def storage_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"Code": code, "Message": message}, status_code=status, headers=headers)


def _no_such_key() -> JSONResponse:
    return storage_error(404, "NoSuchKey", "The specified key does not exist.")


def _fault_answer(fault: FileFault | None) -> Response | None:
    """The answer a fault puts in place of the file, or ``None`` (serve it, maybe altered)."""
    kind = None if fault is None else fault.kind
    if kind == "html":
        return Response(_SOFT_ERROR_PAGE, 200, media_type="text/html")
    if kind == "403":
        return storage_error(403, "AccessDenied", "Request has expired.")
    if kind == "404":
        return _no_such_key()
    if kind == "500":
        return storage_error(
            500, "InternalError", "We encountered an internal error. Please try again."
        )
    if kind == "503":
        return storage_error(
            503, "ServiceUnavailable", "Service is unavailable, please try again later."
        )
    return None
