"""What a delivery's body looks like for its destination's ``body_format``, pure.

Events are stored once, as the standard envelope (DESIGN §3), and fan out to every
destination that wants them; a destination registered through a front door (``relay.doors``)
gets the same event in that API's own shape instead, rendered here from the envelope just
before it is signed and sent, so the signature covers exactly the bytes sent:

- ``standard``: the envelope as stored (or as ``relay.delivery.fresh_urls`` refreshed it);
- ``ark``: the Ark task object of the event's task, as Ark POSTs it to a ``callback_url``
  (``relay.doors.ark_shapes.ark_task``), carrying whatever video link the envelope carries
  (the stored copy's once outputs are stored).
"""

from __future__ import annotations

import json
from typing import Final

from relay.doors.ark_shapes import ark_task

STANDARD: Final = "standard"
ARK: Final = "ark"
BODY_FORMATS: Final = frozenset({STANDARD, ARK})


def render(body_format: str, envelope: str) -> str:
    """The body to send for ``envelope`` to a destination of ``body_format``. An envelope
    without a task (none reaches a task's callback) goes as it is."""
    if body_format != ARK:
        return envelope
    data = json.loads(envelope).get("data")
    if not isinstance(data, dict) or "id" not in data or "status" not in data:
        return envelope
    return json.dumps(ark_task(data), separators=(",", ":"), ensure_ascii=False)
