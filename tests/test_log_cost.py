"""The log formatter's shortcuts (issue 17 item 4) change nothing it writes: ``redact`` skips
the patterns only for a text none of them can match, and the JSON line's time is
``isoformat``'s to the millisecond."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

from relay.logs import _PATTERNS, JsonFormatter, redact
from relay.signing import API_KEY_PREFIX, SECRET_PREFIX


def every_pattern(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


PIECES = (
    "task task_01JX0000000000000000000000: running -> succeeded",
    f"{SECRET_PREFIX}c2VjcmV0c2VjcmV0",
    f"{API_KEY_PREFIX}abcdefghijkl",
    "Authorization: Bearer abc.def",
    "basic dXNlcjpwYXNz",
    "x-api-key=sk-live-1",
    "API-KEY: 123",
    "client_secret=s3",
    "Access_Token: t0k",
    "db_password=hunter2",
    "https://user:pw@example.com/x",
    "http://example.com/cb?sig=1&token=2",
    "/v1/inbound/ark/tok_abcdef/more",
    'POST /v1/tasks?key=1 HTTP/1.1"',
    "delivery to https://hooks.example.com: 500",
    "plain words, numbers 12345, ids evt_01 and dst_02",
    "\u00c4PI_KEY=x \u017fecret=y \u212a",  # Ä, a long s and a Kelvin sign: not ASCII
    "",
)


def test_redact_is_every_pattern_applied() -> None:
    rng = random.Random(7)
    texts = list(PIECES)
    for _ in range(3000):
        texts.append(" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3))))
        word = "".join(rng.choice("abcKkeyYsS?:/_-= ") for _ in range(rng.randint(1, 24)))
        texts.append(word)
    for text in texts:
        assert redact(text) == every_pattern(text), text


def test_the_json_time_is_isoformat_to_the_millisecond() -> None:
    rng = random.Random(3)
    formatter = JsonFormatter()
    moments = [1780000000.001, 1780000000.9999995, 0.0005, 1780000000.0]
    moments += [rng.uniform(0, 4e9) for _ in range(20000)]
    for created in moments:
        record = logging.LogRecord("relay", logging.INFO, "x.py", 1, "m", None, None)
        record.created = created
        line = formatter.format(record)
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert f'"time": "{expected.replace("+00:00", "Z")}"' in line
