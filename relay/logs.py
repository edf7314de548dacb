"""Logging: one JSON object per line for machines, a readable line for a terminal.

A record's ids come through ``extra=``: ``log.info("...", extra=ids(task_id=...))``; the JSON
line carries them as fields (``task_id``, ``event_id``, ``delivery_id``, ``provider``...),
the human line appends them as ``key=value``.

Secrets are never logged on purpose: log calls name ids and URL origins, not keys, secrets or
full URLs. ``redact`` is the safety net under that rule, applied to every formatted message
and traceback: webhook secrets (``whsec_…``), this relay's API keys (``rk_…``),
``Authorization``/``Bearer`` values, URL user info and query strings (also in an access log's
request line), and the token of an inbound push URL are masked.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import httpx

from relay.signing import API_KEY_PREFIX, SECRET_PREFIX

LogFormat = Literal["auto", "json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "text")

ID_FIELDS = (
    "task_id",
    "event_id",
    "delivery_id",
    "subscription_id",
    "account_id",
    "provider",
    "provider_task_id",
    "status",
    "outcome",
)
"""The ``extra=`` keys a log line carries as fields, in this order."""

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(re.escape(SECRET_PREFIX) + r"[A-Za-z0-9+/=_-]+"), SECRET_PREFIX + MASK),
    (re.compile(r"\b" + re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_-]{8,}"), API_KEY_PREFIX + MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 " + MASK),
    # Also inside longer names: access_token, client_secret, refresh_token, db_password.
    (
        re.compile(
            r"(?i)(?<![a-z0-9])((?:[a-z0-9]+[_-])*(?:authorization|x-api-key|"
            r"api[_-]?key|secret|token|password))"
            r"(\"?\s*[:=]\s*\"?)(?!\*\*\*|(?:bearer|basic)\s)[^\s\"',;&}]+"
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@\"']+@"), r"\1" + MASK + "@"),
    (re.compile(r"(?i)\b(https?://[^\s?#\"'\\]*)\?[^\s#\"'\\]*"), r"\1?" + MASK),
    (re.compile(r"(/v1/inbound/[^/\s\"'?]+/)[^\s\"'?/]+"), r"\1" + MASK),
    # An access log's request line: its query string may carry a provider's key (the
    # sandbox is served by this very process) or anything a caller put there.
    (
        re.compile(r"\b((?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /[^\s?\"]*)\?[^\s\"\\]*"),
        r"\1?" + MASK,
    ),
)


_TRIGGERS = tuple(
    t.lower()
    for t in (
        SECRET_PREFIX,
        API_KEY_PREFIX,
        "bearer",
        "basic",
        "authorization",
        "key",  # api_key, apikey, x-api-key
        "secret",
        "token",
        "password",
        "://",
        "/v1/inbound/",
        "?",
    )
)
"""Something every one of ``_PATTERNS`` needs to match (a prefix, a word, a scheme, a
query), lower-cased: an ASCII text without any is returned as it is, which most log lines
and every id are. (Not ASCII: always the patterns, whose case-blind matching of other
scripts a plain ``lower`` does not follow.)"""


def _clean(text: str) -> bool:
    if not text.isascii():
        return False
    low = text.lower()
    for trigger in _TRIGGERS:  # noqa: SIM110 - a loop: no generator on every log line
        if trigger in low:
            return False
    return True


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential masked."""
    if _clean(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a log line may say about a destination (its
    path and query may hold the receiver's token)."""
    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port is not None else ""
        return f"{parsed.scheme}://{parsed.host}{port}"
    except Exception:  # a URL too broken to parse is not logged at all
        return "<invalid url>"


def ids(**values: Any) -> dict[str, Any]:
    """An ``extra=`` mapping of the ids that are set."""
    return {k: v for k, v in values.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, the traceback."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted, and its text: most lines share one with the line
    before."""

    def _time(self, created: float) -> str:
        """``created`` as ISO 8601 UTC to the millisecond, truncated like ``isoformat``."""
        fraction, whole = math.modf(created)  # as datetime.fromtimestamp rounds
        second, micros = int(whole), round(fraction * 1_000_000)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached = self._second
        if cached[0] != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._second = (second, text)
        return f"{cached[1]}.{micros // 1000:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ID_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL logger: message key=value ...`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{super().formatTime(record, datefmt)}.{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(
            f"{key}={getattr(record, key)}"
            for key in ID_FIELDS
            if getattr(record, key, None) is not None
        )
        if fields:
            head, sep, tail = text.partition("\n")  # after the message, before a traceback
            text = f"{head} {fields}{sep}{tail}"
        return redact(text)


def formatter_for(fmt: LogFormat, stream: TextIO) -> logging.Formatter:
    if fmt == "auto":
        fmt = "text" if _is_terminal(stream) else "json"
    return TextFormatter() if fmt == "text" else JsonFormatter()


def configure_logging(
    level: str, fmt: LogFormat = "auto", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records (the relay's, uvicorn's, the libraries') to ``stream``
    (stderr) in one format; returns the handler."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(fmt, stream))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Every tick and every provider request at INFO would drown what matters (and httpx
    # logs full request URLs, which may carry a provider's key).
    for noisy in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would bypass this format, and a level its Config set
        # (log_level) would outlive this one: its records go to the root, at its level.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    return handler


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
