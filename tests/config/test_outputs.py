"""The ``outputs`` section: off by default, one URL to turn it on, and a clear error naming
the key for anything else."""

from __future__ import annotations

from typing import Any

import pytest

from relay.config.outputs import LocalLocation, S3Location, store_location
from relay.config.settings import Settings
from relay.errors import ConfigError


def outputs(section: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    return Settings.from_mapping({"outputs": section}, env={} if env is None else env)


def problem(section: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        outputs(section)
    return str(info.value)


def test_off_by_default() -> None:
    settings = Settings.from_mapping({}, env={})
    assert settings.outputs.store is None
    assert settings.outputs.location is None
    assert settings.outputs.max_bytes == 2 * 1024**3
    assert settings.outputs.retention_days is None
    assert settings.outputs.link_lifetime == 3600


def test_an_unset_variable_leaves_it_off() -> None:
    settings = outputs({"store": "${RELAY_OUTPUTS_STORE:-}", "region": "${REGION:-}"})
    assert (settings.outputs.store, settings.outputs.region) == (None, None)


def test_a_local_directory() -> None:
    settings = outputs({"store": "file:///var/lib/relay/outputs/", "retention_days": 30})
    assert settings.outputs.location == LocalLocation("/var/lib/relay/outputs")
    assert settings.outputs.retention_days == 30


def test_a_bucket_with_its_endpoint_and_region_from_the_environment() -> None:
    settings = outputs(
        {
            "store": "${STORE}",
            "endpoint_url": "${ENDPOINT}",
            "region": "auto",
            "max_bytes": "1000000",
            "link_lifetime": 604800,
        },
        env={"STORE": "s3://videos/relay/prod", "ENDPOINT": "https://acct.r2.example.com/"},
    )
    assert settings.outputs.location == S3Location("videos", "relay/prod")
    assert settings.outputs.endpoint_url == "https://acct.r2.example.com"
    assert (settings.outputs.region, settings.outputs.max_bytes) == ("auto", 1_000_000)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://videos", S3Location("videos", "")),
        ("s3://videos/", S3Location("videos", "")),
        ("s3://my.videos-1/a/b/", S3Location("my.videos-1", "a/b")),
        ("file://localhost/srv/out", LocalLocation("/srv/out")),
        ("file:///srv/with%20space", LocalLocation("/srv/with space")),
    ],
)
def test_store_urls(url: str, expected: LocalLocation | S3Location) -> None:
    assert store_location(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://bucket.s3.amazonaws.com/x", "must be file:///absolute/directory or s3://"),
        ("/var/lib/relay/outputs", "got scheme ''"),
        ("gs://bucket/x", "got scheme 'gs'"),
        ("file://relative/dir", "no host"),
        ("file:///", "write file:///absolute/directory"),
        ("file:///srv/out?x=1", "query string"),
        ("s3://Bad_Bucket/x", "is not a bucket name"),
        ("s3://ab/x", "is not a bucket name"),
        ("s3://key:secret@videos/x", "credentials come from the environment"),
        ("s3://videos/a//b", "empty, '.' or '..' segment"),
        ("s3://videos/a/../b", "empty, '.' or '..' segment"),
    ],
)
def test_a_bad_store_url_names_the_key(url: str, message: str) -> None:
    text = problem({"store": url})
    assert text.startswith("outputs.store: ")
    assert message in text


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ({"store": "s3://videos", "endpoint_url": "ftp://x"}, "outputs.endpoint_url", "http"),
        ({"store": "s3://videos", "endpoint_url": "https://x/?a=1"}, "outputs.endpoint_url", ""),
        ({"store": "file:///srv", "endpoint_url": "https://x"}, "outputs.endpoint_url", "s3://"),
        ({"store": "file:///srv", "region": "eu-west-1"}, "outputs.region", "s3://"),
        ({"endpoint_url": "https://x"}, "outputs.endpoint_url", "applies only to an s3://"),
        ({"max_bytes": 0}, "outputs.max_bytes", "greater than or equal to 1"),
        ({"retention_days": 0}, "outputs.retention_days", "greater than 0"),
        ({"link_lifetime": 604801}, "outputs.link_lifetime", "less than or equal to 604800"),
        ({"link_lifetime": 0}, "outputs.link_lifetime", ""),
        ({"bucket": "videos"}, "outputs.bucket", "unknown key"),
    ],
)
def test_bad_values_name_their_key(section: dict[str, Any], path: str, message: str) -> None:
    text = problem(section)
    assert text.startswith(f"{path}: ")
    assert message in text
