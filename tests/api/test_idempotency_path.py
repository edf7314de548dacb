"""The Idempotency-Key's request hash reads the path without building the request's URL
(issue 17 item 4); the path it hashes is still ``request.url.path``, so keys stored before
keep matching."""

from __future__ import annotations

from starlette.requests import Request

from relay.api.idempotency import _path

PATHS = (
    "/v1/tasks",
    "/v1/subscriptions",
    "/v1/tasks/task_01jx/refresh",
    "/ark/api/v3/contents/generations/tasks",
    "/v1/tasks?",
    "/v1/a#b",
    "/v1/a\\b",
    "//v1/tasks",
    "/v1/t asks",
    "/v1/t\tasks",
    "/v1/täsks",
    "/v1/%2F",
    "/",
)


def test_the_path_is_the_urls() -> None:
    for path in PATHS:
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": b"x=1",
            "headers": [(b"host", b"relay.example.com")],
            "scheme": "https",
            "server": ("relay.example.com", 443),
        }
        request = Request(scope)
        assert _path(request) == request.url.path, path
