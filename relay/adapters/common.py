"""Dialect-neutral helpers for adapters: tolerant parsing of what providers send, and the
generic classification of HTTP errors (DIALECTS §5.6). Pure: ``now`` is always passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from relay.adapters.base import HttpReply
from relay.backoff import parse_retry_after
from relay.models import TaskStatus
from relay.provider_answers import FaultKind, ProviderFault

ACCOUNT_REFUSAL_CODES: tuple[str, ...] = (
    "SetLimitExceeded",
    "AccountQuotaExceeded",
    "AccountOverdueError",
)
"""429 codes that are the account saying no, not load: retrying the same call cannot help."""

CONFIGURATION_CODES: tuple[str, ...] = ("model_not_found",)
"""5xx codes that mean the relay's configuration is wrong (new-api: no channel for the model)."""

NOT_FOUND_CODES: tuple[str, ...] = ("task_not_exist",)
"""4xx codes that mean "no such task" although the status is not 404 (new-api answers 400)."""

_SIGNED_URL_PREFIXES = ("x-tos-", "x-amz-")
_SIGNED_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MILLISECONDS_THRESHOLD = 1e11
_SNIPPET_LENGTH = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def decode_json(body: bytes) -> Any | None:
    """The decoded JSON value, or ``None`` for an empty, non-UTF-8 or non-JSON body."""
    if not body:
        return None
    try:
        # utf-8-sig: some gateways prepend a BOM, which json.loads would refuse.
        return json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def as_mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def empty_to_none(value: object) -> str | None:
    """The string itself (unstripped, URLs stay verbatim) unless it is blank or not a string."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def as_int(value: object) -> int | None:
    """An integer from an int, an integral float or a numeric string; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def unix_to_datetime(value: object) -> datetime | None:
    """A UTC datetime from unix seconds (int, float or numeric string) or an ISO-8601 string.

    Zero and negative values are None: gateways write 0 for "not yet" (new-api start_time).
    Values too large to be seconds are taken as milliseconds, which some gateways send.
    """
    seconds = _as_float(value)
    if seconds is None:
        if isinstance(value, str) and value.strip():
            return _iso_to_datetime(value.strip())
        return None
    if seconds <= 0:
        return None
    if seconds > _MILLISECONDS_THRESHOLD:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso_to_datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_progress(value: object) -> int | None:
    """Percent as an int in 0..100 from ``45``, ``45.0``, ``"45"`` or ``"45%"``.

    Fractions round down so a task never reads 100 before the provider says it is done.
    """
    if isinstance(value, str):
        text = value.strip()
        value = text[:-1] if text.endswith("%") else text
    number = _as_float(value)
    if number is None:
        return None
    return min(max(math.floor(number), 0), 100)


def signed_url_expiry(
    url: str | None,
    *,
    issued_at: datetime | None,
    default_lifetime: timedelta | None,
) -> datetime | None:
    """When a signed object URL stops working.

    TOS (Volcengine) and S3-style presigned URLs carry ``X-…-Expires`` (seconds) and
    ``X-…-Date`` (``YYYYMMDDTHHMMSSZ``, the signing time); without the date the signing
    time is taken to be ``issued_at``. URLs that say nothing get ``issued_at +
    default_lifetime`` when both are known.
    """
    fallback = None
    if issued_at is not None and default_lifetime is not None:
        fallback = issued_at + default_lifetime
    if not url:
        return fallback
    params = _query_params(url)
    for prefix in _SIGNED_URL_PREFIXES:
        lifetime = as_int(params.get(prefix + "expires"))
        if lifetime is None or lifetime < 0:
            continue
        start = _signing_date(params.get(prefix + "date")) or issued_at
        if start is None:
            return None
        try:
            return start + timedelta(seconds=lifetime)
        except OverflowError:
            return fallback
    return fallback


def _query_params(url: str) -> dict[str, str]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    return {key.lower(): value for key, value in parse_qsl(query, keep_blank_values=True)}


def _signing_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), _SIGNED_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def normalize_status(raw: object, table: Mapping[str, TaskStatus]) -> TaskStatus | None:
    """The normalized status for ``raw`` by a case-insensitive, whitespace-tolerant lookup."""
    if not isinstance(raw, str):
        return None
    key = raw.strip().lower()
    if not key:
        return None
    status = table.get(key)
    if status is not None:
        return status
    return next((v for k, v in table.items() if k.lower() == key), None)


