"""API keys as the relay keeps them: a public id and a shown prefix per key, the secret only
as its hash (``relay.signing.hash_api_key``), and the time it stops working.

A key's id is derived from its hash, so keys issued before ids existed have one too (the
migration computes the same), and a key in hand leads to its id without a lookup. The id
tells nothing about the key: it is a prefix of a SHA-256 of 256 random bits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relay.signing import API_KEY_PREFIX, generate_api_key, hash_api_key

KEY_ID_PREFIX = "key_"
KEY_ID_HEX = 24
"""96 bits of the hash: unique among any number of keys an operator will ever issue."""
SHOWN_CHARS = 8
"""Random characters of the key kept in the clear after ``rk_`` (48 of its 256 bits), so a
person can tell which key a configuration holds."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    prefix: str | None
    """The key's first characters (``rk_`` and 8 more); None for a key issued before prefixes
    were kept."""
    created_at: datetime
    revoked_at: datetime | None
    """When it stops (or stopped) working; in the future while a rotation's grace runs."""

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None or self.revoked_at > now


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: what is stored (``key``, ``hash``) and the secret, shown once."""

    key: ApiKey
    secret: str
    hash: str


def key_id(key_hash: str) -> str:
    return KEY_ID_PREFIX + key_hash[:KEY_ID_HEX]


def shown_prefix(secret: str) -> str:
    return secret[: len(API_KEY_PREFIX) + SHOWN_CHARS]


def issue_key(account_id: str, now: datetime) -> IssuedKey:
    secret = generate_api_key()
    digest = hash_api_key(secret)
    key = ApiKey(key_id(digest), account_id, shown_prefix(secret), now, None)
    return IssuedKey(key, secret, digest)
