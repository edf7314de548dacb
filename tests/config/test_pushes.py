"""``providers.NAME.pushes``: whether the relay hands a provider its inbound URL. Each
preset says what its provider does with Ark's ``callback_url``; the entry wins; a gateway
cannot push; and a pushing provider the relay has no public address for is warned about."""

from __future__ import annotations

from typing import Any

import pytest

from relay.adapters.registry import build_dialect
from relay.config.settings import Settings
from relay.config.startup_warnings import startup_warnings
from relay.errors import ConfigError

ENV = {
    "ARK_API_KEY": "ark-key",
    "APIYI_API_KEY": "apiyi-key",
    "CUBICSPACES_API_KEY": "cs-key",
    "SEEDANCE2INK_API_KEY": "ink-key",
    "NACI_API_KEY": "naci-key",
}
OWN = "http://127.0.0.1:8080"


def settings(providers: dict[str, Any], **sections: Any) -> Settings:
    return Settings.from_mapping({"providers": providers, **sections}, env=ENV)


def pushing(s: Settings, name: str) -> bool:
    p = s.providers[name]
    return build_dialect(p.dialect, key="k", query_params=p.query_params, pushes=p.pushes).pushes


def test_each_preset_pushes_where_its_provider_keeps_the_url() -> None:
    s = settings(
        {
            "ark": {},
            "apiyi": {},
            "cubicspaces": {},
            "cubicspaces-unified": {"preset": "cubicspaces", "dialect": "unified"},
            "seedance2ink": {},
            "naci": {},
            "mirror": {"dialect": "ark", "base_url": "https://mirror.example", "api_key": "k"},
        }
    )
    assert {name: pushing(s, name) for name in s.providers} == {
        "ark": True,  # Ark itself: callback_url on each status change
        "apiyi": True,  # passes its Ark path through, cgt ids and all
        "cubicspaces": False,  # its own task service; documents no callback
        "cubicspaces-unified": False,
        "seedance2ink": True,
        "naci": False,
        "mirror": False,  # an unknown mirror may drop or refuse the field: opt in
        "sandbox": False,  # the built-in sandbox is polled, as before
    }


def test_the_ark_preset_is_ark_itself() -> None:
    ark = settings({"ark": {}}).providers["ark"]
    assert (ark.dialect, ark.base_url, ark.path_prefix, ark.api_key) == (
        "ark",
        "https://ark.cn-beijing.volces.com",
        "/api/v3",
        "ark-key",
    )
    assert dict(ark.models)["seedance-2.0"] == "doubao-seedance-2-0-260128"


def test_what_the_entry_says_wins_over_the_preset() -> None:
    s = settings(
        {
            "quiet-apiyi": {"preset": "apiyi", "pushes": False},
            "loud-cubicspaces": {"preset": "cubicspaces", "pushes": True},
            "mirror": {
                "dialect": "ark",
                "base_url": "https://mirror.example",
                "api_key": "k",
                "pushes": True,
            },
            "quiet-ink": {"preset": "seedance2ink", "pushes": False},
        }
    )
    assert not pushing(s, "quiet-apiyi")
    assert pushing(s, "loud-cubicspaces")
    assert pushing(s, "mirror")
    assert not pushing(s, "quiet-ink")


def test_a_gateway_asked_to_push_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"naci": {"pushes": True}})
    assert caught.value.path == "providers.naci.pushes"
    assert "cannot pass a push URL" in caught.value.message


def test_pushes_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"apiyi": {"pushes": "sometimes"}})
    assert caught.value.path == "providers.apiyi.pushes"


def warned(s: Settings) -> list[str]:
    return [w for w in startup_warnings(s, OWN) if "pushes results" in w]


def test_a_pushing_ark_provider_without_a_public_url_is_warned_about() -> None:
    s = settings(
        {"ark": {}, "cubicspaces": {}, "apiyi-local": {"preset": "apiyi", "sandbox": True}}
    )
    [warning] = warned(s)
    assert warning.startswith("provider ark pushes results to this relay")
    assert OWN in warning
    assert "providers.ark.pushes: false" in warning


def test_no_warning_with_a_public_url_or_pushes_off() -> None:
    assert warned(settings({"ark": {}}, server={"public_url": "https://relay.example"})) == []
    assert warned(settings({"ark": {"pushes": False}})) == []
    assert warned(settings({"seedance2ink": {"pushes": False}})) == []
    assert len(warned(settings({"seedance2ink": {}}))) == 1
