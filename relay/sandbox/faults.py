"""Switchable faults and the request log, pure state: what the sandbox's control API sets
and reads (``relay.sandbox.control`` serves it and applies the faults).

A fault plan is a list of entries, each provider API request (not files, not control)
taking the next one: ``ok`` answers normally; ``500`` answers the dialect's internal-error
body; ``502``/``503``/``504`` an nginx HTML page, as the proxy in front of a provider does;
``429`` the dialect's rate-limit body with ``Retry-After``; ``timeout`` waits
``timeout_seconds`` and then answers normally (the caller's timeout should fire first);
``slow`` does the work at once and answers ``timeout_seconds`` later, even to a caller that
hung up meanwhile (a provider that took a create whose answer was then lost);
``garbage`` answers HTTP 200 with the normal body cut in half (so not JSON). Requests to
flavors outside ``flavors`` (when given) neither take an entry nor get a fault. Without
``repeat`` the plan is used once, then requests answer normally; with it, it starts over.
The result files have their own plan, in the same style: :mod:`relay.sandbox.file_faults`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Protocol, TypeVar

from relay.models import JSON
from relay.sandbox.timeline import FLAVORS, Flavor
from relay.sandbox.web import iso_ms

FAULT_KINDS: Final = ("ok", "500", "502", "503", "504", "429", "timeout", "slow", "garbage")
MAX_PLAN: Final = 10_000
MAX_LOG: Final = 10_000
MAX_TIMEOUT: Final = 600.0
_KEYS: Final = frozenset({"plan", "repeat", "flavors", "retry_after", "timeout_seconds"})


class Family(enum.StrEnum):
    """Whose error bodies a route answers faults with."""

    ARK = "ark"
    GATEWAY = "gateway"
    SEEDANCE2INK = "seedance2ink"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    plan: tuple[str, ...] = ()
    repeat: bool = False
    flavors: frozenset[Flavor] | None = None
    retry_after: int = 1
    timeout_seconds: float = 60.0

    def as_json(self) -> JSON:
        return {
            "plan": list(self.plan),
            "repeat": self.repeat,
            "flavors": None
            if self.flavors is None
            else [flavor.value for flavor in FLAVORS if flavor in self.flavors],
            "retry_after": self.retry_after,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass(frozen=True, slots=True)
class Fault:
    """One entry taken from the plan, with the plan's parameters."""

    kind: str
    retry_after: int
    timeout_seconds: float


def parse_plan(body: object) -> FaultPlan | str:
    """A plan from ``PUT /_control/faults``'s body, or what is wrong with it."""
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
        if kind not in FAULT_KINDS:
            return f"plan.{i} must be one of {', '.join(FAULT_KINDS)}"
        plan.append(kind)
    repeat = body.get("repeat", False)
    if not isinstance(repeat, bool):
        return "repeat must be a boolean"
    flavors = _flavors(body.get("flavors"))
    if isinstance(flavors, str):
        return flavors
    retry_after = body.get("retry_after", 1)
    if not _is_int(retry_after) or not 0 <= retry_after <= 86400:
        return "retry_after must be an integer number of seconds from 0 to 86400"
    timeout = body.get("timeout_seconds", 60.0)
    if (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not 0 <= timeout <= MAX_TIMEOUT
    ):
        return f"timeout_seconds must be a number from 0 to {MAX_TIMEOUT:g}"
    return FaultPlan(tuple(plan), repeat, flavors, retry_after, float(timeout))


def _flavors(value: Any) -> frozenset[Flavor] | str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        return "flavors must be a non-empty list of flavors, or null for all"
    known = {flavor.value: flavor for flavor in FLAVORS}
    found: set[Flavor] = set()
    for i, name in enumerate(value):
        if name not in known:
            return f"flavors.{i} must be one of {', '.join(known)}"
        found.add(known[name])
    return frozenset(found)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Plan(Protocol):
    """What a switch steps through: the entries, whether to start over, and its JSON."""

    @property
    def plan(self) -> tuple[str, ...]: ...

    @property
    def repeat(self) -> bool: ...

    def as_json(self) -> JSON: ...


P = TypeVar("P", bound=Plan)


class PlanSwitch(Generic[P]):
    """The current plan and how far along it requests have gone: each request that the plan
    applies to takes the next entry (provider faults here, file faults in
    ``relay.sandbox.file_faults``)."""

    def __init__(self, empty: P) -> None:
        self._empty = empty
        self.plan = empty
        self.taken = 0

    def set(self, plan: P) -> None:
        self.plan = plan
        self.taken = 0

    def clear(self) -> None:
        self.set(self._empty)

    @property
    def active(self) -> bool:
        entries = len(self.plan.plan)
        return entries > 0 and (self.plan.repeat or self.taken < entries)

    def next_kind(self) -> str | None:
        """The next entry of an active plan (moving along it); ``None``: none, or ``ok``."""
        if not self.active:
            return None
        kind = self.plan.plan[self.taken % len(self.plan.plan)]
        self.taken += 1
        return None if kind == "ok" else kind

    def state(self) -> JSON:
        entries = len(self.plan.plan)
        position = (
            self.taken % entries if self.plan.repeat and entries else min(self.taken, entries)
        )
        return {
            **self.plan.as_json(),
            "position": position,
            "taken": self.taken,
            "active": self.active,
        }


class FaultSwitch(PlanSwitch[FaultPlan]):
    def __init__(self) -> None:
        super().__init__(FaultPlan())

    def take(self, flavor: Flavor) -> Fault | None:
        """The fault for one request to ``flavor``; ``None``: answer normally."""
        plan = self.plan
        if plan.flavors is not None and flavor not in plan.flavors:
            return None
        kind = self.next_kind()
        return None if kind is None else Fault(kind, plan.retry_after, plan.timeout_seconds)


R = TypeVar("R")


class BoundedLog(Generic[R]):
    """The last ``limit`` records, oldest first."""

    def __init__(self, limit: int = MAX_LOG) -> None:
        self._records: deque[R] = deque(maxlen=limit)

    def add(self, record: R) -> None:
        self._records.append(record)

    def records(self) -> list[R]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    time: datetime
    flavor: Flavor
    method: str
    path: str
    query: str
    fault: str | None
    status: int

    def as_json(self) -> JSON:
        return {
            "time": iso_ms(self.time),
            "flavor": self.flavor.value,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "fault": self.fault,
            "status": self.status,
        }


class RequestLog(BoundedLog[RequestRecord]):
    """The last :data:`MAX_LOG` provider API requests, oldest first."""

    def of(self, flavor: Flavor | None = None) -> list[RequestRecord]:
        return [r for r in self.records() if flavor is None or r.flavor is flavor]
