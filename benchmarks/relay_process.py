"""A relay as a real process, for the benchmarks that measure one: a free port, an account
made through the CLI, ``relay serve`` started and stopped, its CPU time and a py-spy profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
_ACCOUNT_LINE = re.compile(r"^account:\s+(\S+)", re.MULTILINE)
_API_KEY_LINE = re.compile(r"^api key:\s+(\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _env(tree: Path | None) -> dict[str, str]:
    """The environment of ``python -m relay`` run from the checkout ``tree`` (as its working
    directory too: ``-m`` puts that first on sys.path); None: this one."""
    pythonpath = {} if tree is None else {"PYTHONPATH": str(tree)}
    return {**os.environ, **pythonpath, "PYTHONUNBUFFERED": "1"}


def create_account(config: Path, tree: Path | None = None) -> tuple[str, str]:
    """``relay accounts create`` (from the checkout ``tree``): (account id, API key)."""
    done = subprocess.run(
        [sys.executable, "-m", "relay", "accounts", "create", "bench", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(tree),
        cwd=tree,
    )
    account, key = _ACCOUNT_LINE.search(done.stdout), _API_KEY_LINE.search(done.stdout)
    if done.returncode or not account or not key:
        raise RuntimeError(f"relay accounts create failed:\n{done.stdout}\n{done.stderr}")
    return account.group(1), key.group(1)


def start_relay(config: Path, log: Path, tree: Path | None = None) -> subprocess.Popen[bytes]:
    """``relay serve`` (from the checkout ``tree``) with its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relay", "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=_env(tree),
            cwd=tree,
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, within: float = 60.0
) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the relay exited with {proc.returncode}:\n{tail(log)}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the relay did not become healthy within {within:g} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profiler(
    pid: int, out: str | Path, *, rate: int = 200, threads: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy (non-blocking) on ``pid`` into ``out``: .svg a flame graph, .json speedscope."""
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(out).suffix, "raw")
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--nonblocking",
            *(["--threads"] if threads else []),
            "--rate",
            str(rate),
            "--format",
            fmt,
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Signal ``proc`` and wait for it; killed if it outlasts ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
