"""One error tree for the relay. Exceptions are for bugs and boundaries; expected outcomes
(a provider fault, a failed delivery) are values (``relay.models``, ``relay.delivery.outcomes``).

::

    RelayError
    ├── ConfigError          the configuration is invalid; names the key path
    ├── StoreError           the database refused or is unreachable
    │   └── MigrationError   the schema cannot be brought to this version
    ├── DestinationRefused   the network policy forbids a webhook's address (also an
    │                        httpx.ConnectError: a delivery records it as a failed attempt)
    └── ApiError             a request the API answers with a 4xx (code, message, status)
        ├── BadRequest       400: malformed or invalid input
        ├── Unauthorized     401: missing or unknown API key
        ├── NotFound         404: no such object in the caller's account
        ├── Conflict         409: the object exists or is in the wrong state
        ├── PayloadTooLarge  413: the body is over the limit
        ├── TooManyRequests  429: too many failed authentications; retry after a while
        └── ProviderUnavailable  502: the provider could not take a task now (not the
                             caller's fault, and never the relay's own failure)
"""

from __future__ import annotations

import httpx


class RelayError(Exception):
    """The root of every error the relay raises on purpose."""


class ConfigError(RelayError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class StoreError(RelayError):
    pass


class MigrationError(StoreError):
    pass


class DuplicateTask(RelayError):
    """This provider task is already tracked: by the same account (``existing_id`` names its
    task) or by another one (``existing_id`` is None: nothing of theirs is revealed)."""

    def __init__(self, existing_id: str | None) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


class DestinationRefused(RelayError, httpx.ConnectError):
    """Raised by the delivery transport instead of connecting (``relay.net.guard``)."""


class ApiError(RelayError):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(ApiError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ApiError):
    status_code = 502
    code = "provider_unavailable"
