"""The signed POST of one delivery (DESIGN §4, Standard Webhooks), built as cheaply as httpx
allows: the delivery engine builds one per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from relay.models import DueDelivery
from relay.signing import sign, webhook_key

USER_AGENT = b"seedance-relay/0.1"


class WebhookRequests:
    def __init__(self, extensions: dict[str, Any]) -> None:
        """``extensions``: what the transport reads from each request (its timeouts)."""
        self._extensions = extensions
        self._keys: dict[str, bytes] = {}
        self._urls: dict[str, httpx.URL] = {}

    def build(self, d: DueDelivery, text: str, started: datetime) -> httpx.Request:
        stamp = int(started.timestamp())
        body = text.encode()
        # Raw header pairs and a byte stream: httpx then skips re-encoding and re-measuring
        # what is already bytes (5x cheaper than headers as a dict and content=).
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"user-agent", USER_AGENT),
            (b"webhook-id", d.event_id.encode()),
            (b"webhook-timestamp", b"%d" % stamp),
            (
                b"webhook-signature",
                sign(d.event_id, stamp, body, map(self._key, d.secrets)).encode(),
            ),
        ]
        # A subscription's static headers (a receiver's own token); the API refuses names
        # that would shadow the ones above.
        headers += [(name.encode(), value.encode()) for name, value in d.headers]
        return httpx.Request(
            "POST",
            self._url(d.url),
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=self._extensions,
        )

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 10_000:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def _key(self, secret: str) -> bytes:
        key = self._keys.get(secret)
        if key is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            key = self._keys[secret] = webhook_key(secret)
        return key
