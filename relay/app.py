"""The composition root: builds the store, providers, tracker, delivery engine, HTTP app and
scheduler from settings, and runs them for the app's lifespan.

APScheduler drives the periodic ticks (claim due polls, claim due deliveries); it never owns
work in flight, and new work is dispatched at once through the engines' ``wake``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from relay import routing
from relay.adapters.registry import dialect_entry
from relay.api.errors import exception_handlers
from relay.api.http import RefuseUnstorable
from relay.api.routes import routes
from relay.clock import Clock, SystemClock
from relay.config.outputs import OutputsSettings
from relay.config.settings import ProviderSettings, Settings
from relay.config.startup_warnings import startup_warnings
from relay.copier.engine import Copier, CopierSettings
from relay.copier.fetch import FetchLimits
from relay.copier.removal import KeptOutputs, Remover
from relay.copies.rules import CopyPolicy, hold_success
from relay.dashboard import dashboard_mount
from relay.delivery.engine import DeliveryEngine, EngineSettings
from relay.delivery.fresh_urls import OutputRefresher
from relay.delivery.outcomes import RetryPolicy
from relay.doors.mount import door_routes
from relay.errors import ConfigError
from relay.ids import new_id
from relay.jobs import schedule, waker
from relay.keys import KeyCache
from relay.limits import FailureLimiter
from relay.metrics import CONTENT_TYPE, RelayMetrics, live_state
from relay.net.downloads import download_pool
from relay.net.guard import DestinationGuard
from relay.net.transport import RelayTransport
from relay.outputs import open_output_store
from relay.outputs.links import OutputLinks
from relay.polling.claims import polls_ahead
from relay.polling.schedule import PollPolicy
from relay.sandbox.app import Sandbox
from relay.sandbox.push import PushRoutes
from relay.sandbox.simulation import SandboxSettings
from relay.services import Services
from relay.signing import Tokens, inbound_lifetime
from relay.store import open_store
from relay.store.interface import Store
from relay.streams.hub import EventHub
from relay.tasks.budgets import Budgets
from relay.tasks.provider_watch import ProviderWatch
from relay.tasks.providers import ProviderClient
from relay.tasks.registration import ProviderPlan
from relay.tasks.tracker import Tracker
from relay.tasks.verdicts import event_id
from relay.transitions import Change

log = logging.getLogger("relay")


def own_address(settings: Settings) -> str:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def public_address(settings: Settings) -> str:
    """Where providers reach this relay (inbound webhooks)."""
    return settings.server.public_url or own_address(settings)


Role = Literal["all", "api", "worker"]
ROLES: tuple[Role, ...] = ("all", "api", "worker")
"""``api`` serves the HTTP API only (its writes wake the workers through the database);
``worker`` polls providers and delivers (serving only /healthz, /readyz and the sandbox);
``all`` does both in one process."""

_WORKER_ROUTES = frozenset({"/healthz", "/readyz"})


def check_runtime(settings: Settings, role: Role = "all") -> None:
    """What valid settings can still ask that this version cannot do; ``relay check-config``
    and ``relay serve`` both refuse it."""
    if role != "all" and settings.sqlite_path is not None:
        raise ConfigError(
            "database_url",
            f"--role {role} needs PostgreSQL: SQLite serves one "
            "relay instance, which must do all the work (--role all)",
        )
    for name, p in settings.providers.items():
        dialect_entry(p.dialect, key=_dialect_key(name))


def _dialect_key(provider: str) -> str:
    return f"providers.{provider}.dialect"


def _provider(
    name: str,
    p: ProviderSettings,
    settings: Settings,
    transport: RelayTransport,
    clock: Clock,
    rng: random.Random,
) -> ProviderPlan:
    dialect = dialect_entry(p.dialect, key=_dialect_key(name))
    if p.sandbox:
        flavor = p.preset or dialect.sandbox_flavor
        base = f"{own_address(settings)}/sandbox/{flavor}"
    else:
        base = (p.base_url or own_address(settings)).rstrip("/")
    client = ProviderClient(
        name=name,
        dialect=dialect.build(p.query_params, p.pushes),
        base_url=base,
        path_prefix=p.path_prefix,
        moderation_path=p.moderation_path,
        api_key=p.api_key if p.api_key is not None or not p.sandbox else "sandbox",
        headers=p.headers,
        timeout=p.timeout,
        max_concurrency=p.max_concurrency,
        requests_per_second=p.requests_per_second,
        transport=transport,
        clock=clock,
        rng=rng,
    )
    poll = PollPolicy(
        min_interval=p.poll.min_interval,
        max_interval=p.poll.max_interval,
        expected_duration=p.poll.expected_duration,
        jitter=p.poll.jitter,
    )
    return ProviderPlan(
        client=client,
        poll=poll,
        max_age=settings.provider_max_age(name),
        retention=p.retention,
        models=p.models,
        learn=p.poll.learn,
        prices=prices.table() if (prices := settings.prices.get(name)) is not None else None,
        polls_ahead=polls_ahead(p.max_concurrency, p.requests_per_second),
    )


def create_app(settings: Settings, *, clock: Clock | None = None, role: Role = "all") -> Starlette:
    check_runtime(settings, role)
    clock = clock or SystemClock()
    rng = random.Random()
    owner = new_id("relay")
    d = settings.delivery
    delivery_settings = EngineSettings(
        timeout=d.timeout,
        max_in_flight=d.max_in_flight,
        max_in_flight_per_destination=d.max_in_flight_per_destination,
        max_in_flight_per_account=d.max_in_flight_per_account,
        reserved_for_others=d.reserved_for_others,
        snippet_bytes=d.response_snippet_bytes,
        # A lease must outlast any attempt (a send starts only right after its claim).
        lease_seconds=d.lease_seconds or max(300.0, 4 * d.timeout),
        retry=RetryPolicy(
            schedule=tuple(d.retry_schedule), jitter=d.jitter, retry_after_max=d.retry_after_max
        ),
        failing_after=settings.operational_events.failing_after,
    )

    mounts: list[Any] = [
        r for r in routes() if role != "worker" or getattr(r, "path", "") in _WORKER_ROUTES
    ]
    if role != "worker":
        # The Ark- and OpenAI-compatible APIs (relay.doors), beside the relay's own.
        mounts += door_routes(settings.front_doors, [*settings.providers, *settings.routes])
    sandbox: Sandbox | None = None
    if settings.sandbox.enabled:
        net = settings.network
        pushes = PushRoutes(
            [own_address(settings), *filter(None, [settings.server.public_url])],
            direct=RelayTransport(max_connections=16),
            guarded=RelayTransport(
                max_connections=16,
                guard=DestinationGuard(net.policy(), resolve_timeout=net.resolve_timeout),
            ),
        )
        sandbox = Sandbox(
            SandboxSettings(
                queued_seconds=settings.sandbox.queued_seconds,
                running_seconds=settings.sandbox.running_seconds,
                video_bytes=settings.sandbox.video_bytes,
            ),
            clock,
            push_transport=pushes,
            control=only_sandbox_providers(settings),
        )
        if not sandbox.control_served:
            log.info(
                "the sandbox's control API (/sandbox/_control) is off: "
                "providers other than the sandbox are configured"
            )
        mounts.append(Mount("/sandbox", app=sandbox.app))
    if role != "worker" and settings.dashboard.enabled:
        mounts.append(dashboard_mount(settings))
        # A person who opens the relay's address in a browser lands on the dashboard.
        mounts.append(Route("/", _to_dashboard, methods=["GET", "HEAD"]))
    # Every role serves /metrics (no API key: aggregate counts only, no ids, URLs or
    # secrets; keep it on an internal network, as /healthz).
    metrics = RelayMetrics()
    mounts.append(Route("/metrics", _metrics_endpoint(metrics), methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # First of all, as this process serves the database: SQLite serves one instance, so
        # a second relay on the same file is refused here (StoreError), before it migrates or
        # reclaims the first one's leases. The store holds that lock until it is closed, last.
        # PostgreSQL coordinates several instances through leases instead.
        store = open_store(settings.database_url, exclusive=True)
        try:
            async with _running(
                app, store, settings, clock, rng, owner, delivery_settings, role, metrics
            ):
                yield
        finally:
            try:
                if sandbox is not None:  # a mounted app has no lifespan: its pushes end here
                    await sandbox.aclose()
            finally:
                await store.close()

    return Starlette(
        routes=mounts,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        middleware=[Middleware(RefuseUnstorable)],
    )


def only_sandbox_providers(settings: Settings) -> bool:
    """Whether every provider is this relay's own sandbox. The sandbox's control API (faults,
    request and push logs) has no key, so it is served only then: on a relay that also
    serves real providers (a production relay), anyone could otherwise inject faults into
    its tenants' sandbox tasks or read what they asked the sandbox."""
    return all(p.sandbox or p.base_url is None for p in settings.providers.values())


