"""Fair shares of the delivery engine's slots and the rate gates of rate-limited destinations:
pure bookkeeping and decisions, every one taking ``now`` (monotonic seconds). The engine keeps
a ``Ledger`` and a ``RateGate``; each claim hands the store the ``ClaimLimits`` they give.

Why (issue 11): one tenant's receivers must not stall another tenant's deliveries. The rules:

1. A destination key holds at most ``max_in_flight_per_destination`` slots (one slow receiver
   does not stall the others).
2. An account's sends count against its share (``max_in_flight_per_account``, by default half
   the slots), except sends to destinations that answered within ``QUICK_ANSWER`` lately and
   have no send in flight for longer than that: such a slot comes back before anyone waits
   long for it. So an account alone may use every slot for receivers that answer, while its
   black holes and slow receivers never hold more than its share, and the rest stays free for
   the other accounts. (A slot cannot be taken back from a send under way, so a share that
   applied only "when others wait" would leave a newcomer waiting a whole timeout.)
3. The store's claim takes the accounts in turns: each account's longest-due delivery first,
   then each one's second, and so on, so a small account is not queued behind a big one's
   backlog for the slots that are free.
4. A rate-limited destination is claimed only for the sends its gate lets start within
   ``RATE_HORIZON``; the rest of its due deliveries stay unclaimed in the database. We chose
   this over renewing the leases of sends waiting in the gate: a waiting send would still hold
   an in-flight slot (four slow subscriptions held all 256), and each renewal would be a
   database write; an unclaimed delivery costs nothing while it waits, and a send starts at
   most ``RATE_HORIZON`` after its claim, so its lease (at least two attempt timeouts) cannot
   run out under it: no second claim, no duplicate POST without a crash.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from relay.models import DueDelivery

MIN_RATE_LIMIT = 0.01
"""The slowest ``rate_limit`` a subscription may have: one request every 100 s. Slower, a few
events would take longer to go out than the retry schedule lasts (about three days for a
hundred events at this rate already). Older rows with a smaller value are sent at this rate."""

RATE_HORIZON = 0.5
"""A rate-limited destination is claimed for the sends its gate lets start within this many
seconds; each waits for its turn (at most this long) holding its slot and lease."""

QUICK_ANSWER = 1.0
"""Seconds: a destination that answered this fast lately may use slots beyond its account's
share (they come back within about this long)."""

QUICK_MEMORY = 60.0
"""How long a quick answer counts: a destination not sent to since is counted again."""

_FORGET_AFTER = 10_000
"""Keys remembered at most, per table, before idle ones are forgotten."""


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """What one claim may take, besides its overall limit (``DeliveryStore``'s contract)."""

    per_destination: int | None = None
    """Deliveries a destination key not in ``destination_room`` may take, but one for a
    destination with a rate limit (the engine learns its rate from that one); None: no cap."""
    destination_room: Mapping[str, int] = field(default_factory=dict)
    """Destination key → how many more it may take (0 or less: none)."""
    per_account: int | None = None
    """Deliveries an account not in ``account_room`` may take; None: no cap."""
    account_room: Mapping[str, int] = field(default_factory=dict)
    """Account → how many more it may take (0 or less: none), counting only deliveries to
    keys not in ``uncounted``."""
    uncounted: frozenset[str] = frozenset()
    """Destination keys whose deliveries the account caps do not limit (quick receivers)."""

    @property
    def window(self) -> int:
        """How many times its limit a claim looks at: past the limit when caps may leave
        due deliveries out (so one destination's or account's backlog at the head of the
        queue does not hide the others'), else just the limit, so concurrent claims on
        PostgreSQL never skip rows another claim locked and then left."""
        capped = (
            self.per_destination is not None
            or self.per_account is not None
            or bool(self.destination_room)
            or bool(self.account_room)
        )
        return 4 if capped else 1

    def destination_cap(self, key: str, rate_limited: bool) -> float:
        room = self.destination_room.get(key)
        if room is not None:
            return room
        if self.per_destination is None:
            return math.inf
        return 1 if rate_limited else self.per_destination

    def account_cap(self, account: str) -> float:
        room = self.account_room.get(account)
        if room is not None:
            return room
        return math.inf if self.per_account is None else self.per_account


def filled(limits: ClaimLimits, due: Sequence[DueDelivery]) -> bool:
    """Whether the claim gave some destination or account all it had room for: others' due
    work may then have been hidden behind its backlog, and a claim shortly after (which
    leaves the full ones out) reaches it."""
    keys = Counter(d.destination_key for d in due)
    rated = {d.destination_key for d in due if d.rate_limit}
    if any(n >= limits.destination_cap(k, k in rated) for k, n in keys.items()):
        return True
    accounts = Counter(d.account_id for d in due if d.destination_key not in limits.uncounted)
    return any(n >= limits.account_cap(a) for a, n in accounts.items())


@dataclass(frozen=True, slots=True)
class _Send:
    key: str
    account: str
    starts: float
    """When the POST may begin: the claim, plus the wait in the rate gate."""


class Ledger:
    """The engine's sends in flight, by destination key and account, and how quickly each
    destination answered lately."""

    def __init__(self) -> None:
        self._sends: dict[int, _Send] = {}
        self._tickets = 0
        self._per_key: dict[str, int] = {}
        self._answers: dict[str, float] = {}
        """Destination key → when it last answered within ``QUICK_ANSWER``."""

    def __len__(self) -> int:
        return len(self._sends)

    def in_flight(self, key: str) -> int:
        return self._per_key.get(key, 0)

    def start(self, key: str, account: str, now: float, wait: float = 0.0) -> int:
        """A send takes a slot; the ticket ends it (``finish``)."""
        self._tickets += 1
        self._sends[self._tickets] = _Send(key, account, now + wait)
        self._per_key[key] = self._per_key.get(key, 0) + 1
        return self._tickets

    def finish(self, ticket: int, now: float, answered_in: float | None) -> int:
        """The send gave its slot back after the receiver took ``answered_in`` seconds (None:
        it was not sent, or never answered); the sends still in flight to its key."""
        send = self._sends.pop(ticket)
        left = self._per_key[send.key] - 1
        if left:
            self._per_key[send.key] = left
        else:
            del self._per_key[send.key]
        if answered_in is not None and answered_in <= QUICK_ANSWER:
            if len(self._answers) >= _FORGET_AFTER:
                self._answers = {k: t for k, t in self._answers.items() if now - t <= QUICK_MEMORY}
            self._answers[send.key] = now
        else:
            self._answers.pop(send.key, None)
        return left

    def quick(self, now: float) -> frozenset[str]:
        """Destinations that answered quickly lately, without a send stuck at them now."""
        stuck = {s.key for s in self._sends.values() if now - s.starts > QUICK_ANSWER}
        return frozenset(
            k for k, t in self._answers.items() if now - t <= QUICK_MEMORY and k not in stuck
        )

    def limits(
        self, now: float, *, per_destination: int, per_account: int, gate: RateGate
    ) -> ClaimLimits:
        quick = self.quick(now)
        room = {k: per_destination - n for k, n in self._per_key.items()}
        for key, open_ in gate.rooms(now).items():
            room[key] = min(room.get(key, per_destination), open_)
        counted = Counter(s.account for s in self._sends.values() if s.key not in quick)
        return ClaimLimits(
            per_destination=per_destination,
            destination_room=room,
            per_account=per_account,
            account_room={a: per_account - n for a, n in counted.items()},
            uncounted=quick,
        )


class RateGate:
    """Spaces the sends to each rate-limited destination (Zapier takes about 30 a second per
    hook): each send reserves the next free moment of its destination."""

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}
        self._next: dict[str, float] = {}

    def learn(self, key: str, rate: float | None) -> None:
        """The destination's rate limit, as its latest claimed delivery says (None: none)."""
        if rate is None:
            self._rates.pop(key, None)
            self._next.pop(key, None)
        else:
            self._rates[key] = max(rate, MIN_RATE_LIMIT)

    def reserve(self, key: str, now: float) -> float:
        """Seconds this send waits for its turn; reserves the turn. 0 for a destination
        without a rate limit."""
        rate = self._rates.get(key)
        if rate is None:
            return 0.0
        slot = max(now, self._next.get(key, now))
        self._next[key] = slot + 1.0 / rate
        if len(self._next) > _FORGET_AFTER:
            self._forget(now)
        return slot - now

    def rooms(self, now: float) -> dict[str, int]:
        """Rate-limited destination → how many sends may start within ``RATE_HORIZON``."""
        return {key: self._room(key, rate, now) for key, rate in self._rates.items()}

    def opens_in(self, now: float) -> float | None:
        """Seconds until the first closed gate lets a send be claimed again; None: none is
        closed."""
        closed = [
            self._next[k] - RATE_HORIZON - now
            for k, rate in self._rates.items()
            if self._room(k, rate, now) == 0
        ]
        return max(0.0, min(closed)) if closed else None

    def _room(self, key: str, rate: float, now: float) -> int:
        slot = max(now, self._next.get(key, now))
        if slot > now + RATE_HORIZON:
            return 0
        # A hair of slack: a turn that falls exactly on the horizon counts.
        return math.floor((now + RATE_HORIZON - slot) * rate + 1e-9) + 1

    def _forget(self, now: float) -> None:
        """Open gates are forgotten: such a destination is then claimed one at a time until
        its rate is learnt again."""
        self._next = {k: t for k, t in self._next.items() if t > now}
        self._rates = {k: r for k, r in self._rates.items() if k in self._next}
