"""seedance2.ink's webhook push: when a task created with ``webhookUrl`` reaches a terminal
state, the sandbox POSTs the final result there, as the real provider does.

- The body is exactly the ``GET`` answer at that moment, rendered the same way; no
  signature or auth header, as the provider documents none.
- Each push is one asyncio task sleeping until the task's finish time (computed from the
  injected clock), started from the request handler that created the task, so no handler
  ever waits for it. The scheduler keeps a reference to every pending push so none is
  garbage-collected mid-flight.
- A non-2xx answer or a transport error is retried after each of ``retry_delays``
  (default 1 s, then 5 s); after that the push is given up. Nothing a receiver does can
  break the sandbox: every outcome only lands in :attr:`PushScheduler.log`.
- Pushes live in memory: those pending when the process stops are lost (a relay must keep
  a safety poll, as DESIGN §6 says).
- One ``httpx.AsyncClient`` (``trust_env=False``: no proxies), created on first use and
  closed by :meth:`PushScheduler.aclose`, which also cancels pending pushes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx
from starlette.responses import JSONResponse

from relay.clock import Clock
from relay.models import JSON
from relay.sandbox.web import iso_ms

USER_AGENT: Final = "seedance2ink-webhook/1.0"
MAX_LOG: Final = 10_000

BodySource = Callable[[], JSON | None]
"""Renders the body when the push goes out; ``None``: the task is gone, push nothing."""


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One attempt to deliver one push."""

    task_id: str
    url: str
    attempt: int
    due_at: datetime
    """When the task reached its terminal state."""
    sent_at: datetime
    status: int | None
    """The receiver's HTTP status, or ``None`` when no answer came."""
    error: str | None
    body: bytes

    def as_json(self) -> JSON:
        return {
            "task_id": self.task_id,
            "url": self.url,
            "attempt": self.attempt,
            "due_at": iso_ms(self.due_at),
            "sent_at": iso_ms(self.sent_at),
            "status": self.status,
            "error": self.error,
        }


class _Push:
    def __init__(
        self,
        task_id: str,
        url: str,
        due_at: datetime,
        body: BodySource,
        key: str,
        user_agent: str,
    ) -> None:
        self.task_id = task_id
        self.key = key
        self.user_agent = user_agent
        self.url = url
        self.due_at = due_at
        self.body = body
        self.sending = False
        self.runner: asyncio.Task[None] | None = None


class PushRoutes(httpx.AsyncBaseTransport):
    """How the relay's own sandbox pushes: to the relay itself (its inbound webhook, at
    ``own`` base URLs) directly, anywhere else only through ``guarded``, the transport that
    obeys the network policy webhooks do. Anyone may create a sandbox task with any
    ``webhookUrl``, so without this the sandbox would post where deliveries may not."""

    def __init__(
        self,
        own: Sequence[str],
        direct: httpx.AsyncBaseTransport,
        guarded: httpx.AsyncBaseTransport,
    ) -> None:
        self._own = frozenset(_origin(httpx.URL(url)) for url in own)
        self._direct = direct
        self._guarded = guarded

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        via = self._direct if _origin(request.url) in self._own else self._guarded
        return await via.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        await self._guarded.aclose()


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class PushScheduler:
    def __init__(
        self,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_delays: Sequence[float] = (1.0, 5.0),
        timeout: float = 10.0,
    ) -> None:
        self._clock = clock
        self._transport = transport
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._pending: dict[str, _Push] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.log: deque[PushRecord] = deque(maxlen=MAX_LOG)

    def schedule(
        self,
        task_id: str,
        url: str,
        due_at: datetime,
        body: BodySource,
        *,
        key: str | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        """Push to ``url`` at ``due_at``; must be called with the event loop running.
        ``key`` tells apart several pushes of one task (Ark's, one per status; the task id
        by default, the push ``push_now`` moves)."""
        push = _Push(task_id, url, due_at, body, key or task_id, user_agent)
        self._pending[push.key] = push
        push.runner = asyncio.get_running_loop().create_task(self._run(push))
        self._running.add(push.runner)
        push.runner.add_done_callback(self._running.discard)

    def push_now(self, task_id: str, due_at: datetime) -> bool:
        """The task ended early (cancelled): push at once instead of at its planned time.
        ``False`` when no push is waiting for it."""
        push = self._pending.get(task_id)
        if push is None or push.sending or push.runner is None:
            return False
        push.runner.cancel()
        self.schedule(task_id, push.url, due_at, push.body, user_agent=push.user_agent)
        return True

    @property
    def pending(self) -> int:
        return len(self._running)

    async def drain(self) -> None:
        """Wait for every push scheduled so far, retries included (for tests)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending pushes and close the client; the relay calls it at shutdown."""
        runners = list(self._running)
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        self._pending.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self, push: _Push) -> None:
        delay = (push.due_at - self._clock.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        push.sending = True
        try:
            body = push.body()
            if body is None:
                return
            content = bytes(JSONResponse(body).body)
            for attempt, pause in enumerate((0.0, *self._retry_delays), start=1):
                if pause:
                    await asyncio.sleep(pause)
                if await self._attempt(push, attempt, content):
                    return
        finally:
            if self._pending.get(push.key) is push:
                del self._pending[push.key]

    async def _attempt(self, push: _Push, attempt: int, content: bytes) -> bool:
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                push.url,
                content=content,
                headers={"content-type": "application/json", "user-agent": push.user_agent},
            )
            status = response.status_code
        # The receiver is foreign: whatever goes wrong there is recorded, never raised.
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.log.append(
            PushRecord(
                push.task_id,
                push.url,
                attempt,
                push.due_at,
                self._clock.now(),
                status,
                error,
                content,
            )
        )
        return status is not None and 200 <= status < 300

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                trust_env=False,
                follow_redirects=False,
                timeout=self._timeout,
            )
        return self._client
