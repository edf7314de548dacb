"""Every 405 names the methods the path does take (``Allow``, RFC 9110 §15.5.6): for each
documented path of the API, with the methods the OpenAPI document lists for it, and for the
paths outside the document (the dashboard, a front door)."""

from __future__ import annotations

import httpx
import pytest

from relay.api.openapi import document
from tests.e2e.harness import InProcessRelay

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")


def allow(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers["Allow"].split(",")}


async def test_every_405_of_the_api_says_which_methods_the_path_takes(
    relay: InProcessRelay,
) -> None:
    account = await relay.account("allow")
    checked = 0
    async with relay.client(account) as client:
        for path, item in document()["paths"].items():
            documented = {m.upper() for m in item}
            if "GET" in documented:
                documented.add("HEAD")  # Starlette answers HEAD wherever GET is served
            for method in set(METHODS) - documented:
                response = await client.request(method, concrete(path))
                where = f"{method} {path}"
                assert response.status_code == 405, f"{where}: {response.status_code}"
                assert response.json()["error"]["code"] == "method_not_allowed", where
                assert allow(response) == documented, f"{where}: {response.headers['Allow']}"
                checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/dashboard/subscriptions", {"GET", "HEAD", "POST"}),
        ("DELETE", "/dashboard/login", {"GET", "HEAD", "POST"}),
        ("PUT", "/ark/api/v3/contents/generations/tasks", {"GET", "HEAD", "POST"}),
    ],
)
async def test_a_405_outside_the_document_has_allow_too(
    relay: InProcessRelay, method: str, path: str, allowed: set[str]
) -> None:
    async with relay.client() as client:
        response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert allow(response) == allowed
