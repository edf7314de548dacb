"""The sandbox as one Starlette app, for the relay to mount (``Mount("/sandbox", app=...)``).

Layout under the mount point::

    /ark/api/v3/contents/generations/tasks[/{id}]   the Ark dialect (POST, GET, DELETE)
    /files/{id}.mp4 | /files/{id}.png               what the signed video/last-frame URLs serve

so with the relay at ``http://host:port`` the Ark base URL is
``http://host:port/sandbox/ark/api/v3``. The app also works unmounted (tests drive it
directly); every URL it hands out is built from where it is actually served.

Each app owns its task memory (:class:`~relay.sandbox.simulation.TaskBook`); two apps never
share state, and a fresh app still answers for ids an earlier one issued.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from relay.clock import Clock
from relay.sandbox.ark import ArkEmulation
from relay.sandbox.simulation import (
    URL_LIFETIME_SECONDS,
    SandboxSettings,
    TaskBook,
    file_signature,
    parse_tos_date,
)

FILES_PATH = "/files"

# Just enough bytes for a downloader to see the right kind of file: an MP4 ``ftyp`` box
# and the PNG signature.
_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_PNG = b"\x89PNG\r\n\x1a\n"
_MEDIA = {"mp4": ("video/mp4", _MP4), "png": ("image/png", _PNG)}


def sandbox_app(settings: SandboxSettings, clock: Clock) -> Starlette:
    """A new sandbox with its own memory; mount it at ``/sandbox`` in the relay."""
    sandbox = _Sandbox(settings, clock)
    return Starlette(routes=sandbox.routes())


class _Sandbox:
    def __init__(self, settings: SandboxSettings, clock: Clock) -> None:
        self._clock = clock
        self.book = TaskBook()
        self.ark = ArkEmulation(self.book, settings, clock, files_path=FILES_PATH)

    def routes(self) -> list[BaseRoute]:
        files = Route(FILES_PATH + "/{name}", self.file, methods=["GET"])
        return [*self.ark.routes(), files]

    async def file(self, request: Request) -> Response:
        """Serve a signed file the way object storage does: the query string is the credential.

        Real TOS refuses a presigned URL that also carries an ``Authorization`` header,
        which is exactly the mistake the provider pages warn about; so does the sandbox.
        """
        if "authorization" in request.headers:
            return _storage_error(
                400, "InvalidArgument", "Only one auth mechanism allowed: query or header."
            )
        name = request.path_params["name"]
        media = _MEDIA.get(name.rpartition(".")[2])
        query = request.query_params
        date, expires = query.get("X-Tos-Date", ""), query.get("X-Tos-Expires", "")
        signed_at = parse_tos_date(date)
        expected = file_signature(name, date, expires)
        if (
            media is None
            or signed_at is None
            or expires != str(URL_LIFETIME_SECONDS)
            or not hmac.compare_digest(query.get("X-Tos-Signature", ""), expected)
        ):
            return _storage_error(403, "SignatureDoesNotMatch", "The signature does not match.")
        if self._clock.now() >= signed_at + timedelta(seconds=URL_LIFETIME_SECONDS):
            return _storage_error(403, "AccessDenied", "Request has expired.")
        media_type, content = media
        return Response(content, media_type=media_type)


def _storage_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"Code": code, "Message": message}, status_code=status)
