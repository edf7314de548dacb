"""Which doors a relay serves (``relay.config.doors``), as routes for ``relay.app``."""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.routing import Route

from relay.config.doors import FrontDoorSettings
from relay.doors.ark_routes import ark_routes
from relay.doors.openai_routes import openai_routes

log = logging.getLogger("relay.doors")


def door_routes(doors: FrontDoorSettings, targets: Collection[str]) -> list[Route]:
    """The routes of every enabled door whose provider or route is among ``targets``
    (the configured providers and routes); a door aimed elsewhere is left out, and said so."""
    served: list[tuple[str, bool, str, list[Route]]] = [
        ("ark", doors.ark.enabled, doors.ark.provider, ark_routes(doors.ark.provider)),
        (
            "openai",
            doors.openai.enabled,
            doors.openai.provider,
            openai_routes(doors.openai.provider, doors.openai.model),
        ),
    ]
    found: list[Route] = []
    for name, enabled, provider, routes in served:
        if not enabled:
            continue
        if provider not in targets:
            log.warning(
                "front_doors.%s is not served: its provider %r is neither a configured "
                "provider nor a route",
                name,
                provider,
            )
            continue
        found += routes
    return found
