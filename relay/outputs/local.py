"""Outputs in a local directory (``file:///var/lib/relay/outputs``), the embedded choice.

A put writes ``.<name>.<random>.part`` beside the object, fsyncs it, then renames it over
the key (and fsyncs the directory): a crash at any moment leaves either the old object or
the whole new one, plus perhaps a ``.part`` file that ``sweep`` removes later. The content
type lives in ``.<name>.meta`` (JSON), renamed into place just before the body,
so a visible body always has its description. Keys never start a segment with ``.``, so no
key names these files.

Blocking file calls run in threads (``asyncio.to_thread``), one block (a MiB) at a time: the
event loop never waits on the disk and a body is never held whole in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from relay.errors import OutputStorageUnavailable, UnknownOutput
from relay.outputs.interface import (
    BLOCK,
    DEFAULT_CONTENT_TYPE,
    ByteRange,
    Opened,
    OutputInfo,
    Stored,
    blocks,
    check_key,
)

T = TypeVar("T")


async def _disk(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread; a failing disk is ``OutputStorageUnavailable``."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as exc:
        raise OutputStorageUnavailable("the output storage failed") from exc


def _meta_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.meta")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        with suppress(FileExistsError):
            d.mkdir()
            _fsync_dir(d.parent)  # the new directory's entry survives a crash too


def _create(path: Path) -> tuple[Path, IO[bytes]]:
    _make_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    return temp, open(temp, "xb")  # closed by _commit or _discard


def _append(file: IO[bytes], sha: Any, block: bytes) -> None:
    sha.update(block)  # hashlib lets go of the GIL for a block this size
    file.write(block)


def _discard(file: IO[bytes], *temps: Path) -> None:
    with suppress(OSError):
        file.close()
    for temp in temps:
        with suppress(OSError):
            temp.unlink(missing_ok=True)


def _commit(file: IO[bytes], temp: Path, path: Path, stored: Stored) -> None:
    meta_temp = temp.with_name(temp.name.removesuffix(".part") + ".meta.part")
    try:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        with open(meta_temp, "xb") as meta:
            meta.write(json.dumps({"content_type": stored.content_type}).encode())
            meta.flush()
            os.fsync(meta.fileno())
        os.replace(meta_temp, _meta_path(path))
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except BaseException:
        _discard(file, temp, meta_temp)
        raise


def _describe(key: str, path: Path, size: int) -> OutputInfo:
    try:
        content_type = str(json.loads(_meta_path(path).read_bytes())["content_type"])
    except (OSError, ValueError, KeyError, TypeError):
        content_type = DEFAULT_CONTENT_TYPE  # not written by the relay
    return OutputInfo(key, size, content_type)


def _open_for_reading(key: str, path: Path) -> tuple[IO[bytes], OutputInfo] | None:
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed by Opened)
    except FileNotFoundError:
        return None
    try:
        return file, _describe(key, path, os.fstat(file.fileno()).st_size)
    except BaseException:
        file.close()
        raise


def _read(file: IO[bytes], offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


def _stat(key: str, path: Path) -> OutputInfo | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    return _describe(key, path, size)


def _delete(path: Path) -> None:
    path.unlink(missing_ok=True)
    _meta_path(path).unlink(missing_ok=True)
    with suppress(FileNotFoundError):
        _fsync_dir(path.parent)


def _sweep(root: Path, cutoff: float) -> int:
    removed = 0
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            leftover = (
                name.startswith(".")
                and (
                    name.endswith(".part")
                    # a description whose body never arrived (a crash between the renames)
                    or (name.endswith(".meta") and not path.with_name(name[1:-5]).exists())
                )
            )
            with suppress(FileNotFoundError):
                if leftover and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    return removed


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str, max_bytes: int
    ) -> Stored:
        path = self._path(key)
        temp, file = await _disk(_create, path)
        sha, size, committing = hashlib.sha256(), 0, False
        try:
            async for block in blocks(chunks, max_bytes):
                size += len(block)
                await _disk(_append, file, sha, block)
            stored = Stored(key, size, sha.hexdigest(), content_type)
            committing = True  # from here _commit cleans up after itself
            await _disk(_commit, file, temp, path, stored)
            return stored
        except BaseException:
            if not committing:
                # Also when cancelled: a write still running in its thread finishes first
                # (the file's lock), then the file goes.
                _discard(file, temp)
            raise

    async def open(self, key: str, range: ByteRange | None = None) -> Opened:
        opened = await _disk(_open_for_reading, key, self._path(key))
        if opened is None:
            raise UnknownOutput(key)
        file, info = opened
        try:
            start, stop = (range or ByteRange(0)).resolve(info.size)
        except BaseException:
            file.close()
            raise

        async def chunks() -> AsyncIterator[bytes]:
            try:
                offset = start
                while offset < stop:
                    data = await _disk(_read, file, offset, min(BLOCK, stop - offset))
                    if not data:  # shortened under us; the reader sees a short body
                        return
                    offset += len(data)
                    yield data
            finally:
                file.close()

        async def release() -> None:
            file.close()

        return Opened(info, start, stop, chunks(), release)

    async def stat(self, key: str) -> OutputInfo | None:
        return await _disk(_stat, key, self._path(key))

    async def link(self, key: str, expires_in: int) -> str | None:
        check_key(key)
        return None

    async def delete(self, key: str) -> None:
        await _disk(_delete, self._path(key))

    async def sweep(self, now: datetime, older_than: timedelta) -> int:
        """Remove what crashed puts left (``.part`` files, and descriptions without a body)
        untouched for ``older_than``: a put still writing touches its file every block."""
        return await _disk(_sweep, self.root, (now - older_than).timestamp())
