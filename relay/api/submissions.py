"""The submission routes (DESIGN §11): what the relay sent to providers on an account's
behalf, and settling the ones whose answer was lost (``relay.tasks.submitting``).

    GET  /v1/submissions                     newest first; ``state=uncertain`` for the open ones
    GET  /v1/submissions/{id}
    POST /v1/submissions/{id}/resolve        {"provider_task_id": …} or {"abandon": true}
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.http import (
    authenticate,
    cursor_position,
    json_response,
    next_cursor,
    read_json,
    services,
)
from relay.api.schemas import ResolveSubmission, SubmissionList, parse
from relay.errors import UnknownSubmission
from relay.submissions import Submission


async def list_submissions(request: Request) -> Response:
    account = await authenticate(request)
    q = parse(SubmissionList, dict(request.query_params))
    page = await services(request).store.list_submissions(
        account.id, q.state, cursor_position(request, q.cursor, "desc"), q.limit
    )
    return json_response(
        {
            "data": [s.as_json() for s in page.items],
            "next_cursor": next_cursor(request, page.next_after, "desc"),
        }
    )


async def get_submission(request: Request) -> Response:
    account = await authenticate(request)
    return json_response((await _submission(request, account.id)).as_json())


async def resolve_submission(request: Request) -> Response:
    """With ``provider_task_id``: the caller found the task at the provider; the relay
    tracks it with everything the original request asked (callback, reference, metadata).
    With ``abandon``: nothing was created; a retry with the same Idempotency-Key submits
    again."""
    account = await authenticate(request)
    body = parse(ResolveSubmission, await read_json(request))
    svc = services(request)
    submission_id = request.path_params["submission_id"]
    await svc.tracker.submitter.resolve(account.id, submission_id, body.provider_task_id)
    return json_response((await _submission(request, account.id)).as_json())


async def _submission(request: Request, account_id: str) -> Submission:
    submission_id = request.path_params["submission_id"]
    found = await services(request).store.get_submission(account_id, submission_id)
    if found is None:
        raise UnknownSubmission(submission_id)
    return found


def submission_routes() -> list[Route]:
    return [
        Route("/v1/submissions", list_submissions, methods=["GET"]),
        Route("/v1/submissions/{submission_id}", get_submission, methods=["GET"]),
        Route("/v1/submissions/{submission_id}/resolve", resolve_submission, methods=["POST"]),
    ]
