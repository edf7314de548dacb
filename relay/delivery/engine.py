"""The delivery engine: claims due deliveries, signs them, POSTs them, records every attempt.

Flow: each pass of the pump claims as many due deliveries as there are free slots, never
more for one destination than its concurrency cap leaves room for, nor for one account than its
share or its total, nor for a rate-limited destination than its gate lets start now
(``relay.delivery.fairness``), and starts one send each.
A finished send is classified by the pure ``relay.delivery.outcomes.classify_attempt`` into a record
that ``relay.delivery.recorder`` writes in batches, one transaction per batch, which is what
lets a durable relay keep up with a bare HTTP loop.
Until its record is written a delivery stays leased, so a crash at any moment leaves it due
again once the lease is released (at-least-once). Without a crash a delivery is never sent
twice: a send starts at most ``RATE_HORIZON`` after its claim, and never on a lease that could
run out before its attempt's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from relay.backoff import parse_retry_after
from relay.clock import Clock
from relay.delivery.announcements import Announcements
from relay.delivery.fairness import Ledger, RateGate, account_limit, filled
from relay.delivery.formats import render
from relay.delivery.outcomes import (
    SLOW_DOWN_STATUSES,
    AttemptResult,
    Delivered,
    RetryPolicy,
    classify_attempt,
    describe_attempt,
    outcome_fields,
)
from relay.delivery.recorder import AttemptRecorder, log_crash
from relay.delivery.requests import WebhookRequests
from relay.logs import ids, url_origin
from relay.metrics import RelayMetrics
from relay.models import Attempt, DeliveryStatus, DueDelivery, Event
from relay.net.transport import BODY_LIMIT, TOTAL_TIMEOUT
from relay.pump import Pump
from relay.store.interface import DeliveryStore, OperationalEventStore
from relay.store.values import AttemptRecord

log = logging.getLogger("relay.delivery")

FILLED_RECHECK = 0.05
"""Seconds before another claim when a destination reached its cap in the last one."""


class Refresh(Protocol):
    def needs_refresh(self, d: DueDelivery, now: datetime) -> bool: ...

    async def body_for(self, d: DueDelivery) -> str: ...


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
        self._metrics = metrics or RelayMetrics()
        self._refresh = refresh
        # The shared client's transport, used directly: webhook POSTs need none of
        # AsyncClient's per-request middleware (cookies, auth, redirects, event hooks).
        self._transport = transport
        self._clock = clock
        self._rng = rng
        self._settings = settings
        self._owner = owner
        t = settings.timeout
        self._requests = WebhookRequests(
            {
                "timeout": {"connect": t, "read": t, "write": t, "pool": t},
                TOTAL_TIMEOUT: t,
                BODY_LIMIT: settings.snippet_bytes,
            }
        )
        self._recorder = AttemptRecorder(
            store, owner, self._recorded, clock, settings.lease_seconds
        )
        self._sends: set[asyncio.Task[None]] = set()
        self._ledger = Ledger()
        self._backlog = False
        self._stopping = False
        self._gate = RateGate()
        self._claimed_at = clock.now()
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
        self.pump.wake()

    async def stop(self, grace: float) -> None:
        """Stop claiming, let attempts in flight finish (up to ``grace`` s), record them.
        Deliveries claimed but not started stay leased and are sent after a restart."""
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
        self._recorder.final = True
        await self._recorder.flush()
        if self._announcing:
            await asyncio.wait(set(self._announcing), timeout=max(1.0, grace))

    async def _claim_and_send(self) -> bool:
        free = self._settings.max_in_flight - len(self._sends)
        if free <= 0:
            self._backlog = True
            return False
        claimed_at = self._claimed_at = self._clock.now()
        limits = self._ledger.limits(
            time.monotonic(),
            per_destination=self._settings.max_in_flight_per_destination,
            per_account=self._settings.account_share,
            per_account_total=account_limit(
                self._settings.max_in_flight, self._settings.reserved_for_others
            ),
            gate=self._gate,
        )
        due = await self._store.claim_due_deliveries(
            claimed_at, free, self._settings.lease_seconds, self._owner, limits=limits
        )
        if self._stopping:
            return False  # claimed as the engine stopped: leased, sent after a restart
        lease_end = claimed_at + timedelta(seconds=self._settings.lease_seconds)
        for delivery in due:
            self._start(delivery, lease_end)
        self._backlog = len(due) == free
        # A destination or account the claim filled up may have hidden others' due work
        # behind its backlog in the candidate window; a pass shortly after leaves it out and
        # reaches them. Shortly, not at once: skipping a long backlog costs the claim a scan.
        if not self._backlog and filled(limits, due):
            self.pump.due_in(FILLED_RECHECK)
        return self._backlog

    async def _seconds_to_next(self) -> float | None:
        if self._backlog:
            return None  # sends finishing will wake the pump
        # Work due by the last claim was that claim's; anything later wants a timer, and so
        # does a rate-limited destination's due work once its gate opens.
        due = await self._store.next_delivery_at(self._claimed_at)
        waits = [] if due is None else [(due - self._clock.now()).total_seconds()]
        opens = self._gate.opens_in(time.monotonic())
        if opens is not None:
            waits.append(opens)
        return min(waits, default=None)

    def _recorded(self, records: Sequence[AttemptRecord]) -> None:
        """Retries just written come due later: make sure the pump wakes for the first."""
        retries = [r.next_attempt_at for r in records if r.next_attempt_at is not None]
        if retries:
            self.pump.due_in((min(retries) - self._clock.now()).total_seconds())
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
        task = asyncio.ensure_future(self._send(delivery, ticket, wait, lease_end))
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        log_crash(task)
        # Claim again once a quarter of the slots is free: one claim per send would cost a
        # database round trip per delivery.
        free = self._settings.max_in_flight - len(self._sends)
        if self._backlog and free >= max(1, self._settings.max_in_flight // 4):
            self.wake()

    async def send_now(self, delivery: DueDelivery) -> AttemptRecord:
        """One attempt, now, recorded before returning, with no retry whatever it gets: a
        test event shows the receiver's answer, it is not work to finish."""
        record = await self._attempt(delivery)
        if record.status is DeliveryStatus.PENDING:
            record = replace(
                record,
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                attempt=replace(record.attempt, outcome="failed"),
            )
        self._finished(delivery, record)
        await self._store.record_attempts([record], self._owner)
        return record

    async def _send(
        self, delivery: DueDelivery, ticket: int, wait: float, lease_end: datetime
    ) -> None:
        answered_in: float | None = None
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            record = await self._attempt(delivery, lease_end)
            a = record.attempt
            self._announcements.attempted(
                delivery, record.status, a.number, a.status_code, a.error, self._clock.now()
            )
            self._recorder.add(record)
            self._finished(delivery, record)
            if record.attempt.status_code is not None:
                answered_in = record.attempt.latency_ms / 1000
        except _LeaseTooShort as exc:
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
            self.pump.due_in(exc.left + FILLED_RECHECK)
        finally:
            left = self._ledger.finish(ticket, time.monotonic(), answered_in)
            cap = self._settings.max_in_flight_per_destination
            if left <= cap - max(1, cap // 4):
                # Claims may have left this destination's (or this account's) due work
                # behind at its cap; claim again once a quarter of its room is free. Wakes
                # while a pass runs fold into one more pass, so this is not a database round
                # trip per delivery.
                self.wake()

    def _finished(self, d: DueDelivery, record: AttemptRecord) -> None:
        a = record.attempt
        self._metrics.attempt_finished(a.outcome, a.latency_ms / 1000)
        delivered = record.status is DeliveryStatus.SUCCEEDED
        if delivered and not log.isEnabledFor(logging.DEBUG):
            return  # the hot path: nothing to build
        extra = ids(delivery_id=d.id, event_id=d.event_id, task_id=d.task_id, outcome=a.outcome)
        if delivered:
            log.debug(
                "delivery %s of %s to %s: attempt %d delivered (%s) in %.0f ms",
                d.id,
                d.event_id,
                url_origin(d.url),
                a.number,
                a.status_code,
                a.latency_ms,
                extra=extra,
            )
        else:
            # The origin only: a destination's path or query may hold the receiver's token.
            log.info(
                "delivery %s of %s to %s: attempt %d %s (%s)%s",
                d.id,
                d.event_id,
                url_origin(d.url),
                a.number,
                a.outcome,
                a.error or a.status_code,
                f", next at {record.next_attempt_at.isoformat()}"
                if record.next_attempt_at is not None
                else "",
                extra=extra,
            )

    async def _attempt(self, d: DueDelivery, lease_end: datetime | None = None) -> AttemptRecord:
        """The attempt's record. Raises ``_LeaseTooShort``, sending nothing, when the lease
        (ending at ``lease_end``) could run out before the attempt's timeout: another claim
        would then send it a second time."""
        started = self._clock.now()
        t0 = time.perf_counter()
        snippet: str | None = None
        try:
            body = d.body
            if self._refresh is not None and self._refresh.needs_refresh(d, started):
                body = await self._refresh.body_for(d)
            # A front door's destination gets its own shape of the event, signed as sent.
            body = render(d.body_format, body)
            if lease_end is not None:
                self._check_lease(d, lease_end)
            response = await self._transport.handle_async_request(
                self._requests.build(d, body, started)
            )
            await response.aread()
            snippet = response.content[: self._settings.snippet_bytes].decode(
                "utf-8", errors="replace"
            )
            code = response.status_code
            result = AttemptResult(
                code,
                retry_after=parse_retry_after(response.headers, self._clock.now())
                if code in SLOW_DOWN_STATUSES
                else None,
            )
        except httpx.TimeoutException as exc:
            result = AttemptResult(
                None, error=f"timeout after {self._settings.timeout:g} s (" + _describe(exc) + ")"
            )
        except httpx.HTTPError as exc:
            result = AttemptResult(None, error=_describe(exc))
        except (asyncio.CancelledError, _LeaseTooShort):
            raise
        except Exception as exc:
            # Whatever went wrong, it is recorded as this attempt's outcome: a delivery must
            # never crash without a record and be re-sent forever at each lease expiry.
            log.exception(
                "delivery %s to %s failed unexpectedly",
                d.id,
                url_origin(d.url),
                extra=ids(delivery_id=d.id, event_id=d.event_id),
            )
            result = AttemptResult(None, error=_describe(exc))
        latency_ms = (time.perf_counter() - t0) * 1000
        number = d.attempt_count + 1
        outcome = classify_attempt(
            result, number, self._settings.retry, self._clock.now(), self._rng
        )
        label, status, next_at = outcome_fields(outcome)
        error = None if isinstance(outcome, Delivered) else describe_attempt(result)
        return AttemptRecord(
            delivery_pk=d.pk,
            attempt=Attempt(
                delivery_id=d.id,
                number=number,
                started_at=started,
                latency_ms=round(latency_ms, 3),
                outcome=label,
                status_code=result.status_code,
                error=error,
                response_snippet=snippet,
            ),
            status=status,
            next_attempt_at=next_at,
        )

    def _check_lease(self, d: DueDelivery, lease_end: datetime) -> None:
        left = (lease_end - self._clock.now()).total_seconds()
        if left < self._settings.timeout:
            raise _LeaseTooShort(left)


class _LeaseTooShort(Exception):
    def __init__(self, left: float) -> None:
        super().__init__(f"{left:.1f} s of the lease left")
        self.left = left


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
