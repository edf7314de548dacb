"""Progress bars for the commands that take a while (a replay, following a task), drawn with
rich on stderr: redrawn in place on a terminal, with lines printed above the bar staying
readable; off a terminal (a pipe, a log) only the final state is written, once. stdout
keeps what scripts read."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _console() -> Console:
    # Resolved at each use, so a test runner's captured stderr is the one written to.
    return Console(stderr=True)


@contextmanager
def counting(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` items; the function it yields adds done items (and redraws at
    once: batches can come faster than a timed refresh would show them)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=_console(),
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(n: int) -> None:
            progress.update(task, advance=n, refresh=True)

        yield advance


class Following:
    """One task followed until it ends: its status as the label, its progress (0-100, when
    the provider reports one) as the bar, and the time since the watch began."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def show(self, label: str, percent: int | None) -> None:
        self._progress.update(self._task, description=label, completed=percent or 0, refresh=True)

    def say(self, line: str) -> None:
        """A line for stdout. When stdout and the bar share a terminal, it is printed above
        the bar (through the bar's stream), or the bar's redrawing would overwrite it."""
        console = self._progress.console
        if console.is_terminal and sys.stdout.isatty():
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            click.echo(line)


@contextmanager
def following(label: str) -> Iterator[Following]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=_console(),
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        yield Following(progress, progress.add_task(label, total=100))
