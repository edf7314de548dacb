"""The dialect registry: every dialect the configuration accepts has one entry, and a name
without one is a configuration error naming the key, never a silent Ark."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from relay.adapters.registry import DIALECTS, build_dialect, dialect_entry
from relay.adapters.unified import SHOW_RAW_AND_USAGE, UnifiedDialect
from relay.config.settings import DialectName
from relay.errors import ConfigError


def test_every_configurable_dialect_has_an_entry_that_builds_it() -> None:
    assert set(get_args(DialectName)) == set(DIALECTS)
    for name in DIALECTS:
        assert build_dialect(name, key="providers.p.dialect").name == name


def test_an_unknown_dialect_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        dialect_entry("klingon", key="providers.acme.dialect")
    assert caught.value.path == "providers.acme.dialect"
    assert "klingon" in caught.value.message


def test_the_unified_dialect_gets_the_providers_query_params() -> None:
    dialect = build_dialect("unified", key="k", query_params=SHOW_RAW_AND_USAGE)
    assert isinstance(dialect, UnifiedDialect)
    assert dict(dialect.query_params) == dict(SHOW_RAW_AND_USAGE)


CGT = "cgt-20260606160057-6bbjd"
"""Created 16:00:57 Beijing time: 08:00:57 UTC."""


@pytest.mark.parametrize(
    ("name", "task_id", "created"),
    [
        ("ark", CGT, datetime(2026, 6, 6, 8, 0, 57, tzinfo=UTC)),
        ("ark", "task_abc", None),
        # A gateway tracking the upstream's cgt- id dates it as Ark does (apiyi, naci).
        ("unified", CGT, datetime(2026, 6, 6, 8, 0, 57, tzinfo=UTC)),
        ("unified", "task_abc", None),
        ("seedance2ink", "req_abc", None),
        ("seedance2ink", CGT, None),
    ],
)
def test_a_dialect_dates_a_task_by_its_id_when_the_id_says(
    name: str, task_id: str, created: datetime | None
) -> None:
    assert build_dialect(name, key="k").created_at_from_id(task_id) == created
