"""Sends to one destination at once: at most its cap, the rest wait their turn (the delivery
engine claims a quick destination's sends ahead: ``relay.delivery.fairness``, rule 6)."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Turns(Generic[T]):
    """Sends to each destination at once, at most ``cap``: a send past it waits for one of
    its destination's to finish, the first to wait the first to go."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._sending: dict[str, int] = {}
        self._waiting: dict[str, deque[T]] = {}

    def take(self, key: str, send: T) -> bool:
        """True: ``send`` may start now; False: it waits (``done`` hands it out)."""
        n = self._sending.get(key, 0)
        if n < self._cap:
            self._sending[key] = n + 1
            return True
        self._waiting.setdefault(key, deque()).append(send)
        return False

    def done(self, key: str) -> T | None:
        """A send to ``key`` finished: the one waiting that takes its turn, if any."""
        waiting = self._waiting.get(key)
        if waiting:
            send = waiting.popleft()
            if not waiting:
                del self._waiting[key]
            return send
        n = self._sending[key] - 1
        if n:
            self._sending[key] = n
        else:
            del self._sending[key]
        return None

    def drain(self) -> list[T]:
        """Every send still waiting, taken out (the engine is stopping)."""
        drained = [send for waiting in self._waiting.values() for send in waiting]
        self._waiting.clear()
        return drained

    def waiting(self) -> int:
        """Sends waiting for their turn, all destinations together."""
        return sum(len(w) for w in self._waiting.values())
