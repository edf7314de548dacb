"""Outputs in an S3-compatible bucket (``s3://bucket/prefix``): AWS S3, Cloudflare R2, MinIO,
Backblaze B2, GCS in S3 mode.

Through ``obstore`` (Python bindings of the Rust ``object_store`` crate): async streaming put
and get, SigV4 signing and presigned URLs, credentials from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, or the instance's
role), retries with back-off, all in one typed package with no Python dependencies.

A put is a multipart upload: S3 shows the object only once it is completed, after the last
part, and obstore aborts the upload when the source raises, so a failed copy leaves neither
an object nor hidden parts. A cancelled put is turned into a source that raises, so that
abort still runs (cancelling obstore's own future would drop the upload without aborting).
A process killed mid-upload leaves an incomplete upload that only the bucket's lifecycle
rule (AbortIncompleteMultipartUpload) removes: no object is visible either way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store as ObstoreS3

from relay.config.outputs import S3Location
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

if TYPE_CHECKING:
    from obstore import GetOptions, GetResult
    from obstore.store import S3Config

MIN_PART = 5 << 20
"""S3's smallest part (but the last)."""
MAX_PARTS = 10_000
UPLOADS_AT_ONCE = 4
"""Parts in flight per put: with the part size, what one copy may hold in memory."""

_STORAGE_ERRORS = (BaseError, OSError)  # obstore's not-found errors are FileNotFoundError


def _unavailable() -> OutputStorageUnavailable:
    return OutputStorageUnavailable("the output storage failed")


class _Source:
    """The body as obstore pulls it: blocks counted and hashed on the way, the source's own
    error kept (it is the put's error), and a ``stop`` that makes the next pull raise."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self.sha = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None
        self._first: bytes | None = None
        self._pulling: asyncio.Future[bytes] | None = None
        self._stopped = False

    async def prime(self) -> None:
        """Read the first block before any upload starts: an empty body (or a source that
        fails at once) never creates one."""
        self._first = await self._body.__anext__()

    def stop(self) -> None:
        self._stopped = True
        if self._pulling is not None:
            self._pulling.cancel()

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            block, self._first = self._first, None
        else:
            if self._stopped:
                raise asyncio.CancelledError
            self._pulling = asyncio.ensure_future(self._body.__anext__())
            try:
                block = await self._pulling
            except StopAsyncIteration:
                raise
            except BaseException as exc:
                self.error = exc
                raise
            finally:
                self._pulling = None
        self.size += len(block)
        await asyncio.to_thread(self.sha.update, block)
        return block


class S3Store:
    def __init__(self, store: ObstoreS3) -> None:
        self._store = store

    @classmethod
    def at(cls, location: S3Location, *, endpoint_url: str | None, region: str | None) -> S3Store:
        config: S3Config = {}
        if endpoint_url is not None:
            config["endpoint"] = endpoint_url
        if region is not None:
            config["region"] = region
        return cls(
            ObstoreS3(
                location.bucket,
                prefix=location.prefix or None,
                config=config,
                # An http:// endpoint is the operator's choice (a MinIO on the same host).
                client_options={
                    "allow_http": endpoint_url is not None
                    and urlsplit(endpoint_url).scheme == "http",
                    "connect_timeout": timedelta(seconds=10),
                },
            )
        )

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str, max_bytes: int
    ) -> Stored:
        check_key(key)
        source = _Source(blocks(chunks, max_bytes))
        await source.prime()
        # Parts big enough that max_bytes fits in S3's 10,000.
        part_size = max(MIN_PART, -(-max_bytes // (MAX_PARTS - 1)))
        upload = asyncio.ensure_future(
            obstore.put_async(
                self._store,
                key,
                source,
                attributes={"Content-Type": content_type},
                use_multipart=True,
                chunk_size=part_size,
                max_concurrency=UPLOADS_AT_ONCE,
            )
        )
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            source.stop()
            with suppress(BaseException):
                await upload  # obstore aborts the upload when the source raises
            raise
        except BaseException as exc:
            if source.error is not None:
                raise source.error from None
            if isinstance(exc, _STORAGE_ERRORS):
                raise _unavailable() from exc
            raise
        return Stored(key, source.size, source.sha.hexdigest(), content_type)

    async def _get(self, key: str, options: GetOptions) -> GetResult:
        try:
            return await obstore.get_async(self._store, check_key(key), options=options)
        except FileNotFoundError:
            raise UnknownOutput(key) from None
        except _STORAGE_ERRORS as exc:
            raise _unavailable() from exc

    async def open(self, key: str, range: ByteRange | None = None) -> Opened:
        options: GetOptions = {}
        if range is not None:
            # Resolved against the size first: servers differ on ranges past the end.
            info = await self.stat(key)
            if info is None:
                raise UnknownOutput(key)
            start, stop = range.resolve(info.size)
            options["range"] = (start, stop)
        result = await self._get(key, options)
        start, stop = result.range
        info = OutputInfo(
            key, result.meta["size"], result.attributes.get("Content-Type", DEFAULT_CONTENT_TYPE)
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in result.stream(min_chunk_size=BLOCK):
                    yield bytes(chunk)
            except _STORAGE_ERRORS as exc:
                raise _unavailable() from exc

        return Opened(info, start, stop, chunks())

    async def stat(self, key: str) -> OutputInfo | None:
        try:
            result = await self._get(key, {"head": True})
        except UnknownOutput:
            return None
        content_type = result.attributes.get("Content-Type", DEFAULT_CONTENT_TYPE)
        return OutputInfo(key, result.meta["size"], content_type)

    async def link(self, key: str, expires_in: int) -> str | None:
        try:
            return await obstore.sign_async(
                self._store, "GET", check_key(key), timedelta(seconds=expires_in)
            )
        except _STORAGE_ERRORS as exc:
            raise _unavailable() from exc

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, check_key(key))
        except FileNotFoundError:
            return
        except _STORAGE_ERRORS as exc:
            raise _unavailable() from exc
