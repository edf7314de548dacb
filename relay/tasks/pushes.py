"""Which pushed tasks this instance is confirming: the bookkeeping that makes a flood of pushes
cost what one push costs.

A push is an unsigned hint (DIALECTS §4) that anyone holding the task's inbound URL can send
as often as they like, and each confirmation is a query against the operator's provider quota
(a provider that answers 429 backs off every tenant). So a push starts a *confirmation*: one
look at once, then up to ``looks`` quick looks while the provider does not yet confirm. For
``window`` seconds after it starts, and once the task is seen finished, further pushes for the
task start nothing: no look, no new recheck budget. A task is held by the instance that took
the push; with several instances (PostgreSQL) each holds its own, so a flood spread over N
instances costs at most N confirmations per window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

CONFIRM_WINDOW = 30.0
"""Seconds a confirmation holds its task: longer than its quick looks take (five, 2 s
apart), so a flood that outlasts one confirmation starts at most one more every 30 s."""
_HELD_MAX = 100_000


class Confirmations:
    def __init__(self, looks: int, window: float = CONFIRM_WINDOW) -> None:
        self._looks = looks
        self._window = timedelta(seconds=window)
        self._left: dict[str, int] = {}
        """Quick looks each pushed, unconfirmed task has left."""
        self._until: dict[tuple[str, str], datetime] = {}
        """Until when a push for each task (account id, task id) starts nothing."""

    def held(self, account_id: str, task_id: str, now: datetime) -> bool:
        """A push for this task now costs nothing."""
        until = self._until.get((account_id, task_id))
        return until is not None and now < until

    def begin(self, account_id: str, task_id: str, now: datetime) -> bool:
        """A push for an unfinished task: True when it starts a confirmation (the caller
        looks at once), False when the task is held (the push costs nothing)."""
        if self.held(account_id, task_id, now):
            return False
        self._hold((account_id, task_id), now)
        self._left[task_id] = self._looks
        return True

    def finished(self, account_id: str, task_id: str, now: datetime) -> None:
        """A push for a finished task: the next ones in the window need not read it."""
        self._hold((account_id, task_id), now)

    def take(self, task_id: str) -> int:
        """The quick looks left to a task a look starts at (0: not being confirmed); the
        look hands back what remains through :meth:`looked`."""
        return self._left.pop(task_id, 0)

    def looked(self, task_id: str, left: int, finished: bool) -> None:
        """A look that took ``left`` saved its answer: one quick look fewer remains."""
        if left > 1 and not finished:
            self._left[task_id] = left - 1

    def _hold(self, key: tuple[str, str], now: datetime) -> None:
        if len(self._until) >= _HELD_MAX:
            # Tasks another instance finished are never seen finishing here: forget what
            # no longer holds, and at worst everything (a bound, not a cache).
            for stale in [k for k, until in self._until.items() if until <= now]:
                del self._until[stale]
                self._left.pop(stale[1], None)
            if len(self._until) >= _HELD_MAX:
                self._until.clear()
                self._left.clear()
        self._until[key] = now + self._window
