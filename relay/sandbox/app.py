"""The sandbox as one Starlette app, for the relay to mount (``Mount("/sandbox", app=...)``).

It emulates every provider preset at that provider's own paths, so a preset works with its
base URL swapped for ``{relay}/sandbox/<flavor>``. Layout under the mount point::

    /ark/api/v3/contents/generations/tasks[/{id}]                  Ark (POST, GET, DELETE)
    /apiyi/seedance/api/v3/contents/generations/tasks[/{id}]       apiyi (Ark)
    /cubicspaces/api/v3/contents/generations/tasks[/{id}]          cubicspaces' Ark mirror
    /cubicspaces/v1/video/generations[/{id}]                       cubicspaces unified
    /cubicspaces/v1/images/moderations, /cubicspaces/v1/assets/moderations
    /naci/v1/video/generations[/{id}]                              naci unified
    /vastnum/v1/video/generations[/{id}]                           vastnum unified
    /newapi/v1/video/generations[/{id}], /newapi/v1/videos/{id}    plain new-api
    /seedance2ink/api/open/v1/video/generations[/{id}[/cancel]]    seedance2.ink
    /seedance2ink/api/open/v1/models
    /files/{id}.mp4 | /files/{id}.png               what the signed (TOS-style) URLs serve
    /pub-bucket/open-api-results/{id}.mp4           seedance2.ink's public result URLs
    /_control/faults | /_control/requests | /_control/pushes     the control API (only
    /_control/file-faults | /_control/files        with ``control``: the relay serves it
                                   only when every provider is its own sandbox, see
                                   ``relay.app``)

The files (:mod:`relay.sandbox.files`) are ``video_bytes`` long (``SandboxSettings``), their
bytes computable from the task id alone (:mod:`relay.sandbox.media`), streamed with range
requests; signed links expire on the sandbox's clock and a task Ark's DELETE forgot no
longer serves them.

The app also works unmounted (tests drive it directly); every URL it hands out is built
from where it is actually served. Each :class:`Sandbox` owns its memory (tasks it created,
faults, request and push logs); two never share state, and a fresh one still answers for
ids an earlier one issued. A mounted Starlette app gets no lifespan of its own, so whoever
mounts it calls :meth:`Sandbox.aclose` at shutdown (it cancels pending seedance2.ink pushes
and closes their HTTP client).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relay.clock import Clock
from relay.sandbox.ark import ARK_VARIANTS, ArkEmulation
from relay.sandbox.control import CLIENT_CLOSED, Control
from relay.sandbox.faults import Family
from relay.sandbox.files import FileServer
from relay.sandbox.moderation import ModerationEmulation
from relay.sandbox.push import PushScheduler
from relay.sandbox.seedance2ink import InkEmulation
from relay.sandbox.simulation import SandboxSettings, TaskBook
from relay.sandbox.timeline import Flavor
from relay.sandbox.unified import UNIFIED_FLAVORS, UnifiedEmulation
from relay.sandbox.web import Endpoint, SandboxContext


class Sandbox:
    """One sandbox instance: its ASGI ``app`` and what tests may inspect.

    ``push_transport`` replaces the network for seedance2.ink pushes (tests inject an
    ``httpx.MockTransport``); ``push_retry_delays`` are the pauses before each retry of a
    push the receiver did not take with a 2xx. Without ``control`` the control API is not
    served (404), so no fault can be set.
    """

    def __init__(
        self,
        settings: SandboxSettings,
        clock: Clock,
        *,
        push_transport: httpx.AsyncBaseTransport | None = None,
        push_retry_delays: Sequence[float] = (1.0, 5.0),
        push_timeout: float = 10.0,
        control: bool = True,
    ) -> None:
        self._clock = clock
        self.control_served = control
        self.book = TaskBook()
        self.pushes = PushScheduler(
            clock, transport=push_transport, retry_delays=push_retry_delays, timeout=push_timeout
        )
        self.control = Control(clock, self.pushes)
        self._context = SandboxContext(self.book, settings, clock)
        self.ink = InkEmulation(self._context, self.pushes)
        self.files = FileServer(self._context, self.control, self.ink.lookup)
        self.app = Starlette(
            routes=self.routes(), exception_handlers={ClientDisconnect: _client_gone}
        )
        self.app.state.sandbox = self

    def routes(self) -> list[BaseRoute]:
        guarded: list[tuple[Flavor, Family, Endpoint]] = []
        for variant in ARK_VARIANTS:
            for endpoint in ArkEmulation(self._context, variant, self.pushes).endpoints():
                guarded.append((variant.flavor, Family.ARK, endpoint))
        for flavor in UNIFIED_FLAVORS:
            for endpoint in UnifiedEmulation(self._context, flavor).endpoints():
                guarded.append((flavor, Family.GATEWAY, endpoint))
        for endpoint in ModerationEmulation(self._context).endpoints():
            guarded.append((Flavor.CUBICSPACES, Family.GATEWAY, endpoint))
        for endpoint in self.ink.endpoints():
            guarded.append((Flavor.SEEDANCE2INK, Family.SEEDANCE2INK, endpoint))
        # Flat routes, not Mounts: a Mount would move ``root_path``, which locates the files.
        routes: list[BaseRoute] = [
            Route(
                endpoint.path,
                self.control.guard(flavor, family, endpoint.handler),
                methods=list(endpoint.methods),
            )
            for flavor, family, endpoint in guarded
        ]
        routes += [
            *self.files.routes(),
            *(self.control.routes() if self.control_served else ()),
        ]
        return routes

    async def aclose(self) -> None:
        await self.pushes.aclose()


def sandbox_app(
    settings: SandboxSettings,
    clock: Clock,
    *,
    push_transport: httpx.AsyncBaseTransport | None = None,
    push_retry_delays: Sequence[float] = (1.0, 5.0),
) -> Starlette:
    """A new sandbox with its own memory; mount it at ``/sandbox`` in the relay. The
    :class:`Sandbox` is at ``app.state.sandbox`` (call its ``aclose()`` at shutdown)."""
    return Sandbox(
        settings, clock, push_transport=push_transport, push_retry_delays=push_retry_delays
    ).app


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The sandbox is served on the relay's port to anyone: a caller hanging up mid-body is
    # routine there, not a traceback in the relay's log. (Nobody reads this answer.)
    return Response(status_code=CLIENT_CLOSED)
