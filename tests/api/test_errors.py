"""The HTTP edge's error table: every domain and edge error has a status and a code, so none
can reach a client as a 500, and the answers are the ones clients have always had."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay import errors
from relay.api.errors import ANSWERS, Answer, answer_for, answer_for_class, exception_handlers
from relay.net.guard import DestinationRefused
from relay.provider_answers import FaultKind, ProviderFault

BRANCHES = (errors.DomainError, errors.EdgeError)
OUTSIDE_THE_TABLE = {
    errors.ConfigError,  # the operator's configuration: the CLI says it, no request meets it
    errors.StoreError,  # the database is down: 503 from its own handler, details logged
    errors.MigrationError,
    DestinationRefused,  # recorded on a delivery attempt, never answered
}


def subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def raisable() -> list[type[BaseException]]:
    """Every class of the domain and edge branches a request may meet (not the branch roots
    or private helpers)."""
    found = {c for root in BRANCHES for c in subclasses(root) if not c.__name__.startswith("_")}
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", raisable(), ids=lambda c: c.__name__)
def test_every_domain_and_edge_error_has_a_status_and_a_code(cls: type[BaseException]) -> None:
    answer = answer_for_class(cls)
    assert answer is not None, f"{cls.__name__} has no row in relay.api.errors.ANSWERS"
    assert 400 <= answer.status < 600
    assert re.fullmatch(r"[a-z_]+", answer.code)


def test_every_relay_error_is_on_a_branch_or_deliberately_outside_the_table() -> None:
    # A new error put straight under RelayError would escape the walk above.
    stray = {
        c
        for c in subclasses(errors.RelayError)
        if not issubclass(c, BRANCHES) and c not in OUTSIDE_THE_TABLE
    }
    assert not stray, f"put these under DomainError or EdgeError: {stray}"
    assert all(answer_for_class(c) is None for c in OUTSIDE_THE_TABLE)


def test_the_table_holds_only_domain_and_edge_errors() -> None:
    assert all(issubclass(c, BRANCHES) for c in ANSWERS)


FAULT = ProviderFault(FaultKind.INVALID_REQUEST, False, "MissingParameter: content")


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (errors.UnknownProvider("nope"), 400, "unknown_provider", "unknown provider 'nope'"),
        (errors.InvalidInput("input.prompt", "is empty"), 400, "invalid_input", None),
        (errors.UntranslatableInput("input.ratio", "no"), 400, "unsupported_by_provider", None),
        (errors.InvalidTimeRange("since ..."), 400, "invalid_request", None),
        (
            errors.DestinationNotAllowed("url", "refused: 127.0.0.1 is a loopback address"),
            400,
            "destination_not_allowed",
            "url: refused: 127.0.0.1 is a loopback address",
        ),
        (
            errors.ProviderRejected(FAULT),
            400,
            "provider_rejected",
            "the provider refused the task: MissingParameter: content",
        ),
        (errors.UnknownTask("task_1"), 404, "not_found", "no task task_1"),
        (errors.UnknownEvent("no event evt_1"), 404, "not_found", None),
        (errors.UnknownSubscription("no subscription sub_1"), 404, "not_found", None),
        (errors.UnknownDestination("event evt_1 has no destination"), 404, "not_found", None),
        (
            errors.DuplicateTask("task_1"),
            409,
            "task_exists",
            "this provider task is already tracked as task_1",
        ),
        (
            errors.DuplicateTask(None),
            409,
            "task_exists",
            "this provider task is already tracked by another account",
        ),
        (errors.NotCancellable("no cancel"), 409, "not_supported", None),
        (errors.ProviderCannot("no moderation"), 409, "not_supported", None),
        (errors.TaskFinished("succeeded"), 409, "task_finished", None),
        (errors.CancelRefused("refused"), 409, "cancel_refused", None),
        (errors.SubscriptionDisabled("disabled"), 409, "disabled", None),
        (errors.ReplayTargetDisabled("disabled"), 409, "conflict", None),
        (errors.ProviderUnavailable("down"), 502, "provider_unavailable", None),
        (errors.SubmissionUncertain("smb_1", "lost"), 502, "submission_uncertain", None),
        (
            errors.SubmissionStillUncertain("smb_1", "lost", retry_after=None),
            409,
            "submission_uncertain",
            None,
        ),
        (errors.SubmissionKeyReused("another"), 409, "idempotency_key_reused", None),
        (errors.SubmissionInFlight("waiting"), 409, "submission_in_flight", None),
        (errors.SubmissionSettled("settled"), 409, "submission_settled", None),
        (errors.UnknownSubmission("smb_1"), 404, "not_found", "no submission smb_1"),
        (errors.BadRequest("nothing to change"), 400, "invalid_request", None),
        (errors.InvalidJson("not JSON"), 400, "invalid_json", None),
        (errors.InvalidCursor("bad cursor"), 400, "invalid_cursor", None),
        (errors.InvalidIdempotencyKey("bad key"), 400, "invalid_idempotency_key", None),
        (errors.Unauthorized("sign in"), 401, "unauthorized", None),
        (errors.CsrfRefused("stale"), 403, "csrf_refused", None),
        (errors.NoSuchResource("no such inbound webhook"), 404, "not_found", None),
        (errors.IdempotencyKeyReused("reused"), 409, "idempotency_key_reused", None),
        (errors.IdempotencyKeyInUse("in use", retry_after=3), 409, "idempotency_key_in_use", None),
        (errors.PayloadTooLarge("too big"), 413, "payload_too_large", None),
        (errors.TooManyRequests("slow down", retry_after=7), 429, "too_many_requests", None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_todays_answers(error: Exception, status: int, code: str, message: str | None) -> None:
    assert answer_for(error) == Answer(status, code)
    if message is not None:
        assert str(error) == message


def test_a_subclass_without_a_row_answers_as_its_nearest_ancestor() -> None:
    class UnknownWidget(errors.UnknownObject):
        pass

    assert answer_for(UnknownWidget("no widget w_1")) == Answer(404, "not_found")


def _raising(error: Exception) -> Route:
    async def endpoint(request: Request) -> Response:
        raise error

    return Route(f"/{type(error).__name__}", endpoint, methods=["GET"])


async def test_the_app_answers_errors_as_json_from_the_table() -> None:
    app = Starlette(
        routes=[
            _raising(errors.UnknownTask("task_1")),
            _raising(errors.TooManyRequests("slow down", retry_after=7)),
            _raising(errors.StoreError("connection refused by 10.0.0.5")),
        ],
        exception_handlers=exception_handlers(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        unknown = await client.get("/UnknownTask")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"error": {"code": "not_found", "message": "no task task_1"}},
        )
        limited = await client.get("/TooManyRequests")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
        assert limited.json()["error"]["code"] == "too_many_requests"
        down = await client.get("/StoreError")
        assert down.headers["retry-after"] == "5"
        assert (down.status_code, down.json()) == (
            503,
            {
                "error": {
                    "code": "database_unavailable",
                    "message": "the database is unavailable; retry shortly",
                }
            },
        )
        nowhere = await client.get("/nowhere")
        assert (nowhere.status_code, nowhere.json()["error"]) == (
            404,
            {"code": "not_found", "message": "no route /nowhere"},
        )
        wrong = await client.post("/UnknownTask")
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
