"""``provider.unhealthy`` and ``provider.recovered`` (``relay.operational``): each worker
looks at its providers' health (``ProviderClient.health``) on a timer and, when one turns,
tells every account with an active subscription that asked for that event type.

Health is each instance's own view (its run of faults), so with several workers each one
announces the outage it sees: a receiver may hear of one outage once per instance. An
account is told when it asked for the type, whether or not it has tasks at that provider:
one cheap query, and an account that asked wants to know before its next task fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from relay.clock import Clock
from relay.errors import StoreError
from relay.operational import health_turn, new_event_id, provider_event
from relay.provider_answers import ProviderHealth
from relay.store.interface import Store

log = logging.getLogger("relay.providers")


class ProviderWatch:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        health: Mapping[str, Callable[[], ProviderHealth]],
        unhealthy_after: int,
        on_events: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._health = health
        self._after = unhealthy_after
        self._on_events = on_events
        self._unhealthy: set[str] = set()

    async def check(self) -> None:
        """One look at every provider; a turn is remembered only once it is written, so a
        database outage delays the news to the next look instead of losing it."""
        for name, health in self._health.items():
            now_health = health()
            turn = health_turn(name in self._unhealthy, now_health, self._after)
            if turn is None:
                continue
            try:
                accounts = await self._store.accounts_wanting(turn)
                now = self._clock.now()
                events = [provider_event(a, turn, now_health, now, new_event_id) for a in accounts]
                if events:
                    await self._store.write_account_events(events)
            except StoreError as exc:
                log.warning("could not announce %s of provider %s: %s", turn, name, exc)
                return
            log.info("provider %s: %s announced to %d accounts", name, turn.value, len(events))
            if name in self._unhealthy:
                self._unhealthy.discard(name)
            else:
                self._unhealthy.add(name)
            if events:
                self._on_events()
