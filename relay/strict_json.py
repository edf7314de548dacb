"""JSON as JSON means it: Python's ``json`` accepts ``NaN`` and ``Infinity`` (and reads
``1e999`` as infinity), which no strict parser (``JSON.parse``) does. Kept, they would go
back out in task objects and signed webhook bodies that receivers reject."""

from __future__ import annotations

import json
import math
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses what is not JSON; raises ``ValueError``."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value
