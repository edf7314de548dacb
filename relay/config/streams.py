"""The ``streams`` settings: the live event stream (``GET /v1/events/stream``,
``relay.streams``)."""

from __future__ import annotations

from pydantic import Field

from relay.config.sections import ConfigModel


class StreamSettings(ConfigModel):
    max_per_account: int = Field(default=10, ge=1, le=1000)
    """Open streams one account may hold on one instance (429 ``too_many_streams`` past it)."""
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    """A comment line this often keeps an idle stream open through proxies."""
    queue_events: int = Field(default=1000, ge=10, le=100_000)
    """Events one stream may fall behind before it is dropped (it resumes with
    ``Last-Event-ID``): what bounds a slow reader's memory."""
    poll_interval: float = Field(default=0.25, gt=0, le=10)
    """How often the store is read for events that no notification announced (another
    instance's): a bound on their latency, for one cheap query per instance."""
