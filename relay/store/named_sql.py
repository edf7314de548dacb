"""Named queries: each backend keeps its SQL in one ``queries.sql`` beside its code, in blocks
that a header line names, the way procrastinate does::

    -- claim_due_deliveries --
    -- Why the query is shaped the way it is (these lines stay in the file, not in the SQL).
    SELECT ...

``load_queries`` parses a package's file once into a read-only mapping from name to SQL;
the code asks for ``QUERIES["claim_due_deliveries"]``, never builds SQL from pieces.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def parse_queries(text: str) -> Mapping[str, str]:
    """Name → SQL; a block's comment lines (``-- ``) are dropped, the SQL kept as written."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = "\n".join(
            line for line in body.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if not sql:
            raise ValueError(f"query {name!r} has no SQL")
        queries[name] = sql
    return MappingProxyType(queries)


@functools.cache
def load_queries(package: str) -> Mapping[str, str]:
    """The queries in ``package``'s ``queries.sql`` (``relay.store.sqlite``, …), read once."""
    text = resources.files(package).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)
