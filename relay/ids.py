"""Public identifiers: a type prefix and a ULID (time-ordered, 26 characters)."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"
