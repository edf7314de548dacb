"""The OpenAPI document in the form client generators read correctly (issue 14): no
``default: null``, no boolean ``const``, readable operationIds, the choices the relay takes
spelled out in the schemas (``url`` or ``target_url``; the neutral input or a native one),
and a ``webhooks`` section with every event type's envelope. The generated client itself
runs in tests/e2e/test_generated_client.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest

from relay.adapters.video_input import NEUTRAL_KEYS
from relay.api.openapi import document
from relay.api.openapi_webhooks import envelope_name
from relay.models import EventType, Task, TaskStatus
from relay.transitions import envelope
from tests.e2e.harness import ark_input

NOW = datetime(2026, 6, 6, 16, 3, 11, tzinfo=UTC)


def walk(node: Any, where: str = "") -> Any:
    """Every (place, schema-ish dict) of the document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def validator(name: str) -> Any:
    """A validator of the component ``name``, its references resolved in the document."""
    spec = document()
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{name}",
            "components": spec["components"],
        }
    )


def test_no_null_default_and_no_boolean_const_anywhere() -> None:
    for where, node in walk(document()):
        if "default" in node and not where.endswith("/properties"):
            assert node["default"] is not None, where
        if "const" in node:
            assert not isinstance(node["const"], bool), where
    deleted = document()["components"]["schemas"]["Deleted"]["properties"]["deleted"]
    assert deleted["type"] == "boolean"


def test_a_request_body_says_its_defaults_in_words() -> None:
    """A default in a body's schema would make openapi-typescript require the field."""
    spec = document()
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for item in spec["paths"].values()
        for op in item.values()
        if "$ref"
        in op.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
    }
    assert {"CreateTask", "CreateSubscription", "ReplayRequest"} <= bodies
    for name in bodies:
        for where, node in walk(spec["components"]["schemas"][name], name):
            assert "default" not in node or where.endswith("/properties"), where
            assert not any(key.startswith("x-") for key in node), where
    replay = spec["components"]["schemas"]["ReplayRequest"]["properties"]
    assert replay["all"]["description"].endswith("Default: false.")
    assert replay["all"]["description"].startswith("Replay from the account's first event.")


def test_a_null_default_would_be_caught() -> None:
    spec = document()
    spec["components"]["schemas"]["CreateTask"]["properties"]["reference"]["default"] = None
    assert any(
        "default" in node and node["default"] is None
        for where, node in walk(spec)
        if not where.endswith("/properties")
    )


def test_operation_ids_are_short_unique_snake_case_names() -> None:
    spec = document()
    ids = {
        (method.upper(), path): op["operationId"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    assert len(set(ids.values())) == len(ids), "an operationId twice"
    for key, name in ids.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name), (key, name)
    sub = "/v1/subscriptions/{sub_id}"
    assert ids[("POST", "/v1/tasks")] == "tasks_create"
    assert ids[("GET", "/v1/tasks")] == "tasks_list"
    assert ids[("GET", "/v1/tasks/{task_id}")] == "tasks_get"
    assert ids[("POST", "/v1/tasks/{task_id}/cancel")] == "tasks_cancel"
    assert ids[("PATCH", sub)] == "subscriptions_update"
    assert ids[("DELETE", sub)] == "subscriptions_delete"
    assert ids[("POST", sub + "/rotate-secret")] == "subscriptions_rotate_secret"
    assert ids[("GET", "/v1/events/{event_id}/deliveries")] == "events_list_deliveries"
    hooks = [op["post"]["operationId"] for op in spec["webhooks"].values()]
    assert len(set(hooks) | set(ids.values())) == len(hooks) + len(ids)


def test_a_subscription_needs_url_or_target_url_by_the_schema() -> None:
    check = validator("CreateSubscription")
    assert check.is_valid({"url": "https://example.com/hook"})
    assert check.is_valid({"target_url": "https://example.com/hook"})
    assert not check.is_valid({})
    assert not check.is_valid({"description": "no url"})


def test_the_input_is_typed_as_the_neutral_form_or_a_native_body() -> None:
    spec = document()
    schemas = spec["components"]["schemas"]
    neutral = schemas["NeutralForm"]
    assert set(neutral["properties"]) == NEUTRAL_KEYS
    assert neutral["required"] == ["model"]
    assert neutral["additionalProperties"] is False
    check = validator("CreateTask")
    fox = {"model": "seedance-2.0", "prompt": "a fox", "images": [{"url": "https://a/b.png"}]}
    assert check.is_valid({"provider": "sandbox", "input": fox})
    assert check.is_valid({"provider": "sandbox", "input": ark_input()})  # native
    assert not check.is_valid({"provider": "sandbox", "input": "a fox"})
    # The neutral branch is a real type: a wrong neutral field fails that branch.
    assert not validator("NeutralForm").is_valid({**fox, "duration": "5"})
    assert validator("NeutralForm").is_valid(fox)


def test_every_event_type_has_a_webhook_with_its_envelope() -> None:
    spec = document()
    hooks = spec["webhooks"]
    assert set(hooks) == {t.value for t in EventType}
    for event_type in EventType:
        hook = hooks[event_type.value]["post"]
        headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        schema = hook["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{envelope_name(event_type)}"}
        envelope_schema = spec["components"]["schemas"][envelope_name(event_type)]
        assert envelope_schema["properties"]["type"] == {
            "type": "string",
            "enum": [event_type.value],
        }
        assert set(envelope_schema["required"]) == {"id", "type", "timestamp", "sequence", "data"}
    data = spec["components"]["schemas"]["TaskSucceededEvent"]["properties"]["data"]
    assert data == {"$ref": "#/components/schemas/Task"}


@pytest.mark.parametrize("event_type", [EventType.TASK_SUCCEEDED, EventType.TASK_QUEUED])
def test_a_delivered_task_event_fits_its_webhook_and_no_other(event_type: EventType) -> None:
    task = Task(
        id="task_1",
        account_id="acct_1",
        provider="sandbox",
        provider_task_id="cgt-1",
        status=TaskStatus.SUCCEEDED,
        created_at=NOW,
        updated_at=NOW,
    )
    body = json.loads(envelope("evt_1", event_type, 3, NOW, task.to_json()))
    assert validator(envelope_name(event_type)).is_valid(body)
    assert not validator("RelayTestEvent").is_valid(body)
    assert not validator(envelope_name(EventType.TASK_FAILED)).is_valid(body)
    noticed = {**body, "relay_notice": {"code": "video_url_refreshed", "message": "m"}}
    assert validator(envelope_name(event_type)).is_valid(noticed)
    assert not validator(envelope_name(event_type)).is_valid({**body, "extra": 1})


def test_an_event_type_without_a_model_gets_a_generic_data_object() -> None:
    operational = [
        t for t in EventType if not t.value.startswith("task.") and t is not EventType.RELAY_TEST
    ]
    if not operational:
        pytest.skip("no operational event types yet")
    body = json.loads(
        envelope("evt_1", operational[0], 0, NOW, {"subscription_id": "sub_1", "cause": "gone"})
    )
    assert validator(envelope_name(operational[0])).is_valid(body)
    assert not validator(envelope_name(operational[0])).is_valid({**body, "data": "text"})
