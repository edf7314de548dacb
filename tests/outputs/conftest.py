"""The output store contract's fixtures: every test runs once per kind of store.

``local`` is a fresh directory; ``s3`` a fresh bucket on an S3-compatible server this
process starts on loopback (moto's ``ThreadedMotoServer``, once per session, on a free
port), reached the way an operator reaches one: ``s3://`` URL, ``endpoint_url``, and
credentials from the environment. Both come from ``open_output_store``.

``Harness.leftovers`` looks under the store: every file in the directory (temporary and
metadata files too), every object and every unfinished multipart upload in the bucket. A
failed put must add none.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer

from relay.config.outputs import OutputsSettings
from relay.outputs import OutputStore, open_output_store

REGION = "us-east-1"


@dataclass
class Harness:
    kind: str
    store: OutputStore
    leftovers: Callable[[], list[str]]


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    client: Any  # boto3's S3 client: a look behind obstore, and bucket creation


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="relay-test",
            aws_secret_access_key="relay-test-secret",
        )
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the way an operator gives them: in the environment."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "relay-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "relay-test-secret")


@pytest.fixture
def bucket(s3_server: S3Server, s3_env: None) -> str:
    name = f"relay-{uuid.uuid4().hex[:16]}"
    s3_server.client.create_bucket(Bucket=name)
    return name


def s3_leftovers(server: S3Server, bucket: str) -> Callable[[], list[str]]:
    def leftovers() -> list[str]:
        objects = server.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        uploads = server.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [o["Key"] for o in objects] + [f"upload of {u['Key']}" for u in uploads]

    return leftovers


def local_leftovers(root: Path) -> Callable[[], list[str]]:
    def leftovers() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return leftovers


@pytest_asyncio.fixture(params=["local", "s3"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "local":
        root = tmp_path / "outputs"
        store = await open_output_store(OutputsSettings(store=f"file://{root}"))
        assert store is not None
        yield Harness("local", store, local_leftovers(root))
        return
    server: S3Server = request.getfixturevalue("s3_server")
    name: str = request.getfixturevalue("bucket")
    settings = OutputsSettings(
        store=f"s3://{name}/relay/outputs", endpoint_url=server.endpoint, region=REGION
    )
    store = await open_output_store(settings)
    assert store is not None
    yield Harness("s3", store, s3_leftovers(server, name))


@pytest.fixture
def store(harness: Harness) -> OutputStore:
    return harness.store
