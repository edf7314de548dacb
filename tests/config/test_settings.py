from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from relay.config.settings import (
    SANDBOX,
    PollSettings,
    ProviderSettings,
    Settings,
    load_settings,
    redacted,
)
from relay.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
APIYI = {"dialect": "ark", "base_url": "https://api.apiyi.com", "path_prefix": "/seedance/api/v3"}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(data: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(data, env={} if env is None else env)
    return info.value


# --- sources ------------------------------------------------------------------------------------


def test_no_file_gives_defaults() -> None:
    settings = load_settings(env={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert settings.server.public_url is None
    assert settings.database_url == "sqlite:///relay.db"
    assert settings.sqlite_path == "relay.db"
    assert settings.secret_key is None
    assert settings.log_level == "info"
    assert settings.limits.max_body_bytes == 1_048_576
    assert settings.polling.tick_seconds == 1.0
    assert settings.polling.max_age == 172_800.0
    assert settings.polling.batch_size == 200
    assert settings.delivery.timeout == 15.0
    assert settings.delivery.retry_schedule == (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        50400.0,
        72000.0,
        86400.0,
    )
    assert settings.delivery.jitter == 0.2
    assert settings.delivery.max_in_flight == 256
    assert settings.delivery.max_in_flight_per_destination == 64
    assert settings.delivery.retry_after_max == 3600.0
    assert settings.delivery.tick_seconds == 1.0
    assert settings.delivery.response_snippet_bytes == 1024
    assert settings.sandbox.enabled is True
    assert settings.sandbox.queued_seconds == 2.0
    assert settings.sandbox.running_seconds == 6.0
    assert list(settings.providers) == [SANDBOX]
    assert settings.providers[SANDBOX] == ProviderSettings(
        dialect="ark",
        base_url=None,
        path_prefix="/sandbox/ark/api/v3",
        api_key="sandbox",
        poll=PollSettings(min_interval=1.0, max_interval=10.0, expected_duration=8.0),
    )
    assert settings == Settings()


def test_relay_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9001\n")
    assert load_settings(env={"RELAY_CONFIG": path}).server.port == 9001


def test_explicit_path_wins_over_relay_config(tmp_path: Path) -> None:
    explicit = write(tmp_path, "server:\n  port: 9002\n", "a.yaml")
    other = write(tmp_path, "server:\n  port: 9003\n", "b.yaml")
    assert load_settings(explicit, env={"RELAY_CONFIG": other}).server.port == 9002


def test_empty_relay_config_means_no_file() -> None:
    assert load_settings(env={"RELAY_CONFIG": ""}) == Settings()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    assert str(info.value) == f"config file {missing} does not exist"
    assert info.value.path == ""
    with pytest.raises(ConfigError) as info:
        load_settings(env={"RELAY_CONFIG": missing})
    assert str(info.value) == f"config file {missing} (from RELAY_CONFIG) does not exist"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_gives_defaults(tmp_path: Path, text: str) -> None:
    assert load_settings(write(tmp_path, text), env={}) == Settings()


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == (
        f"config file {path} must hold a mapping of keys at the top level, got list"
    )


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "server: [unclosed\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        load_settings(path, env={})


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 1\n  port: 2\n")
    with pytest.raises(ConfigError, match=r"found duplicate key 'port'"):
        load_settings(path, env={})


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = (
        "providers:\n"
        "  a: &base {dialect: ark, base_url: 'https://a.example', timeout: 10}\n"
        "  b:\n    <<: *base\n    timeout: 20\n"
    )
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.providers["a"].timeout == 10.0
    assert settings.providers["b"].timeout == 20.0
    assert settings.providers["b"].base_url == "https://a.example"


# --- interpolation --------------------------------------------------------------------------


def test_interpolation_in_values(tmp_path: Path) -> None:
    text = (
        "server:\n"
        "  port: ${PORT}\n"
        "  host: ${HOST:-0.0.0.0}\n"
        "  public_url: https://${DOMAIN:-relay.example}/\n"
        "secret_key: ${SECRET:-fallback-secret-key-0123}\n"
        "providers:\n"
        "  apiyi:\n"
        "    dialect: ark\n"
        "    base_url: https://api.apiyi.com\n"
        "    api_key: ${APIYI_API_KEY}\n"
        "    headers:\n"
        "      X-Literal: $${NOT_A_VAR}\n"
        "      X-Dollar: a$b$$c\n"
        "      ${KEY_IS_NOT_INTERPOLATED}: x\n"
    )
    env = {"PORT": "8001", "SECRET": "", "APIYI_API_KEY": "sk-123", "DOMAIN": "relay.test"}
    settings = load_settings(write(tmp_path, text), env=env)
    assert settings.server.port == 8001  # "8001" validated as an int
    assert settings.server.host == "0.0.0.0"
    assert settings.server.public_url == "https://relay.test"
    assert settings.secret_key == "fallback-secret-key-0123"  # the default replaces "" too
    apiyi = settings.providers["apiyi"]
    assert apiyi.api_key == "sk-123"
    assert dict(apiyi.headers) == {
        "X-Literal": "${NOT_A_VAR}",
        "X-Dollar": "a$b$$c",
        "${KEY_IS_NOT_INTERPOLATED}": "x",
    }


def test_interpolation_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_PORT", "8123")
    assert Settings.from_mapping({"server": {"port": "${RELAY_TEST_PORT}"}}).server.port == 8123


def test_set_but_empty_variable_without_default_is_empty() -> None:
    settings = Settings.from_mapping({"secret_key": "${SECRET}"}, env={"SECRET": ""})
    assert settings.secret_key is None  # "" for a nullable key means null


def test_missing_variable_names_the_key_path() -> None:
    error = config_error({"providers": {"apiyi": {**APIYI, "api_key": "${APIYI_API_KEY}"}}})
    assert error.path == "providers.apiyi.api_key"
    assert error.message == "environment variable APIYI_API_KEY is not set"
    assert str(error) == "providers.apiyi.api_key: environment variable APIYI_API_KEY is not set"


def test_every_missing_variable_is_reported() -> None:
    error = config_error(
        {"server": {"host": "${HOST}"}, "delivery": {"retry_schedule": [1, "${R}"]}}
    )
    assert str(error) == (
        "server.host: environment variable HOST is not set\n"
        "delivery.retry_schedule.1: environment variable R is not set"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${HOST", "unterminated ${ (write $${ for a literal ${)"),
        ("${1X}", "invalid environment reference ${1X}"),
        ("${}", "invalid environment reference ${}"),
        ("${A:-${B}}", "nested references are not supported in ${A:-${B}"),
    ],
)
def test_malformed_references(value: str, message: str) -> None:
    assert str(config_error({"server": {"host": value}})) == f"server.host: {message}"


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"server": {"port": "abc"}},
            "server.port",
            "Input should be a valid integer, unable to parse string as an integer (got 'abc')",
        ),
        (
            {"server": {"port": 70000}},
            "server.port",
            "Input should be less than or equal to 65535 (got 70000)",
        ),
        ({"server": {"hots": "x"}}, "server.hots", "unknown key (extra inputs are not permitted)"),
        ({"servers": {}}, "servers", "unknown key (extra inputs are not permitted)"),
        ({"server": "localhost"}, "server", "should be a mapping of keys to values, got str"),
        (
            {"server": {"public_url": "relay.example"}},
            "server.public_url",
            "must be an http:// or https:// URL, got 'relay.example'",
        ),
        (
            {"delivery": {"retry_schedule": [5, 10, 0]}},
            "delivery.retry_schedule.2",
            "Input should be greater than 0 (got 0)",
        ),
        (
            {"delivery": {"retry_schedule": []}},
            "delivery.retry_schedule",
            "Tuple should have at least 1 item after validation, not 0",
        ),
        (
            {"delivery": {"jitter": 0.6}},
            "delivery.jitter",
            "Input should be less than or equal to 0.5 (got 0.6)",
        ),
        (
            {"delivery": {"timeout": float("inf")}},
            "delivery.timeout",
            "Input should be a finite number (got inf)",
        ),
        (
            {"delivery": {"timeout": "nan"}},
            "delivery.timeout",
            "Input should be a finite number (got 'nan')",
        ),
        (
            {"limits": {"max_body_bytes": 100}},
            "limits.max_body_bytes",
            "Input should be greater than or equal to 1024 (got 100)",
        ),
        (
            {"log_level": "verbose"},
            "log_level",
            "Input should be 'debug', 'info', 'warning' or 'error' (got 'verbose')",
        ),
        ({"secret_key": "short"}, "secret_key", "String should have at least 16 characters"),
        (
            {"database_url": "mysql://h/db"},
            "database_url",
            "must start with sqlite:// or postgresql://",
        ),
        (
            {"database_url": "sqlite:///:memory:"},
            "database_url",
            "an in-memory SQLite database is not allowed: the relay needs a file that other "
            "processes can reopen",
        ),
        (
            {"database_url": "sqlite://relay.db"},
            "database_url",
            "write sqlite:///relative/path.db or sqlite:////absolute/path.db",
        ),
        (
            {"providers": {"ApiYi": APIYI}},
            "providers.ApiYi",
            "provider name must match ^[a-z][a-z0-9_-]{0,39}$",
        ),
        (
            {"providers": {"a" * 41: APIYI}},
            "providers." + "a" * 41,
            "provider name must match ^[a-z][a-z0-9_-]{0,39}$",
        ),
        (
            {"providers": {"myark": {"base_url": "https://x.example"}}},
            "providers.myark.dialect",
            "required key is missing",
        ),
        (
            {"providers": {"apiyi": {}}},
            "providers.apiyi.api_key",
            "not set; set the environment variable APIYI_API_KEY or api_key",
        ),
        (
            {"providers": {"mine": {"preset": "nope"}}},
            "providers.mine.preset",
            "unknown preset 'nope' (known: naci, apiyi, vastnum, cubicspaces, seedance2ink, ark)",
        ),
        (
            {"providers": {"naci": {"preset": "naci", "dialect": "ark", "api_key": "k"}}},
            "providers.naci.dialect",
            "the naci preset speaks unified, not 'ark'",
        ),
        (
            {"sandbox": {"enabled": False}, "providers": {"naci": {"sandbox": True}}},
            "providers.naci.sandbox",
            "this provider talks to the sandbox, which is disabled (sandbox.enabled: false)",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "dialect": "sandbox"}}},
            "providers.apiyi.dialect",
            "Input should be 'ark', 'unified' or 'seedance2ink' (got 'sandbox')",
        ),
        (
            {"providers": {"apiyi": "ark"}},
            "providers.apiyi",
            "should be a mapping of keys to values, got str",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "poll": {"min_interval": 5, "max_interval": 3}}}},
            "providers.apiyi.poll.max_interval",
            "max_interval (3) must be >= min_interval (5)",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "poll": {"min_interval": 90}}}},
            "providers.apiyi.poll.max_interval",
            "max_interval (60) must be >= min_interval (90)",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "poll": {"jitter": -0.1}}}},
            "providers.apiyi.poll.jitter",
            "Input should be greater than or equal to 0 (got -0.1)",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "max_concurrency": 0}}},
            "providers.apiyi.max_concurrency",
            "Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "base_url": "ftp://api.apiyi.com"}}},
            "providers.apiyi.base_url",
            "must be an http:// or https:// URL, got 'ftp://api.apiyi.com'",
        ),
        (
            {"providers": {"apiyi": {**APIYI, "path_prefix": "seedance"}}},
            "providers.apiyi.path_prefix",
            "must be empty or start with '/', got 'seedance'",
        ),
        (
            {"providers": {"apiyi": {"dialect": "ark"}}},
            "providers.apiyi.base_url",
            "base_url is required (null means this relay's own sandbox: set sandbox: true)",
        ),
        (
            {"sandbox": {"enabled": False}},
            "providers",
            "no providers are configured and the sandbox is disabled",
        ),
        (
            {"sandbox": {"enabled": False}, "providers": {"sandbox": {"dialect": "ark"}}},
            "providers.sandbox.base_url",
            "base_url is required (null means this relay's own sandbox: set sandbox: true)",
        ),
    ],
)
def test_validation_error_names_the_key_path(data: dict[str, Any], path: str, message: str) -> None:
    error = config_error(data)
    assert (error.path, error.message) == (path, message)
    assert str(error) == f"{path}: {message}"


