"""Sends claimed ahead for a quick destination (``relay.delivery.fairness``, rule 6): how many
the lease allows, the room the ledger gives for them, and the turns they wait for
(``relay.delivery.turns``)."""

from __future__ import annotations

from relay.delivery.fairness import AHEAD, QUICK_ANSWER, Ledger, RateGate, ahead
from relay.delivery.turns import Turns

T0 = 1000.0


def test_ahead_is_as_many_caps_as_the_lease_leaves_a_whole_attempt_for() -> None:
    assert AHEAD == 2
    # The engine's default: a 300 s lease, 15 s attempts.
    assert ahead(64, 300.0, 15.0) == 2 * 64
    # Waiting one round of sends (up to 15 s) leaves 30 s: an attempt and one to spare.
    assert ahead(64, 45.0, 15.0) == 64
    # The shortest lease allowed (two timeouts): nothing claimed ahead.
    assert ahead(64, 30.0, 15.0) == 0
    assert ahead(1, 1.0, 0.5) == 0


def quick_ledger(key: str, sends: int) -> Ledger:
    """``sends`` in flight to ``key``, which has just answered quickly."""
    ledger = Ledger()
    ledger.finish(ledger.start(key, "acct_a", T0), T0 + 0.05, answered_in=0.05)
    for _ in range(sends):
        ledger.start(key, "acct_a", T0 + 0.1)
    return ledger


def test_a_quick_destination_gets_room_past_its_cap() -> None:
    ledger = quick_ledger("https://quick.example", 8)
    ledger.start("https://slow.example", "acct_a", T0 + 0.1)
    limits = ledger.limits(
        T0 + 0.2,
        per_destination=8,
        per_account=100,
        per_account_total=100,
        gate=RateGate(),
        ahead=16,
    )
    # Quick: its cap, and the sends ahead, less the 8 it holds; not known quick: its cap only.
    assert limits.destination_room == {"https://quick.example": 16, "https://slow.example": 7}
    assert limits.destination_cap("https://quick.example", None) == 16
    # The account's total counts every send it holds, the ones waiting their turn too.
    assert limits.account_total_room == {"acct_a": 91}


def test_no_room_ahead_for_a_rate_limited_or_a_hanging_destination() -> None:
    gate = RateGate()
    gate.learn("sub_rated", 50.0, T0)
    ledger = quick_ledger("sub_rated", 2)
    limits = ledger.limits(
        T0 + 0.2, per_destination=8, per_account=100, per_account_total=100, gate=gate, ahead=16
    )
    assert limits.destination_room == {"sub_rated": 6}

    hanging = quick_ledger("https://quick.example", 2)
    later = T0 + 0.1 + 2 * QUICK_ANSWER  # its sends are under way for longer than an answer
    limits = hanging.limits(
        later, per_destination=8, per_account=100, per_account_total=100, gate=RateGate(), ahead=16
    )
    assert limits.destination_room == {"https://quick.example": 6}


def test_sends_past_the_cap_wait_and_go_first_come_first_served() -> None:
    turns: Turns[str] = Turns(2)
    assert [turns.take("a", s) for s in ("a1", "a2", "a3", "a4")] == [True, True, False, False]
    assert turns.take("b", "b1")  # another destination has turns of its own
    assert turns.waiting() == 2
    assert turns.done("a") == "a3"  # a1 finished: a3 goes in its place
    assert turns.done("a") == "a4"
    assert turns.waiting() == 0
    assert turns.done("a") is None  # no one waits: a turn is given back
    assert turns.take("a", "a5")  # a4 and a5 now
    assert not turns.take("a", "a6")
    assert turns.done("a") == "a6"
    assert [turns.done("a"), turns.done("a")] == [None, None]
    assert [turns.take("a", s) for s in ("a7", "a8", "a9")] == [True, True, False]


def test_a_quick_destination_with_nothing_in_flight_may_take_its_sends_ahead_too() -> None:
    ledger = quick_ledger("https://quick.example", 0)
    limits = ledger.limits(
        T0 + 0.2,
        per_destination=8,
        per_account=100,
        per_account_total=100,
        gate=RateGate(),
        ahead=16,
    )
    assert limits.destination_room == {}
    assert limits.destination_cap("https://quick.example", None) == 24
    assert limits.destination_cap("https://quick.example", 5.0) == 1  # rate-limited now
    assert limits.destination_cap("https://other.example", None) == 8
