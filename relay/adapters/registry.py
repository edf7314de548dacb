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

DialectFactory = Callable[[Mapping[str, str], bool], Dialect]
"""Builds the dialect from the provider's ``query_params`` (sent on every task query; only
the unified dialect has any) and whether it is to pass the relay's push URL."""


@dataclass(frozen=True, slots=True)
class DialectEntry:
    make: DialectFactory
    sandbox_flavor: str
    """Where ``relay.sandbox`` emulates this dialect (``/sandbox/<flavor>``) for a sandbox
    provider without a preset of its own."""
    can_push: bool = False
    """The provider's create takes a URL to push the task's changes to."""
    pushes_by_default: bool = False
    """Whether that URL is passed when the configuration says nothing (``pushes``, which a
    preset may fill): seedance2.ink pushes by design; an unknown Ark mirror may drop or
    refuse ``callback_url``, so it is asked only for a provider known to keep it."""

    def build(
        self, query_params: Mapping[str, str] = MappingProxyType({}), pushes: bool | None = None
    ) -> Dialect:
        """The dialect of one provider; ``pushes`` None: the dialect's default. Asking a
        dialect that cannot push to push is a configuration error (``check_pushes``)."""
        wanted = self.pushes_by_default if pushes is None else pushes
        return self.make(query_params, wanted and self.can_push)


DIALECTS: Final[Mapping[str, DialectEntry]] = MappingProxyType(
    {
        "ark": DialectEntry(
            lambda _, pushes: ArkDialect(pushes=pushes), sandbox_flavor="ark", can_push=True
        ),
        "unified": DialectEntry(
            # metadata.callback_url would reach Ark with the cgt id, not the gateway's own
            # task id, and gateways may strip it (DIALECTS §3): a gateway is only polled.
            lambda query_params, _: UnifiedDialect(query_params=query_params),
            sandbox_flavor="newapi",
        ),
        "seedance2ink": DialectEntry(
            lambda _, pushes: Seedance2InkDialect(pushes=pushes),
            sandbox_flavor="seedance2ink",
            can_push=True,
            pushes_by_default=True,
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


def check_pushes(name: str, pushes: bool | None) -> str | None:
    """What is wrong with asking dialect ``name`` to push (``pushes: true``), or None."""
    entry = DIALECTS.get(name)
    if pushes and entry is not None and not entry.can_push:
        return (
            f"the {name} dialect cannot pass a push URL to the provider; "
            "the relay polls it (set pushes: false or leave it out)"
        )
    return None


def build_dialect(
    name: str,
    *,
    key: str,
    query_params: Mapping[str, str] = MappingProxyType({}),
    pushes: bool | None = None,
) -> Dialect:
    return dialect_entry(name, key=key).build(query_params, pushes)
