"""What the HTTP layer needs from the running relay, built by ``relay.app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relay.clock import Clock
from relay.delivery import DeliveryEngine
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
