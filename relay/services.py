"""What the HTTP layer needs from the running relay, built by ``relay.app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.api.auth_limit import FailureLimiter
from relay.clock import Clock
from relay.delivery import DeliveryEngine
from relay.netguard import DestinationGuard
from relay.providers import ProviderClient
from relay.signing import Tokens
from relay.store.interface import Store
from relay.tracker import Tracker


@dataclass(frozen=True, slots=True)
class Services:
    store: Store
    tracker: Tracker
    delivery: DeliveryEngine
    tokens: Tokens
    clock: Clock
    providers: Mapping[str, ProviderClient]
    max_body_bytes: int
    rotation_grace: float = 86_400.0
    destinations: DestinationGuard = field(default_factory=DestinationGuard)
    """Checks callback and subscription URLs when they are registered (SSRF)."""
    auth_failures: FailureLimiter = field(default_factory=FailureLimiter)
