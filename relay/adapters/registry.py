"""Every dialect the relay speaks, by the name a provider's configuration gives it
(``providers.<name>.dialect``): one entry each, so adding a dialect is one line here and a
name nobody registered is a configuration error, never a silent fallback to another dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from relay.adapters.ark import ArkDialect
from relay.adapters.base import Dialect
from relay.adapters.seedance2ink import Seedance2InkDialect
from relay.adapters.unified import UnifiedDialect
from relay.errors import ConfigError

DialectFactory = Callable[[Mapping[str, str]], Dialect]
"""Builds the dialect from the provider's ``query_params`` (sent on every task query; only
the unified dialect has any)."""


@dataclass(frozen=True, slots=True)
class DialectEntry:
    build: DialectFactory
    sandbox_flavor: str
    """Where ``relay.sandbox`` emulates this dialect (``/sandbox/<flavor>``) for a sandbox
    provider without a preset of its own."""


DIALECTS: Final[Mapping[str, DialectEntry]] = MappingProxyType(
    {
        "ark": DialectEntry(lambda _: ArkDialect(), sandbox_flavor="ark"),
        "unified": DialectEntry(
            lambda query_params: UnifiedDialect(query_params=query_params),
            sandbox_flavor="newapi",
        ),
        "seedance2ink": DialectEntry(
            lambda _: Seedance2InkDialect(), sandbox_flavor="seedance2ink"
        ),
    }
)


def dialect_entry(name: str, *, key: str) -> DialectEntry:
    """The entry of dialect ``name``; ``key`` is the configuration key that gave it, which an
    unknown name's ``ConfigError`` names."""
    entry = DIALECTS.get(name)
    if entry is None:
        raise ConfigError(key, f"unknown dialect {name!r}; the relay speaks {', '.join(DIALECTS)}")
    return entry


def build_dialect(
    name: str, *, key: str, query_params: Mapping[str, str] = MappingProxyType({})
) -> Dialect:
    return dialect_entry(name, key=key).build(query_params)
