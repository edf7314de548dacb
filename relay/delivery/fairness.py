"""Fair shares of the delivery engine's slots and the rate gates of rate-limited destinations:
pure bookkeeping and decisions, every one taking ``now`` (monotonic seconds). The engine keeps
a ``Ledger`` and a ``RateGate``; each claim hands the store the ``ClaimLimits`` they give.

Why (issue 11): one tenant's receivers must not stall another tenant's deliveries. The rules:

1. A destination key holds at most ``max_in_flight_per_destination`` slots (one slow receiver
   does not stall the others).
2. An account's sends count against its share (``max_in_flight_per_account``, by default half
   the slots), except sends to destinations that answered within ``QUICK_ANSWER`` lately and
   have no send in flight for longer than that: such a slot normally comes back before anyone
   waits long for it. So an account's black holes and slow receivers never hold more than its
   share.
3. Quick or not, an account's sends never hold more than ``max_in_flight`` minus
   ``reserved_for_others`` slots (by default an eighth of them is reserved): the part another
   account always finds free. A quick receiver can turn into a black hole at any moment, and a
   slot cannot be taken back from a send under way: without this cap, an account could keep
   four receivers quick, have every slot claimed for them, make them all hang, and starve
   everyone else for an attempt timeout, again and again. (Exempting quick sends only while no
   other account has due work would not do: work that falls due a moment later would wait a
   whole timeout for the slots taken meanwhile.) So an account alone may use nearly every slot
   for receivers that answer, its black holes hold at most its share, and another account
   always keeps the reserve. The guarantee is per account: many accounts acting together can
   still fill the slots, each within its own limits.
4. The store's claim takes the accounts in turns: each account's longest-due delivery first,
   then each one's second, and so on, so a small account is not queued behind a big one's
   backlog for the slots that are free.
5. A rate-limited destination is claimed only for the sends its gate lets start within
   ``RATE_HORIZON``; the rest of its due deliveries stay unclaimed in the database. We chose
   this over renewing the leases of sends waiting in the gate: a waiting send would still hold
   an in-flight slot (four slow subscriptions held all 256), and each renewal would be a
   database write; an unclaimed delivery costs nothing while it waits, and a send starts at
   most ``RATE_HORIZON`` after its claim, so its lease (at least two attempt timeouts) cannot
   run out under it: no second claim, no duplicate POST without a crash.
6. A quick destination without a rate limit (rule 2's quick) may be claimed for more than
   its cap (``ahead``: up to ``AHEAD`` caps more, as the lease allows): those sends wait in
   the engine for one of its own to finish (``relay.delivery.turns``, first claimed first
   sent) and start then, with no trip to the database between, so its requests do not pause
   while the next claim is written. They hold engine slots and count against the account's
   total like any send; never more than the cap go to the destination at once. A wait
   longer than ``QUICK_ANSWER`` makes the destination not quick (rule 2), so a receiver that
   starts hanging gets no more sends ahead, and the ones waiting start within ``AHEAD``
   attempt timeouts, with a lease that still covers their attempt (else they are not sent:
   the engine's lease check; they go out when claimed again).
7. A gate is planned at the rate the destination's last claimed delivery had, and the claim
   applies its room only while the destination still has that rate. A subscription whose
   ``rate_limit`` was raised, lowered or removed is claimed at the next claim like one whose
   rate is not known yet (one send; all it may take if it has no limit any more), and the
   gate re-plans from its last turn at the new rate: a raised rate does not wait out the old
   rate's turn (up to 100 s). That send still starts within ``RATE_HORIZON``, so after a
   lowered rate one send may come sooner than the new rate alone would allow.
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
share, up to its total (they come back within about this long)."""

QUICK_MEMORY = 60.0
"""How long a quick answer counts: a destination not sent to since is counted again."""

RATE_TOLERANCE = 1e-9
"""Relative difference below which two rate limits are the same setting (``same_rate``)."""

_FORGET_AFTER = 10_000
"""Keys remembered at most, per table, before idle ones are forgotten."""


AHEAD = 2
"""Caps' worth of sends a quick destination may be claimed for past its cap (rule 6)."""


def ahead(per_destination: int, lease_seconds: float, timeout: float) -> int:
    """Sends a quick destination may be claimed for past its cap, to wait for its turns.
    The last of them waits for at most ``k`` rounds of its destination's sends, each done
    within an attempt timeout: ``k`` is kept low enough that it still starts with a whole
    timeout of its lease left, and another to spare (none when the lease is that short)."""
    rounds = min(AHEAD, math.floor(lease_seconds / timeout) - 2)
    return per_destination * max(0, rounds)