def test_credentials_are_not_echoed_in_errors() -> None:
    error = config_error({"providers": {"apiyi": {**APIYI, "api_key": 12345678}}})
    assert str(error) == "providers.apiyi.api_key: Input should be a valid string"


def test_all_errors_are_reported_together() -> None:
    error = config_error(
        {
            "server": {"port": "abc"},
            "delivery": {"retry_schedule": [5, -1]},
            "providers": {"Bad": APIYI, "apiyi": {**APIYI, "extra": 1}},
        }
    )
    assert error.path == "server.port"
    assert str(error) == (
        "server.port: Input should be a valid integer, unable to parse string as an integer "
        "(got 'abc')\n"
        "delivery.retry_schedule.1: Input should be greater than 0 (got -1)\n"
        "providers.Bad: provider name must match ^[a-z][a-z0-9_-]{0,39}$\n"
        "providers.apiyi.extra: unknown key (extra inputs are not permitted)"
    )


def test_postgres_url_is_accepted() -> None:
    url = "postgresql://u:pw@db.internal/relay"
    settings = Settings.from_mapping({"database_url": url}, env={})
    assert settings.database_url == url
    assert settings.sqlite_path is None
    # The short scheme many platforms hand out is normalized.
    settings = Settings.from_mapping({"database_url": "postgres://u:pw@db/relay"}, env={})
    assert settings.database_url == "postgresql://u:pw@db/relay"


