"""The OpenAPI document: valid OpenAPI 3.1, one operation per route and no other, response
models that describe what the handlers build, and a docs page that shows every operation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from pydantic import BaseModel, ValidationError
from schemathesis.core.result import Ok

from relay.api import responses as out
from relay.api.docs_page import render
from relay.api.http import attempt_json, delivery_json
from relay.api.openapi import ERRORS, build_document, document, documented_answer, find_operation
from relay.api.operations import OPERATIONS, Answer
from relay.api.routes import routes
from relay.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    ErrorCode,
    EventType,
    Subscription,
    SubscriptionStatus,
    Task,
    TaskError,
    TaskStatus,
)
from relay.provider_answers import ProviderHealth
from relay.transitions import envelope

NOW = datetime(2026, 6, 6, 16, 3, 11, tzinfo=UTC)


def route_table() -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in routes()
        for method in route.methods or ()
        if method != "HEAD"
    }


def spec_table(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    documented = spec_table(document())
    served = route_table()
    # /metrics is mounted by the app itself (every role serves it), not by routes().
    assert documented - {("GET", "/metrics")} == served, (
        f"undocumented routes: {sorted(served - documented)}; "
        f"documented but not served: {sorted(documented - served - {('GET', '/metrics')})}"
    )
    assert len({op.key for op in OPERATIONS}) == len(OPERATIONS), "an operation twice"


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    assert spec["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(spec)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    results = list(schema.get_all_operations())
    labels = [result.ok().label for result in results if isinstance(result, Ok)]
    invalid = [result for result in results if not isinstance(result, Ok)]
    assert not invalid, invalid
    assert len(labels) == len(OPERATIONS)
    for name, component in spec["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(component), name
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"]), refs - set(spec["components"]["schemas"])


def test_a_broken_document_is_caught() -> None:
    """The validity test above can fail: a document missing what OpenAPI requires."""
    spec = document()
    spec["paths"]["/v1/me"]["get"]["parameters"] = [{"name": "limit"}]  # in: where?
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(spec).validate()


def test_request_bodies_and_queries_come_from_the_validating_models() -> None:
    spec = document()
    create = spec["paths"]["/v1/tasks"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateTask"
    }
    assert spec["components"]["schemas"]["CreateTask"]["additionalProperties"] is False
    listing = {p["name"]: p for p in spec["paths"]["/v1/events"]["get"]["parameters"]}
    assert set(listing) == {
        "type",
        "task_id",
        "since",
        "until",
        "delivery_status",
        "cursor",
        "limit",
        "order",
    }
    assert listing["limit"]["schema"] == {
        "default": 50,
        "maximum": 200,
        "minimum": 1,
        "type": "integer",
    }
    assert listing["type"]["schema"] == {"$ref": "#/components/schemas/EventType"}
    header = [p for p in create["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Idempotency-Key"]
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert create["security"] == [{"bearer": []}, {"apiKey": []}]
    for status in ("400", "401", "409", "413", "429", "502", "503"):
        assert status in create["responses"], status


def test_the_document_is_built_once_and_handed_out_as_a_copy() -> None:
    first = document()
    first["paths"].clear()
    assert document()["paths"]
    assert document() == build_document()


# --- the response models describe what the handlers build ------------------------------


def task(**changes: Any) -> Task:
    values: dict[str, Any] = {
        "id": "task_1",
        "account_id": "acct_1",
        "provider": "sandbox",
        "provider_task_id": "cgt-1",
        "status": TaskStatus.SUCCEEDED,
        "created_at": NOW,
        "updated_at": NOW,
        "progress": 100,
        "video_url": "https://v/x.mp4",
        "video_url_expires_at": NOW,
        "usage": {"total_tokens": 1},
        "duration": 5,
        "metadata": {"k": "v"},
        "completed_at": NOW,
        "error": TaskError(ErrorCode.CONTENT_POLICY, "no", provider_code="X"),
    }
    return Task(**{**values, **changes})


def valid(model: type[BaseModel], data: Any) -> None:
    # Through JSON and strict: exactly what a client receives, no coercion.
    model.model_validate_json(json.dumps(data), strict=True)


def test_task_and_event_models_fit_what_the_relay_builds() -> None:
    valid(out.Task, task().to_json())
    bare = Task(
        id="task_2",
        account_id="a",
        provider="p",
        provider_task_id=None,
        status=TaskStatus.QUEUED,
        created_at=NOW,
        updated_at=NOW,
    )
    valid(out.Task, bare.to_json())
    valid(
        out.Event, json.loads(envelope("evt_1", EventType.TASK_SUCCEEDED, 3, NOW, task().to_json()))
    )
    valid(
        out.Event,
        json.loads(
            envelope(
                "evt_2", EventType.RELAY_TEST, 0, NOW, {"subscription_id": "sub_1", "message": "hi"}
            )
        ),
    )


def test_delivery_subscription_and_provider_models_fit_what_the_relay_builds() -> None:
    d = Delivery(
        id="dlv_1",
        account_id="a",
        event_id="evt_1",
        destination_id="sub_1",
        url="https://r/h",
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        next_attempt_at=None,
        created_at=NOW,
        updated_at=NOW,
    )
    a = Attempt(
        delivery_id="dlv_1",
        number=1,
        started_at=NOW,
        latency_ms=12,
        outcome="retry",
        status_code=503,
        response_snippet="busy",
    )
    valid(out.DeliveryWithAttempts, {**delivery_json(d), "attempts": [attempt_json(a)]})
    sub = Subscription(
        id="sub_1",
        account_id="a",
        url="https://r/h",
        event_types=frozenset({EventType.TASK_FAILED}),
        status=SubscriptionStatus.DISABLED,
        created_at=NOW,
        updated_at=NOW,
        headers=(("X-Token", "secret"),),
        disabled_at=NOW,
    )
    valid(out.Subscription, sub.to_json())
    valid(out.SubscriptionWithSecret, {**sub.to_json(), "secret": "whsec_x"})
    health = ProviderHealth("sandbox", "ark", 2, "timeout", NOW, None, 0).to_json()
    valid(out.Provider, {**health, "can_cancel": True, "pushes": False, "moderation": False})


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (out.Task, {**task().to_json(), "extra": 1}),  # an undocumented field
        ({k: v for k, v in task().to_json().items() if k != "seed"}, None),  # a missing one
        (out.Task, {**task().to_json(), "status": "done"}),  # not a documented status
        (out.Task, {**task().to_json(), "duration": "5"}),  # a number as a string
        (out.Error, {"error": {"code": "x"}}),
    ],
)
def test_the_models_refuse_a_shape_they_do_not_document(model: Any, data: Any) -> None:
    if data is None:  # the missing-field case
        model, data = out.Task, model
    with pytest.raises(ValidationError):
        valid(model, data)


# --- the docs page -----------------------------------------------------------------------


def test_the_docs_page_shows_every_operation_parameter_and_schema() -> None:
    spec = document()
    page = render(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            section = page.split(f"id='{op['operationId']}'", 1)[1].split("</section>", 1)[0]
            assert f"{method.upper()}</span> <code>{path}</code>" in section
            for param in op.get("parameters", []):
                assert f"<code>{param['name']}</code>" in section, (path, param["name"])
            for status in op["responses"]:
                assert f"<td>{status}</td>" in section, (path, status)
    for name in spec["components"]["schemas"]:
        assert f"id='schema-{name}'" in page
    # Self-contained: nothing fetched from elsewhere.
    assert "<script" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)


def test_the_docs_page_escapes_what_it_shows() -> None:
    spec = document()
    spec["paths"]["/v1/me"]["get"]["summary"] = "<b>bold</b>"
    assert "&lt;b&gt;bold&lt;/b&gt;" in render(spec)


def test_an_answer_is_looked_up_by_route_and_status() -> None:
    op = find_operation("get", "/v1/events/evt_1/deliveries")
    assert op is not None
    assert op.path == "/v1/events/{event_id}/deliveries"
    assert documented_answer(op, 200) == Answer("OK", out.EventDeliveries)
    assert documented_answer(op, 404) == Answer(ERRORS[404], out.Error)
    assert documented_answer(op, 409) is None  # nothing there conflicts
    assert find_operation("GET", "/v1/events/evt_1/deliveries/x") is None
    assert find_operation("DELETE", "/v1/tasks/task_1") is None
    # The provider's 4xx pass through moderation: only 401 is always the relay's own.
    moderation = find_operation("POST", "/v1/providers/cubicspaces/moderations")
    assert moderation is not None
    passed = documented_answer(moderation, 409)
    assert passed is not None
    assert passed.model is None
    assert documented_answer(moderation, 401) == Answer(ERRORS[401], out.Error)
    assert documented_answer(moderation, 502) == Answer(ERRORS[502], out.Error)
