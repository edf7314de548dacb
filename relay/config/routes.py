"""The ``routes`` settings: names for several providers of one model, tried in turn
(``relay.routing``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from relay.config.sections import ConfigModel


class RouteSettings(ConfigModel):
    providers: tuple[str, ...] = Field(min_length=1, max_length=32)
    """Configured provider names, in the order ``ordered`` asks them."""
    strategy: Literal["ordered", "healthiest", "cheapest"] = "ordered"
    """``ordered``: as listed; ``healthiest``: fewest faults in a row first; ``cheapest``: the
    lowest likely cost of the task first, by ``prices`` (each provider needs one)."""
    resubmit_on: tuple[Literal["provider_error", "timeout", "quota_exceeded"], ...] = ()
    """Opt-in: a task that fails at its provider with one of these error codes (never the
    caller's own: ``content_policy``, ``invalid_request``) is submitted again on the next
    provider of the route, under the same relay task id (``relay.tasks.resubmitting``)."""
    max_resubmits: int = Field(1, ge=0, le=10)
    """At most this many resubmissions per task (with ``resubmit_on``)."""

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a provider is listed twice")
        return value
