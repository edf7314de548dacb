"""Talking to providers: sends what a dialect adapter builds, hands the reply back to it, and
keeps each provider's health (consecutive faults, back-off) so a provider outage slows the
relay down instead of failing tasks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from relay import strict_json
from relay.adapters.base import CancelAccepted, Created, Dialect, HttpCall, HttpReply
from relay.backoff import provider_backoff, retry_after_wait
from relay.clock import Clock
from relay.models import iso
from relay.provider_answers import FaultKind, ProviderFault, ProviderHealth, ProviderTask
from relay.submissions import Candidate
from relay.tasks.request_budget import RequestBudget

log = logging.getLogger("relay.providers")

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ModerationAnswer:
    """A provider's answer to an image moderation request, redacted
    (``ProviderClient.moderate``)."""

    status_code: int
    body: Any
    """The decoded JSON answer; None (and ``is_json`` false) when it was not JSON."""
    is_json: bool

    def refusal(self) -> str | None:
        """The provider's own words for a refusal (``message``, ``error.message``, ...),
        cut to a sentence's length; None when it gave none."""
        if not isinstance(self.body, dict):
            return None
        error = self.body.get("error")
        for said in (
            self.body.get("message"),
            error.get("message") if isinstance(error, dict) else error,
            self.body.get("msg"),
            self.body.get("detail"),
        ):
            if isinstance(said, str) and said.strip():
                return said.strip()[:300]
        return None


def _redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_json(item, redact) for item in value]
    if isinstance(value, dict):
        return {redact(k): _redact_json(v, redact) for k, v in value.items()}
    return value


_DEFAULT_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "user-agent": "seedance-relay/0.1",
}
"""Sent with every provider request unless configured otherwise (``gzip`` and ``deflate``:
the encodings httpx decodes without extra packages)."""

_NOT_PROVIDER_FAULTS = frozenset(
    {FaultKind.NOT_FOUND, FaultKind.INVALID_REQUEST, FaultKind.BACKED_OFF}
)
"""Answers about one task or one request, not about the provider's health."""