def account_limit(max_in_flight: int, reserved_for_others: int | None) -> int:
    """Slots one account's sends may hold, quick ones included: all but the reserve (None:
    an eighth of the slots, at least one when there are two or more)."""
    if reserved_for_others is None:
        reserved_for_others = min(max_in_flight - 1, max(1, max_in_flight // 8))
    return max_in_flight - reserved_for_others


def same_rate(a: float, b: float) -> bool:
    """Whether two rate limits read from the database are the same setting (a rate may come
    back through JSON, so not to the last bit; a changed setting differs by far more)."""
    return abs(a - b) <= RATE_TOLERANCE * max(abs(a), abs(b))


@dataclass(frozen=True, slots=True)
class GateRoom:
    """A rate-limited destination's gate, as the claim sees it."""

    rate: float
    """The rate limit the gate is planned at: its room applies while the destination still
    has this rate (``same_rate``); otherwise the destination is one of unknown rate."""
    room: int
    """Sends the gate lets start within ``RATE_HORIZON`` (0: none)."""


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """What one claim may take, besides its overall limit (``DeliveryStore``'s contract)."""

    per_destination: int | None = None
    """Deliveries a destination key not in ``destination_room`` may take, but one for a
    rate-limited destination without a gate at its current rate in ``gates`` (the engine
    learns its rate from that one); None: no cap."""
    destination_room: Mapping[str, int] = field(default_factory=dict)
    """Destination key → how many more it may take, for its sends in flight (0 or less:
    none); past ``per_destination`` for a quick one (rule 6)."""
    gates: Mapping[str, GateRoom] = field(default_factory=dict)
    """Rate-limited destination key → its gate: while the destination's rate is the gate's,
    it takes no more than the gate's room (as well as its ``destination_room``)."""
    per_account: int | None = None
    """Deliveries an account not in ``account_room`` may take; None: no cap."""
    account_room: Mapping[str, int] = field(default_factory=dict)
    """Account → how many more it may take (0 or less: none), counting only deliveries to
    keys not in ``uncounted``."""
    uncounted: frozenset[str] = frozenset()
    """Destination keys whose deliveries ``account_room`` does not count (quick receivers)."""
    per_account_total: int | None = None
    """Deliveries of any key (``uncounted`` too) an account not in ``account_total_room``
    may take; None: no cap."""
    account_total_room: Mapping[str, int] = field(default_factory=dict)
    """Account → how many more deliveries of any key it may take (0 or less: none)."""
    ahead: int = 0
    """Deliveries a key in ``uncounted`` without a rate limit and not in ``destination_room``
    may take past ``per_destination`` (rule 6: a quick destination with nothing in flight)."""

    @property
    def window(self) -> int:
        """How many times its limit a claim looks at: past the limit when caps may leave
        due deliveries out (so one destination's or account's backlog at the head of the
        queue does not hide the others'), else just the limit, so concurrent claims on
        PostgreSQL never skip rows another claim locked and then left."""
        capped = (
            self.per_destination is not None
            or self.per_account is not None
            or self.per_account_total is not None
            or bool(self.destination_room)
            or bool(self.gates)
            or bool(self.account_room)
            or bool(self.account_total_room)
        )
        return 4 if capped else 1

    def destination_cap(self, key: str, rate_limit: float | None) -> float:
        """How many a destination with this (current) rate limit may take."""
        room = self.destination_room.get(key)
        cap: float = math.inf if self.per_destination is None else self.per_destination
        in_flight = cap if room is None else room
        if rate_limit is None:
            return cap + self.ahead if room is None and key in self.uncounted else in_flight
        gate = self.gates.get(key)
        if gate is not None and same_rate(gate.rate, rate_limit):
            return min(in_flight, gate.room)
        return min(in_flight, 1 if self.per_destination is not None else math.inf)

    def account_cap(self, account: str) -> float:
        """How many deliveries to keys not in ``uncounted`` the account may take."""
        room = self.account_room.get(account)
        if room is not None:
            return room
        return math.inf if self.per_account is None else self.per_account

    def account_total_cap(self, account: str) -> float:
        """How many deliveries of any key the account may take."""
        room = self.account_total_room.get(account)
        if room is not None:
            return room
        return math.inf if self.per_account_total is None else self.per_account_total


def filled(limits: ClaimLimits, due: Sequence[DueDelivery]) -> bool:
    """Whether the claim gave some destination or account all it had room for: others' due
    work may then have been hidden behind its backlog, and a claim shortly after (which
    leaves the full ones out) reaches it."""
    keys = Counter(d.destination_key for d in due)
    rates = {d.destination_key: d.rate_limit for d in due}
    if any(n >= limits.destination_cap(k, rates[k]) for k, n in keys.items()):
        return True
    accounts = Counter(d.account_id for d in due if d.destination_key not in limits.uncounted)
    if any(n >= limits.account_cap(a) for a, n in accounts.items()):
        return True
    totals = Counter(d.account_id for d in due)
    return any(n >= limits.account_total_cap(a) for a, n in totals.items())


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
        self,
        now: float,
        *,
        per_destination: int,
        per_account: int,
        per_account_total: int,
        gate: RateGate,
        ahead: int = 0,
    ) -> ClaimLimits:
        """``per_account``: an account's share for sends to keys that are not quick;
        ``per_account_total``: all its sends may hold (``max_in_flight`` less the reserve);
        ``ahead``: sends a quick destination without a rate gate may take past its cap
        (they wait for its turns: ``relay.delivery.turns``)."""
        quick = self.quick(now)
        gates = gate.gates(now)
        counted = Counter(s.account for s in self._sends.values() if s.key not in quick)
        totals = Counter(s.account for s in self._sends.values())
        return ClaimLimits(
            per_destination=per_destination,
            destination_room={
                k: per_destination - n + (ahead if k in quick and k not in gates else 0)
                for k, n in self._per_key.items()
            },
            gates=gates,
            per_account=per_account,
            account_room={a: per_account - n for a, n in counted.items()},
            uncounted=quick,
            per_account_total=per_account_total,
            account_total_room={a: per_account_total - n for a, n in totals.items()},
            ahead=ahead,
        )


class RateGate:
    """Spaces the sends to each rate-limited destination (Zapier takes about 30 a second per
    hook): each send reserves the next free moment of its destination."""

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}
        """Destination key → its rate limit as read (a gate spaces at no less than
        ``MIN_RATE_LIMIT``)."""
        self._last: dict[str, float] = {}
        """Destination key → the moment of the last turn reserved."""

    def learn(self, key: str, rate: float | None, now: float) -> None:
        """The destination's rate limit, as its latest claimed delivery says (None: none).
        A changed rate re-plans the gate from its last turn, but the send the claim took
        (as one of unknown rate) still starts within ``RATE_HORIZON``."""
        if rate is None:
            self._rates.pop(key, None)
            self._last.pop(key, None)
            return
        known = self._rates.get(key)
        self._rates[key] = rate
        last = self._last.get(key)
        if known is not None and last is not None and not same_rate(known, rate):
            self._last[key] = min(last, now + RATE_HORIZON - self._interval(key))

    def reserve(self, key: str, now: float) -> float:
        """Seconds this send waits for its turn; reserves the turn. 0 for a destination
        without a rate limit."""
        if key not in self._rates:
            return 0.0
        slot = max(now, self._next(key))
        self._last[key] = slot
        if len(self._last) > _FORGET_AFTER:
            self._forget(now)
        return slot - now

    def gates(self, now: float) -> dict[str, GateRoom]:
        """Rate-limited destination → its rate and how many sends may start within
        ``RATE_HORIZON``."""
        return {key: GateRoom(rate, self._room(key, now)) for key, rate in self._rates.items()}

    def opens_in(self, now: float) -> float | None:
        """Seconds until the first closed gate lets a send be claimed again; None: none is
        closed."""
        closed = [self._next(k) - RATE_HORIZON - now for k in self._rates if not self._room(k, now)]
        return max(0.0, min(closed)) if closed else None

    def _interval(self, key: str) -> float:
        return 1.0 / max(self._rates[key], MIN_RATE_LIMIT)

    def _next(self, key: str) -> float:
        last = self._last.get(key)
        return -math.inf if last is None else last + self._interval(key)

    def _room(self, key: str, now: float) -> int:
        slot = max(now, self._next(key))
        if slot > now + RATE_HORIZON:
            return 0
        # A hair of slack: a turn that falls exactly on the horizon counts.
        return math.floor((now + RATE_HORIZON - slot) / self._interval(key) + 1e-9) + 1

    def _forget(self, now: float) -> None:
        """Open gates are forgotten: such a destination is then claimed one at a time until
        its rate is learnt again."""
        self._last = {k: t for k, t in self._last.items() if self._next(k) > now}
        self._rates = {k: r for k, r in self._rates.items() if k in self._last}
