"""Request bodies are read as their published schema says: a number is a JSON number and a
flag a JSON boolean, never a string or a boolean converted (schemathesis found
``{"grace_seconds": false}`` taken as 0)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from relay.api.schemas import (
    CreateTask,
    EnableSubscription,
    ReplayRequest,
    RotateSecret,
    UpdateSubscription,
    parse,
)
from relay.errors import BadRequest


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (RotateSecret, {"grace_seconds": False}, "grace_seconds"),
        (RotateSecret, {"grace_seconds": "5"}, "grace_seconds"),
        (EnableSubscription, {"replay": 0}, "replay"),
        (EnableSubscription, {"replay": "false"}, "replay"),
        (ReplayRequest, {"only_failed": "yes"}, "only_failed"),
        (UpdateSubscription, {"rate_limit": True}, "rate_limit"),
        (UpdateSubscription, {"rate_limit": "2"}, "rate_limit"),
    ],
)
def test_a_body_value_of_the_wrong_json_type_is_refused(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequest, match=field):
        parse(model, body)


def test_json_numbers_and_booleans_are_read() -> None:
    assert parse(RotateSecret, {"grace_seconds": 5}).grace_seconds == 5.0
    assert parse(UpdateSubscription, {"rate_limit": 2.5}).rate_limit == 2.5
    assert parse(EnableSubscription, {"replay": False}).replay is False
    assert parse(ReplayRequest, {"only_failed": True}).only_failed is True


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8%2e.evil.test/hook", "http://[fe80::1%25eth0]:8080/hook"]
)
def test_a_destination_host_with_a_percent_sign_is_refused(url: str) -> None:
    with pytest.raises(BadRequest, match="callback_url"):
        parse(CreateTask, {"provider": "sandbox", "provider_task_id": "cgt-1", "callback_url": url})
