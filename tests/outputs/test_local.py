"""The local directory store beyond the shared contract: where its files go while a put runs,
what a crashed put leaves and who removes it, a failing disk, and memory that stays flat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay.config.outputs import OutputsSettings
from relay.errors import ConfigError, OutputStorageUnavailable
from relay.outputs import STALE_PARTS, OutputStore, open_output_store
from relay.outputs.local import LocalStore
from tests.clock import FakeClock
from tests.outputs.test_contract import KEY, MB, chunked

ROOT = Path(__file__).resolve().parents[2]


def everything(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


async def local(root: Path) -> OutputStore:
    store = await open_output_store(
        OutputsSettings(store=f"file://{root}"), clock=FakeClock(datetime.now(UTC))
    )
    assert isinstance(store, LocalStore)
    return store


async def test_the_body_is_written_beside_its_key_and_renamed_into_place(tmp_path: Path) -> None:
    store = await local(tmp_path)
    during: list[list[str]] = []

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in chunked(os.urandom(3 * MB)):
            yield chunk
        during.append(sorted(p.name for p in (tmp_path / "tasks/tsk_01").iterdir()))

    await store.put(KEY, watched(), content_type="video/mp4", max_bytes=64 * MB)
    [names] = during
    assert len(names) == 1
    assert names[0].startswith(".video.mp4.")
    assert names[0].endswith(".part")
    assert sorted(p.name for p in (tmp_path / "tasks/tsk_01").iterdir()) == [
        ".video.mp4.meta",
        "video.mp4",
    ]
    meta = json.loads((tmp_path / "tasks/tsk_01/.video.mp4.meta").read_text())
    assert meta == {"content_type": "video/mp4"}


async def test_link_is_none_the_relay_serves_local_files(tmp_path: Path) -> None:
    store = await local(tmp_path)
    await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    assert await store.link(KEY, 3600) is None


async def test_an_object_without_its_description_reads_as_octet_stream(tmp_path: Path) -> None:
    store = await local(tmp_path)
    await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    (tmp_path / "tasks/tsk_01/.video.mp4.meta").unlink()
    info = await store.stat(KEY)
    assert info is not None
    assert (info.size, info.content_type) == (5, "application/octet-stream")


async def test_opening_the_store_removes_what_crashed_puts_left(tmp_path: Path) -> None:
    folder = tmp_path / "tasks/tsk_01"
    folder.mkdir(parents=True)
    files = {
        name: folder / name
        for name in (
            ".video.mp4.0a1b2c3d4e5f6a7b.part",  # a body a killed put was writing
            ".video.mp4.0a1b2c3d4e5f6a7b.meta.part",
            ".frame.png.meta",  # a description whose body never arrived
            ".clip.mp4.9f8e7d6c5b4a3f2e.part",  # a put writing right now
            "old.mp4",  # stored objects, however old, stay
            ".old.mp4.meta",
        )
    }
    for path in files.values():
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for name, path in files.items():
        if not name.startswith(".clip"):
            os.utime(path, (two_hours_ago, two_hours_ago))
    await local(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".clip.mp4.9f8e7d6c5b4a3f2e.part",
        ".old.mp4.meta",
        "old.mp4",
    ]


async def test_the_directory_is_created(tmp_path: Path) -> None:
    store = await local(tmp_path / "a" / "b")
    await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    assert (tmp_path / "a/b" / KEY).read_bytes() == b"video"


async def test_a_directory_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"outputs\.store: cannot create the directory"):
        await open_output_store(OutputsSettings(store=f"file://{tmp_path}/a-file/outputs"))


async def test_a_failing_disk_is_unavailable_storage_and_leaves_nothing(tmp_path: Path) -> None:
    store = await local(tmp_path)
    await store.put("tasks/tsk_01", chunked(b"a file"), content_type="x/y", max_bytes=MB)
    before = everything(tmp_path)
    # Its directory is a file: the put's first write fails, as on a disk gone bad.
    with pytest.raises(OutputStorageUnavailable) as info:
        await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    assert isinstance(info.value.__cause__, OSError)
    assert everything(tmp_path) == before


MEMORY_PROBE = """
import asyncio, hashlib, resource, sys
from pathlib import Path
from relay.outputs.local import LocalStore

SIZE, PIECE = 200 << 20, bytes(range(256)) * 256  # 64 KiB

async def body(size):
    for _ in range(size // len(PIECE)):
        yield PIECE

async def main():
    store = LocalStore(Path(sys.argv[1]))
    # A small body first, so threads, buffers and imports are counted before the base.
    await store.put("warm-up", body(4 << 20), content_type="video/mp4", max_bytes=SIZE)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = await store.put("big", body(SIZE), content_type="video/mp4", max_bytes=SIZE)
    sha = hashlib.sha256()
    async with await store.open("big") as opened:
        async for chunk in opened.chunks:
            sha.update(chunk)
    assert stored.size == SIZE and stored.sha256 == sha.hexdigest()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)

asyncio.run(main())
"""


@pytest.mark.slow
def test_memory_stays_flat_for_a_large_body(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    grown_kib = int(done.stdout)
    assert grown_kib < 20 * 1024, f"RSS grew by {grown_kib} KiB for a 200 MB body"


KILLED_MID_PUT = """
import asyncio, sys
from pathlib import Path
from relay.outputs.local import LocalStore

async def body():
    for _ in range(64):
        yield b"v" * (1 << 20)
    print("sent", flush=True)
    await asyncio.sleep(60)  # killed here, the body on disk but the put unfinished
    yield b"never"

asyncio.run(LocalStore(Path(sys.argv[1])).put(
    "tasks/tsk_01/video.mp4", body(), content_type="video/mp4", max_bytes=1 << 30))
"""


def kill_mid_put(root: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_PUT, str(root)], stdout=subprocess.PIPE, cwd=ROOT
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == b"sent\n"
        finally:
            writer.kill()  # SIGKILL: no finally block, no cleanup of its own


async def test_a_put_killed_mid_way_leaves_no_object_and_its_leftover_is_swept(
    tmp_path: Path,
) -> None:
    kill_mid_put(tmp_path)
    [leftover] = everything(tmp_path / "tasks/tsk_01")
    assert leftover.name.startswith(".video.mp4.")
    assert leftover.name.endswith(".part")
    assert leftover.stat().st_size == 64 << 20  # written, never renamed

    store = await open_output_store(
        OutputsSettings(store=f"file://{tmp_path}"),
        clock=FakeClock(datetime.now(UTC) + STALE_PARTS + timedelta(seconds=1)),
    )
    assert store is not None
    assert await store.stat(KEY) is None
    assert everything(tmp_path / "tasks/tsk_01") == []