def test_sqlite_absolute_path() -> None:
    settings = Settings.from_mapping({"database_url": "sqlite:////abs/x.db"}, env={})
    assert settings.sqlite_path == "/abs/x.db"


def test_urls_are_normalized() -> None:
    settings = Settings.from_mapping(
        {
            "server": {"public_url": "https://relay.example/"},
            "providers": {
                "apiyi": {
                    **APIYI,
                    "base_url": "https://api.apiyi.com/",
                    "path_prefix": "/seedance/api/v3/",
                }
            },
        },
        env={},
    )
    assert settings.server.public_url == "https://relay.example"
    assert settings.providers["apiyi"].base_url == "https://api.apiyi.com"
    assert settings.providers["apiyi"].path_prefix == "/seedance/api/v3"


def test_empty_sections_and_empty_nullable_values_mean_defaults(tmp_path: Path) -> None:
    text = "server:\ndelivery:\nproviders:\nsecret_key: ''\nlog_level: WARNING\n"
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.server.port == 8000
    assert settings.secret_key is None
    assert settings.log_level == "warning"
    assert list(settings.providers) == [SANDBOX]


# --- providers ------------------------------------------------------------------------------


def test_sandbox_is_added_next_to_configured_providers() -> None:
    settings = Settings.from_mapping({"providers": {"apiyi": APIYI}}, env={})
    assert list(settings.providers) == ["apiyi", SANDBOX]
    assert settings.provider(SANDBOX) == Settings().provider(SANDBOX)
    apiyi = settings.provider("apiyi")
    assert apiyi is not None
    assert apiyi.dialect == "ark"
    assert apiyi.base_url == "https://api.apiyi.com"
    assert apiyi.api_key is None
    assert apiyi.timeout == 30.0
    assert apiyi.max_concurrency == 8
    assert apiyi.poll == PollSettings(
        min_interval=2.0, max_interval=60.0, expected_duration=120.0, jitter=0.1
    )
    assert settings.provider("missing") is None