@contextlib.asynccontextmanager
async def _running(
    app: Starlette,
    store: Store,
    settings: Settings,
    clock: Clock,
    rng: random.Random,
    owner: str,
    delivery_settings: EngineSettings,
    role: Role = "all",
    metrics: RelayMetrics | None = None,
) -> AsyncIterator[None]:
    """The relay's moving parts on an open ``store``, from migrating it to draining work at
    shutdown."""
    d = settings.delivery
    # Provider calls go to the operator's own base URLs; webhooks go where callers say, so
    # their transport checks every address against the network policy (relay.net.guard).
    # (Provider clients send through it directly, without httpx.AsyncClient's middleware.)
    transport = RelayTransport(max_connections=d.max_in_flight + 64)
    net = settings.network
    guard = DestinationGuard(net.policy(), resolve_timeout=net.resolve_timeout)
    webhooks = RelayTransport(max_connections=d.max_in_flight + 64, guard=guard)
    scheduler = AsyncIOScheduler(timezone="UTC")
    engine: DeliveryEngine | None = None
    tracker: Tracker | None = None
    copier: Copier | None = None
    hub: EventHub | None = None
    try:
        applied = await store.migrate()
        if applied:
            log.info("database migrated to version %d", applied[-1])
        # Leases left by this instance's killed predecessor are ours to reclaim (SQLite: all
        # of them; PostgreSQL: they expire, another live instance's are never touched).
        await store.release_leases(clock.now())
        secret_key = settings.secret_key or await store.secret_key()
        tokens = Tokens(
            secret_key,
            # Long enough for the provider's slowest task, and no longer.
            {n: inbound_lifetime(settings.provider_max_age(n)) for n in settings.providers},
        )
        plans = {
            name: _provider(name, p, settings, transport, clock, rng)
            for name, p in settings.providers.items()
        }
        refresher = OutputRefresher(
            store=store,
            providers=plans,
            clock=clock,
            outputs_stored=settings.outputs.store is not None,
        )
        engine = DeliveryEngine(
            store=store,
            transport=webhooks,
            clock=clock,
            rng=rng,
            settings=delivery_settings,
            owner=owner,
            refresh=refresher,
            metrics=metrics,
            events=store,
        )
        if role != "worker":  # the live event stream (relay.streams), beside the API
            s = settings.streams
            hub = EventHub(
                store,
                interval=s.poll_interval,
                capacity=s.queue_events,
                per_account=s.max_per_account,
            )
            await hub.start()
        wake_events = _waking(engine, hub)
        engine.on_events = wake_events
        public = public_address(settings)
        links = OutputLinks(secret_key, public)
        kept = await _kept_outputs(settings, store, clock, links, wake_events)
        hold = None
        if kept is not None:
            copier = Copier(
                store=store,
                outputs=kept.store,
                pool=download_pool(guard, max_connections=settings.outputs.max_concurrent + 4),
                links=kept.links,
                refresher=refresher,
                clock=clock,
                owner=owner,
                settings=copier_settings(settings.outputs),
                on_events=wake_events,
                metrics=metrics,
            )
            policy = copier_settings(settings.outputs).policy

            def hold(change: Change) -> Change:
                return hold_success(change, policy, clock.now(), event_id, lambda: new_id("out"))

        def inbound_url(provider: str, account_id: str, task_id: str) -> str:
            token = tokens.inbound(provider, account_id, task_id, clock.now())
            return f"{public}/v1/inbound/{provider}/{token}"

        tracker = Tracker(
            store=store,
            owner=owner,
            providers=plans,
            clock=clock,
            rng=rng,
            on_events=wake_events,
            batch_size=settings.polling.batch_size,
            lease_seconds=settings.polling.lease_seconds,
            inbound_url=inbound_url,
            metrics=metrics,
            hold=hold,
            on_copies=copier.wake if copier is not None else lambda: None,
            routes={
                name: routing.Route(
                    name,
                    r.providers,
                    routing.Strategy(r.strategy),
                    resubmit_on=frozenset(r.resubmit_on),
                    max_resubmits=r.max_resubmits,
                )
                for name, r in settings.routes.items()
            },
            budgets=Budgets(store=store, clock=clock, events=store, on_events=wake_events),
        )
        if metrics is not None:
            metrics.attach(
                store,
                live_state(
                    lambda: engine.in_flight if engine else 0,
                    {n: p.client.health for n, p in plans.items()},
                ),
                clock.now,
            )
        for warning in startup_warnings(settings, own_address(settings)):
            log.warning("%s", warning)
        app.state.services = Services(
            store=store,
            tracker=tracker,
            delivery=engine,
            tokens=tokens,
            clock=clock,
            providers={n: p.client for n, p in plans.items()},
            max_body_bytes=settings.limits.max_body_bytes,
            rotation_grace=settings.subscriptions.rotation_grace,
            destinations=guard,
            auth_failures=FailureLimiter(
                settings.limits.auth_failures_per_minute, settings.limits.auth_failure_burst
            ),
            api_keys=KeyCache(settings.limits.api_key_cache_seconds),
            outputs=kept,
            hub=hub,
            stream_heartbeat=settings.streams.heartbeat_seconds,
        )
        if role == "api":
            # No dispatch here: what the API writes wakes the workers through the database.
            # (Test events and push confirmations still run in the request that asks.)
            engine.pump.stop()
            tracker.stop()
            if copier is not None:
                copier.pump.stop()
        else:
            schedule(
                scheduler,
                settings,
                store,
                clock,
                tracker,
                engine,
                copier,
                kept.remover if kept is not None else None,
                # Without a store, successes held by an earlier run still go out.
                None if kept is not None else (links, wake_events),
                ProviderWatch(
                    store=store,
                    clock=clock,
                    health={n: p.client.health for n, p in plans.items()},
                    unhealthy_after=settings.operational_events.provider_unhealthy_after,
                    on_events=wake_events,
                ),
            )
            await store.listen(waker(tracker, wake_events))
            scheduler.start()
            # Deliveries left pending go out at once. Polls start at the first tick: the
            # sandbox provider is this very server, which is not listening yet.
            engine.wake()
            if copier is not None:
                copier.wake()
        # Not "ready" yet: `relay serve` says so once its port accepts connections.
        log.info("relay started as %s (providers: %s)", role, ", ".join(plans))
        yield
    finally:
        # AsyncIOScheduler.shutdown() only queues the stop, so `running` stays true
        # for a moment: shut it down once, then let in-flight work finish.
        if scheduler.state != STATE_STOPPED:
            scheduler.shutdown(wait=False)
        if copier is not None:
            copier.pump.stop()  # no new copies nor announcements while the rest winds down
        if tracker is not None:
            tracker.stop()  # no new polls while the deliveries wind down
        # Deliveries and polls wind down side by side: the two graces do not add up.
        await asyncio.gather(
            *([] if engine is None else [engine.stop(grace=d.timeout + 1)]),
            *([] if tracker is None else [tracker.shut_down(grace=POLL_GRACE)]),
        )
        if copier is not None:
            await copier.stop(grace=COPY_GRACE)
        if hub is not None:
            await hub.stop()
        if metrics is not None:
            metrics.detach()
        await transport.aclose()
        await webhooks.aclose()