def code_matches(code: str | None, known: Iterable[str]) -> bool:
    """Whether ``code`` is one of ``known`` or a sub-code of one (``Name.Detail``), any case."""
    if not code:
        return False
    lowered = code.strip().lower()
    return any(lowered.startswith(k.lower()) for k in known)


def provider_error_fields(body: object) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error body.

    Understands Ark's ``{"error": {"code", "message", …}}``, ``{"error": "text"}`` and the
    gateway style ``{"code": …, "message"|"msg": …}``. Missing or blank parts are None.
    """
    obj = as_mapping(body)
    if obj is None:
        return None, None
    error = obj.get("error")
    nested = as_mapping(error)
    if nested is not None:
        return _code_text(nested.get("code")), empty_to_none(nested.get("message"))
    if isinstance(error, str) and error.strip():
        return None, error
    message = empty_to_none(obj.get("message")) or empty_to_none(obj.get("msg"))
    return _code_text(obj.get("code")), message


def _code_text(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return empty_to_none(value)


def body_snippet(body: bytes) -> str | None:
    """A short, tag-free, single-line excerpt of a body, for fault messages."""
    text = body.decode("utf-8", errors="replace")
    text = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    if not text:
        return None
    if len(text) > _SNIPPET_LENGTH:
        return text[:_SNIPPET_LENGTH].rstrip() + "…"
    return text


def http_fault(
    reply: HttpReply, now: datetime, *, code: str | None, message: str | None
) -> ProviderFault:
    """Classify a non-2xx reply (DIALECTS §5.6). ``code``/``message`` are the provider's own."""
    status = reply.status_code
    text = f"provider answered HTTP {status}"
    if code:
        text += f" [{code}]"
    detail = message or body_snippet(reply.body)
    if detail:
        text += f": {detail}"

    def fault(kind: FaultKind, retryable: bool) -> ProviderFault:
        return ProviderFault(
            kind=kind,
            retryable=retryable,
            message=text,
            status_code=status,
            provider_code=code,
            retry_after=parse_retry_after(reply.headers, now),
        )

    if status == 404 and code is None:
        # A 404 without the provider's own error body is a wrong base URL or path prefix,
        # or a gateway mid-deploy, not an answer about the task: failing every task with
        # task_not_found on it would be wrong. It backs the provider off instead.
        return fault(FaultKind.UNAVAILABLE, True)
    if status == 404 or (400 <= status < 500 and code_matches(code, NOT_FOUND_CODES)):
        return fault(FaultKind.NOT_FOUND, False)
    if status in (401, 403):
        return fault(FaultKind.UNAUTHORIZED, False)
    if status == 429:
        return fault(FaultKind.RATE_LIMITED, not code_matches(code, ACCOUNT_REFUSAL_CODES))
    if status == 408:
        return fault(FaultKind.TIMEOUT, True)
    if 400 <= status < 500:
        return fault(FaultKind.INVALID_REQUEST, False)
    if status >= 500:
        return fault(FaultKind.UNAVAILABLE, not code_matches(code, CONFIGURATION_CODES))
    # 1xx/3xx: redirects are not followed, so this is an answer we cannot use; it may pass.
    return fault(FaultKind.BAD_RESPONSE, True)


def is_success(reply: HttpReply) -> bool:
    return 200 <= reply.status_code < 300


def not_an_object(reply: HttpReply) -> ProviderFault:
    """A 2xx whose body is not the JSON object every dialect answers with."""
    return bad_response(
        f"provider answered HTTP {reply.status_code} with a body that is not a JSON object",
        status_code=reply.status_code,
    )


def bad_response(
    message: str, *, status_code: int | None = None, provider_code: str | None = None
) -> ProviderFault:
    """A 2xx answer the relay cannot use; retryable because a later read may be whole."""
    return ProviderFault(
        kind=FaultKind.BAD_RESPONSE,
        retryable=True,
        message=message,
        status_code=status_code,
        provider_code=provider_code,
    )
