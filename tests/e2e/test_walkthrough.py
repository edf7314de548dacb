"""The README's "Try it in two minutes" is a test: its commands, read from the README itself,
run in the order written in a fresh directory (a real ``relay serve`` process, the README's
own ``receiver.py``, the real ``curl``), and what the README says they print is what they
print. A change to the walkthrough changes this test's steps; a walkthrough that stops
working fails it.

What is read: every fenced block of the section, in order. In a ``sh`` block a line is a
command (continued over lines while its quotes are open) and the ``# …`` lines after it are
what it prints; a ``python`` block is a file whose first line names it and the command that
runs it (``# receiver.py — python receiver.py whsec_…``). A value the README elides
(``rk_…``, ``whsec_…``, ``acct_…``, ``task_…``) is what an earlier step printed, as a reader
would paste it; ``…`` in an expected line matches anything. The sentences after the blocks
name what the receiver prints and what else to try (``relay tasks watch``, the address that
opens the dashboard).

The only changes: ports 8000 and 9000 become free ports (tests run side by side), ``relay
serve`` is told its port with ``--port``, ``.venv`` is this test run's environment (linked
into the directory), and ``python`` is its interpreter. The ``pip install`` lines are the
environment this test already runs in."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import HOST, free_port

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Try it in two minutes"
PLACEHOLDER = re.compile(r"\b([a-z]+_)[0-9A-Za-z]*…")
"""An elided value: its prefix (``rk_``, ``acct_``, …) names what an earlier step printed."""


@dataclass
class Step:
    kind: str
    """``sh`` (a command), ``file`` (a file to write, with the command that runs it)."""
    text: str
    expected: list[str] = field(default_factory=list)
    name: str = ""


def walkthrough() -> tuple[list[Step], str]:
    """The section's steps in order, and its prose (for the sentences that name outputs)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    section = text[start:end]
    steps: list[Step] = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", section, re.DOTALL):
        lines = [line.removeprefix("   ") for line in body.splitlines()]
        if lang == "sh":
            steps.extend(_commands(lines))
        elif lang == "python":
            header = re.fullmatch(r"# (\S+) — (.+)", lines[0])
            assert header, f"a python block must name its file first: {lines[0]!r}"
            steps.append(Step("file", "\n".join(lines) + "\n", name=header.group(1)))
            steps.append(Step("sh", header.group(2)))
        else:
            pytest.fail(f"the walkthrough has a {lang or 'plain'} block this test cannot run")
    prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL)
    return steps, prose


def _commands(lines: list[str]) -> list[Step]:
    steps: list[Step] = []
    pending: list[str] = []
    for line in lines:
        if pending:
            pending.append(line)
        elif line.startswith("# "):
            steps[-1].expected.append(line.removeprefix("# "))
            continue
        elif line.strip():
            pending = [line]
        else:
            continue
        try:
            shlex.split("\n".join(pending))
        except ValueError:  # an open quote: the command goes on
            continue
        steps.append(Step("sh", "\n".join(pending)))
        pending = []
    assert not pending, f"an unfinished command: {pending}"
    return steps


def pattern(expected: str) -> re.Pattern[str]:
    """An expected line as a pattern: elided values are captured, other ``…`` match anything."""
    out, last = "", 0
    for m in PLACEHOLDER.finditer(expected):
        name, shown = m.group(1)[:-1], m.group(0)[:-1]
        out += re.escape(expected[last : m.start()]) + rf"(?P<{name}>{re.escape(shown)}\S*)"
        last = m.end()
    out += re.escape(expected[last:])
    out = out.replace(re.escape("…"), ".*").replace(r"\ ", r"\s+")
    return re.compile(out)


