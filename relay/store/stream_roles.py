"""The store role behind the live event stream (``relay.streams``): every account's events in
the order they were stored, read by one tail per instance. Part of
``relay.store.interface.Store``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay.models import Event

Positioned = tuple[int, Event]
"""An event and its position in the store (its pk: increasing, with gaps)."""


class StreamStore(Protocol):
    async def last_event_position(self) -> int:
        """The position of the latest stored event (0: none yet)."""
        ...

    async def events_after(self, position: int, limit: int) -> list[Positioned]:
        """Every account's events stored after ``position``, in position order."""
        ...

    async def event_positions_after(self, position: int, limit: int) -> list[int]:
        """The positions of the events stored after ``position`` (no bodies: what the tail
        reads while no stream is open, to keep its place and its gaps)."""
        ...

    async def events_at(self, positions: Sequence[int]) -> list[Positioned]:
        """The events at these positions that exist now (a writer that took a position may
        commit after later ones did, or never)."""
        ...

    async def event_position(self, account_id: str, event_id: str) -> int | None:
        """Where the account's event ``event_id`` is (None: no such event of the account)."""
        ...