class ProviderClient:
    """One configured provider account: its dialect, address, key and concurrency cap."""

    def __init__(
        self,
        *,
        name: str,
        dialect: Dialect,
        base_url: str,
        api_key: str | None,
        headers: Mapping[str, str],
        timeout: float,
        max_concurrency: int,
        transport: httpx.AsyncBaseTransport,
        clock: Clock,
        rng: random.Random,
        path_prefix: str = "",
        moderation_path: str | None = None,
        requests_per_second: float | None = None,
    ) -> None:
        self.name = name
        self.dialect = dialect
        self.moderation_path = moderation_path
        self._root = base_url.rstrip("/")
        self._base = self._root + path_prefix
        # What httpx.AsyncClient sent by default, under the configured headers (which win,
        # whatever their case: a gateway may ask for "Accept-Encoding: identity").
        self._headers = httpx.Headers(_DEFAULT_HEADERS)
        self._headers.update(headers)
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        # A header value and, for "Bearer <token>" / "Basic <credentials>", its credential
        # alone: a provider echoing the token it refused echoes just that part.
        values = [api_key, *headers.values()]
        values += [
            v.split(None, 1)[1]
            for v in headers.values()
            if v.lower().startswith(("bearer ", "basic ")) and len(v.split(None, 1)) == 2
        ]
        self._secrets = tuple(
            sorted({v for v in values if v and len(v) >= 8}, key=len, reverse=True)
        )
        """The key and header values: a fault message (a provider echoing the key it
        refused, an error naming a URL) must never carry them into logs or task errors."""
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self._budget = RequestBudget(requests_per_second) if requests_per_second else None
        self._transport = transport
        self._extensions: dict[str, Any] = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        }
        """What the transport reads from each request: every phase within ``timeout``, and
        (``TOTAL_TIMEOUT`` unset) the whole reply within it too, as the delivery engine's."""
        self._clock = clock
        self._rng = rng
        self._faults = 0
        self._last_fault: str | None = None
        self._last_fault_at: datetime | None = None
        self._backoff_until: datetime | None = None
        self._in_flight = 0

    def health(self) -> ProviderHealth:
        return ProviderHealth(
            self.name,
            self.dialect.name,
            self._faults,
            self._last_fault,
            self._last_fault_at,
            self._backoff_until,
            self._in_flight,
        )

    def backoff_until(self) -> datetime | None:
        """While the provider is backed off, polls wait until this time."""
        until = self._backoff_until
        return until if until is not None and until > self._clock.now() else None

    async def create(
        self, body: Mapping[str, Any], webhook_url: str | None = None
    ) -> Created | ProviderFault:
        return await self._exchange(
            self.dialect.build_create(body, webhook_url), self.dialect.parse_create
        )

    async def query(self, provider_task_id: str) -> ProviderTask | ProviderFault:
        return await self._exchange(
            self.dialect.build_query(provider_task_id),
            lambda reply, now: self.dialect.parse_query(reply, provider_task_id, now),
        )

    async def list_recent(self, model: str | None) -> list[Candidate] | ProviderFault | None:
        """The account's latest tasks (of ``model``), to reconcile an uncertain create;
        None when the dialect cannot list."""
        call = self.dialect.build_list(model)
        return None if call is None else await self._exchange(call, self.dialect.parse_list)

    @property
    def timeout(self) -> float:
        """Seconds one request to the provider may take."""
        return self._timeout

    async def cancel(self, provider_task_id: str) -> CancelAccepted | ProviderFault | None:
        """Ask the provider to cancel; None when its dialect cannot."""
        call = self.dialect.build_cancel(provider_task_id)
        if call is None:
            return None
        return await self._exchange(
            call, lambda reply, now: self.dialect.parse_cancel(reply, provider_task_id, now)
        )

    async def _exchange(
        self, call: HttpCall, parse: Callable[[HttpReply, datetime], R]
    ) -> R | ProviderFault:
        """Send ``call``, read the reply with ``parse``, and count what came of it toward
        the provider's health (``_note``)."""
        started = self._clock.now()
        reply = await self._send(call)
        if isinstance(reply, ProviderFault):
            return self._note(reply, started)
        return self._note(parse(reply, self._clock.now()), started)

    async def moderate(self, body: Mapping[str, Any]) -> ModerationAnswer | ProviderFault:
        """Pass an image moderation request through to the provider. What comes back is its
        answer decoded, with the key and every configured header value cut out of every
        string and key: the answer goes to a caller, and a provider's error page may echo
        the request's headers. (Decoded, so an escaped copy, ``\\/`` or ``\\u0073k-``,
        is found too.)"""
        assert self.moderation_path is not None
        call = HttpCall(method="POST", path=self.moderation_path, json=body)
        reply = await self._send(call, base=self._root)
        if isinstance(reply, ProviderFault):
            return replace(reply, message=self.redact(reply.message))
        try:
            decoded = strict_json.loads(reply.body)
            return ModerationAnswer(reply.status_code, _redact_json(decoded, self.redact), True)
        except (ValueError, RecursionError):  # UnicodeDecodeError included
            return ModerationAnswer(reply.status_code, None, False)

    def redact(self, text: str) -> str:
        """``text`` with the provider key and the configured header values (``_secrets``)
        replaced by ``***``: the one redaction of what a provider says."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _send(self, call: HttpCall, base: str | None = None) -> HttpReply | ProviderFault:
        """Send ``call`` through the relay's transport directly: an ``httpx.AsyncClient``'s
        per-request middleware (cookies, auth, redirects, event hooks) is work a provider
        call never needs. The budget applies to requests actually sent: each takes its slot
        after it got one of the provider's concurrency slots."""
        async with self._slots:
            if self._budget is not None:
                await self._budget.wait()
            # A call that waited for a slot may find the provider backed off meanwhile.
            backoff = self.backoff_until()
            if backoff is not None:
                return ProviderFault(
                    FaultKind.BACKED_OFF,
                    True,
                    f"backing off this provider until {iso(backoff)}",
                    reached=False,
                )
            self._in_flight += 1
            try:
                request = httpx.Request(
                    call.method,
                    (base or self._base) + call.path,
                    json=call.json,
                    params=dict(call.params) or None,
                    headers=self._headers,
                    extensions=self._extensions,
                )
                response = await self._transport.handle_async_request(request)
                body = await response.aread()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # No connection, so nothing was sent: a create can safely go again.
                return ProviderFault(
                    FaultKind.UNAVAILABLE, True, f"{type(exc).__name__}: {exc}", reached=False
                )
            except httpx.TimeoutException:
                return ProviderFault(
                    FaultKind.TIMEOUT, True, f"no answer within {self._timeout:g} s"
                )
            except httpx.HTTPError as exc:
                return ProviderFault(FaultKind.UNAVAILABLE, True, f"{type(exc).__name__}: {exc}")
            finally:
                self._in_flight -= 1
        return HttpReply(response.status_code, response.headers, body)

    def _note(self, result: R, started: datetime) -> R:
        """Count provider faults (not task answers) for health and back-off. Calls that were
        already under way when a fault was counted are the same outage, not new ones: eight
        concurrent polls refused at once are one fault, not eight in a row."""
        if isinstance(result, ProviderFault) and any(k in result.message for k in self._secrets):
            result = replace(result, message=self.redact(result.message))
        if isinstance(result, ProviderFault) and result.kind not in _NOT_PROVIDER_FAULTS:
            now = self._clock.now()
            backs_off = result.retryable or result.kind is FaultKind.UNAUTHORIZED
            if self._last_fault_at is not None and started < self._last_fault_at and self._faults:
                # Not one more fault, but a Retry-After it brings still binds: a 429 that
                # lands just after a concurrent 500 was counted must not be cut short.
                wait = retry_after_wait(result.retry_after)
                if backs_off and wait:
                    until = now + timedelta(seconds=wait)
                    if self._backoff_until is None or until > self._backoff_until:
                        self._backoff_until = until
                return result
            self._faults += 1
            self._last_fault = f"{result.kind.value}: {result.message}"
            self._last_fault_at = now
            if backs_off:
                delay = provider_backoff(self._faults, result.retry_after, rng=self._rng)
                self._backoff_until = now + timedelta(seconds=delay)
            log.warning(
                "provider %s fault (%d in a row): %s",
                self.name,
                self._faults,
                self._last_fault,
                extra={"provider": self.name},
            )
        elif not isinstance(result, ProviderFault) and (
            self._last_fault_at is None or started >= self._last_fault_at
        ):
            # (An answer to a call made before the last fault does not prove recovery.)
            if self._faults:
                log.info("provider %s answers again after %d faults", self.name, self._faults)
            self._faults = 0
            self._backoff_until = None
        return result
