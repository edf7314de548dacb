"""Stable links to stored outputs: ``{public_url}/v1/outputs/{token}``.

The token is the copy's id signed with itsdangerous (salt ``output-link``): no API key is
needed to follow the link, so it can go in an event, an email, a ``<video>`` element; it
never expires (the stored object may: retention, deletion); rotating the relay's
``secret_key`` revokes every link at once. The same copy always gets the same link, so a
task's link is the same in every event, replay and read.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from relay.copies.values import OutputCopy

PATH = "/v1/outputs/"


class OutputLinks:
    def __init__(self, secret_key: str, public_url: str) -> None:
        self._signer = URLSafeSerializer(secret_key, salt="output-link")
        self._base = public_url.rstrip("/") + PATH

    def link(self, copy: OutputCopy) -> str:
        return self._base + self.token(copy.id)

    def token(self, copy_id: str) -> str:
        return str(self._signer.dumps(copy_id))

    def read(self, token: str) -> str | None:
        """The copy id a token of ours names; None for anything else."""
        try:
            value = self._signer.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None
