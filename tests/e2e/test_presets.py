"""Every provider preset end to end against its sandbox flavor: a task submitted through the
provider-neutral input and a task created at the provider and then tracked each reach the
receiver as a signed, normalized terminal event with what that provider reports.

seedance2.ink gets a 30-second safety poll here, so its results can only arrive in time by
its push to the relay's inbound webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import TASK_FIELDS, Account, Receiver, RelayServer, api_client, eventually

FAST = {"min_interval": 0.1, "max_interval": 0.5, "expected_duration": 0.6}
PROVIDERS: dict[str, dict[str, Any]] = {
    "naci": {"preset": "naci", "sandbox": True, "poll": FAST},
    "apiyi": {"preset": "apiyi", "sandbox": True, "poll": FAST},
    "vastnum": {"preset": "vastnum", "sandbox": True, "poll": FAST},
    "cubicspaces": {"preset": "cubicspaces", "sandbox": True, "poll": FAST},
    "cubicspaces-unified": {
        "preset": "cubicspaces",
        "dialect": "unified",
        "sandbox": True,
        "poll": FAST,
    },
    "seedance2ink": {
        "preset": "seedance2ink",
        "sandbox": True,
        "poll": {"min_interval": 30, "max_interval": 60, "expected_duration": 60},
    },
}
TOKENS = 108900  # 5 s of 720p at 24 fps, as apiyi's sample bills
ARK_USAGE = {"completion_tokens": TOKENS, "total_tokens": TOKENS}
POLICY = "The request failed because the output video may be related to policy restrictions."
MODERATED = "OutputVideoSensitiveContentDetected.PolicyViolation"


@dataclass(frozen=True)
class Flavor:
    """How one preset's sandbox is driven directly, and what its tasks report."""

    create_path: str
    native: Callable[[str], dict[str, Any]]
    id_field: str
    reported: dict[str, Any]
    """Fields of a succeeded 5 s 720p 16:9 task, besides those every provider fills."""
    failure: dict[str, Any]
    submitted_extra: dict[str, Any] = field(default_factory=dict)
    """What only a task the relay submitted knows (seedance2.ink's credits on create)."""
    signed_urls: bool = True


def ark_body(model: str) -> Callable[[str], dict[str, Any]]:
    return lambda prompt: {
        "model": model,
        "content": [{"type": "text", "text": prompt}],
        "ratio": "16:9",
        "duration": 5,
        "resolution": "720p",
    }


ARK_FIELDS = {"usage": ARK_USAGE, "resolution": "720p", "ratio": "16:9", "duration": 5, "fps": 24}
ARK_FAILURE = {
    "code": "content_policy",
    "message": POLICY,
    "retryable": False,
    "provider_code": MODERATED,
}
FLAVORS = {
    "naci": Flavor(
        "/sandbox/naci/v1/video/generations",
        ark_body("sd2.0"),
        "id",
        {
            **ARK_FIELDS,
            "model": "doubao-seedance-2-0-260128",
            "usage": {
                **ARK_USAGE,
                "completion_details": {"video_durations": 5, "video_tokens": TOKENS},
            },
        },
        ARK_FAILURE,
    ),
    "apiyi": Flavor(
        "/sandbox/apiyi/seedance/api/v3/contents/generations/tasks",
        ark_body("doubao-seedance-2-0-260128"),
        "id",
        {**ARK_FIELDS, "model": "doubao-seedance-2-0-260128"},
        ARK_FAILURE,
    ),
    "vastnum": Flavor(
        "/sandbox/vastnum/v1/video/generations",
        lambda prompt: {
            "model": "doubao-seedance-2-0-260128",
            "prompt": prompt,
            "metadata": {"ratio": "16:9", "duration": 5, "resolution": "720p"},
        },
        "task_id",
        {**ARK_FIELDS, "model": "doubao-seedance-2-0-260128"},
        ARK_FAILURE,
    ),
    "cubicspaces": Flavor(
        "/sandbox/cubicspaces/api/v3/contents/generations/tasks",
        ark_body("doubao-seedance-2.0"),
        "id",
        {**ARK_FIELDS, "model": "doubao-seedance-2.0"},
        # cubicspaces' generic code, with Ark's moderation wording kept.
        {**ARK_FAILURE, "provider_code": "task_failed"},
    ),
    # The flat OpenAI-video object says nothing of usage, resolution, ratio, fps or seed.
    "cubicspaces-unified": Flavor(
        "/sandbox/cubicspaces/v1/video/generations",
        lambda prompt: {
            "model": "doubao-seedance-2.0",
            "prompt": prompt,
            "seconds": "5",
            "metadata": {"ratio": "16:9", "resolution": "720p"},
        },
        "id",
        {"model": "doubao-seedance-2.0"},
        ARK_FAILURE,
    ),
    "seedance2ink": Flavor(
        "/sandbox/seedance2ink/api/open/v1/video/generations",
        lambda prompt: {
            "model": "seedance-2.0",
            "prompt": prompt,
            "aspectRatio": "16:9",
            "duration": 5,
            "resolution": "720p",
        },
        "requestId",
        {"model": "seedance-2.0", "ratio": "16:9", "duration": 5},
        {
            "code": "provider_error",
            "message": "Video generation failed upstream",
            "retryable": False,
            "provider_code": "provider_error",
        },
        submitted_extra={"usage": {"creditsCharged": 40}},
        signed_urls=False,
    ),
}
NEUTRAL = {"model": "seedance-2.0", "ratio": "16:9", "duration": 5, "resolution": "720p"}


