"""What the HTTP layer needs from the running relay, built by ``relay.app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.clock import Clock
from relay.copier.removal import KeptOutputs
from relay.delivery.engine import DeliveryEngine
from relay.keys import KeyCache
from relay.limits import FailureLimiter
from relay.net.guard import DestinationGuard
from relay.signing import Tokens
from relay.store.interface import Store
from relay.streams.hub import EventHub
from relay.tasks.providers import ProviderClient
from relay.tasks.tracker import Tracker


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
    api_keys: KeyCache = field(default_factory=KeyCache)
    """API keys looked up lately (``relay.keys.KeyCache``)."""
    outputs: KeptOutputs | None = None
    """Stored outputs (``relay.copier``); None: outputs are not copied."""
    hub: EventHub | None = None
    """The live event stream's source (``relay.streams``)."""
    stream_heartbeat: float = 15.0
