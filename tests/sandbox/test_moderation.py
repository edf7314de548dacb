"""cubicspaces' image moderation (page 003)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.sandbox.support import AUTH, json_of

PATHS = ["/sandbox/cubicspaces/v1/images/moderations", "/sandbox/cubicspaces/v1/assets/moderations"]
IMAGES = PATHS[0]
PAGE_REQUEST = {"model": "doubao-seedance-2.0", "images": ["https://example.com/product.png"]}


@pytest.mark.parametrize("path", PATHS)
async def test_the_pages_request_is_approved_in_the_pages_shape(
    http: httpx.AsyncClient, path: str
) -> None:
    answer = json_of(await http.post(path, headers=AUTH, json=PAGE_REQUEST))
    data = answer["data"]
    assert (answer["code"], answer["message"]) == ("success", "")
    assert set(data) == {"object", "status", "review_batch_id", "task_id", "items"}
    assert (data["object"], data["status"]) == ("asset_moderation", "approved")
    assert re.fullmatch(r"review-batch-[0-9a-f]{16}", data["review_batch_id"])
    assert re.fullmatch(r"moderation-[0-9a-f]{16}", data["task_id"])
    [item] = data["items"]
    assert item == {
        "source_url": "https://example.com/product.png",
        "asset_url": item["asset_url"],
        "submit_review_status": 1,
        "passed": True,
    }
    assert re.fullmatch(r"asset://asset-[0-9a-f]{24}", item["asset_url"])
    again = json_of(await http.post(path, headers=AUTH, json=PAGE_REQUEST))
    assert again["data"]["items"][0]["asset_url"] == item["asset_url"]


async def test_every_url_field_counts_and_reject_urls_are_turned_down(
    http: httpx.AsyncClient,
) -> None:
    answer = json_of(
        await http.post(
            IMAGES,
            headers=AUTH,
            json={
                "model": "m",
                "asset_type": "Image",
                "images": ["https://example.com/a.JPG"],
                "image_urls": ["http://example.com/REJECT-me.webp?size=big"],
                "image_url": "https://example.com/c.heic",
            },
        )
    )
    items = answer["data"]["items"]
    assert [(i["source_url"], i["passed"]) for i in items] == [
        ("https://example.com/a.JPG", True),
        ("http://example.com/REJECT-me.webp?size=big", False),
        ("https://example.com/c.heic", True),
    ]
    assert items[1] == {
        "source_url": "http://example.com/REJECT-me.webp?size=big",
        "asset_url": "",
        "submit_review_status": 1,
        "passed": False,
        "reason": "The image may contain a real person's face or other sensitive content.",
    }
    assert answer["data"]["status"] == "partially_approved"
    rejected = json_of(
        await http.post(
            IMAGES, headers=AUTH, json={"model": "m", "image_url": "https://example.com/reject.png"}
        )
    )
    assert rejected["data"]["status"] == "rejected"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"images": ["https://example.com/a.png"]}, "model is required"),
        ({"model": "m"}, "one of images, image_urls or image_url is required"),
        ({"model": "m", "images": []}, "one of images, image_urls or image_url is required"),
        (
            {"model": "m", "images": "https://example.com/a.png"},
            "images must be an array of image URLs",
        ),
        (
            {"model": "m", "images": [f"https://example.com/{i}.png" for i in range(51)]},
            "at most 50 images per request, got 51",
        ),
        (
            {"model": "m", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            "only public http or https image URLs are supported, got "
            "'data:image/png;base64,iVBORw0KGgo='",
        ),
        (
            {"model": "m", "image_urls": ["asset://x.png"]},
            "only public http or https image URLs are supported, got 'asset://x.png'",
        ),
        (
            {"model": "m", "images": ["https://example.com/a.svg"]},
            "unsupported image extension in 'https://example.com/a.svg'; use one of .jpeg, .jpg, "
            ".png, .webp, .bmp, .tiff, .tif, .gif, .heic, .heif",
        ),
        ({"model": "m", "images": [3]}, "image URLs must be non-empty strings"),
        (
            {"model": "m", "asset_type": "Video", "images": ["https://example.com/a.png"]},
            "asset_type must be Image for image moderation",
        ),
        ([PAGE_REQUEST], "request body must be a JSON object"),
    ],
)
async def test_refusals(http: httpx.AsyncClient, body: Any, message: str) -> None:
    response = await http.post(IMAGES, headers=AUTH, json=body)
    assert json_of(response, 400) == {"code": "invalid_request", "message": message, "data": None}


async def test_keys(http: httpx.AsyncClient) -> None:
    response = await http.post(IMAGES, json=PAGE_REQUEST)
    request_id = response.headers["x-oneapi-request-id"]
    assert json_of(response, 401) == {
        "error": {
            "message": f"Invalid token (request id: {request_id})",
            "type": "new_api_error",
            "code": "",
        }
    }
