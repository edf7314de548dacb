"""Switchable faults of the sandbox's result files and their request log, pure state: what
``PUT /_control/file-faults`` sets and ``relay.sandbox.files`` applies.

The provider API's plan (:mod:`relay.sandbox.faults`) never touches files; this one does,
in the same style. Each ``GET`` of a file (a signed TOS-style URL or seedance2.ink's
bucket; ``HEAD`` takes none) takes the next entry, before any check of the URL:

- ``ok``: the normal answer;
- ``html``: HTTP 200 with an HTML error page (``text/html``), as a CDN or a captive proxy
  answers in place of the object;
- ``empty``: HTTP 200 ``video/mp4`` (or ``image/png``) with an empty body;
- ``cut``: the normal headers, ``Content-Length`` included, then the connection closes
  after ``after_bytes`` bytes of the body (never the whole of it): a truncated transfer.
  Only a real server can drop a connection, so this needs one (uvicorn logs "ASGI callable
  returned without completing response");
- ``stall``: the normal answer, pausing ``timeout_seconds`` after ``after_bytes`` bytes of
  the body (a reader's timeout should fire first);
- ``403``: TOS's expired-link answer (``AccessDenied``, "Request has expired."), for
  processes whose clock cannot be moved; ``404``: ``NoSuchKey``, as for a forgotten task;
  ``500``/``503``: storage errors.

``empty``, ``cut`` and ``stall`` change only an answer that has a body to serve (200 or
206); a request the sandbox refuses anyway (bad signature, expired, unknown) gets its
normal refusal. ``types`` (``["mp4"]``, ``["png"]``) limits the plan to those files;
``repeat`` starts it over once used up, as for the API plan.

The file log (``GET /_control/files``) records every file request: time, path, the
``Range`` header, the fault taken, the status (499 when the caller hung up) and the body
bytes sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from relay.models import JSON
from relay.sandbox.faults import MAX_PLAN, MAX_TIMEOUT, BoundedLog, PlanSwitch
from relay.sandbox.web import iso_ms

FILE_FAULT_KINDS: Final = ("ok", "html", "empty", "cut", "stall", "403", "404", "500", "503")
FILE_TYPES: Final = ("mp4", "png")
MAX_AFTER_BYTES: Final = 2**40
_KEYS: Final = frozenset({"plan", "repeat", "types", "after_bytes", "timeout_seconds"})


@dataclass(frozen=True, slots=True)
class FileFaultPlan:
    plan: tuple[str, ...] = ()
    repeat: bool = False
    types: frozenset[str] | None = None
    after_bytes: int = 1024
    timeout_seconds: float = 60.0

    def as_json(self) -> JSON:
        return {
            "plan": list(self.plan),
            "repeat": self.repeat,
            "types": None if self.types is None else [t for t in FILE_TYPES if t in self.types],
            "after_bytes": self.after_bytes,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass(frozen=True, slots=True)
class FileFault:
    kind: str
    after_bytes: int
    timeout_seconds: float


def parse_file_plan(body: object) -> FileFaultPlan | str:
    """A plan from ``PUT /_control/file-faults``'s body, or what is wrong with it."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        return f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_KEYS))})"
    entries = body.get("plan")
    if not isinstance(entries, list) or len(entries) > MAX_PLAN:
        return f"plan must be a list of at most {MAX_PLAN} entries"
    plan: list[str] = []
    for i, entry in enumerate(entries):
        kind = str(entry) if isinstance(entry, int) and not isinstance(entry, bool) else entry
        if kind not in FILE_FAULT_KINDS:
            return f"plan.{i} must be one of {', '.join(FILE_FAULT_KINDS)}"
        plan.append(kind)
    repeat = body.get("repeat", False)
    if not isinstance(repeat, bool):
        return "repeat must be a boolean"
    types = body.get("types")
    if types is not None and (
        not isinstance(types, list) or not types or any(t not in FILE_TYPES for t in types)
    ):
        return f"types must be a non-empty list of {', '.join(FILE_TYPES)}, or null for all"
    after = body.get("after_bytes", 1024)
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_AFTER_BYTES:
        return f"after_bytes must be an integer from 0 to {MAX_AFTER_BYTES}"
    timeout = body.get("timeout_seconds", 60.0)
    if (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not 0 <= timeout <= MAX_TIMEOUT
    ):
        return f"timeout_seconds must be a number from 0 to {MAX_TIMEOUT:g}"
    return FileFaultPlan(
        tuple(plan), repeat, None if types is None else frozenset(types), after, float(timeout)
    )


class FileFaultSwitch(PlanSwitch[FileFaultPlan]):
    def __init__(self) -> None:
        super().__init__(FileFaultPlan())

    def take(self, file_type: str) -> FileFault | None:
        """The fault for one request of a ``file_type`` file; ``None``: answer normally."""
        plan = self.plan
        if plan.types is not None and file_type not in plan.types:
            return None
        kind = self.next_kind()
        return None if kind is None else FileFault(kind, plan.after_bytes, plan.timeout_seconds)


@dataclass(frozen=True, slots=True)
class FileRecord:
    time: datetime
    path: str
    range: str | None
    fault: str | None
    status: int
    bytes: int

    def as_json(self) -> JSON:
        return {
            "time": iso_ms(self.time),
            "path": self.path,
            "range": self.range,
            "fault": self.fault,
            "status": self.status,
            "bytes": self.bytes,
        }


class FileLog(BoundedLog[FileRecord]):
    """The last :data:`~relay.sandbox.faults.MAX_LOG` file requests, oldest first."""