class Walk:
    """The reader's terminal(s): the directory, the values printed so far, what runs on."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = {"8000": str(free_port()), "9000": str(free_port())}
        self.values: dict[str, str] = {}
        self.background: list[tuple[asyncio.subprocess.Process, Path]] = []

    def moved(self, text: str) -> str:
        """``text`` with the README's ports moved to this test's."""
        for port, ours in self.ports.items():
            text = text.replace(port, ours)
        return text

    def paste(self, text: str) -> str:
        """``text`` as the reader would type it: printed values pasted, ports moved."""
        text = self.moved(text)

        def value(m: re.Match[str]) -> str:
            prefix = m.group(1)[:-1]
            assert prefix in self.values, f"nothing printed so far gives {m.group(0)}"
            return self.values[prefix]

        return PLACEHOLDER.sub(value, text)

    def argv(self, command: str) -> list[str]:
        argv = shlex.split(self.paste(command))
        if argv[0] == "python":
            argv[0] = sys.executable
        if argv[:2] == [".venv/bin/relay", "serve"]:
            argv += ["--port", self.ports["8000"]]
        return argv

    async def start(self, command: str) -> Path:
        """A command that runs on (a server): its output goes to a file."""
        out = self.directory / f"out-{len(self.background)}.txt"
        with out.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(command),
                cwd=self.directory,
                stdout=sink,
                stderr=sink,
                # A terminal shows each line as it is printed; a pipe would hold them.
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.background.append((proc, out))
        return out

    async def run(self, command: str, within: float = 30) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(command),
            cwd=self.directory,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def expect(self, expected: str, output: str) -> None:
        match = pattern(self.moved(expected)).search(output)
        assert match, f"expected {expected!r} in:\n{output}"
        self.values.update({k: v for k, v in match.groupdict().items() if v})

    async def until_printed(self, expected: str, out: Path, within: float) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not pattern(self.moved(expected)).search(_read(out)):
            for proc, log in self.background:
                assert proc.returncode is None, f"{log.name} ended:\n{_read(log)}"
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{expected!r} not printed within {within} s:\n{_read(out)}")
            await asyncio.sleep(0.05)
        self.expect(expected, _read(out))

    async def stop(self) -> None:
        for proc, _ in self.background:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _runs_on(step: Step) -> bool:
    """Servers: the relay and the receiver, which the reader leaves running."""
    argv = shlex.split(step.text)
    return argv[:2] == [".venv/bin/relay", "serve"] or argv[0] == "python"


async def test_the_readmes_walkthrough_works_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the walkthrough uses curl, which is not installed")
    relay = Path(sys.prefix) / "bin" / "relay"
    assert relay.exists(), f"{relay}: run the tests from the project's virtualenv"
    (tmp_path / ".venv").symlink_to(sys.prefix)
    steps, prose = walkthrough()
    assert [s.kind for s in steps] == ["sh", "sh", "file", "sh", "sh"], steps
    receiver_prints = re.search(r"`receiver\.py` prints `([^`]+)`", prose)
    assert receiver_prints, "the walkthrough no longer says what the receiver prints"
    watch = re.search(r"`(\.venv/bin/relay tasks watch [^`]+)`", prose)
    assert watch, "the walkthrough no longer shows `relay tasks watch`"
    dashboard = re.search(r"`(http://127\.0\.0\.1:8000/)` opens the dashboard", prose)
    assert dashboard, "the walkthrough no longer names the address of the dashboard"

    walk = Walk(tmp_path)
    receiver_out: Path | None = None
    registered: dict[str, object] = {}
    try:
        for step in steps:
            if step.kind == "file":
                (tmp_path / step.name).write_text(walk.paste(step.text), encoding="utf-8")
            elif _runs_on(step):
                out = await walk.start(step.text)
                for line in step.expected:
                    await walk.until_printed(line, out, within=30)
                if shlex.split(step.text)[0] == "python":
                    receiver_out = out
                    await _listening(int(walk.ports["9000"]))
            else:
                code, stdout, stderr = await walk.run(step.text)
                assert code == 0, (step.text, stdout, stderr)
                for line in step.expected:
                    walk.expect(line, stdout)
                if step.text.startswith("curl"):
                    # The registration succeeded the first time: the task, not an error.
                    registered = json.loads(stdout)
                    assert str(registered.get("id")).startswith("task_"), registered
                    assert registered["status"] == "queued", registered
                    walk.values["task"] = str(registered["id"])
        assert (tmp_path / "relay.db").exists()  # "It creates relay.db in the working directory"

        # "About eight seconds later receiver.py prints task.succeeded succeeded http://…mp4?…"
        assert receiver_out is not None
        await walk.until_printed(receiver_prints.group(1), receiver_out, within=60)

        code, stdout, stderr = await walk.run(watch.group(1))
        assert code == 0, (stdout, stderr)
        assert stdout.splitlines()[-1].split()[1] == "succeeded"

        async with httpx.AsyncClient(trust_env=False) as client:
            root = await client.get(walk.paste(dashboard.group(1)))
            assert (root.status_code, root.headers["location"]) == (307, "/dashboard/")
            events = await client.get(
                f"http://{HOST}:{walk.ports['8000']}/v1/events",
                headers={"Authorization": f"Bearer {walk.values['rk']}"},
            )
            assert "task.succeeded" in [e["type"] for e in events.json()["data"]]
    finally:
        await walk.stop()


async def _listening(port: int, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"nothing listens on {port} after {within} s")
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return
