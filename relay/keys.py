"""API keys as the relay keeps them: a public id and a shown prefix per key, the secret only
as its hash (``relay.signing.hash_api_key``), and the time it stops working.

A key's id is derived from its hash, so keys issued before ids existed have one too (the
migration computes the same), and a key in hand leads to its id without a lookup. The id
tells nothing about the key: it is a prefix of a SHA-256 of 256 random bits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from relay.models import Account
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


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """An active key and the account it opens."""

    account: Account
    key: ApiKey


KEY_CACHE_SECONDS = 5.0
"""How long an instance trusts a key it has looked up: a key revoked through another
instance (or the CLI) still opens this one for at most this long."""


@dataclass(frozen=True, slots=True)
class _Cached:
    holder: KeyHolder
    until: datetime


class KeyCache:
    """Active API keys looked up lately, by hash, so a request with a known key costs no trip
    to the database. Pure: ``now`` is a parameter. An entry holds ``ttl`` seconds, never past
    the moment its key stops working (a rotation's grace); a revocation on this instance
    drops it at once (``forget_key``). Only valid keys are kept: a wrong key is looked up
    (and counted by the failed-auth limiter) every time. ``ttl`` 0 keeps nothing."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, max_keys: int = 10_000) -> None:
        if ttl < 0 or max_keys < 1:
            raise ValueError("need ttl >= 0 and max_keys >= 1")
        self._ttl = timedelta(seconds=ttl)
        self._max_keys = max_keys
        self._entries: dict[str, _Cached] = {}

    def get(self, key_hash: str, now: datetime) -> KeyHolder | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.until <= now:
            del self._entries[key_hash]
            return None
        return entry.holder

    def put(self, key_hash: str, holder: KeyHolder, now: datetime) -> None:
        if not self._ttl:
            return
        until = now + self._ttl
        stops = holder.key.revoked_at
        if stops is not None:
            until = min(until, stops)
        if until <= now:
            return
        if key_hash not in self._entries and len(self._entries) >= self._max_keys:
            self._entries = {h: e for h, e in self._entries.items() if e.until > now}
            if len(self._entries) >= self._max_keys:
                self._entries.clear()
        self._entries[key_hash] = _Cached(holder, until)

    def drop(self, key_hash: str) -> None:
        """Drop the key with this hash (found not active)."""
        self._entries.pop(key_hash, None)

    def forget_key(self, key_id: str) -> None:
        """Drop the key with this id (revoked here)."""
        self._entries = {h: e for h, e in self._entries.items() if e.holder.key.id != key_id}
