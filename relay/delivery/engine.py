"""The delivery engine: claims due deliveries, signs them, POSTs them, records every attempt.

Flow: each pass of the pump is one cycle, one transaction (``DeliveryStore.record_and_claim``):
it records the attempts finished since the last cycle and claims due deliveries for the free
slots, never more for one destination than its concurrency cap leaves room for (a quick one:
and a little more, sent as its own sends finish), nor for one account than its share or its
total, nor for a rate-limited destination than its gate lets start now
(``relay.delivery.fairness``), and starts one send each (``relay.delivery.attempts``).
A finished send's record (classified by the pure ``relay.delivery.outcomes``) waits in
``relay.delivery.recorder`` and wakes the next cycle, so the batch follows the load, the
database sees one trip a cycle instead of a claim and a record taking turns, and a slot freed
is refilled by the transaction that records why it is free.
Until its record is written a delivery stays leased, so a crash at any moment leaves it due
again once the lease is released (at-least-once). Without a crash a delivery is never sent
twice: a send starts at most ``RATE_HORIZON`` after its claim (one claimed ahead for a quick
destination: within ``AHEAD`` attempt timeouts), and never on a lease that could run out
before its attempt's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import httpx

from relay.clock import Clock
from relay.delivery.announcements import Announcements
from relay.delivery.attempts import Attempts, LeaseTooShort, Refresh
from relay.delivery.fairness import Ledger, RateGate, account_limit, ahead, filled
from relay.delivery.outcomes import RetryPolicy
from relay.delivery.recorder import AttemptRecorder, log_crash
from relay.delivery.turns import Turns
from relay.errors import StoreError
from relay.logs import ids, url_origin
from relay.metrics import RelayMetrics
from relay.models import DeliveryStatus, DueDelivery, Event
from relay.pump import Pump
from relay.store.interface import DeliveryStore, OperationalEventStore
from relay.store.values import AttemptRecord

log = logging.getLogger("relay.delivery")

FILLED_RECHECK = 0.05
"""Seconds before another claim when a destination reached its cap in the last one."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    timeout: float = 15.0
    max_in_flight: int = 256
    max_in_flight_per_destination: int = 64
    max_in_flight_per_account: int | None = None
    """Slots one account's sends to slow or unknown receivers may hold (quick ones are not
    counted: ``relay.delivery.fairness``); None: half of ``max_in_flight``."""
    reserved_for_others: int | None = None
    """Slots any one account leaves to the others, quick sends included (None: an eighth)."""
    lease_seconds: float = 300.0
    snippet_bytes: int = 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    failing_after: int = 5
    """Failed attempts in a row to a subscription before ``subscription.failing``."""

    def __post_init__(self) -> None:
        if self.lease_seconds < 2 * self.timeout:
            raise ValueError("a delivery's lease must cover at least two attempt timeouts")
        if self.max_in_flight_per_account is not None and self.max_in_flight_per_account < 1:
            raise ValueError("an account's share must be at least one slot")
        if not 0 <= (self.reserved_for_others or 0) < self.max_in_flight:
            raise ValueError("the slots reserved for others must leave an account one slot")

    @property
    def account_share(self) -> int:
        if self.max_in_flight_per_account is not None:
            return self.max_in_flight_per_account
        return max(1, self.max_in_flight // 2)


class DeliveryEngine:
    def __init__(
        self,
        *,
        store: DeliveryStore,
        transport: httpx.AsyncBaseTransport,
        clock: Clock,
        rng: random.Random,
        settings: EngineSettings,
        owner: str,
        refresh: Refresh | None = None,
        metrics: RelayMetrics | None = None,
        events: OperationalEventStore | None = None,
    ) -> None:
        """``refresh`` gives the body to send for a delivery whose event's video URL has
        expired (``relay.delivery.fresh_urls``); without it the stored body is sent.
        ``metrics`` counts the attempts (by default into a registry of the engine's own).
        ``events`` writes the operational events attempts call for (none without it)."""
        self._events = events
        self._store = store
        self._clock = clock
        self._settings = settings
        self._owner = owner
        self._attempts = Attempts(
            transport=transport,
            clock=clock,
            rng=rng,
            timeout=settings.timeout,
            snippet_bytes=settings.snippet_bytes,
            retry=settings.retry,
            refresh=refresh,
            metrics=metrics or RelayMetrics(),
        )
        self._recorder = AttemptRecorder(
            self._recorded, self._records_waiting, clock, settings.lease_seconds
        )
        self._sends: set[asyncio.Task[None]] = set()
        self._active = 0
        """Sends started and not finished (a finished one's task may not be done yet)."""
        self._ledger = Ledger()
        self._ahead = ahead(
            settings.max_in_flight_per_destination, settings.lease_seconds, settings.timeout
        )
        self._turns: Turns[_Send] = Turns(settings.max_in_flight_per_destination)
        """Sends claimed ahead for a quick destination, waiting for one of its own to end."""
        self._unsent: list[int] = []
        """Deliveries whose turn came while stopping: handed back, not sent."""
        self._backlog = False
        self._stopping = False
        self._gate = RateGate()
        self._claimed_at = clock.now()
        self._full_claim = True
        """The next cycle claims for every free slot (new work, a timer): ``_claim_and_send``."""
        self._timer_at = math.inf
        """When the earliest timer the engine asked of the pump fires (time.monotonic())."""
        self._announcements = Announcements(settings.failing_after)
        self._announcing: set[asyncio.Task[None]] = set()
        self.on_events: Callable[[], None] = self.wake
        """What a write of operational events wakes (the app adds the live stream)."""
        self.pump = Pump("delivery", self._claim_and_send, self._seconds_to_next)

    @property
    def owner(self) -> str:
        """Whose leases this engine's claims are (a test send leases under it too)."""
        return self._owner

    @property
    def lease_seconds(self) -> float:
        return self._settings.lease_seconds

    @property
    def in_flight(self) -> int:
        return len(self._sends)

    def wake(self) -> None:
        """New work was written: send it now, not at the next tick."""
        self._full_claim = True
        self.pump.wake()

    def _records_waiting(self) -> None:
        """Finished attempts wait for the next cycle: it records them and claims for the
        slots they freed."""
        self.pump.wake()

    def _due_in(self, seconds: float) -> None:
        """Work falls due in ``seconds``: the cycle then claims for every free slot."""
        self._timer_at = min(self._timer_at, time.monotonic() + max(0.0, seconds))
        self.pump.due_in(seconds)

    async def stop(self, grace: float) -> None:
        """Stop claiming, let attempts in flight finish (up to ``grace`` s), record them.
        Deliveries claimed but not started (claimed ahead, waiting for their turn) are handed
        back: due again at once, for another instance or this one's restart (should that
        fail, they stay leased until their lease ends)."""
        self._stopping = True
        self.pump.stop()
        await self.pump.settle()
        deadline = time.monotonic() + grace
        while self._sends:
            _, pending = await asyncio.wait(
                set(self._sends), timeout=max(0.0, deadline - time.monotonic())
            )
            if pending and time.monotonic() >= deadline:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        await self._recorder.flush(self._store, self._owner)
        waiting = [*self._unsent, *(send.delivery.pk for send in self._turns.drain())]
        if waiting:
            try:
                await self._store.release_deliveries(waiting, self._owner)
            except StoreError as exc:
                log.warning(
                    "%d claimed deliveries stay leased until their lease ends: %s",
                    len(waiting),
                    exc,
                )
        if self._announcing:
            await asyncio.wait(set(self._announcing), timeout=max(1.0, grace))

    async def _claim_and_send(self) -> bool:
        """One cycle: write the attempts finished since the last one and claim as many due
        deliveries as there are free slots, in one transaction: one trip to the database a
        cycle, and a slot freed is refilled by the write that records why it is free."""
        records = self._recorder.take()
        free = self._settings.max_in_flight - self._active
        if free <= 0:
            self._backlog = True
            if not records:
                return False
            free = 0
        # A cycle woken only by finished attempts claims for the slots they freed and a few
        # more: the claim ranks a window of four times its limit, so claiming for every free
        # slot each cycle (192 while one destination holds its 64) cost milliseconds on the
        # writer for a handful of rows. New work, a timer, a tick, or a claim that filled its
        # limit claim for all of them.
        now = time.monotonic()
        if free and (self._full_claim or not records or now >= self._timer_at):
            self._full_claim = False
            self._timer_at = math.inf
        elif free:
            free = min(free, len(records) + max(1, self._settings.max_in_flight // 16))
        claimed_at = self._clock.now()
        limits = (
            self._ledger.limits(
                now,
                per_destination=self._settings.max_in_flight_per_destination,
                per_account=self._settings.account_share,
                per_account_total=account_limit(
                    self._settings.max_in_flight, self._settings.reserved_for_others
                ),
                gate=self._gate,
                ahead=self._ahead,
            )
            if free
            else None
        )
        try:
            due = await self._store.record_and_claim(
                records,
                self._owner,
                claimed_at,
                free,
                self._settings.lease_seconds,
                limits=limits,
            )
        except StoreError as exc:
            pause = self._recorder.refused(records, exc)
            if pause is not None:
                self._due_in(pause)
            raise  # the pump says the database is away, once for the outage
        except Exception:
            if not records:
                raise
            # Not the database's trouble: a bug, in the claim or in the record. The records
            # alone, so that a claim that cannot run never costs a delivery a second send.
            log.exception("a delivery cycle failed; recording its %d attempts alone", len(records))
            try:
                await self._store.record_attempts(records, self._owner)
            except Exception as exc:
                pause = self._recorder.refused(records, exc)
                if pause is not None:
                    self._due_in(pause)
                raise
            self._recorder.written(records)
            return False
        self._recorder.written(records)
        if limits is None:
            return False
        if self._stopping:  # claimed as the engine stopped: handed back by stop()
            self._unsent.extend(d.pk for d in due)
            return False
        self._claimed_at = claimed_at
        lease_end = claimed_at + timedelta(seconds=self._settings.lease_seconds)
        for delivery in due:
            self._start(delivery, lease_end)
        self._backlog = len(due) == free
        self._full_claim = self._full_claim or self._backlog
        # A destination or account the claim filled up may have hidden others' due work
        # behind its backlog in the candidate window; a pass shortly after leaves it out and
        # reaches them. Shortly, not at once: skipping a long backlog costs the claim a scan.
        if not self._backlog and filled(limits, due):
            self._due_in(FILLED_RECHECK)
        return self._backlog

    async def _seconds_to_next(self) -> float | None:
        retry = self._recorder.retry_in()
        if self._backlog:
            return retry  # sends finishing will wake the pump
        # Work due by the last claim was that claim's; anything later wants a timer, and so
        # does a rate-limited destination's due work once its gate opens.
        due = await self._store.next_delivery_at(self._claimed_at)
        waits = [] if due is None else [(due - self._clock.now()).total_seconds()]
        if retry is not None:
            waits.append(retry)
        opens = self._gate.opens_in(time.monotonic())
        if opens is not None:
            waits.append(opens)
        wait = min(waits, default=None)
        if wait is not None:  # the pump arms its timer for it
            self._timer_at = min(self._timer_at, time.monotonic() + max(0.0, wait))
        return wait

    def _recorded(self, records: Sequence[AttemptRecord]) -> None:
        """Retries just written come due later: make sure the pump wakes for the first."""
        retries = [r.next_attempt_at for r in records if r.next_attempt_at is not None]
        if retries:
            self._due_in((min(retries) - self._clock.now()).total_seconds())
        events = self._announcements.recorded(r.delivery_pk for r in records)
        if events and self._events is not None:
            task = asyncio.ensure_future(self._announce(events))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _announce(self, events: list[Event]) -> None:
        """Write operational events the attempts just recorded call for: after their
        record, in a transaction of their own (the record is a batch written in one
        statement), so a crash between the two can lose them, never invent them."""
        try:
            assert self._events is not None
            await self._events.write_account_events(events)
        except Exception:
            log.exception("could not write %d operational events", len(events))
            return
        self.on_events()

    def _start(self, delivery: DueDelivery, lease_end: datetime) -> None:
        key = delivery.destination_key
        now = time.monotonic()
        # The turn is reserved here, in the claim's pass: the next claim's rooms count it.
        self._gate.learn(key, delivery.rate_limit, now)
        wait = self._gate.reserve(key, now)
        ticket = self._ledger.start(key, delivery.account_id, now, wait)
        self._active += 1
        send = _Send(delivery, ticket, wait, lease_end)
        if self._turns.take(key, send):
            self._launch(send)

    def _launch(self, send: _Send) -> None:
        task = asyncio.ensure_future(
            self._send(send.delivery, send.ticket, send.wait, send.lease_end)
        )
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        log_crash(task)

    async def send_now(self, delivery: DueDelivery) -> AttemptRecord:
        """One attempt, now, recorded before returning, with no retry whatever it gets: a
        test event shows the receiver's answer, it is not work to finish."""
        record = await self._attempts.make(delivery)
        if record.status is DeliveryStatus.PENDING:
            record = replace(
                record,
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                attempt=replace(record.attempt, outcome="failed"),
            )
        self._attempts.finished(delivery, record)
        await self._store.record_attempts([record], self._owner)
        return record

    async def _send(
        self, delivery: DueDelivery, ticket: int, wait: float, lease_end: datetime
    ) -> None:
        answered_in: float | None = None
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            record = await self._attempts.make(delivery, lease_end)
            a = record.attempt
            self._announcements.attempted(
                delivery, record.status, a.number, a.status_code, a.error, self._clock.now()
            )
            self._recorder.add(record)
            self._attempts.finished(delivery, record)
            if record.attempt.status_code is not None:
                answered_in = record.attempt.latency_ms / 1000
        except LeaseTooShort as exc:
            # Rare (a slow provider while refreshing a video URL): it stays leased and goes
            # out when the lease has run out and it is claimed again.
            log.warning(
                "delivery %s to %s not sent: %.1f s of its lease left, less than the attempt "
                "timeout; it is sent when it is claimed again",
                delivery.id,
                url_origin(delivery.url),
                exc.left,
                extra=ids(delivery_id=delivery.id, event_id=delivery.event_id),
            )
            self._due_in(exc.left + FILLED_RECHECK)
        finally:
            # Its record (added above) wakes the next cycle, which claims for the slot, and
            # for the destination's and the account's room, freed here.
            self._active -= 1
            self._ledger.finish(ticket, time.monotonic(), answered_in)
            # A send claimed ahead for this destination takes the turn (stopping, it is
            # handed back with the others still waiting).
            turn = self._turns.done(delivery.destination_key)
            if turn is not None:
                if self._stopping:
                    self._unsent.append(turn.delivery.pk)
                else:
                    self._launch(turn)


@dataclass(frozen=True, slots=True)
class _Send:
    """A claimed delivery's send, started or waiting for its turn (``Turns``)."""

    delivery: DueDelivery
    ticket: int
    wait: float
    lease_end: datetime
