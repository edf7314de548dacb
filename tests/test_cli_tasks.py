"""The operator commands ``relay tasks list | get | watch`` against a real SQLite file
prepared through the Store API: list and get through click's ``CliRunner``, watch as a real
``relay`` process following a task that the test moves on in the database meanwhile, as the
running relay would."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time

from relay.models import Account, TaskStatus, iso
from relay.store.interface import Store
from tests.store.factories import advance, current, register
from tests.test_cli_replay import T0, Db, at, db

__all__ = ["db"]  # the fixture, imported to be used here

ALICE = Account("acc_alice", "alice", T0)
BOB = Account("acc_bob", "bob", T0)


def lines(db: Db, *args: str) -> list[list[str]]:
    result = db.relay(*args)
    assert result.exit_code == 0, result.output
    return [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()]


def test_tasks_list_shows_the_accounts_tasks_newest_first_with_filters(db: Db) -> None:
    async def prepare(store: Store) -> list[str]:
        a = await register(store, ALICE, created_at=at(0), reference="order-1")
        b = await register(store, ALICE, created_at=at(1), provider="apiyi")
        await register(store, BOB, created_at=at(2))
        await advance(store, await current(store, a.task), TaskStatus.SUCCEEDED, at(3))
        return [a.task.id, b.task.id]

    a, b = db.store(prepare)
    rows = lines(db, "tasks", "list", "-a", "acc_alice")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (b, "queued", "apiyi"),
        (a, "succeeded", "sandbox"),
    ]
    assert rows[1][4] == "order-1"
    assert rows[1][5] == iso(at(0))
    assert [r[0] for r in lines(db, "tasks", "list", "-a", "acc_alice", "--status", "queued")] == [
        b
    ]
    assert [
        r[0] for r in lines(db, "tasks", "list", "-a", "acc_alice", "--provider", "sandbox")
    ] == [a]
    assert [
        r[0] for r in lines(db, "tasks", "list", "-a", "acc_alice", "--reference", "order-1")
    ] == [a]
    assert [r[0] for r in lines(db, "tasks", "list", "-a", "acc_alice", "--limit", "1")] == [b]

    none = db.relay("tasks", "list", "-a", "acc_alice", "--status", "failed")
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no tasks match\n")


def test_tasks_get_prints_the_task_as_the_api_does(db: Db) -> None:
    async def prepare(store: Store) -> str:
        a = await register(store, ALICE, created_at=at(0), reference="order-1")
        await advance(store, await current(store, a.task), TaskStatus.SUCCEEDED, at(3))
        return a.task.id

    task_id = db.store(prepare)
    result = db.relay("tasks", "get", task_id, "-a", "acc_alice")
    assert result.exit_code == 0, result.output
    task = json.loads(result.stdout)
    assert (task["id"], task["status"], task["reference"]) == (task_id, "succeeded", "order-1")
    assert task["video_url"] == "https://cdn.example.com/v.mp4"

    # Another account's task does not exist for it.
    other = db.relay("tasks", "get", task_id, "-a", "acc_bob")
    assert (other.exit_code, other.stderr) == (
        1,
        f"error: no task {task_id} in account acc_bob\n",
    )


def test_unknown_ids_are_errors_with_a_non_zero_exit(db: Db) -> None:
    for args in (
        ("tasks", "get", "task_nope", "-a", "acc_alice"),
        ("tasks", "watch", "task_nope", "-a", "acc_alice"),
    ):
        result = db.relay(*args)
        assert (result.exit_code, result.stderr) == (
            1,
            "error: no task task_nope in account acc_alice\n",
        ), args
    nobody: list[tuple[str, ...]] = [
        ("tasks", "list"),
        ("tasks", "get", "task_nope"),
        ("tasks", "watch", "task_nope"),
        ("events", "list"),
        ("events", "redeliver", "evt_nope"),
        ("subscriptions", "list"),
        ("subscriptions", "replay", "sub_nope"),
    ]
    for command in nobody:
        # Before: `events list` said "no events match" and exited 0.
        result = db.relay(*command, "-a", "acc_nobody")
        assert (result.exit_code, result.stdout, result.stderr) == (
            1,
            "",
            "error: no account acc_nobody (`relay accounts list` shows them)\n",
        ), command


def _watch(db: Db, task_id: str, account: str = "acc_alice") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay",
            "tasks",
            "watch",
            task_id,
            "-a",
            account,
            "--interval",
            "0.05",
            "-c",
            str(db.config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_output(proc: subprocess.Popen[str], within: float = 20) -> str:
    """The first line the watch prints: it has read the task and is following it."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], within)
    assert ready, f"the watch printed nothing within {within} s"
    return proc.stdout.readline()


def test_tasks_watch_follows_a_task_until_it_succeeds(db: Db) -> None:
    task = db.store(lambda s: register(s, ALICE, created_at=at(0))).task
    proc = _watch(db, task.id)
    try:
        first = _wait_for_output(proc)
        assert first.split() == [iso(at(0)), "queued"]
        db.store(lambda s: _move(s, task.id, TaskStatus.RUNNING, 5))
        time.sleep(0.3)
        assert proc.poll() is None  # a running task is followed on
        db.store(lambda s: _move(s, task.id, TaskStatus.SUCCEEDED, 9))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert [line.split() for line in out.splitlines()] == [
        [iso(at(5)), "running"],
        [iso(at(9)), "succeeded", "https://cdn.example.com/v.mp4"],
    ]
    assert f"{task.id} succeeded" in err  # the bar's final state, off a terminal
    assert "Traceback" not in err


def test_tasks_watch_exits_1_when_the_task_ends_otherwise(db: Db) -> None:
    async def prepare(store: Store) -> str:
        a = await register(store, ALICE, created_at=at(0))
        await advance(store, await current(store, a.task), TaskStatus.FAILED, at(4))
        return a.task.id

    task_id = db.store(prepare)
    result = db.relay("tasks", "watch", task_id, "-a", "acc_alice")
    assert result.exit_code == 1
    assert result.stdout.split() == [iso(at(4)), "failed", "provider_error:", "boom"]


async def _move(store: Store, task_id: str, status: TaskStatus, seconds: float) -> None:
    task = await store.get_task("acc_alice", task_id)
    assert task is not None
    await advance(store, task, status, at(seconds))
