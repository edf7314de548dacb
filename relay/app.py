"""The composition root: builds the store, providers, tracker, delivery engine, HTTP app and
scheduler from settings, and runs them for the app's lifespan.

APScheduler drives the periodic ticks (claim due polls, claim due deliveries); it never owns
work in flight, and new work is dispatched at once through the engines' ``wake``.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from starlette.applications import Starlette
from starlette.routing import Mount

from relay.adapters.ark import ArkDialect
from relay.adapters.base import Dialect
from relay.api.http import api_error, error_response
from relay.api.routes import routes
from relay.clock import Clock, SystemClock
from relay.config import ProviderSettings, Settings
from relay.delivery import DeliveryEngine, EngineSettings
from relay.errors import ApiError, ConfigError
from relay.ids import new_id
from relay.policy import PollPolicy, RetryPolicy
from relay.providers import ProviderClient
from relay.sandbox.app import sandbox_app
from relay.sandbox.simulation import SandboxSettings
from relay.services import Services
from relay.signing import Tokens
from relay.store import open_store
from relay.store.sqlite_runner import InstanceLock
from relay.tracker import ProviderPlan, Tracker
from relay.transport import RelayTransport

log = logging.getLogger("relay")

DIALECTS: dict[str, Dialect] = {"ark": ArkDialect()}


def own_address(settings: Settings) -> str:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def check_runtime(settings: Settings) -> None:
    """What valid settings can still ask that this version cannot do; ``relay check-config``
    and ``relay serve`` both refuse it."""
    for name, provider in settings.providers.items():
        if provider.dialect not in DIALECTS:
            raise ConfigError(f"providers.{name}.dialect",
                              f"the {provider.dialect!r} dialect is not available in this "
                              f"version (available: {', '.join(sorted(DIALECTS))})")
    if settings.sqlite_path is None:
        raise ConfigError("database_url", "only sqlite:/// databases are supported by this "
                                          "version")


def _provider(name: str, p: ProviderSettings, settings: Settings, http: httpx.AsyncClient,
              clock: Clock, rng: random.Random) -> ProviderPlan:
    dialect = DIALECTS[p.dialect]
    base = (p.base_url or own_address(settings)).rstrip("/") + p.path_prefix
    client = ProviderClient(name=name, dialect=dialect, base_url=base, api_key=p.api_key,
                            headers=p.headers, timeout=p.timeout,
                            max_concurrency=p.max_concurrency, http=http, clock=clock, rng=rng)
    poll = PollPolicy(min_interval=p.poll.min_interval, max_interval=p.poll.max_interval,
                      expected_duration=p.poll.expected_duration, jitter=p.poll.jitter)
    return ProviderPlan(client=client, poll=poll, max_age=settings.provider_max_age(name))


def create_app(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    check_runtime(settings)
    clock = clock or SystemClock()
    rng = random.Random()
    owner = new_id("relay")
    d = settings.delivery
    delivery_settings = EngineSettings(
        timeout=d.timeout, max_in_flight=d.max_in_flight,
        max_in_flight_per_destination=d.max_in_flight_per_destination,
        snippet_bytes=d.response_snippet_bytes,
        # A lease must outlast any attempt (a send starts only right after its claim).
        lease_seconds=max(300.0, 4 * d.timeout),
        retry=RetryPolicy(schedule=tuple(d.retry_schedule), jitter=d.jitter,
                          retry_after_max=d.retry_after_max))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert settings.sqlite_path is not None  # check_runtime refused anything else
        lock = InstanceLock(settings.sqlite_path)
        try:
            async with _running(app, settings, clock, rng, owner, delivery_settings):
                yield
        finally:
            lock.release()

    mounts: list[Any] = list(routes())
    if settings.sandbox.enabled:
        sandbox = SandboxSettings(queued_seconds=settings.sandbox.queued_seconds,
                                  running_seconds=settings.sandbox.running_seconds)
        mounts.append(Mount("/sandbox", app=sandbox_app(sandbox, clock)))
    return Starlette(
        routes=mounts, lifespan=lifespan,
        exception_handlers={ApiError: api_error, 404: _not_found, 405: _not_allowed})


@contextlib.asynccontextmanager
async def _running(app: Starlette, settings: Settings, clock: Clock, rng: random.Random,
                   owner: str, delivery_settings: EngineSettings) -> AsyncIterator[None]:
    """The relay's moving parts, from opening the store to draining work at shutdown."""
    d = settings.delivery
    store = open_store(settings.database_url)
    transport = RelayTransport(max_connections=d.max_in_flight + 64)
    http = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
    scheduler = AsyncIOScheduler(timezone="UTC")
    engine: DeliveryEngine | None = None
    tracker: Tracker | None = None
    try:
        applied = await store.migrate()
        if applied:
            log.info("database migrated to version %d", applied[-1])
        # SQLite is one instance: leases left by a killed process are ours to reclaim.
        await store.release_leases()
        tokens = Tokens(settings.secret_key or await store.secret_key())
        plans = {name: _provider(name, p, settings, http, clock, rng)
                 for name, p in settings.providers.items()}
        engine = DeliveryEngine(store=store, transport=transport, clock=clock, rng=rng,
                                settings=delivery_settings, owner=owner)
        tracker = Tracker(store=store, providers=plans, clock=clock, rng=rng,
                          on_events=engine.wake, batch_size=settings.polling.batch_size)
        app.state.services = Services(
            store=store, tracker=tracker, delivery=engine, tokens=tokens, clock=clock,
            providers={n: p.client for n, p in plans.items()},
            max_body_bytes=settings.limits.max_body_bytes)
        scheduler.add_job(tracker.poll_due, "interval", seconds=settings.polling.tick_seconds,
                          id="poll-due", max_instances=1, coalesce=True)
        scheduler.add_job(engine.pump.run, "interval", seconds=d.tick_seconds,
                          id="deliver-due", max_instances=1, coalesce=True)
        scheduler.start()
        # Deliveries left pending go out at once. Polls start at the first tick: the
        # sandbox provider is this very server, which is not listening yet.
        engine.wake()
        log.info("relay ready on %s (providers: %s)", own_address(settings),
                 ", ".join(plans))
        yield
    finally:
        # AsyncIOScheduler.shutdown() only queues the stop, so `running` stays true
        # for a moment: shut it down once, then let in-flight work finish.
        if scheduler.state != STATE_STOPPED:
            scheduler.shutdown(wait=False)
        if engine is not None:
            await engine.stop(grace=d.timeout + 1)
        if tracker is not None:
            tracker.stop()
            await tracker.drain()
        await http.aclose()
        await store.close()


async def _not_found(request: Any, exc: Exception) -> Any:
    return error_response(404, "not_found", f"no route {request.url.path}")


async def _not_allowed(request: Any, exc: Exception) -> Any:
    return error_response(405, "method_not_allowed",
                          f"{request.method} is not allowed on {request.url.path}")
