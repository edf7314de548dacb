"""``relay listen``: a deployed relay's events, live, forwarded to a local server.

Like ``stripe listen``: it follows the account's event stream (``GET /v1/events/stream``) and
posts each event to ``--forward-to`` signed exactly as a real delivery (Standard Webhooks,
with the account's callback secret), so the receiver's verification code runs unchanged; one
line per event says what the local server answered and how fast. A dropped connection is
resumed with ``Last-Event-ID``: nothing missed, nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import click
import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from relay.cli.shared import config_option, read_settings
from relay.models import EventType
from relay.signing import sign, webhook_key

RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0
"""Seconds before reconnecting after a drop, doubling up to the maximum."""


@dataclass(frozen=True, slots=True)
class Plan:
    url: str
    api_key: str
    forward_to: str | None
    types: str | None
    forward_timeout: float = 10.0


@click.command("listen")
@click.option("--forward-to", metavar="URL", help="Post each event here, signed as a delivery.")
@click.option("--print", "print_only", is_flag=True, help="Only print the events.")
@click.option("--url", metavar="URL", help="The relay (default: the config's server address).")
@click.option(
    "--api-key", envvar="RELAY_API_KEY", metavar="KEY", help="An API key ($RELAY_API_KEY)."
)
@click.option("--events", "types", metavar="TYPES", help="Only these types, comma-separated.")
@config_option
def listen(
    forward_to: str | None,
    print_only: bool,
    url: str | None,
    api_key: str | None,
    types: str | None,
    config: str | None,
) -> None:
    """Forward a relay's live events to a local server (or print them)."""
    if not print_only and forward_to is None:
        raise click.UsageError("give --forward-to URL, or --print to only show the events")
    if api_key is None:
        raise click.UsageError("give --api-key KEY (or set RELAY_API_KEY)")
    if types:
        for name in types.split(","):
            if name.strip() not in {t.value for t in EventType}:
                raise click.BadParameter(
                    f"unknown event type {name.strip()!r}", param_hint="--events"
                )
    if url is None:
        server = read_settings(config).server
        url = server.public_url or f"http://{server.host}:{server.port}"
    plan = Plan(url.rstrip("/"), api_key, None if print_only else forward_to, types)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_listen(plan))


async def _listen(plan: Plan) -> None:
    headers = {"Authorization": f"Bearer {plan.api_key}"}
    async with (
        httpx.AsyncClient(base_url=plan.url, headers=headers, timeout=30, trust_env=False) as relay,
        httpx.AsyncClient(timeout=plan.forward_timeout, trust_env=False) as local,
    ):
        key = None
        if plan.forward_to is not None:
            found = await relay.get("/v1/callback-secret")
            _check(found)
            key = webhook_key(found.json()["secret"])
        click.echo(
            f"Ready: {plan.url}'s events"
            + (f" → {plan.forward_to}" if plan.forward_to else "")
            + " (Ctrl-C to stop)",
            err=True,
        )
        last: str | None = None
        wait = RECONNECT_FIRST
        while True:
            try:
                async for event in _events(relay, plan.types, last):
                    last = event.id
                    wait = RECONNECT_FIRST
                    await _handle(event, plan, local, key)
            except (httpx.TransportError, SSEError) as exc:
                click.echo(f"connection lost ({exc.__class__.__name__}): resuming", err=True)
            except Unavailable as exc:
                click.echo(f"the relay answered {exc}: trying again", err=True)
            except Forgotten:
                # The event to resume after is gone (retention): carry on from now.
                click.echo(f"the relay no longer has event {last}: resuming live", err=True)
                last = None
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECONNECT_MAX)


async def _events(
    relay: httpx.AsyncClient, types: str | None, last: str | None
) -> AsyncIterator[ServerSentEvent]:
    params = {"type": types} if types else {}
    headers = {"Last-Event-ID": last} if last else {}
    async with aconnect_sse(
        relay, "GET", "/v1/events/stream", params=params, headers=headers
    ) as source:
        status = source.response.status_code
        if status != 200:
            await source.response.aread()
            if status == 429 or status >= 500:  # a place not freed yet, a restart, a proxy
                raise Unavailable(status)
            if status == 400 and last is not None and "Last-Event-ID" in source.response.text:
                raise Forgotten(last)
            _check(source.response)
        async for event in source.aiter_sse():
            if not event.data:  # a heartbeat
                continue
            if event.event == "error":  # dropped for falling behind: resume
                click.echo(f"relay: {json.loads(event.data).get('message')}", err=True)
                return
            yield event


async def _handle(
    event: ServerSentEvent, plan: Plan, local: httpx.AsyncClient, key: bytes | None
) -> None:
    stamp = time.strftime("%H:%M:%S")
    label = f"{stamp}  {event.event:<20} {event.id}"
    if plan.forward_to is None or key is None:
        click.echo(f"{label}  {event.data}")
        return
    body = event.data.encode()
    now = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": event.id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(event.id, now, body, [key]),
        "user-agent": "relay-listen",
    }
    started = time.monotonic()
    try:
        answer = await local.post(plan.forward_to, content=body, headers=headers)
    except httpx.HTTPError as exc:
        click.echo(f"{label}  → {click.style('failed', fg='red')}: {exc.__class__.__name__}")
        return
    took = (time.monotonic() - started) * 1000
    colour = "green" if answer.is_success else "red"
    click.echo(f"{label}  → {click.style(str(answer.status_code), fg=colour)} in {took:.0f} ms")


class Unavailable(Exception):
    """The stream cannot be had now (429, 5xx): worth another try."""


class Forgotten(Exception):
    """The event to resume after is no longer kept."""


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        said = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        said = response.text[:200]
    raise click.ClickException(f"the relay answered {response.status_code}: {said}")