def test_sandbox_is_not_added_when_disabled() -> None:
    settings = Settings.from_mapping(
        {"sandbox": {"enabled": False}, "providers": {"apiyi": APIYI}}, env={}
    )
    assert list(settings.providers) == ["apiyi"]


def test_an_explicit_sandbox_provider_is_kept() -> None:
    mine = {"dialect": "unified", "path_prefix": "/sandbox/unified", "api_key": "k"}
    settings = Settings.from_mapping({"providers": {"sandbox": mine}}, env={})
    assert list(settings.providers) == [SANDBOX]
    assert settings.providers[SANDBOX].dialect == "unified"
    assert settings.providers[SANDBOX].base_url is None


def test_builtin_sandbox_expects_its_own_duration() -> None:
    settings = Settings.from_mapping(
        {"sandbox": {"queued_seconds": 1, "running_seconds": 30}}, env={}
    )
    assert settings.providers[SANDBOX].poll.expected_duration == 31.0


def test_provider_max_age_falls_back_to_polling() -> None:
    settings = Settings.from_mapping(
        {
            "polling": {"max_age": 1000},
            "providers": {"apiyi": APIYI, "short": {**APIYI, "max_age": 60}},
        },
        env={},
    )
    assert settings.provider_max_age("apiyi") == 1000.0
    assert settings.provider_max_age("short") == 60.0
    assert settings.provider_max_age("unknown") == 1000.0


