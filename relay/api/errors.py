"""The HTTP edge of the error tree (``relay.errors``): the one table of which status and code
answer each error, and the JSON answer built from it.

The domain says what happened (``UnknownTask``, ``TaskFinished``); only this table says how
HTTP puts it. The JSON API answers with it (``exception_handlers``, idempotency keys keep the
answer it gives), and so do the dashboard's error pages (``relay.dashboard.render``), so an
error is the same status wherever it is met. A class is looked up along its MRO: a subclass
without a row of its own answers as its nearest listed ancestor. An error no row covers is a
bug and answers 500, which ``tests/api/test_errors.py`` keeps from happening to any class of
the domain or edge branch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from relay import errors as e

log = logging.getLogger("relay.api")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    code: str


ANSWERS: Final[Mapping[type[e.RelayError], Answer]] = MappingProxyType(
    {
        # the domain
        e.InvalidInput: Answer(400, "invalid_input"),
        e.UntranslatableInput: Answer(400, "unsupported_by_provider"),
        e.InvalidTimeRange: Answer(400, "invalid_request"),
        e.DestinationNotAllowed: Answer(400, "destination_not_allowed"),
        # A provider is named in the body of a registration, so an unknown one is bad
        # input there; where a URL names it, the route answers NoSuchResource (404).
        e.UnknownProvider: Answer(400, "unknown_provider"),
        e.ProviderRejected: Answer(400, "provider_rejected"),
        e.ModerationRefused: Answer(400, "provider_rejected"),
        e.UnknownObject: Answer(404, "not_found"),
        e.DuplicateTask: Answer(409, "task_exists"),
        e.TooManyKeys: Answer(409, "too_many_keys"),
        e.LastActiveKey: Answer(409, "last_active_key"),
        e.ProviderCannot: Answer(409, "not_supported"),
        e.TaskFinished: Answer(409, "task_finished"),
        e.CancelRefused: Answer(409, "cancel_refused"),
        e.SubscriptionDisabled: Answer(409, "disabled"),
        e.ReplayTargetDisabled: Answer(409, "conflict"),
        e.BudgetExceeded: Answer(402, "budget_exceeded"),
        e.TooManyStreams: Answer(429, "too_many_streams"),
        e.EndpointNotVerified: Answer(400, "endpoint_not_verified"),
        e.ProviderUnavailable: Answer(502, "provider_unavailable"),
        # DESIGN §11: 502 to the request that met it, 409 to a retry with its key.
        e.SubmissionUncertain: Answer(502, "submission_uncertain"),
        e.SubmissionStillUncertain: Answer(409, "submission_uncertain"),
        e.SubmissionInFlight: Answer(409, "submission_in_flight"),
        e.SubmissionKeyReused: Answer(409, "idempotency_key_reused"),
        e.SubmissionSettled: Answer(409, "submission_settled"),
        # Stored outputs (relay.outputs): a refused body is a failed copy, recorded, not
        # answered; 502 if a request ever meets one (the provider's body was refused).
        e.OutputRejected: Answer(502, "output_rejected"),
        e.OutputStorageUnavailable: Answer(503, "output_storage_unavailable"),
        e.UnsatisfiableRange: Answer(416, "range_not_satisfiable"),
        e.OutputDeleted: Answer(410, "output_deleted"),
        e.OutputNotAvailable: Answer(404, "output_not_available"),
        # the request itself
        e.BadRequest: Answer(400, "invalid_request"),
        e.InvalidJson: Answer(400, "invalid_json"),
        e.UnstorableInput: Answer(400, "invalid_request"),
        e.InvalidCursor: Answer(400, "invalid_cursor"),
        e.InvalidIdempotencyKey: Answer(400, "invalid_idempotency_key"),
        e.Unauthorized: Answer(401, "unauthorized"),
        e.CsrfRefused: Answer(403, "csrf_refused"),
        e.NoSuchResource: Answer(404, "not_found"),
        e.IdempotencyKeyReused: Answer(409, "idempotency_key_reused"),
        e.IdempotencyKeyInUse: Answer(409, "idempotency_key_in_use"),
        e.PayloadTooLarge: Answer(413, "payload_too_large"),
        # nginx's "client closed request": what the access log shows; nobody reads it.
        e.ClientDisconnected: Answer(499, "client_closed_request"),
        e.TooManyRequests: Answer(429, "too_many_requests"),
    }
)


def answer_for(exc: BaseException) -> Answer | None:
    """The status and code ``exc`` is answered with; None: no row covers it (a bug)."""
    return answer_for_class(type(exc))


def answer_for_class(cls: type[BaseException]) -> Answer | None:
    for ancestor in cls.__mro__:
        found = ANSWERS.get(ancestor)
        if found is not None:
            return found
    return None


def error_response(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


async def answer_error(request: Request, exc: Exception) -> Response:
    """The JSON answer to an error of the table (the app registers it for every row)."""
    answer = answer_for(exc)
    if answer is None:  # pragma: no cover - registered only for the table's classes
        raise exc
    response = error_response(answer.status, answer.code, str(exc))
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


STORE_RETRY_AFTER = 5
"""Seconds a client is asked to wait (``Retry-After``) while the database is unavailable
(down, unreachable, or its disk full): the relay resumes by itself once it is back."""


STORE_ERROR_LOG_EVERY = 10.0
"""Seconds between two log lines about requests the database failed. An outage fails every
request, and a line for each would flood the log (on a full disk, perhaps the very disk)."""


class _Reported:
    """When the last store error was logged, and how many went unlogged since."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.unlogged = 0


