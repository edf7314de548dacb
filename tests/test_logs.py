"""``relay.logs``: JSON lines with ids, a readable terminal format, and the redaction net."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from relay.logs import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    ids,
    redact,
    url_origin,
)
from relay.signing import generate_api_key, generate_webhook_secret


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    names = ("", "apscheduler", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def record(
    message: str, *args: object, exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord(
        "relay.delivery",
        logging.INFO,
        __file__,
        1,
        message,
        args,
        (type(exc), exc, exc.__traceback__) if exc else None,
    )
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_a_json_line_has_the_time_level_logger_message_and_ids() -> None:
    line = JsonFormatter().format(
        record(
            "delivery %s: %s",
            "dlv_1",
            "retry",
            **ids(delivery_id="dlv_1", event_id="evt_1", task_id="task_1", provider=None),
        )
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data.pop("time").endswith("Z")
    assert data == {
        "level": "info",
        "logger": "relay.delivery",
        "message": "delivery dlv_1: retry",
        "delivery_id": "dlv_1",
        "event_id": "evt_1",
        "task_id": "task_1",
    }


def test_a_json_line_carries_the_traceback_in_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        line = JsonFormatter().format(record("it failed", exc=exc))
    data = json.loads(line)
    assert data["message"] == "it failed"
    assert "ValueError: boom" in data["exception"]
    assert data["exception"].startswith("Traceback")


def test_a_text_line_appends_the_ids() -> None:
    line = TextFormatter().format(
        record("task %s: done", "task_1", task_id="task_1", event_id="evt_2")
    )
    assert line.endswith("INFO    relay.delivery: task task_1: done task_id=task_1 event_id=evt_2")


def test_secrets_keys_and_tokens_are_masked() -> None:
    secret, key = generate_webhook_secret(), generate_api_key()
    text = redact(
        f"secret {secret}, key {key}, Authorization: Bearer sk-live-abcdef123456, "
        "POST https://user:pa55word@hooks.example.com/catch/1?token=t0k3n&x=1 failed, "
        "inbound /v1/inbound/seedance2ink/eyJhbGciOi.abc-def_ghi then api_key=sk-123456789 "
        '{"x-api-key": "abc123456789"}'
    )
    for leaked in (
        secret,
        secret.removeprefix("whsec_"),
        key,
        "sk-live-abcdef123456",
        "pa55word",
        "t0k3n",
        "eyJhbGciOi.abc-def_ghi",
        "sk-123456789",
        "abc123456789",
    ):
        assert leaked not in text, text
    for mask in ("whsec_***", "rk_***", "Bearer ***"):
        assert mask in text
    assert "https://***@hooks.example.com/catch/1?***" in text
    assert "/v1/inbound/seedance2ink/***" in text
    access = redact('127.0.0.1:5 - "GET /sandbox/v1/tasks/t1?sig=qp-123 HTTP/1.1" 200')
    assert access == '127.0.0.1:5 - "GET /sandbox/v1/tasks/t1?*** HTTP/1.1" 200'
    # Credentials under longer names (OAuth's, a DSN's).
    named = redact(
        'access_token=at-123 client_secret: cs-456 refresh_token="rt-789" db_password=pw-000'
    )
    for leaked in ("at-123", "cs-456", "rt-789", "pw-000"):
        assert leaked not in named, named
    # What is not a credential stays readable.
    assert (
        redact("delivery dlv_01h of evt_01h to https://hooks.example.com: retry (HTTP 500)")
        == "delivery dlv_01h of evt_01h to https://hooks.example.com: retry "
        "(HTTP 500)"
    )


def test_formatters_redact_messages_ids_and_tracebacks() -> None:
    secret = generate_webhook_secret()
    try:
        raise RuntimeError(f"signing with {secret}")
    except RuntimeError as exc:
        rec = record("failed for %s", secret, exc=exc, task_id=secret)
    for formatter in (JsonFormatter(), TextFormatter()):
        assert secret not in formatter.format(rec)
        rec.exc_text = None  # the formatters cache the traceback text on the record


def test_url_origin_drops_the_path_query_and_user_info() -> None:
    assert (
        url_origin("https://u:p@hooks.example.com:8443/catch/123/abc?token=x")
        == "https://hooks.example.com:8443"
    )
    assert url_origin("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000"
    assert url_origin("not a url at all \x00") in ("<invalid url>", "://")


@pytest.mark.usefixtures("restore_logging")
def test_configure_picks_json_off_a_terminal_and_text_on_one() -> None:
    piped = io.StringIO()
    configure_logging("info", stream=piped)
    logging.getLogger("relay.test").info("hello %s", "world", extra=ids(task_id="task_9"))
    logging.getLogger("relay.test").debug("not at info")
    logging.getLogger("httpx").info("HTTP Request: GET https://x.example.com/?key=abc")
    (line,) = piped.getvalue().splitlines()
    assert json.loads(line)["message"] == "hello world"
    assert json.loads(line)["task_id"] == "task_9"

    tty = Terminal()
    configure_logging("debug", stream=tty)
    logging.getLogger("relay.test").debug("hello")
    assert tty.getvalue().rstrip().endswith("DEBUG   relay.test: hello")

    forced = Terminal()
    configure_logging("info", "json", stream=forced)
    logging.getLogger("uvicorn.error").warning("started")
    assert json.loads(forced.getvalue())["logger"] == "uvicorn.error"
