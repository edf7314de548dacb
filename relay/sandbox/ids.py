"""Stateless task ids: the whole task lives in its id, so a restarted sandbox still answers.

A restarted relay keeps tracking its tasks in its database while the sandbox's memory is
gone, so the timeline and every reported field travel in the id itself. Each provider's ids
keep their own look (:class:`IdStyle`)::

    cgt-YYYYMMDDHHMMSS-<40 lowercase base32>   Ark, apiyi, naci; every upstream Ark id
    task_<34 base62>                            new-api public ids (vastnum, newapi) and
                                                cubicspaces' Ark mirror
    video_<34 base62>                           cubicspaces' unified API
    req_<34 base62>                             seedance2.ink

The ``cgt`` timestamp is the creation time in Beijing time (UTC+8), as real Ark ids have
it. The payload packs 23 bytes, most significant field first (:data:`_LAYOUT`): created_at
in ms, both phase lengths in ms, the seed, the outcome, four flags, resolution, ratio,
duration, model, the issuing :class:`~relay.sandbox.timeline.Flavor` and a random nonce;
then a 2-byte checksum over the style and the payload, so a mistyped id, or one moved to
another style, answers "not found" instead of an invented task. A model name outside
:data:`~relay.sandbox.timeline.MODELS` cannot be packed; after a restart such a task
reports :data:`~relay.sandbox.timeline.DEFAULT_MODEL`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from relay.sandbox.timeline import (
    DEFAULT_MODEL,
    FLAVORS,
    MAX_DURATION,
    MIN_DURATION,
    MODELS,
    OUTCOMES,
    RATIOS,
    RESOLUTIONS,
    SandboxTask,
)

BEIJING = timezone(timedelta(hours=8))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IdStyle(enum.StrEnum):
    """How an id looks: its prefix."""

    CGT = "cgt-"
    TASK = "task_"
    VIDEO = "video_"
    REQ = "req_"


_LAYOUT: tuple[tuple[str, int], ...] = (
    ("created_ms", 42),  # enough until the year 2109
    ("queued_ms", 32),
    ("running_ms", 32),
    ("seed", 32),
    ("outcome", 2),
    ("generate_audio", 1),
    ("return_last_frame", 1),
    ("watermark", 1),
    ("has_images", 1),
    ("resolution", 2),
    ("ratio", 3),
    ("duration", 4),
    ("model", 4),
    ("flavor", 3),
    ("nonce", 24),
)
_PAYLOAD_BYTES = 23
_OTHER_MODEL = 15
_NONCE_MASK = 2**24 - 1
_CGT_RE = re.compile(r"cgt-(\d{14})-([a-z2-7]{40})")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_WIDTH = 34  # 62**34 > 2**200, the 25 bytes of payload and checksum
_B62_RE = re.compile(r"[0-9A-Za-z]{34}")


def encode_task_id(task: SandboxTask, style: IdStyle = IdStyle.CGT) -> str:
    """The id of ``task`` in ``style`` (the task's own ``id`` field is ignored)."""
    values = {
        "created_ms": ms(task.created_at),
        "queued_ms": round(task.queued_seconds * 1000),
        "running_ms": round(task.running_seconds * 1000),
        "seed": task.seed,
        "outcome": OUTCOMES.index(task.outcome),
        "generate_audio": int(task.generate_audio),
        "return_last_frame": int(task.return_last_frame),
        "watermark": int(task.watermark),
        "has_images": int(task.has_images),
        "resolution": RESOLUTIONS.index(task.resolution),
        "ratio": RATIOS.index(task.ratio),
        "duration": task.duration,
        "model": MODELS.index(task.model) if task.model in MODELS else _OTHER_MODEL,
        "flavor": FLAVORS.index(task.flavor),
        "nonce": task.nonce & _NONCE_MASK,
    }
    packed = 0
    for name, bits in _LAYOUT:
        value = values[name]
        if not 0 <= value < 2**bits:
            raise ValueError(f"{name}={value} does not fit in an id")
        packed = packed << bits | value
    body = packed.to_bytes(_PAYLOAD_BYTES, "big")
    raw = body + _checksum(style, body)
    if style is IdStyle.CGT:
        payload = base64.b32encode(raw).decode("ascii").lower()
        stamp = task.created_at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
        return f"cgt-{stamp}-{payload}"
    return style.value + _b62(int.from_bytes(raw, "big"))


def decode_task_id(task_id: str) -> SandboxTask | None:
    """The task an id describes, or ``None`` when the id is not one the sandbox made."""
    parsed = _payload(task_id)
    if parsed is None:
        return None
    style, raw, stamp = parsed
    body, check = raw[:_PAYLOAD_BYTES], raw[_PAYLOAD_BYTES:]
    if not hmac.compare_digest(check, _checksum(style, body)):
        return None
    packed = int.from_bytes(body, "big")
    values: dict[str, int] = {}
    for name, bits in reversed(_LAYOUT):
        values[name] = packed & (2**bits - 1)
        packed >>= bits
    if (
        values["outcome"] >= len(OUTCOMES)
        or values["resolution"] >= len(RESOLUTIONS)
        or values["ratio"] >= len(RATIOS)
        or not MIN_DURATION <= values["duration"] <= MAX_DURATION
        or values["flavor"] >= len(FLAVORS)
    ):
        return None
    created_at = from_ms(values["created_ms"])
    if stamp is not None and created_at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S") != stamp:
        return None
    model = values["model"]
    return SandboxTask(
        id=task_id,
        created_at=created_at,
        queued_seconds=values["queued_ms"] / 1000,
        running_seconds=values["running_ms"] / 1000,
        outcome=OUTCOMES[values["outcome"]],
        model=MODELS[model] if model < len(MODELS) else DEFAULT_MODEL,
        resolution=RESOLUTIONS[values["resolution"]],
        ratio=RATIOS[values["ratio"]],
        duration=values["duration"],
        seed=values["seed"],
        generate_audio=bool(values["generate_audio"]),
        return_last_frame=bool(values["return_last_frame"]),
        watermark=bool(values["watermark"]),
        has_images=bool(values["has_images"]),
        flavor=FLAVORS[values["flavor"]],
        nonce=values["nonce"],
    )


def style_of(task_id: str) -> IdStyle | None:
    for style in IdStyle:
        if task_id.startswith(style.value):
            return style
    return None


def with_style(task: SandboxTask, style: IdStyle) -> SandboxTask:
    """The same task under another id style: a gateway's upstream Ark id, for instance."""
    return replace(task, id=encode_task_id(task, style))


def _payload(task_id: str) -> tuple[IdStyle, bytes, str | None] | None:
    style = style_of(task_id)
    if style is None:
        return None
    if style is IdStyle.CGT:
        match = _CGT_RE.fullmatch(task_id)
        if match is None:
            return None
        try:
            raw = base64.b32decode(match.group(2).upper())
        except (binascii.Error, ValueError):
            return None
        return style, raw, match.group(1)
    rest = task_id[len(style.value) :]
    if _B62_RE.fullmatch(rest) is None:
        return None
    number = 0
    for char in rest:
        number = number * 62 + _B62.index(char)
    if number >= 2 ** ((_PAYLOAD_BYTES + 2) * 8):
        return None
    return style, number.to_bytes(_PAYLOAD_BYTES + 2, "big"), None


def _b62(number: int) -> str:
    digits: list[str] = []
    for _ in range(_B62_WIDTH):
        number, digit = divmod(number, 62)
        digits.append(_B62[digit])
    return "".join(reversed(digits))


def _checksum(style: IdStyle, body: bytes) -> bytes:
    return hashlib.sha256(style.value.encode() + body).digest()[:2]


def ms(moment: datetime) -> int:
    # timedelta arithmetic is exact where float timestamps can round a millisecond away.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)
