"""The ``webhooks:`` section of the OpenAPI document (OpenAPI 3.1): what the relay POSTs to a
subscription or a task's callback URL, one entry per event type.

Built from ``EventType`` itself, so a new type is documented the day it is added: a task
event carries the task (``Task``), ``relay.test`` the subscription tested, and any other
type (the operational ones about the account's relay: a subscription disabled, a provider
down) a JSON object described in the README, until it has a model of its own here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from relay.api import responses as out
from relay.models import EventType

JSON = dict[str, Any]
Ref = Callable[[type[BaseModel]], JSON]
Add = Callable[[str, JSON], JSON]

_DATA_MODELS: dict[EventType, type[BaseModel]] = {EventType.RELAY_TEST: out.RelayTestData}

SIGNATURE_HEADERS: list[JSON] = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event's id: the same on every retry and replay (deduplicate on it).",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds when this attempt was signed; refuse one too old.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "Standard Webhooks: space-separated v1,<base64 HMAC-SHA256> of "
        '"{webhook-id}.{webhook-timestamp}.{body}" with the whsec_ secret of the '
        "subscription (or the account's callback secret); two while a rotated secret is in "
        "its grace period.",
        "schema": {"type": "string"},
    },
]


def envelope_name(event_type: EventType) -> str:
    """``task.output_stored`` -> ``TaskOutputStoredEvent``: the schema's component name."""
    return "".join(word.capitalize() for word in re.split(r"[._]", event_type.value)) + "Event"


def _data(event_type: EventType, ref: Ref) -> JSON:
    if event_type.value.startswith("task."):
        return ref(out.Task)
    model = _DATA_MODELS.get(event_type)
    if model is not None:
        return ref(model)
    return {
        "type": "object",
        "additionalProperties": True,
        "description": "What the event is about (no task: task_id is null in the feed, "
        "sequence 0); its fields are listed in the README.",
    }


def _envelope(event_type: EventType, envelope: JSON, ref: Ref) -> JSON:
    properties = dict(envelope["properties"])
    properties["type"] = {"type": "string", "enum": [event_type.value]}
    properties["data"] = _data(event_type, ref)
    return {
        **{k: v for k, v in envelope.items() if k not in ("properties", "title")},
        "title": envelope_name(event_type),
        "properties": properties,
    }


def _audience(event_type: EventType) -> str:
    if event_type.value.startswith("task."):
        return (
            "Sent to the task's callback URL and to the subscriptions whose event_types "
            "include it (by default the terminal ones and task.output_stored)"
        )
    if event_type is EventType.RELAY_TEST:
        return "Sent to the subscription tested (POST /v1/subscriptions/{sub_id}/test)"
    return (
        "Sent only to the subscriptions whose event_types name it (never to a task's "
        "callback, nor to a subscription on the default filter)"
    )


def webhooks(ref: Ref, add: Add, envelope: JSON) -> JSON:
    """Every event type's delivery. ``envelope``: the ``Event`` model's JSON schema, whose
    ``type`` and ``data`` each entry narrows to its own."""
    hooks: JSON = {}
    for event_type in EventType:
        schema = add(envelope_name(event_type), _envelope(event_type, envelope, ref))
        hooks[event_type.value] = {
            "post": {
                "operationId": "webhook_" + re.sub(r"\W", "_", event_type.value),
                "summary": f"The {event_type.value} event",
                "description": _audience(event_type) + ". Signed as Standard Webhooks; "
                "the same body is listed by GET /v1/events.",
                "tags": ["webhooks"],
                "parameters": SIGNATURE_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "2XX": {
                        "description": "Received. Any other answer, or none in time, is "
                        "retried with backoff; a 410 disables a subscription."
                    }
                },
            }
        }
    return hooks
