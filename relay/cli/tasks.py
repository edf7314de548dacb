"""Operator commands on an account's tasks: ``tasks list``, ``tasks get`` and ``tasks watch``."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from relay.cli.progress import following
from relay.cli.shared import (
    account_option,
    config_option,
    database_settings,
    opened_store,
    require_account,
    run_command,
)
from relay.errors import UnknownObject
from relay.models import Task, TaskStatus, iso
from relay.store.interface import Store
from relay.store.values import TaskQuery

PAGE = 200
"""Tasks read per query while listing."""


@click.group()
def tasks() -> None:
    """Read an account's tasks and follow one until it ends."""


@tasks.command("list", short_help="List an account's tasks, newest first.")
@config_option
@account_option
@click.option(
    "--status",
    type=click.Choice([s.value for s in TaskStatus]),
    default=None,
    help="Only tasks in this status.",
)
@click.option("--provider", default=None, help="Only tasks of this provider.")
@click.option("--reference", default=None, help="Only tasks registered with this reference.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Print at most this many tasks.",
)
def tasks_list(
    config: str | None,
    account_id: str,
    status: str | None,
    provider: str | None,
    reference: str | None,
    limit: int,
) -> None:
    """List an account's tasks, newest first: id, status, provider, provider task id,
    reference, created at (UTC)."""
    settings = database_settings(config)

    async def run() -> int:
        printed = 0
        after: int | None = None
        async with opened_store(settings) as store:
            await require_account(store, account_id)
            while printed < limit:
                page = await store.list_tasks(
                    account_id,
                    TaskQuery(
                        status=TaskStatus(status) if status else None,
                        provider=provider,
                        reference=reference,
                        after=after,
                        limit=min(PAGE, limit - printed),
                    ),
                )
                for task in page.items:
                    click.echo(task_line(task))
                printed += len(page.items)
                if page.next_after is None:
                    break
                after = page.next_after
        return printed

    if not run_command(run()):
        click.echo("no tasks match", err=True)


@tasks.command("get", short_help="Print one task as the API shows it (JSON).")
@config_option
@click.argument("task_id")
@account_option
def tasks_get(config: str | None, task_id: str, account_id: str) -> None:
    """Print one task as `GET /v1/tasks/{id}` shows it (JSON)."""
    settings = database_settings(config)

    async def run() -> Task:
        async with opened_store(settings) as store:
            return await _task(store, account_id, task_id)

    click.echo(json.dumps(run_command(run()).to_json(), indent=2))


@tasks.command("watch", short_help="Follow one task until it ends.")
@config_option
@click.argument("task_id")
@account_option
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    default=1.0,
    show_default=True,
    help="Seconds between two looks at the task.",
)
def tasks_watch(config: str | None, task_id: str, account_id: str, interval: float) -> None:
    """Follow one task until it ends: a line each time its status changes (time, status,
    progress; at the end its video URL or its error), and a progress bar on a terminal.
    It reads the database the running relay writes, so it sees what the relay learns.

    Exits 0 when the task succeeded, 1 when it ended any other way (failed, expired,
    cancelled) or is unknown: `relay tasks watch ... && next-step` waits for a video."""
    settings = database_settings(config)

    async def run() -> Task:
        async with opened_store(settings) as store:
            task = await _task(store, account_id, task_id)
            with following(_label(task)) as bar:
                seen: tuple[TaskStatus, int | None] | None = None
                while True:
                    if (task.status, task.progress) != seen:
                        if seen is None or task.status is not seen[0]:
                            bar.say(change_line(task))
                        bar.show(_label(task), 100 if task.status.terminal else task.progress)
                        seen = (task.status, task.progress)
                    if task.status.terminal:
                        return task
                    await asyncio.sleep(interval)
                    task = await _task(store, account_id, task_id)

    if run_command(run()).status is not TaskStatus.SUCCEEDED:
        sys.exit(1)


async def _task(store: Store, account_id: str, task_id: str) -> Task:
    await require_account(store, account_id)
    task = await store.get_task(account_id, task_id)
    if task is None:
        raise UnknownObject(f"no task {task_id} in account {account_id}")
    return task


def _label(task: Task) -> str:
    return f"{task.id} {task.status.value}"


def task_line(task: Task) -> str:
    return (
        f"{task.id}  {task.status.value:<9}  {task.provider}  {task.provider_task_id or '-'}  "
        f"{task.reference or '-'}  {iso(task.created_at)}"
    )


def change_line(task: Task) -> str:
    """What ``watch`` prints when the task's status changes."""
    line = f"{iso(task.updated_at)}  {task.status.value}"
    if task.status is TaskStatus.RUNNING and task.progress is not None:
        line += f"  {task.progress}%"
    if task.status is TaskStatus.SUCCEEDED:
        line += f"  {task.video_url or '(no video URL)'}"
    if task.error is not None:
        line += f"  {task.error.code.value}: {task.error.message}"
    return line
