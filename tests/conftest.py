"""Fixtures shared across test modules, and what a parallel run (``-n``, as ``scripts/test``
runs the suite with pytest-xdist) needs to stay correct and fast."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tasks.tracker_env import env

__all__ = ["env"]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test on the PostgreSQL server ``postgres``: those marked so already, and
    those whose id names PostgreSQL (the store tests' backend parameter,
    ``test_postgres_only.py``), so that new store tests are covered by themselves.

    Puts first the test that restarts the server (it runs while the other workers start on
    tests that do not need the server), then the ``slow`` ones: xdist hands tests out in this
    order (``xdist_group`` groups first, the largest first), so the workers start with the
    long tests and none is left to run alone at the end. A serial run only sees the order
    change."""
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
def _postgres_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """In a parallel run, the tests on the PostgreSQL server share it, except a test marked
    ``postgres(exclusive=True)``, which restarts it and so has it to itself: it waits until
    the tests using the server are done, and those that come meanwhile wait for it.

    A file lock in the run's temporary directory, which every worker of the run shares: shared
    for each ``postgres`` test, exclusive for the restart (an autouse fixture comes before the
    test's other fixtures, so a test's schema is made and dropped under the lock too)."""
    marker = request.node.get_closest_marker("postgres")
    if marker is None or "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    with _server_lock(
        tmp_path_factory.getbasetemp().parent, exclusive=_has_the_server_alone(request.node)
    ):
        yield


def _has_the_server_alone(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("postgres")
    return marker is not None and bool(marker.kwargs.get("exclusive", False))


@contextlib.contextmanager
def _server_lock(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock of two ``flock`` files. Readers pass the gate one at a time and
    take the lock shared; the writer keeps the gate while it waits for the lock, so that no
    reader comes in meanwhile and the restart is not put off for ever."""
    with (
        open(directory / "postgres.gate", "a") as gate,
        open(directory / "postgres.lock", "a") as lock,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the files releases what is still held


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
