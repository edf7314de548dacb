"""The S3 store beyond the shared contract: presigned links anyone can fetch, the prefix, and
a bucket that is missing or a server that is down."""

from __future__ import annotations

import os

import httpx
import pytest

from relay.config.outputs import OutputsSettings
from relay.errors import OutputStorageUnavailable
from relay.outputs import OutputStore, open_output_store
from relay.outputs.s3 import S3Store
from tests.outputs.conftest import REGION, S3Server
from tests.outputs.test_contract import KEY, MB, chunked


async def s3(endpoint: str, bucket: str) -> OutputStore:
    settings = OutputsSettings(
        store=f"s3://{bucket}/relay/outputs", endpoint_url=endpoint, region=REGION
    )
    store = await open_output_store(settings)
    assert isinstance(store, S3Store)
    return store


async def test_a_presigned_link_serves_the_object_without_credentials(
    s3_server: S3Server, bucket: str
) -> None:
    store = await s3(s3_server.endpoint, bucket)
    data = os.urandom(6 * MB)
    await store.put(KEY, chunked(data), content_type="video/mp4", max_bytes=64 * MB)
    link = await store.link(KEY, 600)
    assert link is not None
    assert link.startswith(f"{s3_server.endpoint}/{bucket}/relay/outputs/{KEY}?")
    assert "X-Amz-Signature=" in link
    assert "X-Amz-Expires=600" in link
    async with httpx.AsyncClient() as client:
        answer = await client.get(link)
        ranged = await client.get(link, headers={"Range": "bytes=10-19"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.content == data
    assert (ranged.status_code, ranged.content) == (206, data[10:20])


async def test_objects_live_under_the_prefix(s3_server: S3Server, bucket: str) -> None:
    store = await s3(s3_server.endpoint, bucket)
    await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    listed = s3_server.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"relay/outputs/{KEY}"]
    head = s3_server.client.head_object(Bucket=bucket, Key=f"relay/outputs/{KEY}")
    assert head["ContentType"] == "video/mp4"


async def test_a_missing_bucket_is_unavailable_storage(s3_server: S3Server, s3_env: None) -> None:
    store = await s3(s3_server.endpoint, "no-such-bucket")
    with pytest.raises(OutputStorageUnavailable) as info:
        await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    assert "NoSuchBucket" in str(info.value.__cause__)
    with pytest.raises(OutputStorageUnavailable):
        await store.put(KEY, chunked(os.urandom(7 * MB)), content_type="x/y", max_bytes=64 * MB)


@pytest.mark.slow  # obstore's retries with back-off: about 3 s
async def test_a_server_that_is_down_is_unavailable_storage(s3_env: None) -> None:
    store = await s3("http://127.0.0.1:9", "outputs")  # the discard port: nothing listens
    with pytest.raises(OutputStorageUnavailable, match="the output storage failed"):
        await store.put(KEY, chunked(b"video"), content_type="video/mp4", max_bytes=MB)
    with pytest.raises(OutputStorageUnavailable):
        await store.stat(KEY)


async def test_the_region_and_endpoint_come_from_the_settings(
    s3_server: S3Server, bucket: str
) -> None:
    store = await s3(s3_server.endpoint, bucket)
    link = await store.link(KEY, 60)
    assert link is not None
    assert f"%2F{REGION}%2Fs3%2Faws4_request" in link
    assert "X-Amz-Credential=relay-test%2F" in link  # the key id from the environment
