"""The named-query files: every name a backend's code asks for is in its ``queries.sql``, and
every query there is asked for (no dead SQL); the loader refuses what it cannot read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from relay.store.named_sql import load_queries, parse_queries
from relay.store.values import SUBSCRIPTION_FIELDS

STORE = Path(__file__).resolve().parents[2] / "relay" / "store"
BACKENDS = ["sqlite", "postgres"]


def asked_for(backend: str) -> set[str]:
    """Every ``QUERIES["name"]`` in the backend package's modules."""
    names = set()
    for path in (STORE / backend).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "QUERIES"
            ):
                name = node.slice
                assert isinstance(name, ast.Constant), f"{path}: a query name is a literal"
                assert isinstance(name.value, str), f"{path}: a query name is a string"
                names.add(name.value)
    return names


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_query_the_code_asks_for_exists(backend: str) -> None:
    wanted = asked_for(backend)
    assert wanted, f"relay/store/{backend} asks for no named query"
    missing = wanted - set(load_queries(f"relay.store.{backend}"))
    assert not missing, f"{backend}/queries.sql lacks {sorted(missing)}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_query_in_the_file_is_used(backend: str) -> None:
    unused = set(load_queries(f"relay.store.{backend}")) - asked_for(backend)
    assert not unused, f"{backend}/queries.sql has unused queries {sorted(unused)}"


def test_the_parser_keeps_sql_and_drops_the_why() -> None:
    queries = parse_queries(
        "-- first --\n-- why it is so\nSELECT 1\nFROM t\n\n-- second --\nDELETE FROM t\n"
    )
    assert dict(queries) == {"first": "SELECT 1\nFROM t", "second": "DELETE FROM t"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- a --\nSELECT 1\n-- a --\nSELECT 2\n", "defined twice"),
        ("-- a --\n-- only a comment\n", "has no SQL"),
    ],
)
def test_the_parser_refuses_a_broken_file(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_queries(text)


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_subscription_can_change_every_field_it_allows(backend: str) -> None:
    """A field added to SUBSCRIPTION_FIELDS must be added to the static UPDATE too, or a
    change naming it would be silently ignored."""
    sql = load_queries(f"relay.store.{backend}")["update_subscription"]
    missing = [f for f in sorted(SUBSCRIPTION_FIELDS) if f"set_{f}" not in sql]
    assert not missing, f"{backend}'s update_subscription cannot change {missing}"
