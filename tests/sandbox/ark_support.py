"""Helpers for the Ark flavor's tests: create and fetch over HTTP, the expected task object,
the Ark error envelope."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import SandboxSettings
from tests.clock import FakeClock
from tests.sandbox.support import BASE, T0_UNIX

FAST = "doubao-seedance-2-0-fast-260128"
STANDARD = "doubao-seedance-2-0-260128"
TASKS = "/sandbox/ark/api/v3/contents/generations/tasks"
AUTH = {"Authorization": "Bearer sk-sandbox"}
PROMPT = "Drone shot flying over an autumn valley, golden forests and a winding river, cinematic"
ID_RE = re.compile(r"cgt-\d{14}-[a-z2-7]{40}")
REQUEST_ID_RE = re.compile(r"021\d{13}[0-9a-f]{32}")
TEXT = [{"type": "text", "text": PROMPT}]


def mounted(clock: FakeClock, settings: SandboxSettings | None = None) -> Starlette:
    """The sandbox where the relay puts it."""
    app = sandbox_app(settings or SandboxSettings(), clock)
    return Starlette(routes=[Mount("/sandbox", app=app)])


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def create(http: httpx.AsyncClient, prompt: str = PROMPT, **options: Any) -> str:
    body = {"model": FAST, "content": [{"type": "text", "text": prompt}], **options}
    response = await http.post(TASKS, headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == ["id"]
    assert ID_RE.fullmatch(answer["id"])
    return str(answer["id"])


async def fetch(http: httpx.AsyncClient, task_id: str) -> Any:
    response = await http.get(f"{TASKS}/{task_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def common(task_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "id": task_id,
        "model": FAST,
        "created_at": T0_UNIX,
        "seed": 97151,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
        "generate_audio": True,
        "draft": False,
        # Declared by the Ark SDK's task model; Ark's defaults.
        "service_tier": "default",
        "execution_expires_after": 172800,
    }
    return {**fields, **overrides}


def ark_error(response: httpx.Response, code: str, message: str, param: str, kind: str) -> None:
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID_RE.fullmatch(request_id)
    assert response.json() == {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": param,
            "type": kind,
        }
    }