def _store_unavailable(reported: _Reported) -> Handler:
    async def answer(request: Request, exc: Exception) -> Response:
        # The database is down or refused: the request may be retried, nothing was
        # half-done (every store call is one transaction). What the database said stays in
        # the log.
        now = time.monotonic()
        if now - reported.at >= STORE_ERROR_LOG_EVERY:
            more = f" ({reported.unlogged} more since the last report)" if reported.unlogged else ""
            log.error("database error on %s %s: %s%s", request.method, request.url.path, exc, more)
            reported.at, reported.unlogged = now, 0
        else:
            reported.unlogged += 1
        response = error_response(
            503, "database_unavailable", "the database is unavailable; retry shortly"
        )
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response

    return answer


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Routine (a client timing out while it uploads), not a fault: no traceback. Whoever
    # was reading the body (a route, the dashboard's forms) is answered the same.
    log.debug("client hung up during the request body of %s %s", request.method, request.url.path)
    return await answer_error(request, e.ClientDisconnected("the client disconnected"))


async def _no_route(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", f"no route {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    response = error_response(
        405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
    )
    # RFC 9110 requires Allow on a 405. Starlette names only the methods of the first route
    # whose path matched, and a path here is served by one route per method: ask them all.
    # Matched from the top again: a mount that was entered has moved root_path on.
    top = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    scope = {**request.scope, "root_path": top}
    allowed = _methods(request.app.router.routes, scope)
    response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


def _methods(routes: Sequence[BaseRoute], scope: Scope) -> set[str]:
    """The methods some route of ``routes`` (or of a mount among them) serves the path with."""
    found: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            found |= _methods(route.routes, {**scope, **child})
        elif isinstance(route, Route):
            found |= route.methods or set()
    return found


Handler = Callable[[Request, Exception], Any]


def exception_handlers() -> dict[Any, Handler]:
    """The Starlette app's handlers: every row of the table, the database being down, a
    client gone mid-body, and Starlette's own 404 and 405 (in the same JSON shape)."""
    handlers: dict[Any, Handler] = dict.fromkeys(ANSWERS, answer_error)
    handlers[e.StoreError] = _store_unavailable(_Reported())
    handlers[ClientDisconnect] = _client_gone
    handlers[404] = _no_route
    handlers[405] = _not_allowed
    return handlers
