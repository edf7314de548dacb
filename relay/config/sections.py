"""The plain settings sections of ``relay.config`` (every key with its default and bound),
and the model they all share. ``relay.config`` puts them together into ``Settings``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConfigModel(BaseModel):
    """Every settings section: frozen, unknown keys refused, an empty section its defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            if name not in out:
                continue
            if out[name] is None and field.default_factory is not None:
                del out[name]  # an empty section: YAML reads it as null
            elif out[name] == "" and field.default is None and not field.is_required():
                out[name] = None  # `${VAR:-}` left a nullable key unset
        return out


class LimitsSettings(ConfigModel):
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    auth_failures_per_minute: float = Field(default=10.0, ge=0)
    """Failed API keys one client address may send per minute, once its burst is spent;
    0 turns the limit off (``relay.limits``)."""
    auth_failure_burst: int = Field(default=20, ge=1)
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long an instance keeps an API key it found active (``relay.keys.KeyCache``): a key
    revoked through another instance or the CLI still opens this one for at most this long
    (on the instance that revokes it, not at all); 0 looks every key up on every request."""


class PollingSettings(ConfigModel):
    tick_seconds: float = Field(default=1.0, gt=0)
    max_age: float = Field(default=172_800.0, gt=0)
    batch_size: int = Field(default=200, ge=1)
    lease_seconds: float = Field(default=120.0, gt=0)
    """A claimed poll is another instance's to take after this (its claimer crashed)."""


class DeliverySettings(ConfigModel):
    timeout: float = Field(default=15.0, gt=0)
    retry_schedule: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0),
        min_length=1,
    )
    jitter: float = Field(default=0.2, ge=0, le=0.5)
    max_in_flight: int = Field(default=256, ge=1)
    max_in_flight_per_destination: int = Field(default=64, ge=1)
    max_in_flight_per_account: int | None = Field(default=None, ge=1)
    """Slots one account's sends to slow or unknown receivers may hold, so one tenant's black
    holes leave the rest to the others; sends to receivers that answered within a second
    lately are not counted (an account alone may use nearly every slot for those). None:
    half of ``max_in_flight``."""
    reserved_for_others: int | None = Field(default=None, ge=0)
    """Slots one account's sends never take, quick receivers included: what another account
    always finds free, even when a tenant's quick receivers all start hanging at once. None:
    an eighth of ``max_in_flight`` (at least one when there are two or more); 0: an account
    may take every slot."""
    retry_after_max: float = Field(default=3600.0, gt=0)
    tick_seconds: float = Field(default=1.0, gt=0)
    response_snippet_bytes: int = Field(default=1024, ge=0)
    lease_seconds: float | None = Field(default=None, gt=0)
    """A claimed delivery is another instance's to send after this (its claimer crashed);
    None: the larger of 300 s and four attempt timeouts. At least two timeouts."""

    @model_validator(mode="after")
    def _reserve_leaves_a_slot(self) -> DeliverySettings:
        if self.reserved_for_others is not None and self.reserved_for_others >= self.max_in_flight:
            raise ValueError(
                f"reserved_for_others ({self.reserved_for_others}) must be less than "
                f"max_in_flight ({self.max_in_flight}): an account needs a slot to send"
            )
        return self

    @model_validator(mode="after")
    def _lease_covers_attempts(self) -> DeliverySettings:
        if self.lease_seconds is not None and self.lease_seconds < 2 * self.timeout:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be at least twice "
                f"the attempt timeout ({self.timeout:g})"
            )
        return self


class SubscriptionSettings(ConfigModel):
    disable_after: float = Field(default=432_000.0, gt=0)
    """A subscription whose deliveries have all failed this long is disabled (5 days)."""
    rotation_grace: float = Field(default=86_400.0, ge=0)
    """How long a rotated secret keeps signing next to the new one (24 h)."""
    housekeeping_seconds: float = Field(default=60.0, gt=0)


class RetentionSettings(ConfigModel):
    history_days: float | None = Field(default=90.0, gt=0)
    """Events (with their deliveries and attempts) older than this are deleted, then the
    finished tasks not updated since that have no event left, with their callback
    destinations; None: kept forever. An event with a delivery still pending is always kept,
    and so is its task; an open task and a subscription are never deleted."""
    batch_size: int = Field(default=100, ge=1)
    """Events (or tasks) deleted per transaction: short ones (about 2 ms for 100 on SQLite),
    so no request waits behind one for long."""


class IdempotencySettings(ConfigModel):
    ttl: float = Field(default=86_400.0, ge=86_400.0)
    """How long an Idempotency-Key is remembered; at least 24 h."""


class DashboardSettings(ConfigModel):
    enabled: bool = True
    """Serve the dashboard at /dashboard (roles all and api)."""
    session_secret: str | None = Field(default=None, min_length=16)
    """Signs dashboard session cookies; None: derived from secret_key (or the key kept in the
    database), which every instance on one database shares."""
    session_max_age: int = Field(default=43_200, ge=60, le=30 * 86_400)
    """How long a sign-in lasts, in seconds (12 h)."""


class SandboxSettings(ConfigModel):
    enabled: bool = True
    queued_seconds: float = Field(default=2.0, ge=0)
    running_seconds: float = Field(default=6.0, ge=0)
    video_bytes: int = Field(default=65_536, ge=64, le=2**40)
    """The size of every sandbox task's video; its bytes follow from the task id
    (``relay.sandbox.media``). Small by default; benchmarks set tens of megabytes."""
