"""Following the store's events in the order they were stored, gaps included (pure rules).

Events get increasing positions (their pk) when they are inserted, but on PostgreSQL several
writers commit concurrently: an event at position 41 may become visible after the one at 42.
A tail that only asked "after 42" would never see it. So the tail remembers the positions it
stepped over (gaps) and asks for them again for a while; a gap that stays empty that long was
a transaction that rolled back, or a sequence value never used, and is forgotten. On SQLite,
one writer commits in position order and no gap ever fills.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

GAP_PATIENCE = 10.0
"""Seconds a skipped position is looked for again: far longer than any commit takes."""
MAX_GAPS = 10_000
"""Skipped positions remembered at most (a burst of rolled-back writes cannot grow it)."""


@dataclass(slots=True)
class Tail:
    """Where the tail is: the highest position seen, and the gaps below it still open."""

    position: int
    gaps: dict[int, float] = field(default_factory=dict)
    """Skipped position → when it was first skipped (seconds, monotonic)."""

    def advance(self, seen: Iterable[int], now: float) -> None:
        """Positions just read after ``position``: move past them, remembering the gaps."""
        for pos in sorted(seen):
            if pos <= self.position:
                self.gaps.pop(pos, None)  # a gap filled
                continue
            for missing in range(self.position + 1, pos):
                if len(self.gaps) < MAX_GAPS:
                    self.gaps[missing] = now
            self.position = pos

    def open_gaps(self, now: float) -> list[int]:
        """The gaps worth another look (forgetting those past their patience)."""
        for pos, since in list(self.gaps.items()):
            if now - since > GAP_PATIENCE:
                del self.gaps[pos]
        return sorted(self.gaps)

    def filled(self, positions: Iterable[int]) -> None:
        for pos in positions:
            self.gaps.pop(pos, None)