# --- immutability, output, example ----------------------------------------------------------


def test_settings_are_frozen() -> None:
    settings = Settings.from_mapping(
        {"providers": {"apiyi": {**APIYI, "headers": {"Accept-Encoding": "identity"}}}}, env={}
    )
    with pytest.raises(ValidationError, match="frozen"):
        settings.server.port = 1
    with pytest.raises(ValidationError, match="frozen"):
        settings.log_level = "debug"
    with pytest.raises(TypeError):
        settings.providers["x"] = APIYI  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.providers["apiyi"].headers["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        Settings().providers[SANDBOX].headers["X"] = "y"  # type: ignore[index]


def test_settings_round_trip_through_a_dump() -> None:
    settings = Settings.from_mapping({"providers": {"apiyi": APIYI}}, env={})
    assert Settings.model_validate(settings.model_dump()) == settings


def test_redacted_hides_credentials() -> None:
    settings = Settings.from_mapping(
        {
            "secret_key": "0123456789abcdef",
            "database_url": "postgresql://relay:hunter2@db/relay",
            "providers": {
                "apiyi": {
                    **APIYI,
                    "api_key": "sk-live",
                    "headers": {
                        "Accept-Encoding": "identity",
                        "X-Api-Key": "k",
                        "Authorization": "Bearer t",
                    },
                }
            },
        },
        env={},
    )
    data = redacted(settings)
    assert data["secret_key"] == "***"
    assert data["database_url"] == "postgresql://relay:***@db/relay"
    assert data["providers"]["apiyi"]["api_key"] == "***"
    assert data["providers"]["apiyi"]["headers"] == {
        "Accept-Encoding": "identity",
        "X-Api-Key": "***",
        "Authorization": "***",
    }
    assert data["providers"][SANDBOX]["api_key"] == "***"
    assert data["server"] == {
        "host": "127.0.0.1",
        "port": 8000,
        "public_url": None,
        "access_log": False,
    }
    assert data["delivery"]["retry_schedule"][0] == 5.0
    assert "sk-live" not in repr(data)
    assert "hunter2" not in repr(data)
    assert redacted(Settings())["secret_key"] is None  # "not set" stays visible


def test_example_file_loads_with_an_empty_environment() -> None:
    assert load_settings(str(EXAMPLE), env={}) == Settings()


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = set(re.findall(r"^\s*#?\s*([a-z_]+):", text, re.MULTILINE))
    expected = set(Settings.model_fields) | set(ProviderSettings.model_fields)
    for section in (
        "server",
        "limits",
        "polling",
        "delivery",
        "subscriptions",
        "idempotency",
        "retention",
        "sandbox",
        "outputs",
        "front_doors",
        "operational_events",
    ):
        expected |= set(Settings.model_fields[section].annotation.model_fields)  # type: ignore[union-attr]
    expected |= set(PollSettings.model_fields)
    assert expected <= keys


def test_example_real_providers_load_when_uncommented(tmp_path: Path) -> None:
    # Commented-out configuration is "#" followed by text or by the YAML indentation; prose
    # comments are "# " followed by text.
    text = EXAMPLE.read_text(encoding="utf-8")
    head, _, providers = text.partition("\nproviders:\n")
    uncommented = re.sub(r"^(\s*)#(?=\S|  )", r"\1", providers, flags=re.MULTILINE)
    env = {
        name: f"key-{name.lower()}"
        for name in (
            "NACI_API_KEY",
            "APIYI_API_KEY",
            "VASTNUM_API_KEY",
            "CUBICSPACES_API_KEY",
            "SEEDANCE2INK_API_KEY",
        )
    }
    settings = load_settings(write(tmp_path, head + "\nproviders:\n" + uncommented), env=env)
    assert sorted(settings.providers) == [
        "apiyi",
        "cubicspaces",
        "cubicspaces-unified",
        "naci",
        "naci-sandbox",
        "sandbox",
        "seedance2ink",
        "vastnum",
    ]
    apiyi = settings.providers["apiyi"]
    assert (apiyi.dialect, apiyi.base_url, apiyi.path_prefix) == (
        "ark",
        "https://api.apiyi.com",
        "/seedance/api/v3",
    )
    assert dict(apiyi.headers) == {"Accept-Encoding": "identity"}
    assert apiyi.api_key == "key-apiyi_api_key"
    assert settings.providers["naci"].base_url == "https://api-cs-al.naci-tech.com"
    assert settings.providers["vastnum"].dialect == "unified"
    assert settings.providers["cubicspaces"].path_prefix == "/api/v3"
    unified = settings.providers["cubicspaces-unified"]
    assert (unified.dialect, unified.path_prefix, unified.moderation_path, unified.api_key) == (
        "unified",
        "",
        "/v1/images/moderations",
        "key-cubicspaces_api_key",
    )
    naci = settings.providers["naci"]
    assert dict(naci.query_params) == {"show_raw": "true", "show_usage": "true"}
    assert (naci.poll.min_interval, naci.preset) == (15.0, "naci")
    ink = settings.providers["seedance2ink"]
    assert (ink.dialect, ink.base_url, ink.poll.min_interval) == (
        "seedance2ink",
        "https://www.seedance2.ink",
        30.0,
    )
    # A sandbox flavor needs no key and no base_url: it is this relay.
    local = settings.providers["naci-sandbox"]
    assert (local.sandbox, local.base_url, local.api_key, local.dialect) == (
        True,
        None,
        None,
        "unified",
    )
    assert settings.providers["cubicspaces-unified"].dialect == "unified"
    assert settings.providers["seedance2ink"].dialect == "seedance2ink"
    assert settings.providers["seedance2ink"].base_url == "https://www.seedance2.ink"


def test_a_preset_fills_what_the_entry_leaves_out_and_yields_to_what_it_says() -> None:
    settings = Settings.from_mapping(
        {
            "providers": {
                "mine": {
                    "preset": "apiyi",
                    "base_url": "https://staging.apiyi.example",
                    "headers": {"X-Team": "video"},
                    "poll": {"min_interval": 2},
                }
            }
        },
        env={"APIYI_API_KEY": "sk-env"},
    )
    mine = settings.providers["mine"]
    assert (mine.dialect, mine.base_url, mine.path_prefix, mine.api_key) == (
        "ark",
        "https://staging.apiyi.example",
        "/seedance/api/v3",
        "sk-env",
    )
    # Mappings merge: the preset's header stays next to the entry's own.
    assert dict(mine.headers) == {"Accept-Encoding": "identity", "X-Team": "video"}
    assert (mine.poll.min_interval, mine.poll.max_interval) == (2.0, 60.0)
    assert dict(mine.models)["seedance-2.0-fast"] == "doubao-seedance-2-0-fast-260128"


def test_an_explicit_api_key_wins_over_the_presets_variable() -> None:
    settings = Settings.from_mapping(
        {"providers": {"naci": {"api_key": "sk-file"}}}, env={"NACI_API_KEY": "sk-env"}
    )
    assert settings.providers["naci"].api_key == "sk-file"
