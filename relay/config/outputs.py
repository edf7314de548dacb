"""The ``outputs`` settings section: where finished videos are copied to (``relay.outputs``),
and the parsing of its store URL, shared with the factory that opens the store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from relay.config.sections import ConfigModel

GIB = 1 << 30
MAX_LINK_LIFETIME = 7 * 86_400
"""SigV4 presigned URLs live at most 7 days."""

# S3's bucket naming rules (lowercase, digits, dots, hyphens; 3 to 63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class LocalLocation:
    directory: str
    """An absolute path."""


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str
    """Without leading or trailing slashes; "" for the bucket's root."""


def store_location(url: str) -> LocalLocation | S3Location:
    """Where ``file:///abs/dir`` or ``s3://bucket/prefix`` points; ValueError says what is
    wrong with any other URL."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"write file:///absolute/directory (no host), got {url!r}")
        path = unquote(parts.path)
        if not path.startswith("/") or path == "/":
            raise ValueError(f"write file:///absolute/directory, got {url!r}")
        if "\0" in path:
            raise ValueError("the directory must not contain a NUL character")
        return LocalLocation(path.rstrip("/"))
    if parts.scheme == "s3":
        if parts.username or parts.password or parts.port:
            raise ValueError(
                "write s3://bucket/prefix; credentials come from the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the server from endpoint_url"
            )
        bucket = parts.netloc
        if not _BUCKET.match(bucket):
            raise ValueError(
                f"{bucket!r} is not a bucket name (3 to 63 lowercase letters, digits, "
                "dots and hyphens)"
            )
        prefix = parts.path.strip("/")
        if "//" in prefix or any(seg in (".", "..") for seg in prefix.split("/")):
            raise ValueError(f"the prefix {prefix!r} has an empty, '.' or '..' segment")
        return S3Location(bucket, prefix)
    raise ValueError(
        f"must be file:///absolute/directory or s3://bucket/prefix, got scheme {parts.scheme!r}"
    )


class OutputsSettings(ConfigModel):
    store: str | None = None
    """Where finished videos are copied: ``file:///var/lib/relay/outputs`` or
    ``s3://bucket/prefix``; None: not copied (receivers get the provider's expiring link)."""
    endpoint_url: str | None = None
    """An S3-compatible server (R2, MinIO, ...); None: AWS (or ``AWS_ENDPOINT_URL``).
    An ``http://`` endpoint is allowed: the operator wrote it."""
    region: str | None = Field(default=None, min_length=1)
    """None: ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), else us-east-1."""
    max_bytes: int = Field(default=2 * GIB, ge=1)
    """A larger output is a failed copy, never a stored object."""
    retention_days: float | None = Field(default=None, gt=0)
    """Stored objects older than this are deleted; None: kept."""
    link_lifetime: int = Field(default=3600, ge=1, le=MAX_LINK_LIFETIME)
    """Seconds a presigned bucket URL lives (the relay signs a fresh one at each request)."""
    wait_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How long a task's ``task.succeeded`` waits for its files to be stored; after that it
    goes out with the provider's link and a ``relay_notice``, and ``task.output_stored``
    follows. 0: it goes out at once."""
    max_attempts: int = Field(default=8, ge=1, le=100)
    """Tries per file."""
    retry_delays: list[float] = Field(
        default=[10, 60, 300, 1800, 3600, 10800, 21600], min_length=1, max_length=100
    )
    """Seconds before the next try after the first, second, ... failed one; the last
    repeats."""
    max_concurrent: int = Field(default=4, ge=1, le=256)
    """Copies under way at once in one process."""
    copy_timeout: float = Field(default=3600.0, gt=0)
    """Seconds one try may take in all."""
    stall_timeout: float = Field(default=60.0, gt=0)
    """Seconds without a byte from the provider before a try is given up."""

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if any(not 0 < d <= 7 * 86_400 for d in value):
            raise ValueError("each delay must be more than 0 and at most 604800 seconds")
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None:
            store_location(value)
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a plain URL: no query, fragment or credentials")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _s3_keys_need_s3(self) -> OutputsSettings:
        for key in ("endpoint_url", "region"):
            if getattr(self, key) is not None and not (self.store or "").startswith("s3://"):
                raise PydanticCustomError(
                    "relay_subpath",
                    "{message}",
                    {"subpath": key, "message": "applies only to an s3:// store"},
                )
        return self

    @property
    def location(self) -> LocalLocation | S3Location | None:
        return None if self.store is None else store_location(self.store)
