"""Endpoint verification (Standard Webhooks): before a subscription asked to be verified is
created, its receiver proves it holds the subscription's secret and controls the URL.

The relay POSTs a signed ``endpoint.verification`` message carrying a random
``webhook-challenge`` header; the receiver answers 2xx with a ``webhook-challenge-response``
header, ``v1,`` and the base64 HMAC-SHA256 of the challenge under HMAC-SHA256(key, "wev-v1")
(what the ``standardwebhooks`` libraries' ``endpoint_verification_response`` computes). A 2xx
alone proves nothing: any endpoint that accepts POSTs gives one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime

import httpx

from relay.ids import new_id
from relay.signing import sign, webhook_key

CHALLENGE_HEADER = "webhook-challenge"
RESPONSE_HEADER = "webhook-challenge-response"


def challenge_response(secret: str, challenge: str) -> str:
    """The ``webhook-challenge-response`` a receiver holding ``secret`` answers with."""
    verification_key = hmac.digest(webhook_key(secret), b"wev-v1", hashlib.sha256)
    digest = hmac.digest(verification_key, challenge.encode(), hashlib.sha256)
    return "v1," + base64.b64encode(digest).decode()


async def verify_endpoint(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    now: datetime,
    headers: Mapping[str, str] | None = None,
) -> str | None:
    """Challenge ``url``: None when its answer proves it holds ``secret``, else why not."""
    challenge = secrets.token_urlsafe(32)
    message_id = new_id("msg")
    body = json.dumps(
        {"type": "endpoint.verification", "challenge": challenge}, separators=(",", ":")
    ).encode()
    stamp = int(now.timestamp())
    sent = {
        **(headers or {}),
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(message_id, stamp, body, [webhook_key(secret)]),
        CHALLENGE_HEADER: challenge,
    }
    try:
        answer = await client.post(url, content=body, headers=sent)
    except httpx.HTTPError as exc:
        return f"the endpoint could not be reached: {exc.__class__.__name__}: {exc}"
    if not answer.is_success:
        return f"the endpoint answered {answer.status_code}, not 2xx"
    said = answer.headers.get(RESPONSE_HEADER)
    if said is None:
        return f"the endpoint answered {answer.status_code} without a {RESPONSE_HEADER} header"
    if not hmac.compare_digest(said.encode(), challenge_response(secret, challenge).encode()):
        return f"the endpoint's {RESPONSE_HEADER} does not match the challenge and the secret"
    return None
