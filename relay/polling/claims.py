"""How many polls to claim, per provider: no more than the provider can begin soon.

A claimed poll waits in memory for its provider's concurrency slot and request budget. When
the relay claims more than a provider can start, the excess only waits: it holds memory, its
lease runs out while it waits (and it is claimed and polled twice), and the claims themselves
cost writes exactly when the relay is short of time. So each provider has a number of polls
it may hold claimed at once, ``polls_ahead``: what its concurrency cap and its request budget
can begin within ``HORIZON`` seconds. A claim asks for what is missing, and a finished poll
asks for the next claim once half of that number is left, and only if the last claim found
more due than it took.

Pure: the tracker tells ``ClaimBook`` what it claimed and what finished.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

HORIZON = 0.5
"""Seconds of work a provider may hold claimed: at a budget of 1,000/s, 500 polls (plus its
concurrency). Short enough that no claimed poll waits long (its lease is minutes), long
enough that a claim every few hundred polls keeps the provider busy."""

UNCAPPED_FACTOR = 2
"""Without a request budget, a provider may hold this many times its concurrency."""


MAX_WAIT = 10.0
"""Seconds of its budget a provider's claimed polls may need before the last begins: on a
slow budget (a few requests a minute) its concurrency alone would hold polls claimed for
minutes, past their leases."""


def polls_ahead(max_concurrency: int, requests_per_second: float | None) -> int:
    """How many claimed polls a provider may hold at once: what its concurrency and budget
    can begin within ``HORIZON``, and never more than its budget begins in ``MAX_WAIT``."""
    if requests_per_second is None:
        return UNCAPPED_FACTOR * max_concurrency
    soon = max_concurrency + max(1, math.ceil(requests_per_second * HORIZON))
    return max(1, min(soon, math.ceil(requests_per_second * MAX_WAIT)))


class ClaimBook:
    """Per provider: the polls claimed and not finished, and whether more were due."""

    def __init__(self, ahead: Mapping[str, int], batch: int) -> None:
        """``ahead``: ``polls_ahead`` of each provider; ``batch``: the most one claim takes
        for one provider."""
        self._ahead = dict(ahead)
        self._batch = batch
        self._held: dict[str, int] = dict.fromkeys(self._ahead, 0)
        self._more_due: dict[str, bool] = dict.fromkeys(self._ahead, True)

    def add(self, providers: Iterable[str], ahead: int) -> None:
        """Providers to claim for besides the configured ones (tasks of a provider no longer
        configured, which are failed without asking anyone)."""
        for name in providers:
            if name not in self._ahead:
                self._ahead[name] = ahead
                self._held[name] = 0
                self._more_due[name] = True

    def limits(self) -> dict[str, int]:
        """What the next claim asks for, by provider (providers without room left out)."""
        wanted = {}
        for name, ahead in self._ahead.items():
            room = min(self._batch, ahead - self._held[name])
            if room > 0:
                wanted[name] = room
        return wanted

    def claimed(
        self,
        asked: Mapping[str, int],
        got: Mapping[str, int],
        found: Mapping[str, int] | None = None,
    ) -> bool:
        """A claim asked ``asked``, found ``found`` due and took ``got`` of them as new polls
        (the rest renewed the lease of a poll under way here); True when some provider found
        all it asked and still has room (claim again at once)."""
        found = got if found is None else found
        again = False
        for name, n in asked.items():
            taken = got.get(name, 0)
            self._held[name] += taken
            full = found.get(name, 0) == n
            self._more_due[name] = full
            if full and self._held[name] < self._ahead[name]:
                again = True
        return again

    def finished(self, provider: str) -> bool:
        """A claimed poll of ``provider`` ended; True when that calls for a claim now: half
        the provider's room is free, and its last claim left more due."""
        held = self._held.get(provider)
        if held is None:
            return False
        self._held[provider] = held - 1
        return self._more_due[provider] and held - 1 == self._ahead[provider] // 2

    def held(self, provider: str) -> int:
        return self._held.get(provider, 0)
