"""Configuration: a YAML file with ``${ENV}`` references → frozen, validated :class:`Settings`.

Every problem is one :class:`~relay.errors.ConfigError` naming the dotted key path
(``providers.apiyi.poll.min_interval``, ``delivery.retry_schedule.2``). When several keys are wrong
the message lists them all, one ``path: problem`` per line, so one restart shows every mistake.

``${NAME}``, ``${NAME:-default}`` (the default also replaces an empty value, as in the shell) and
``$${`` (a literal ``${``) are expanded in string values, never keys, before validation; pydantic's
lax mode then turns ``"8001"`` into an int. An empty section (``server:`` with its children
commented out) means its defaults, and ``""`` for a key that may be null means null, so
``secret_key: ${RELAY_SECRET_KEY:-}`` can leave it unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    WrapSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from relay.adapters.registry import check_pushes
from relay.config.doors import FrontDoorSettings
from relay.config.operational import OperationalEventSettings
from relay.config.outputs import OutputsSettings
from relay.config.presets import apply_preset
from relay.config.prices import PriceTableSettings
from relay.config.routes import RouteSettings
from relay.config.sections import (
    ConfigModel,
    DashboardSettings,
    DeliverySettings,
    IdempotencySettings,
    LimitsSettings,
    PollingSettings,
    RetentionSettings,
    SandboxSettings,
    SubscriptionSettings,
)
from relay.config.streams import StreamSettings
from relay.config.text import config_error, describe, interpolate
from relay.errors import ConfigError
from relay.net.addresses import NetworkSettings

SANDBOX = "sandbox"


def at_subpath(subpath: str, message: str) -> PydanticCustomError:
    """A validation error of a key inside the field being validated (``subpath`` under it),
    reported by ``relay.config.text.describe`` as ``field.subpath: message``."""
    return PydanticCustomError(
        "relay_subpath", "{message}", {"subpath": subpath, "message": message}
    )


"""The built-in provider's name: the relay's own emulation of the provider APIs."""

PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

K = TypeVar("K")
V = TypeVar("V")


def _freeze(value: Mapping[K, V]) -> Mapping[K, V]:
    # A frozen model whose dict fields can still be mutated is not frozen.
    return MappingProxyType(dict(value))


def _thaw(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    # pydantic's dict serializer warns on a mappingproxy; hand it the dict it expects.
    return handler(dict(value))


FrozenMap = Annotated[Mapping[K, V], AfterValidator(_freeze), WrapSerializer(_thaw)]


def _check_provider_name(name: str) -> str:
    if not PROVIDER_NAME.match(name):
        raise ValueError(f"provider name must match {PROVIDER_NAME.pattern}")
    return name


ProviderName = Annotated[str, AfterValidator(_check_provider_name)]
DialectName = Literal["ark", "unified", "seedance2ink"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    # Paths are appended to it, so a trailing slash would double up.
    return url.rstrip("/")


def _sqlite_file(url: str) -> str:
    rest = url.removeprefix("sqlite://")
    if not rest.startswith("/") or rest == "/":
        raise ValueError("write sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError("SQLite URLs take no query parameters")
    if path == ":memory:" or path.startswith("file:"):
        # Migrations, the server and operator commands each open the database themselves.
        raise ValueError(
            "an in-memory SQLite database is not allowed: the relay needs a file "
            "that other processes can reopen"
        )
    return path


class ServerSettings(ConfigModel):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    """The externally reachable base URL (inbound webhook URLs are built on it)."""
    access_log: bool = False
    """One log line per HTTP request (uvicorn's access log, at info). Off by default: it
    costs CPU on every request, and the relay logs what happens to tasks and deliveries
    anyway; ``relay serve --access-log`` turns it on for one run."""

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class PollSettings(ConfigModel):
    min_interval: float = Field(default=2.0, gt=0)
    max_interval: float = Field(default=60.0, gt=0, validate_default=True)
    expected_duration: float = Field(default=120.0, gt=0)
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    learn: bool = True
    """Learn how long this provider's tasks take and gather polls where they finish. Fewer
    polls, at a price: a short intermediate state (``running``) may never be seen."""

    @field_validator("max_interval")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_interval")  # absent when min_interval itself is invalid
        if low is not None and value < low:
            raise ValueError(f"max_interval ({value:g}) must be >= min_interval ({low:g})")
        return value


class ProviderSettings(ConfigModel):
    dialect: DialectName
    preset: str | None = None
    """The preset (``relay.config.presets``) whose defaults this entry was filled from."""
    sandbox: bool = False
    """Talk to this relay's own emulation of the preset's provider instead of the real one."""
    base_url: str | None = None
    """None only for sandbox providers: this relay's own address."""
    path_prefix: str = ""
    """Between base_url and the dialect's paths, e.g. ``/seedance/api/v3``."""
    api_key: str | None = None
    headers: FrozenMap[str, str] = Field(default_factory=dict, validate_default=True)
    query_params: FrozenMap[str, str] = Field(default_factory=dict, validate_default=True)
    """Added to every task query (naci's ``show_raw``/``show_usage``)."""
    models: FrozenMap[str, str] = Field(default_factory=dict, validate_default=True)
    """Neutral model names of the unified input → this provider's model names."""
    moderation_path: str | None = None
    """Image moderation endpoint under base_url (cubicspaces), passed through as is."""
    timeout: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    requests_per_second: float | None = Field(default=None, gt=0)
    """The request budget towards this provider (polls, creates, cancels); None: only the
    concurrency cap bounds it."""
    poll: PollSettings = Field(default_factory=PollSettings)
    max_age: float | None = Field(default=None, gt=0)
    """None: ``polling.max_age``."""
    retention: float = Field(default=604_800.0, gt=0)
    """How long the provider answers for a task (Ark: 7 days). A task it no longer knows
    after this is ``expired``, not ``failed``."""
    pushes: bool | None = None
    """Pass the relay's signed inbound URL at creation (Ark's ``callback_url``,
    seedance2.ink's ``webhookUrl``), so a finished task is seen at once, not at the next
    poll. None: the preset's value, else the dialect's (seedance2.ink yes, Ark no)."""

    @model_validator(mode="after")
    def _pushes(self) -> ProviderSettings:
        problem = check_pushes(self.dialect, self.pushes)
        if problem is not None:
            raise at_subpath("pushes", problem)
        return self

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("path_prefix", "moderation_path")
    @classmethod
    def _path_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value and not value.startswith("/"):
            raise ValueError(f"must be empty or start with '/', got {value!r}")
        if "?" in value or "#" in value:
            raise ValueError("must be a plain path")
        return value.rstrip("/")


def _builtin_sandbox(sandbox: SandboxSettings) -> ProviderSettings:
    # Its tasks finish after queued + running seconds, so that is the honest expected duration.
    expected = max(sandbox.queued_seconds + sandbox.running_seconds, 1.0)
    return ProviderSettings(
        dialect="ark",
        base_url=None,
        path_prefix="/sandbox/ark/api/v3",
        api_key="sandbox",
        poll=PollSettings(min_interval=1.0, max_interval=10.0, expected_duration=expected),
    )


class Settings(ConfigModel):
    server: ServerSettings = Field(default_factory=ServerSettings)
    database_url: str = "sqlite:///relay.db"
    secret_key: str | None = Field(default=None, min_length=16)
    """Signs cursors and tokens; None: generated once and kept in the database."""
    log_level: LogLevel = "info"
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    polling: PollingSettings = Field(default_factory=PollingSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    outputs: OutputsSettings = Field(default_factory=OutputsSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    operational_events: OperationalEventSettings = Field(default_factory=OperationalEventSettings)
    front_doors: FrontDoorSettings = Field(default_factory=FrontDoorSettings)
    """The Ark- and OpenAI-compatible APIs the relay also answers in (``relay.doors``)."""
    # Declared before providers: the providers validator reads it.
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    providers: FrozenMap[ProviderName, ProviderSettings] = Field(
        default_factory=dict, validate_default=True
    )
    # Declared after providers: its validator reads them.
    routes: FrozenMap[ProviderName, RouteSettings] = Field(default_factory=dict)
    """Names for several providers, tried in turn (``relay.routing``)."""
    prices: FrozenMap[ProviderName, PriceTableSettings] = Field(default_factory=dict)
    """What each provider charges (``relay.pricing``); a provider without: no costs."""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if url.startswith("postgres://"):  # the spelling Heroku-style platforms hand out
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("sqlite://"):
            _sqlite_file(url)
        elif not url.startswith("postgresql://"):
            raise ValueError("must start with sqlite:// or postgresql://")
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("providers")
    @classmethod
    def _providers(
        cls, value: Mapping[str, ProviderSettings], info: ValidationInfo
    ) -> Mapping[str, ProviderSettings]:
        sandbox = info.data.get("sandbox")
        if not isinstance(sandbox, SandboxSettings):
            return value  # sandbox is invalid and already reported
        if not value and not sandbox.enabled:
            raise ValueError("no providers are configured and the sandbox is disabled")
        providers = dict(value)
        if sandbox.enabled and SANDBOX not in providers:
            providers[SANDBOX] = _builtin_sandbox(sandbox)
        for name, provider in providers.items():
            own = provider.sandbox or (name == SANDBOX and sandbox.enabled)
            if provider.sandbox and not sandbox.enabled:
                raise at_subpath(
                    f"{name}.sandbox",
                    "this provider talks to the "
                    "sandbox, which is disabled (sandbox.enabled: false)",
                )
            if provider.base_url is None and not own:
                raise at_subpath(
                    f"{name}.base_url",
                    "base_url is required (null means this relay's own sandbox: set sandbox: true)",
                )
        return MappingProxyType(providers)

    @field_validator("routes")
    @classmethod
    def _routes(
        cls, value: Mapping[str, RouteSettings], info: ValidationInfo
    ) -> Mapping[str, RouteSettings]:
        providers = info.data.get("providers")
        if not isinstance(providers, Mapping):
            return value  # providers are invalid and already reported
        for name, route in value.items():
            if name in providers:
                raise at_subpath(name, "a provider has this name already")
            unknown = [p for p in route.providers if p not in providers]
            if unknown:
                raise at_subpath(
                    f"{name}.providers", f"not a configured provider: {', '.join(unknown)}"
                )
        return MappingProxyType(dict(value))

    @field_validator("prices")
    @classmethod
    def _prices(
        cls, value: Mapping[str, PriceTableSettings], info: ValidationInfo
    ) -> Mapping[str, PriceTableSettings]:
        providers = info.data.get("providers")
        if not isinstance(providers, Mapping):
            return value
        for name in value:
            if name not in providers:
                raise at_subpath(name, "not a configured provider")
        return MappingProxyType(dict(value))

    @model_validator(mode="after")
    def _cheapest_routes_have_prices(self) -> Settings:
        for name, route in self.routes.items():
            if route.strategy != "cheapest":
                continue
            unpriced = [p for p in route.providers if p not in self.prices]
            currencies = {self.prices[p].currency for p in route.providers if p in self.prices}
            if len(currencies) > 1 and not unpriced:
                raise at_subpath(
                    f"routes.{name}.strategy",
                    "cheapest compares prices in one currency; these are in "
                    f"{', '.join(sorted(currencies))}",
                )
            if unpriced:
                raise at_subpath(
                    f"routes.{name}.strategy",
                    f"cheapest needs a price table (prices:) for {', '.join(unpriced)}",
                )
        return self

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> Settings:
        """Interpolate ``${ENV}`` from ``env`` (default ``os.environ``) and validate."""
        problems: list[tuple[str, str]] = []
        environ = os.environ if env is None else env
        resolved = interpolate(dict(data), "", environ, problems)
        providers = resolved.get("providers")
        if isinstance(providers, Mapping):
            resolved["providers"] = _with_presets(providers, environ, problems)
        if problems:
            raise config_error(problems)
        try:
            return cls.model_validate(resolved)
        except ValidationError as exc:
            raise config_error([describe(e) for e in exc.errors()]) from exc

    def provider(self, name: str) -> ProviderSettings | None:
        return self.providers.get(name)

    def provider_max_age(self, name: str) -> float:
        """A task's maximum age at provider ``name`` (its own, else ``polling.max_age``)."""
        provider = self.providers.get(name)
        if provider is None or provider.max_age is None:
            return self.polling.max_age
        return provider.max_age

    @property
    def sqlite_path(self) -> str | None:
        """The database file for a sqlite URL (relative to the working directory), else None."""
        if not self.database_url.startswith("sqlite://"):
            return None
        return _sqlite_file(self.database_url)


def _with_presets(
    providers: Mapping[str, Any], env: Mapping[str, str], problems: list[tuple[str, str]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in providers.items():
        if raw is None:
            raw = {}  # `naci:` alone: everything from its preset
        if not isinstance(raw, Mapping):
            out[name] = raw  # validation names the problem
            continue
        out[name], problem = apply_preset(str(name), raw, env)
        if problem is not None:
            key, _, message = problem.partition(": ")
            problems.append((f"providers.{name}.{key}", message))
    return out


# --- loading --------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys: silently keeping the last one hides mistakes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if (key_node.tag, key_node.value) in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def _read_yaml(path: str, origin: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return yaml.load(file, Loader=_StrictLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError("", f"config file {path}{origin} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}{origin}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        # One line: PyYAML's message spreads over three (what, where, the mark).
        problem = " ".join(str(exc).split())
        raise ConfigError("", f"config file {path} is not valid YAML: {problem}") from exc


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path``, else from the file named by ``RELAY_CONFIG``, else the defaults.

    ``env`` (default ``os.environ``) supplies both ``RELAY_CONFIG`` and the ``${...}`` values.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    origin = ""
    if path is None and environ.get("RELAY_CONFIG"):
        path, origin = environ["RELAY_CONFIG"], " (from RELAY_CONFIG)"
    if path is None:
        return Settings.from_mapping({}, environ)
    data = _read_yaml(path, origin)
    if data is None:  # an empty file
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            "",
            f"config file {path} must hold a mapping of keys at the top level, "
            f"got {type(data).__name__}",
        )
    return Settings.from_mapping(data, environ)


_SENSITIVE_HEADER = re.compile(r"auth|key|token|secret|cookie|signature|password", re.IGNORECASE)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-ready data with credentials replaced by ``"***"``.

    Besides api_key and secret_key: a database password and header values whose name suggests a
    credential (``Authorization``, ``X-Api-Key``, …). Null stays null: it says "not set".
    """
    data = settings.model_dump(mode="json")
    if data["secret_key"] is not None:
        data["secret_key"] = "***"
    if data["dashboard"]["session_secret"] is not None:
        data["dashboard"]["session_secret"] = "***"
    data["database_url"] = _redact_url(settings.database_url)
    for provider in data["providers"].values():
        if provider["api_key"] is not None:
            provider["api_key"] = "***"
        provider["headers"] = {
            name: "***" if _SENSITIVE_HEADER.search(name) else value
            for name, value in provider["headers"].items()
        }
    return data
