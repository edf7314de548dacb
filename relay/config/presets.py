"""Presets for the five providers in ``shared/providers`` and for Ark itself: what a provider
entry in the config gets by default when it names a preset (``preset: apiyi``), or is itself
named after one and gives no ``dialect``.

A preset is plain config data, merged under what the operator wrote: every key can still be
overridden (``base_url`` for a staging gateway, ``poll`` for another budget). The API key
comes from the environment variable the preset names unless ``api_key`` is given.

Poll budgets follow what each provider is: a new-api gateway refreshes its own copy of the
task from upstream only every 15 s (DIALECTS §4), so polling it faster reads the same row;
seedance2.ink pushes the result, so its poll is only a slow safety net; Ark mirrors answer
from the source and may be polled as densely as the adaptive policy wants: no closer than 2 s,
where the learned schedule makes a third of a fixed 5-second loop's polls and still notices a
finish sooner on average (benchmarks/polling_efficiency.py; at 5 s it would notice it later).

``pushes`` says whether the provider keeps the push URL the relay passes at creation (Ark's
``callback_url``). Ark itself POSTs the task on each status change (DIALECTS §4); apiyi
passes its Ark path through to Ark, ``cgt-`` ids and all, so Ark's callback comes back with
the id the relay tracks; cubicspaces' mirror is its own task service (``task_…`` ids) and
documents no callback, so it is polled.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

_ARK_MODELS: Final = {
    "seedance-2.0": "doubao-seedance-2-0-260128",
    "seedance-2.0-fast": "doubao-seedance-2-0-fast-260128",
}
"""Neutral model names (the unified input's ``model``) → Ark's model ids."""

_ARK_POLL: Final = {"min_interval": 2.0, "max_interval": 60.0, "expected_duration": 150.0}
_GATEWAY_POLL: Final = {"min_interval": 15.0, "max_interval": 90.0, "expected_duration": 150.0}
_PUSH_POLL: Final = {"min_interval": 30.0, "max_interval": 600.0, "expected_duration": 300.0}


def _preset(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


PRESETS: Final[Mapping[str, Mapping[str, Mapping[str, Any]]]] = MappingProxyType(
    {
        # preset name → dialect → defaults; the first dialect listed is the preset's default.
        "naci": {
            "unified": _preset(
                base_url="https://api-cs-al.naci-tech.com",
                api_key_env="NACI_API_KEY",
                # naci's extensions: the raw Ark task (seed, fps, usage, last frame) and usage.
                query_params={"show_raw": "true", "show_usage": "true"},
                models={"seedance-2.0": "sd2.0"},
                poll=_GATEWAY_POLL,
            ),
        },
        "apiyi": {
            "ark": _preset(
                base_url="https://api.apiyi.com",
                path_prefix="/seedance/api/v3",
                api_key_env="APIYI_API_KEY",
                # Its gzip answers break some decoders; the page asks for identity.
                headers={"Accept-Encoding": "identity"},
                models=_ARK_MODELS,
                poll=_ARK_POLL,
                pushes=True,
            ),
        },
        "vastnum": {
            "unified": _preset(
                base_url="https://www.vastnum.com",
                api_key_env="VASTNUM_API_KEY",
                models=_ARK_MODELS,
                poll=_GATEWAY_POLL,
            ),
        },
        "cubicspaces": {
            "ark": _preset(
                base_url="https://cubicspaces.cloud",
                path_prefix="/api/v3",
                api_key_env="CUBICSPACES_API_KEY",
                models={"seedance-2.0": "doubao-seedance-2.0"},
                moderation_path="/v1/images/moderations",
                poll=_ARK_POLL,
                pushes=False,
            ),
            "unified": _preset(
                base_url="https://cubicspaces.cloud",
                api_key_env="CUBICSPACES_API_KEY",
                models={"seedance-2.0": "doubao-seedance-2.0"},
                moderation_path="/v1/images/moderations",
                poll=_GATEWAY_POLL,
            ),
        },
        "seedance2ink": {
            "seedance2ink": _preset(
                base_url="https://www.seedance2.ink",
                api_key_env="SEEDANCE2INK_API_KEY",
                poll=_PUSH_POLL,
                pushes=True,
            ),
        },
        # Ark itself (Volcengine, Beijing; BytePlus: base_url
        # https://ark.ap-southeast.bytepluses.com and its dreamina-… model ids). The key is
        # the one Ark's own SDK reads.
        "ark": {
            "ark": _preset(
                base_url="https://ark.cn-beijing.volces.com",
                path_prefix="/api/v3",
                api_key_env="ARK_API_KEY",
                models=_ARK_MODELS,
                poll=_ARK_POLL,
                pushes=True,
            ),
        },
    }
)

_MERGED: Final = frozenset({"headers", "poll", "models", "query_params"})
"""Mapping keys merged with the preset's rather than replacing it."""


def apply_preset(
    name: str, raw: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], str | None]:
    """``raw`` (one provider's config, ``${ENV}`` already expanded) with its preset's
    defaults under it, and a problem to report (or None).

    Returns ``raw`` unchanged (as a dict) when no preset applies.
    """
    out = dict(raw)
    preset = out.get("preset")
    if preset is None and name in PRESETS and "dialect" not in out:
        preset = name
    if preset is None:
        return out, None
    if not isinstance(preset, str) or preset not in PRESETS:
        return out, f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})"
    out["preset"] = preset
    dialects = PRESETS[preset]
    dialect = out.setdefault("dialect", next(iter(dialects)))
    defaults = dialects.get(dialect) if isinstance(dialect, str) else None
    if defaults is None:
        return out, (
            f"dialect: the {preset} preset speaks {' or '.join(dialects)}, not {dialect!r}"
        )
    for key, value in defaults.items():
        if key == "api_key_env" or (key == "base_url" and out.get("sandbox")):
            continue  # the sandbox flavor of a preset lives on this relay, keyless
        if key in _MERGED and isinstance(out.get(key), Mapping):
            out[key] = {**value, **out[key]}
        elif out.get(key) is None:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    if out.get("api_key") is None and not out.get("sandbox"):
        variable = str(defaults["api_key_env"])
        if not env.get(variable):
            return out, (f"api_key: not set; set the environment variable {variable} or api_key")
        out["api_key"] = env[variable]
    return out, None
