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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

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


INBOUND_GRACE = 3600.0
"""Seconds an inbound push URL outlives its provider's maximum task age (``max_age``): the
slowest task the relay tracks there, plus time for a late push and the provider's retries.
Past that the relay has expired the task anyway, so the URL is only a way to spend quota."""
INBOUND_SKEW = 300.0
"""A token stamped up to this far in the future is good: another instance's clock may run
ahead of this one's (PostgreSQL)."""


def inbound_lifetime(max_age: float) -> float:
    """How long a push provider's inbound URL is good for, from its issue."""
    return max_age + INBOUND_GRACE


@dataclass(frozen=True, slots=True)
class InboundToken:
    """What an inbound push URL names: one task at one provider."""

    provider: str
    account_id: str
    task_id: str
    created_after: datetime | None = None
    """Set for a token of the untimed format (relays before tokens expired): it carries no
    time, but was issued when its task was created, so it holds only for a task created after
    this."""


class _SignerAt(TimestampSigner):
    """itsdangerous's timestamp signer, stamping the relay's ``now`` (the explicit clock)
    rather than ``time.time()``."""

    def __init__(self, *args: Any, at: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at = int(at.timestamp())

    def get_timestamp(self) -> int:
        return self._at


class Tokens:
    """Signed, tamper-evident values the relay hands out, one salt per purpose.

    ``inbound_lifetimes``: seconds an inbound URL is good for, by provider
    (:func:`inbound_lifetime` of its ``max_age``); a provider not there has no inbound URL."""

    def __init__(
        self, secret_key: str, inbound_lifetimes: Mapping[str, float] | None = None
    ) -> None:
        self._secret_key = secret_key
        self._lifetimes = dict(inbound_lifetimes or {})
        self._cursor = URLSafeSerializer(secret_key, salt="cursor")
        # The untimed format of earlier relays, still read (never issued) so that an upgrade
        # leaves the tasks in flight their pushes; see ``InboundToken.created_after``.
        self._untimed_inbound = URLSafeSerializer(secret_key, salt="inbound")

    def _inbound(self, now: datetime) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self._secret_key, salt="inbound-timed", signer=_SignerAt, signer_kwargs={"at": now}
        )

    def inbound(self, provider: str, account_id: str, task_id: str, now: datetime) -> str:
        """The credential in a push provider's webhook URL: it names one task, nothing more,
        and is stamped with ``now``, its issue time."""
        return str(self._inbound(now).dumps([provider, account_id, task_id]))

    def read_inbound(self, provider: str, token: str, now: datetime) -> InboundToken | None:
        """What a token we made for ``provider`` names, while it is good at ``now``; else
        ``None`` (not ours, another provider's, or expired)."""
        lifetime = self._lifetimes.get(provider)
        if lifetime is None:
            return None
        created_after = None
        try:
            # The age is checked here, not by itsdangerous's ``max_age``, which refuses a
            # token stamped even a second ahead of this instance's clock.
            value, issued = self._inbound(now).loads(token, return_timestamp=True)
            age = (now - issued).total_seconds()
            if not -INBOUND_SKEW <= age <= lifetime:
                return None
        except BadSignature:
            try:
                value = self._untimed_inbound.loads(token)
            except BadSignature:
                return None
            created_after = now - timedelta(seconds=lifetime)
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, str) for v in value)
            and value[0] == provider
        ):
            return InboundToken(value[0], value[1], value[2], created_after)
        return None

    def cursor(self, value: Any) -> str:
        return str(self._cursor.dumps(value))

    def read_cursor(self, token: str) -> Any | None:
        """The cursor's value, or ``None`` when it was not made by us."""
        try:
            return self._cursor.loads(token)
        except BadSignature:
            return None
