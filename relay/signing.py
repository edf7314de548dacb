"""Standard Webhooks signatures for what the relay sends, and itsdangerous tokens for what it
hands out and reads back itself (pagination cursors, inbound webhook URLs).

The signing is a few lines of ``hmac`` on purpose: it is the delivery hot path and must sign
with several secrets at once during a rotation, which the ``standardwebhooks`` package cannot.
Tests verify every delivery with that package, exactly as a receiver would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

SECRET_PREFIX = "whsec_"
API_KEY_PREFIX = "rk_"


def generate_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (the base64 part, decoded)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(msg_id: str, timestamp: int, body: bytes, keys: Iterable[bytes]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` token per key, space-separated."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for key in keys
    )


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 is enough to store them safely
    (the practice of GitHub and Stripe tokens); a slow KDF would only slow every request."""
    return hashlib.sha256(key.encode()).hexdigest()


class Tokens:
    """Signed, tamper-evident values the relay hands out, one salt per purpose."""

    def __init__(self, secret_key: str) -> None:
        self._cursor = URLSafeSerializer(secret_key, salt="cursor")
        self._inbound = URLSafeSerializer(secret_key, salt="inbound")

    def inbound(self, provider: str, account_id: str, task_id: str) -> str:
        """The credential in a push provider's webhook URL: it names one task, nothing more."""
        return str(self._inbound.dumps([provider, account_id, task_id]))

    def read_inbound(self, token: str) -> tuple[str, str, str] | None:
        """``(provider, account_id, task_id)`` of a token we made, else ``None``."""
        try:
            value = self._inbound.loads(token)
        except BadSignature:
            return None
        if isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value):
            return value[0], value[1], value[2]
        return None

    def cursor(self, value: Any) -> str:
        return str(self._cursor.dumps(value))

    def read_cursor(self, token: str) -> Any | None:
        """The cursor's value, or ``None`` when it was not made by us."""
        try:
            return self._cursor.loads(token)
        except BadSignature:
            return None
