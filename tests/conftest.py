"""Fixtures shared across test modules, and what a parallel run (``-n``, as ``scripts/test``
runs the suite with pytest-xdist) needs to stay correct and fast."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.tasks.tracker_env import env

__all__ = ["env"]

LOCK_WAIT = 300.0
"""Seconds a test waits for its turn on the PostgreSQL server before it fails."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test on the PostgreSQL server ``postgres``: those marked so already, and
    those whose id names PostgreSQL (the store tests' backend parameter,
    ``test_postgres_only.py``), so that new store tests are covered by themselves.

    Puts first the test that restarts the server, when a run has it (``scripts/test`` runs
    it afterwards, ``alone``), then the ``slow`` ones: xdist hands tests out in this order
    (``xdist_group`` groups first, the largest first), so the workers start with the long
    tests and none is left to run alone at the end. A serial run only sees the order change."""
    for item in items:
        if item.get_closest_marker("postgres") is None and "postgres" in item.nodeid.lower():
            item.add_marker(pytest.mark.postgres)

    def rank(item: pytest.Item) -> int:
        if _has_the_server_alone(item):
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)  # stable: the order within each rank stays
    if config.getoption("loadgroup", default=False):  # an xdist worker, --dist loadgroup
        for item in items:
            _name_the_group(item)


@pytest.fixture(autouse=True)
def _postgres_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """The tests on the PostgreSQL server share it, except a test marked
    ``postgres(exclusive=True)``, which restarts it and so has it to itself: it waits until
    the tests using the server are done, and those that come meanwhile wait for it. This holds
    across every run on this machine that uses the same server (the workers of a parallel run,
    other runs from this or another checkout), since a restart breaks their tests as well.

    A file lock in the system's temporary directory, named after the server: shared for each
    ``postgres`` test, exclusive for the restart. (An autouse fixture comes before the test's
    other fixtures, so a test's schema is made and dropped under the lock too.)"""
    url = os.environ.get("RELAY_TEST_POSTGRES_URL")
    if not url or request.node.get_closest_marker("postgres") is None:
        yield
        return
    with _server_lock(_lock_path(url), exclusive=_has_the_server_alone(request.node)):
        yield


def _has_the_server_alone(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("postgres")
    return marker is not None and bool(marker.kwargs.get("exclusive", False))


def _lock_path(url: str) -> Path:
    """One lock per server (host and port), whatever database or options the URL names."""
    params = conninfo_to_dict(url)
    server = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    digest = hashlib.sha256(server.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"relay-tests-postgres-{digest}"


@contextlib.contextmanager
def _server_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock of two ``flock`` files. Readers pass the gate one at a time and
    take the lock shared; the writer keeps the gate while it waits for the lock, so that no
    reader comes in meanwhile and the restart is not put off for ever."""
    deadline = time.monotonic() + LOCK_WAIT
    with open(f"{path}.gate", "a") as gate, open(f"{path}.lock", "a") as lock:
        _flock(gate, fcntl.LOCK_EX, deadline)
        try:
            _flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
        finally:
            if not exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the files releases what is still held


def _flock(file: IO[str], operation: int, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(file, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"waited {LOCK_WAIT:g} s for the PostgreSQL server ({file.name}): a test "
                    "elsewhere still has it (fuser shows which process holds that file)",
                    pytrace=False,
                )
            time.sleep(0.05)


def _name_the_group(item: pytest.Item) -> None:
    """Give the test's id the ``@group`` suffix by which xdist's scheduler keeps an
    ``xdist_group`` on one worker, where xdist itself no longer can: since pytest 9.2 an id is
    a structured ``NodeId`` (``item._id``), and xdist 3.8 still renames the old ``_nodeid``
    field, to no effect, so ``--dist loadgroup`` silently stopped grouping
    (pytest-dev/pytest-xdist#1386, fix proposed in pytest-dev/pytest-xdist#1388). Remove once
    xdist does it again: xdist then adds the same suffix, and the scheduler reads the last
    one. Before pytest 9.2 this does nothing."""
    names = sorted(
        {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
    )
    node_id = getattr(item, "_id", None)
    if not names or node_id is None or not hasattr(type(node_id), "parse"):
        return
    item._id = type(node_id).parse(f"{item.nodeid}@{'_'.join(names)}")
