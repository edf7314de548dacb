"""One attempt of a delivery: the signed POST through the relay's transport and the record
of what came back, classified by the pure ``relay.delivery.outcomes`` (the engine,
``relay.delivery.engine``, decides what to send and when, this sends one)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime
from typing import Protocol

import httpx

from relay.backoff import parse_retry_after
from relay.clock import Clock
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
from relay.delivery.requests import WebhookRequests
from relay.logs import ids, url_origin
from relay.metrics import RelayMetrics
from relay.models import Attempt, DeliveryStatus, DueDelivery
from relay.net.transport import BODY_LIMIT, TOTAL_TIMEOUT
from relay.store.values import AttemptRecord

log = logging.getLogger("relay.delivery")


class Refresh(Protocol):
    def needs_refresh(self, d: DueDelivery, now: datetime) -> bool: ...

    async def body_for(self, d: DueDelivery) -> str: ...


class Attempts:
    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport,
        clock: Clock,
        rng: random.Random,
        timeout: float,
        snippet_bytes: int,
        retry: RetryPolicy,
        refresh: Refresh | None,
        metrics: RelayMetrics,
    ) -> None:
        # The shared client's transport, used directly: webhook POSTs need none of
        # AsyncClient's per-request middleware (cookies, auth, redirects, event hooks).
        self._transport = transport
        self._clock = clock
        self._rng = rng
        self._timeout = timeout
        self._snippet_bytes = snippet_bytes
        self._retry = retry
        self._refresh = refresh
        self._metrics = metrics
        self._requests = WebhookRequests(
            {
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout},
                TOTAL_TIMEOUT: timeout,
                BODY_LIMIT: snippet_bytes,
            }
        )

    def finished(self, d: DueDelivery, record: AttemptRecord) -> None:
        """Count the attempt, and log it unless it delivered (at debug level then)."""
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

    async def make(self, d: DueDelivery, lease_end: datetime | None = None) -> AttemptRecord:
        """The attempt's record. Raises ``LeaseTooShort``, sending nothing, when the lease
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
            content = await _read(response)
            snippet = content[: self._snippet_bytes].decode("utf-8", errors="replace")
            code = response.status_code
            result = AttemptResult(
                code,
                retry_after=parse_retry_after(response.headers, self._clock.now())
                if code in SLOW_DOWN_STATUSES
                else None,
            )
        except httpx.TimeoutException as exc:
            result = AttemptResult(
                None, error=f"timeout after {self._timeout:g} s (" + _describe(exc) + ")"
            )
        except httpx.HTTPError as exc:
            result = AttemptResult(None, error=_describe(exc))
        except (asyncio.CancelledError, LeaseTooShort):
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
        outcome = classify_attempt(result, number, self._retry, self._clock.now(), self._rng)
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
        if left < self._timeout:
            raise LeaseTooShort(left)


class LeaseTooShort(Exception):
    """Nothing was sent: the lease could run out before the attempt's timeout."""

    def __init__(self, left: float) -> None:
        super().__init__(f"{left:.1f} s of the lease left")
        self.left = left


async def _read(response: httpx.Response) -> bytes:
    """The response's body. The relay's transport hands it over read already (a
    ``ByteStream``): taken as it is, it costs about 2 us instead of the 11 us of ``aread``'s
    layers of async iterators (about a tenth more deliveries a second in
    benchmarks/delivery.py).
    Encoded (gzip, ...) or from another transport, ``aread`` reads and decodes it."""
    stream = response.stream
    if type(stream) is httpx.ByteStream and "content-encoding" not in response.headers:
        return b"".join([part async for part in stream])
    return await response.aread()


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
