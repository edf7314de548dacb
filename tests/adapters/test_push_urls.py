"""Which dialects hand the provider the relay's inbound URL, and where in the create body:
Ark's ``callback_url`` only where the provider keeps it (``providers.NAME.pushes``),
seedance2.ink's ``webhookUrl`` unless told not to, a new-api gateway never."""

from __future__ import annotations

import pytest

from relay.adapters.ark import TASKS_PATH
from relay.adapters.base import HttpCall
from relay.adapters.registry import DIALECTS, build_dialect, check_pushes
from relay.adapters.seedance2ink import GENERATIONS_PATH

MODEL = "doubao-seedance-2-0-fast-260128"
BODY = {"model": MODEL, "content": [{"type": "text", "text": "a fox"}]}
HOOK = "https://relay.example/v1/inbound/ark/tok"


def test_a_pushing_ark_provider_gets_the_relays_url_as_callback_url() -> None:
    dialect = build_dialect("ark", key="k", pushes=True)
    assert dialect.pushes
    assert dialect.build_create(BODY, HOOK) == HttpCall(
        "POST", TASKS_PATH, {**BODY, "callback_url": HOOK}
    )


def test_the_relays_url_replaces_a_callers_callback_url_and_leaves_the_body_alone() -> None:
    body = {**BODY, "callback_url": "https://caller.example/hook"}
    call = build_dialect("ark", key="k", pushes=True).build_create(body, HOOK)
    assert call.json is not None
    assert call.json["callback_url"] == HOOK
    assert body["callback_url"] == "https://caller.example/hook"


@pytest.mark.parametrize("pushes", [None, False])
def test_an_ark_provider_not_known_to_keep_callback_url_gets_none(pushes: bool | None) -> None:
    dialect = build_dialect("ark", key="k", pushes=pushes)
    assert not dialect.pushes
    # Even handed a URL by mistake, the body goes as it came.
    assert dialect.build_create(BODY, HOOK) == HttpCall("POST", TASKS_PATH, BODY)
    assert dialect.build_create(BODY) == HttpCall("POST", TASKS_PATH, BODY)


def test_seedance2ink_pushes_unless_told_not_to() -> None:
    body = {"model": "seedance-2.0", "prompt": "a fox"}
    assert build_dialect("seedance2ink", key="k").pushes
    quiet = build_dialect("seedance2ink", key="k", pushes=False)
    assert not quiet.pushes
    assert quiet.build_create(body, HOOK) == HttpCall("POST", GENERATIONS_PATH, body)


def test_a_gateway_never_pushes_and_asking_it_to_is_a_config_problem() -> None:
    assert not build_dialect("unified", key="k").pushes
    assert not build_dialect("unified", key="k", pushes=True).pushes
    problem = check_pushes("unified", True)
    assert problem is not None
    assert "unified" in problem
    assert check_pushes("unified", False) is None
    assert check_pushes("unified", None) is None


def test_the_defaults_are_what_each_dialect_is() -> None:
    defaults = {name: build_dialect(name, key="k").pushes for name in DIALECTS}
    assert defaults == {"ark": False, "unified": False, "seedance2ink": True}
    assert all(check_pushes(name, True) is None for name in ("ark", "seedance2ink"))


@pytest.mark.parametrize(
    ("body", "worth"),
    [
        (b'{"id": "cgt-1", "status": "queued"}', False),
        (b'{"id": "cgt-1", "status": " Running "}', False),
        (b'{"id": "cgt-1", "status": "pending"}', False),  # CTyun's queued
        (b'{"id": "cgt-1", "status": "succeeded", "content": {}}', True),
        (b'{"id": "cgt-1", "status": "failed"}', True),
        (b'{"id": "cgt-1", "status": "expired"}', True),
        (b'{"id": "cgt-1", "status": "cancelled"}', True),
        (b'{"id": "cgt-1", "status": "done-ish"}', True),  # a status nobody knows
        (b'{"id": "cgt-1"}', True),
        (b"[]", True),
        (b"not json", True),
        (b"", True),
    ],
)
def test_an_ark_push_is_worth_a_look_unless_it_says_the_task_is_not_done(
    body: bytes, worth: bool
) -> None:
    assert build_dialect("ark", key="k", pushes=True).push_worth_a_look(body) is worth


def test_the_other_dialects_find_every_push_worth_a_look() -> None:
    queued = b'{"requestId": "req_1", "status": "queued"}'
    assert build_dialect("seedance2ink", key="k").push_worth_a_look(queued)
    assert build_dialect("unified", key="k").push_worth_a_look(queued)
