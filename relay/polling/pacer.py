"""What one relay process has learned about how long tasks take, and the next poll delay it
gives each task from that: the state the tracker keeps between polls, apart from the I/O
that feeds it. No I/O, and ``now`` is always passed in."""

from __future__ import annotations

import random
from datetime import datetime

from relay.models import Task, TaskStatus
from relay.polling.durations import DurationKey, DurationModel
from relay.polling.learned import next_poll_delay_learned
from relay.polling.schedule import PollPolicy, next_poll_delay

_RUNNING_AGES_MAX = 200_000


class Pacer:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._durations = DurationModel()
        """How long tasks took, by provider, model, clip length and resolution."""
        self._running_age: dict[str, float] = {}
        """Each unfinished task's age at its last poll: the success lies after it."""

    def first_delay(self, policy: PollPolicy) -> float:
        """Seconds before a task just submitted is first polled."""
        return next_poll_delay(0, None, policy, self._rng)

    def delay(self, task: Task, policy: PollPolicy, learn: bool, now: datetime) -> float:
        """Seconds before ``task`` is polled again (by what was learned, when ``learn``)."""
        age = (now - task.created_at).total_seconds()
        estimate = self._durations.estimate(DurationKey.of(task)) if learn else None
        return next_poll_delay_learned(age, task.progress, policy, estimate, self._rng)

    def observe(self, before: Task, after: Task, polled_at: datetime) -> None:
        """Remember how long a task took, to poll the next ones like it when they finish."""
        if after.status.terminal or before.status.terminal:
            last_running = self._running_age.pop(after.id, None)
            if (
                after.status is TaskStatus.SUCCEEDED
                and not before.status.terminal
                and after.completed_at is not None
            ):
                seconds = (after.completed_at - after.created_at).total_seconds()
                self._durations.observe(DurationKey.of(after), seconds, last_running=last_running)
            return
        if len(self._running_age) >= _RUNNING_AGES_MAX:
            self._running_age.clear()  # a bound, not a cache: at worst one estimate is coarser
        self._running_age[after.id] = (polled_at - after.created_at).total_seconds()
