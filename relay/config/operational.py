"""The ``operational_events`` settings: when the relay tells an account about its own
trouble (``relay.operational``)."""

from __future__ import annotations

from pydantic import Field

from relay.config.sections import ConfigModel


class OperationalEventSettings(ConfigModel):
    failing_after: int = Field(default=5, ge=1, le=10_000)
    """Failed attempts in a row to one subscription before its account hears
    ``subscription.failing`` (once per failing period: a success ends the period)."""
    provider_unhealthy_after: int = Field(default=3, ge=1, le=10_000)
    """Provider faults in a row before ``provider.unhealthy``; ``provider.recovered``
    follows once it answers again."""
    provider_check_seconds: float = Field(default=1.0, gt=0, le=300)
    """How often each worker looks at its providers' health for those two events."""
