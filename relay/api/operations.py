"""What each route takes and answers: ``OPERATIONS``, the route-to-spec table, one
``Operation`` per route of ``relay.api.routes`` (and the app's own ``/metrics``). A test holds
the table and the routes equal, so a route cannot go undocumented nor a documented one vanish;
``relay.api.openapi`` builds the OpenAPI document from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from relay.api import keys as api_keys
from relay.api import responses as out
from relay.api import schemas as req

JSON = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """One documented response: a model, or ``None`` for a body the relay passes through."""

    description: str
    model: type[BaseModel] | None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    answers: Mapping[int | str, Answer]
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    """Besides the ones every operation of its kind can answer (see ``_errors``)."""
    auth: bool = True
    idempotent: bool = False
    raw_body: bool = False
    """Takes any body, unparsed (a provider's push; a moderation passed through)."""
    description: str = ""
    store: bool = True
    """Reads the database, so may answer 503 while it is unavailable."""
    example: JSON | None = None
    """A request body that works against the default configuration (its sandbox provider)."""
    name: str = ""
    """The operationId where the rule of ``relay.api.openapi.operation_id`` reads badly."""

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def ok(model: type[BaseModel], description: str = "OK") -> dict[int | str, Answer]:
    return {200: Answer(description, model)}


SUB = "/v1/subscriptions/{sub_id}"
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/v1/me",
        "The caller's account (a no-code tool's connection test)",
        "account",
        ok(out.Me),
        name="me_get",
    ),
    Operation(
        "GET",
        "/v1/callback-secret",
        "The secret that signs task callbacks",
        "account",
        ok(out.CallbackSecret),
        name="callback_secret_get",
    ),
    Operation(
        "POST",
        "/v1/callback-secret/rotate",
        "Rotate the callback secret",
        "account",
        ok(out.RotatedCallbackSecret),
        body=req.RotateSecret,
        body_required=False,
        description="The old secret keeps signing (a second signature) for "
        "grace_seconds, by default 24 h.",
    ),
    Operation(
        "GET",
        "/v1/keys",
        "List the account's API keys (never the keys themselves)",
        "account",
        ok(api_keys.ApiKeyList),
    ),
    Operation(
        "POST",
        "/v1/keys",
        "Issue another API key",
        "account",
        {201: Answer("Issued; the key is shown this once", api_keys.IssuedApiKey)},
        errors=(409,),
        description=f"At most {api_keys.MAX_ACTIVE_KEYS} active keys (409 too_many_keys). "
        "No Idempotency-Key: the answer holds a secret the relay does not keep.",
    ),
    Operation(
        "DELETE",
        "/v1/keys/{key_id}",
        "Revoke an API key",
        "account",
        ok(api_keys.ApiKey),
        name="keys_revoke",
        errors=(409,),
        description="At once: its requests are refused (401) and the dashboard sessions it "
        "opened end, on every instance. The account's last active key cannot be revoked "
        "(409 last_active_key): issue another first.",
    ),
    Operation(
        "POST",
        "/v1/tasks",
        "Register a task",
        "tasks",
        {201: Answer("Registered", out.Task)},
        body=req.CreateTask,
        idempotent=True,
        errors=(402, 409, 502),
        example={
            "provider": "sandbox",
            "provider_task_id": "cgt-20260606160057-6bbjd",
            "callback_url": "https://example.com/hooks/video",
            "reference": "order-1234",
            "metadata": {"projectId": "proj_1001"},
        },
        description="Either track a task you created at the provider "
        "(provider_task_id) or have the relay submit one (input).",
    ),
    Operation("GET", "/v1/tasks", "List tasks", "tasks", ok(out.TaskPage), query=req.TaskList),
    Operation("GET", "/v1/tasks/{task_id}", "Read a task", "tasks", ok(out.Task)),
    Operation(
        "POST", "/v1/tasks/{task_id}/refresh", "Poll the provider now", "tasks", ok(out.Task)
    ),
    Operation(
        "POST",
        "/v1/tasks/{task_id}/cancel",
        "Cancel a task",
        "tasks",
        ok(out.Task),
        errors=(409, 502),
        description="Where the provider supports it; 409 where it cannot or the task has ended.",
    ),
    Operation(
        "DELETE",
        "/v1/tasks/{task_id}/outputs",
        "Delete the task's stored video",
        "tasks",
        ok(out.Task),
        name="tasks_delete_outputs",
        description="Removes the stored files (outputs.store); the task records when and why, "
        "and its video_url is the provider's link again. 404 when nothing was copied.",
    ),
    Operation(
        "GET",
        "/v1/outputs/{token}",
        "A stored video (the stable link in video_url)",
        "tasks",
        {
            200: Answer("The stored file", None, "*/*"),
            206: Answer("A range of it (Range: bytes=…)", None, "*/*"),
            307: Answer(
                "Redirect: to a presigned URL of the bucket, or to the provider's link while "
                "the copy is not stored",
                None,
                "*/*",
            ),
        },
        errors=(410, 416),
        auth=False,
        description="No API key: the signed token is the credential, and rotating secret_key "
        "revokes every link. HEAD is answered too.",
    ),
    Operation(
        "GET",
        "/v1/usage",
        "What your tasks cost",
        "tasks",
        ok(out.Usage),
        name="usage_get",
        query=req.UsageQuery,
        description="Totals per currency over the tasks that succeeded in [since, until) "
        "(default: the last 30 days), from the configured prices; group_by day, provider, "
        "model or route.",
    ),
    Operation(
        "GET",
        "/v1/providers",
        "The configured providers and their health",
        "providers",
        ok(out.ProviderList),
    ),
    Operation(
        "POST",
        "/v1/providers/{provider}/moderations",
        "Image moderation, passed through to the provider",
        "providers",
        {
            "2XX": Answer(
                "The provider's JSON answer and status, the provider key and configured "
                "header values replaced by ***",
                None,
                "*/*",
            ),
            "4XX": Answer(
                "An Error: the provider refused the request (provider_rejected, quoting its "
                "status and words), or the relay's own refusal (not JSON, no such provider, "
                "no moderation there)",
                None,
                "*/*",
            ),
        },
        raw_body=True,
        errors=(400, 404, 409, 413, 502),
        name="providers_moderate",
    ),
    Operation(
        "POST",
        "/v1/inbound/{provider}/{token}",
        "A push provider's webhook",
        "providers",
        {202: Answer("Accepted as a hint; the relay confirms with the provider", out.Received)},
        raw_body=True,
        auth=False,
        errors=(413,),
        name="inbound_push",
        description="No API key: the signed token in the path is the credential. "
        "Anything wrong with it is a 404 that changes nothing.",
    ),
    Operation(
        "GET", "/v1/events", "The event feed", "events", ok(out.EventPage), query=req.EventList
    ),
    Operation(
        "GET",
        "/v1/events/stream",
        "The account's events live (Server-Sent Events)",
        "events",
        {
            200: Answer(
                "A stream of events: each `data` is an event envelope, `id` its id, `event` its "
                "type; comment lines are heartbeats",
                None,
                "text/event-stream",
            )
        },
        query=req.StreamQuery,
        errors=(429,),
        description="Reconnect with the Last-Event-ID header (or last_event_id) to get what "
        "was missed first, in order, none twice. A reader that falls too far behind gets a "
        "last `error` event (stream_overflow) and should reconnect the same way.",
    ),
    Operation("GET", "/v1/events/{event_id}", "Read an event", "events", ok(out.Event)),
    Operation(
        "GET",
        "/v1/events/{event_id}/deliveries",
        "An event's deliveries, with every attempt",
        "events",
        ok(out.EventDeliveries),
        name="events_list_deliveries",
    ),
    Operation(
        "POST",
        "/v1/events/{event_id}/redeliver",
        "Send an event again",
        "events",
        {202: Answer("Queued", out.Redelivered)},
        body=req.Redeliver,
        body_required=False,
        description="To all its destinations, or to destination_id only.",
    ),
    Operation(
        "POST",
        "/v1/subscriptions",
        "Subscribe (REST hook)",
        "subscriptions",
        {201: Answer("Subscribed; the secret is shown this once", out.SubscriptionWithSecret)},
        body=req.CreateSubscription,
        idempotent=True,
        example={
            "url": "https://example.com/hooks/relay",
            "event_types": ["task.succeeded", "task.failed"],
            "description": "the orders backend",
        },
    ),
    Operation(
        "GET",
        "/v1/subscriptions",
        "List subscriptions",
        "subscriptions",
        ok(out.SubscriptionPage),
        query=req.SubscriptionList,
    ),
    Operation("GET", SUB, "Read a subscription", "subscriptions", ok(out.Subscription)),
    Operation(
        "PATCH",
        SUB,
        "Change a subscription",
        "subscriptions",
        ok(out.Subscription),
        body=req.UpdateSubscription,
    ),
    Operation("DELETE", SUB, "Unsubscribe", "subscriptions", ok(out.Deleted)),
    Operation(
        "POST",
        SUB + "/enable",
        "Enable a disabled subscription",
        "subscriptions",
        ok(out.EnabledSubscription),
        body=req.EnableSubscription,
        body_required=False,
        description="By default re-sends what it missed while disabled.",
    ),
    Operation(
        "POST", SUB + "/disable", "Disable a subscription", "subscriptions", ok(out.Subscription)
    ),
    Operation(
        "POST",
        SUB + "/rotate-secret",
        "Rotate a subscription's secret",
        "subscriptions",
        ok(out.SubscriptionWithSecret),
        body=req.RotateSecret,
        body_required=False,
    ),
    Operation(
        "POST",
        SUB + "/test",
        "Send a relay.test event now",
        "subscriptions",
        ok(out.SentTest, "What the receiver answered"),
        errors=(409,),
    ),
    Operation(
        "POST",
        SUB + "/replay",
        "Re-send the events of a time range",
        "subscriptions",
        {202: Answer("Queued", out.ReplayAccepted)},
        body=req.ReplayRequest,
        body_required=False,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/v1/submissions",
        "List submissions (what the relay sent to providers)",
        "tasks",
        ok(out.SubmissionPage),
        query=req.SubmissionList,
        description="?state=uncertain lists the ones whose provider answer was lost.",
    ),
    Operation(
        "GET",
        "/v1/submissions/{submission_id}",
        "Read a submission",
        "tasks",
        ok(out.Submission),
    ),
    Operation(
        "POST",
        "/v1/submissions/{submission_id}/resolve",
        "Settle an uncertain submission",
        "tasks",
        ok(out.Submission),
        body=req.ResolveSubmission,
        errors=(409,),
        example={"provider_task_id": "cgt-20260606160057-6bbjd"},
        description="provider_task_id: the task found at the provider, tracked with the "
        "original callback, reference and metadata. abandon: nothing was created; a "
        "retry with the same Idempotency-Key submits again.",
    ),
    Operation(
        "GET",
        "/healthz",
        "Liveness",
        "operations",
        ok(out.Healthy),
        auth=False,
        store=False,
        name="healthz",
    ),
    Operation(
        "GET",
        "/readyz",
        "Readiness: the database takes a write",
        "operations",
        {
            200: Answer("Ready", out.Ready),
            503: Answer("The database cannot take a write (down, or its disk full)", out.NotReady),
        },
        auth=False,
        store=False,
        name="readyz",
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (served by every role)",
        "operations",
        {200: Answer("Prometheus text format", None, "text/plain")},
        auth=False,
        description="Aggregate counts only: no ids, URLs or secrets.",
        name="metrics",
    ),
    Operation(
        "GET",
        "/openapi.json",
        "This document",
        "operations",
        {200: Answer("OpenAPI 3.1", None)},
        auth=False,
        store=False,
        name="openapi",
    ),
    Operation(
        "GET",
        "/docs",
        "This document, as a page",
        "operations",
        {200: Answer("HTML", None, "text/html")},
        auth=False,
        store=False,
        name="docs",
    ),
)

PATH_PARAMS = {
    "task_id": "A task's id (task_…)",
    "event_id": "An event's id (evt_…)",
    "sub_id": "A subscription's id (sub_…)",
    "key_id": "An API key's id (key_…)",
    "submission_id": "A submission's id (smb_…)",
    "provider": "A configured provider's name",
    "token": "The signed token the relay gave the provider",
}
