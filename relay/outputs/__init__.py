"""Output storage: where finished videos are copied so that their links never die.

``open_output_store`` is the door: ``outputs.store`` names a local directory
(``file:///var/lib/relay/outputs``, ``relay.outputs.local``) or an S3-compatible bucket
(``s3://bucket/prefix``, ``relay.outputs.s3``); both keep the contract of
``relay.outputs.interface.OutputStore``, which ``tests/outputs`` runs against each.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from relay.clock import Clock, SystemClock
from relay.config.outputs import LocalLocation, OutputsSettings
from relay.errors import ConfigError
from relay.outputs.interface import ByteRange, Opened, OutputInfo, OutputStore, Stored

__all__ = [
    "ByteRange",
    "Opened",
    "OutputInfo",
    "OutputStore",
    "Stored",
    "open_output_store",
]

STALE_PARTS = timedelta(hours=1)
"""A local ``.part`` file untouched this long belongs to a put that died: a live one is
written to every MiB."""


async def open_output_store(
    settings: OutputsSettings, *, clock: Clock | None = None
) -> OutputStore | None:
    """The store ``settings.store`` names; None when it names none (outputs are not copied).

    A local directory is created if need be (``ConfigError`` when it cannot be), and what
    crashed puts left there is removed. A bucket is not contacted here: the relay
    starts while it is unreachable, and each copy finds out."""
    location = settings.location
    if location is None:
        return None
    if isinstance(location, LocalLocation):
        from relay.outputs.local import LocalStore

        root = Path(location.directory)
        try:
            await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "outputs.store", f"cannot create the directory {root}: {exc.strerror}"
            ) from exc
        store = LocalStore(root)
        await store.sweep((clock or SystemClock()).now(), STALE_PARTS)
        return store
    from relay.outputs.s3 import S3Store

    return S3Store.at(location, endpoint_url=settings.endpoint_url, region=settings.region)