@pytest.fixture
async def relay(start_relay: RelayFactory) -> RelayServer:
    return await start_relay(
        providers=PROVIDERS, sandbox={"queued_seconds": 0.3, "running_seconds": 0.5}
    )


async def submit(client: httpx.AsyncClient, provider: str, prompt: str, receiver: Receiver) -> str:
    response = await client.post(
        "/v1/tasks",
        json={
            "provider": provider,
            "input": {**NEUTRAL, "prompt": prompt},
            "callback_url": receiver.url,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def track(
    client: httpx.AsyncClient, relay: RelayServer, provider: str, prompt: str, receiver: Receiver
) -> str:
    """Create the task at the provider (the sandbox) the way its user would, then hand its
    id to the relay. seedance2.ink is told no webhook by the user, so it is registered once
    done: the relay's first look finds the result."""
    flavor = FLAVORS[provider]
    async with api_client(relay.url) as direct:
        created = await direct.post(
            flavor.create_path,
            json=flavor.native(prompt),
            headers={"Authorization": "Bearer sk-user"},
        )
        assert created.status_code == 200, created.text
        provider_task_id = created.json()[flavor.id_field]
        if provider == "seedance2ink":
            path = f"{flavor.create_path}/{provider_task_id}"

            async def done() -> bool:
                answer = await direct.get(path, headers={"Authorization": "Bearer sk-user"})
                return bool(answer.json()["status"] in ("succeeded", "failed"))

            await eventually(done, within=10, what="the seedance2.ink task to finish")
    response = await client.post(
        "/v1/tasks",
        json={
            "provider": provider,
            "provider_task_id": provider_task_id,
            "callback_url": receiver.url,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def terminal_event(account: Account, receiver: Receiver, task_id: str) -> dict[str, Any]:
    async def arrived() -> dict[str, Any] | None:
        for request in receiver.requests:
            payload: dict[str, Any] = Webhook(account.secret).verify(request.body, request.headers)
            if payload["data"]["id"] == task_id:
                return payload
        return None

    return await eventually(arrived, within=15, what=f"the terminal event of {task_id}")


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_preset_delivers_what_its_provider_reports(
    relay: RelayServer, start_receiver: ReceiverFactory, provider: str
) -> None:
    flavor = FLAVORS[provider]
    account = await relay.account("alice")
    receiver = await start_receiver()
    async with relay.client(account) as client:
        submitted = await submit(client, provider, "a fox in snow", receiver)
        tracked = await track(client, relay, provider, "a fox in snow", receiver)
        failing = await submit(client, provider, "[fail] a fox in snow", receiver)
        for task_id, how in ((submitted, "submitted"), (tracked, "tracked")):
            event = await terminal_event(account, receiver, task_id)
            data = event["data"]
            assert (event["type"], frozenset(data)) == ("task.succeeded", TASK_FIELDS), how
            expected = {**flavor.reported, **(flavor.submitted_extra if how == "submitted" else {})}
            assert {k: data[k] for k in expected} == expected, how
            assert (data["provider"], data["status"], data["progress"], data["error"]) == (
                provider,
                "succeeded",
                100,
                None,
            )
            if "fps" in expected:  # where the provider reports a seed, it is a real one
                assert isinstance(data["seed"], int)
            # The video is there, downloadable the way the provider pages say: plain GET.
            async with api_client(relay.url) as anonymous:
                video = await anonymous.get(data["video_url"])
            assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
            assert (data["video_url_expires_at"] is not None) == flavor.signed_urls, how
        failed = await terminal_event(account, receiver, failing)
        assert failed["type"] == "task.failed"
        assert failed["data"]["error"] == flavor.failure
        assert failed["data"]["video_url"] is None