def _waking(engine: DeliveryEngine, hub: EventHub | None) -> Callable[[], None]:
    """What a write of events wakes: the deliveries, and the live stream's tail."""
    if hub is None:
        return engine.wake
    stream = hub

    def wake() -> None:
        engine.wake()
        stream.wake()

    return wake


POLL_GRACE = 2.0
"""Seconds polls under way get to finish at shutdown; the rest are due again at once."""
COPY_GRACE = 5.0
"""Seconds copies under way get to finish at shutdown; the rest are due again at once."""


def copier_settings(o: OutputsSettings) -> CopierSettings:
    return CopierSettings(
        policy=CopyPolicy(
            wait=o.wait_seconds, max_attempts=o.max_attempts, retry_delays=tuple(o.retry_delays)
        ),
        limits=FetchLimits(
            max_bytes=o.max_bytes, stall_timeout=o.stall_timeout, total_timeout=o.copy_timeout
        ),
        max_concurrent=o.max_concurrent,
    )


async def _kept_outputs(
    settings: Settings,
    store: Store,
    clock: Clock,
    links: OutputLinks,
    on_events: Callable[[], None],
) -> KeptOutputs | None:
    """The output store ``outputs.store`` names, with its links and remover; None: off."""
    outputs = await open_output_store(settings.outputs, clock=clock)
    if outputs is None:
        return None
    remover = Remover(store=store, outputs=outputs, links=links, clock=clock, on_events=on_events)
    return KeptOutputs(outputs, links, remover, settings.outputs.link_lifetime)


async def _to_dashboard(request: Request) -> Response:
    return RedirectResponse("/dashboard/", status_code=307)


def _metrics_endpoint(metrics: RelayMetrics) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    return endpoint
