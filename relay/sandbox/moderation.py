"""cubicspaces' image moderation (page 003): ``POST /cubicspaces/v1/images/moderations``
and ``/cubicspaces/v1/assets/moderations`` (the same handler), a synchronous wrapper that
answers the review result at once.

Validation, in the page's words: ``model`` is required; at least one of ``images``,
``image_urls`` (lists) or ``image_url`` (one URL), all of them counted together, at most
50; only public ``http(s)`` URLs (no base64, no ``data:``) whose path ends in a supported
extension; ``asset_type`` defaults to ``Image`` and image moderation takes only that.
Refusals are new-api TaskError bodies, HTTP 400 ``{"code": "invalid_request", "message",
"data": null}``; a missing or refused key is new-api's 401. Dimensions and file size
(0.4 to 2.5 aspect, 300 to 6000 px, 30 MB) cannot be checked without fetching and are not.

The answer is the page's shape: ``{"code": "success", "message": "", "data": {"object":
"asset_moderation", "status", "review_batch_id", "task_id", "items": [...]}}`` with one item
per URL in order. An approved item is ``{source_url, asset_url: "asset://asset-…",
submit_review_status: 1, passed: true}``. A URL containing ``reject`` (any case) is
reviewed and turned down (the sandbox's choice of shape): ``submit_review_status: 1``
(submitted), ``passed: false``, ``asset_url: ""`` and a ``reason``. ``data.status`` is
``approved`` when every item passed, ``rejected`` when none did, ``partially_approved``
otherwise. Asset ids derive from the URL, so the same image gets the same asset.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.models import JSON
from relay.sandbox.gateway_shapes import invalid_token, success, task_error
from relay.sandbox.timeline import Flavor
from relay.sandbox.web import (
    Endpoint,
    NotJson,
    SandboxContext,
    api_key,
    gateway_request_id,
    json_response,
    read_json,
)

MAX_IMAGES: Final = 50
EXTENSIONS: Final = (
    ".jpeg",
    ".jpg",
    ".png",
    ".webp",
    ".bmp",
    ".tiff",
    ".tif",
    ".gif",
    ".heic",
    ".heif",
)
REJECT_REASON: Final = "The image may contain a real person's face or other sensitive content."


def parse_moderation(body: object) -> list[str] | str:
    """The URLs to review, or why the request is refused."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        return "model is required"
    asset_type = body.get("asset_type", "Image")
    if asset_type != "Image":
        return "asset_type must be Image for image moderation"
    urls: list[object] = []
    for name in ("images", "image_urls"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            return f"{name} must be an array of image URLs"
        urls += value
    single = body.get("image_url")
    if single is not None:
        urls.append(single)
    if not urls:
        return "one of images, image_urls or image_url is required"
    if len(urls) > MAX_IMAGES:
        return f"at most {MAX_IMAGES} images per request, got {len(urls)}"
    checked: list[str] = []
    for url in urls:
        problem = _url_problem(url)
        if problem is not None:
            return problem
        assert isinstance(url, str)
        checked.append(url)
    return checked


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return "image URLs must be non-empty strings"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return f"only public http or https image URLs are supported, got {url[:80]!r}"
    if not parts.path.lower().endswith(EXTENSIONS):
        return f"unsupported image extension in {url[:80]!r}; use one of {', '.join(EXTENSIONS)}"
    return None


def moderation_result(urls: list[str]) -> JSON:
    items = []
    for url in urls:
        if "reject" in url.lower():
            items.append(
                {
                    "source_url": url,
                    "asset_url": "",
                    "submit_review_status": 1,
                    "passed": False,
                    "reason": REJECT_REASON,
                }
            )
        else:
            asset = hashlib.sha256(url.encode()).hexdigest()[:24]
            items.append(
                {
                    "source_url": url,
                    "asset_url": f"asset://asset-{asset}",
                    "submit_review_status": 1,
                    "passed": True,
                }
            )
    passed = sum(1 for item in items if item["passed"])
    status = (
        "approved" if passed == len(items) else "rejected" if passed == 0 else "partially_approved"
    )
    return success(
        {
            "object": "asset_moderation",
            "status": status,
            "review_batch_id": f"review-batch-{secrets.token_hex(8)}",
            "task_id": f"moderation-{secrets.token_hex(8)}",
            "items": items,
        }
    )


class ModerationEmulation:
    flavor: Final = Flavor.CUBICSPACES

    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(f"/cubicspaces/v1/{kind}/moderations", self.moderate, ("POST",))
            for kind in ("images", "assets")
        ]

    async def moderate(self, request: Request) -> JSONResponse:
        request_id = gateway_request_id(self._ctx.clock.now())
        headers = {"x-oneapi-request-id": request_id}
        if api_key(request) is None:
            return json_response(invalid_token(request_id), 401, headers)
        body = await read_json(request)
        urls = parse_moderation(body) if not isinstance(body, NotJson) else body.reason
        if isinstance(urls, str):
            return json_response(task_error("invalid_request", urls), 400, headers)
        return json_response(moderation_result(urls), 200, headers)
