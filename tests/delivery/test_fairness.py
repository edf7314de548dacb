"""The pure rules of fair delivery (``relay.delivery.fairness``): rate gates, the ledger of
sends in flight, the limits a claim gets, and when a claim filled someone up."""

from __future__ import annotations

import math

import pytest

from relay.delivery.engine import EngineSettings
from relay.delivery.fairness import (
    MIN_RATE_LIMIT,
    QUICK_ANSWER,
    QUICK_MEMORY,
    RATE_HORIZON,
    ClaimLimits,
    GateRoom,
    Ledger,
    RateGate,
    account_limit,
    filled,
)
from relay.models import DueDelivery

T0 = 1000.0


def due(key: str, account: str = "acct_a", rate_limit: float | None = None) -> DueDelivery:
    return DueDelivery(
        pk=1,
        id="dlv_1",
        event_id="evt_1",
        destination_key=key,
        url=f"https://{key}/hook",
        body="{}",
        secrets=(),
        attempt_count=0,
        account_id=account,
        rate_limit=rate_limit,
    )


def rooms(gate: RateGate, now: float) -> dict[str, int]:
    return {key: g.room for key, g in gate.gates(now).items()}


# --- rate gates ------------------------------------------------------------------------------


def test_a_gate_spaces_sends_and_says_how_many_may_start_within_the_horizon() -> None:
    gate = RateGate()
    gate.learn("sub_a", 4.0, T0)  # one every 0.25 s
    assert RATE_HORIZON == 0.5
    assert rooms(gate, T0) == {"sub_a": 3}  # at 0, 0.25 and 0.5 s
    assert [gate.reserve("sub_a", T0) for _ in range(3)] == [0.0, 0.25, 0.5]
    # The next turn is at 0.75 s, past the horizon: closed until 0.25 s from now.
    assert rooms(gate, T0) == {"sub_a": 0}
    assert gate.opens_in(T0) == pytest.approx(0.25)
    assert rooms(gate, T0 + 0.25) == {"sub_a": 1}
    assert gate.opens_in(T0 + 0.25) is None


def test_a_slow_gate_lets_one_send_through_then_stays_closed_for_its_interval() -> None:
    gate = RateGate()
    gate.learn("sub_slow", MIN_RATE_LIMIT, T0)
    assert rooms(gate, T0) == {"sub_slow": 1}
    assert gate.reserve("sub_slow", T0) == 0.0
    assert rooms(gate, T0 + 50) == {"sub_slow": 0}
    assert gate.opens_in(T0) == pytest.approx(1 / MIN_RATE_LIMIT - RATE_HORIZON)


def test_a_rate_below_the_bound_is_sent_at_the_bound() -> None:
    """A row written before the API refused such rates must not wait for ever."""
    gate = RateGate()
    gate.learn("sub_old", 1e-300, T0)
    gate.reserve("sub_old", T0)
    assert gate.reserve("sub_old", T0) == pytest.approx(1 / MIN_RATE_LIMIT)


def test_destinations_without_a_rate_limit_pass_the_gate_at_once() -> None:
    gate = RateGate()
    assert gate.reserve("https://a.example", T0) == 0.0
    assert rooms(gate, T0) == {}
    gate.learn("sub_a", 1.0, T0)
    gate.reserve("sub_a", T0)
    gate.learn("sub_a", None, T0)  # its limit was removed
    assert rooms(gate, T0) == {}
    assert gate.reserve("sub_a", T0) == 0.0


def test_a_raised_rate_opens_a_closed_gate_at_once() -> None:
    gate = RateGate()
    gate.learn("sub_a", MIN_RATE_LIMIT, T0)
    gate.reserve("sub_a", T0)
    assert rooms(gate, T0 + 1) == {"sub_a": 0}
    # The claim took one delivery of the destination at its new rate (its gate was planned at
    # another): the gate re-plans from its last turn, one every 0.2 s.
    gate.learn("sub_a", 5.0, T0 + 1)
    assert gate.gates(T0 + 1) == {"sub_a": GateRoom(5.0, 3)}
    assert [gate.reserve("sub_a", T0 + 1) for _ in range(3)] == pytest.approx([0.0, 0.2, 0.4])
    assert gate.opens_in(T0 + 1) == pytest.approx(0.1)


def test_a_lowered_rate_spaces_the_sends_after_the_one_claimed_at_the_change() -> None:
    gate = RateGate()
    gate.learn("sub_a", 10.0, T0)
    gate.reserve("sub_a", T0)
    gate.learn("sub_a", MIN_RATE_LIMIT, T0 + 0.05)
    # Claimed as one of unknown rate, it starts within the horizon (its lease allows no
    # more); the next waits the new rate's interval from it.
    assert gate.reserve("sub_a", T0 + 0.05) == pytest.approx(RATE_HORIZON)
    assert rooms(gate, T0 + 1) == {"sub_a": 0}
    assert gate.opens_in(T0 + 0.05) == pytest.approx(1 / MIN_RATE_LIMIT)
    # The same rate learnt again changes nothing.
    gate.learn("sub_a", MIN_RATE_LIMIT, T0 + 1)
    assert rooms(gate, T0 + 1) == {"sub_a": 0}


def test_a_gate_applies_while_the_destination_keeps_its_rate() -> None:
    limits = ClaimLimits(per_destination=8, gates={"sub_a": GateRoom(MIN_RATE_LIMIT, 0)})
    assert limits.destination_cap("sub_a", MIN_RATE_LIMIT) == 0
    assert limits.destination_cap("sub_a", MIN_RATE_LIMIT * (1 + 1e-12)) == 0  # JSON's doing
    assert limits.destination_cap("sub_a", 5.0) == 1  # changed: one, to learn it
    assert limits.destination_cap("sub_a", None) == 8  # removed: no gate at all


# --- the ledger ------------------------------------------------------------------------------


def test_the_ledger_counts_sends_by_destination_and_account() -> None:
    ledger = Ledger()
    one = ledger.start("https://a.example", "acct_a", T0)
    ledger.start("https://a.example", "acct_a", T0)
    ledger.start("https://b.example", "acct_b", T0)
    assert (len(ledger), ledger.in_flight("https://a.example")) == (3, 2)
    assert ledger.finish(one, T0 + 20, None) == 1
    limits = ledger.limits(
        T0 + 20, per_destination=4, per_account=3, per_account_total=6, gate=RateGate()
    )
    assert limits == ClaimLimits(
        per_destination=4,
        destination_room={"https://a.example": 3, "https://b.example": 3},
        per_account=3,
        account_room={"acct_a": 2, "acct_b": 2},
        uncounted=frozenset(),
        per_account_total=6,
        account_total_room={"acct_a": 5, "acct_b": 5},
    )


def test_a_quick_receiver_is_not_counted_against_its_account() -> None:
    ledger = Ledger()
    t = ledger.start("https://quick.example", "acct_a", T0)
    ledger.finish(t, T0 + 0.1, answered_in=0.1)
    ledger.start("https://quick.example", "acct_a", T0 + 0.2)
    ledger.start("https://slow.example", "acct_a", T0 + 0.2)
    limits = ledger.limits(
        T0 + 0.3, per_destination=8, per_account=4, per_account_total=10, gate=RateGate()
    )
    assert limits.uncounted == {"https://quick.example"}
    assert limits.account_room == {"acct_a": 3}  # the slow send only
    assert limits.account_total_room == {"acct_a": 8}  # both


def test_a_receiver_stops_being_quick_when_a_send_hangs_or_it_answers_slowly() -> None:
    ledger = Ledger()
    t = ledger.start("https://a.example", "acct_a", T0)
    ledger.finish(t, T0 + 0.1, answered_in=0.1)
    ledger.start("https://a.example", "acct_a", T0 + 1)
    assert ledger.quick(T0 + 1 + QUICK_ANSWER / 2) == {"https://a.example"}
    # A send under way for longer than a quick answer: it may be a black hole now.
    assert ledger.quick(T0 + 1 + QUICK_ANSWER * 1.5) == frozenset()
    limits = ledger.limits(
        T0 + 1 + QUICK_ANSWER * 1.5,
        per_destination=8,
        per_account=4,
        per_account_total=10,
        gate=RateGate(),
    )
    assert limits.account_room == {"acct_a": 3}

    slow = Ledger()
    t = slow.start("https://b.example", "acct_a", T0)
    slow.finish(t, T0 + 0.1, answered_in=0.1)
    t = slow.start("https://b.example", "acct_a", T0 + 1)
    slow.finish(t, T0 + 1 + QUICK_ANSWER * 2, answered_in=QUICK_ANSWER * 2)
    assert slow.quick(T0 + 5) == frozenset()
    t = slow.start("https://b.example", "acct_a", T0 + 6)
    slow.finish(t, T0 + 6, answered_in=None)  # a timeout or a refused connection
    assert slow.quick(T0 + 7) == frozenset()


def test_quick_sends_count_against_the_account_s_total() -> None:
    """Four quick receivers that all start hanging at once: the account keeps what it took,
    yet never more than its total; the others keep the reserve."""
    ledger = Ledger()
    keys = [f"https://{i}.example" for i in range(4)]
    for key in keys:
        ledger.finish(ledger.start(key, "acct_noisy", T0), T0 + 0.05, answered_in=0.05)
    share, total = 16, 28  # 32 slots: half is the share, an eighth the reserve
    limits = ledger.limits(
        T0 + 0.1, per_destination=16, per_account=share, per_account_total=total, gate=RateGate()
    )
    assert limits.uncounted == set(keys)
    assert limits.account_total_cap("acct_noisy") == total
    # The claim took what the total allowed: 28 sends, all uncounted.
    for i in range(total):
        ledger.start(keys[i % 4], "acct_noisy", T0 + 0.1)
    limits = ledger.limits(
        T0 + 0.2, per_destination=16, per_account=share, per_account_total=total, gate=RateGate()
    )
    assert limits.account_cap("acct_noisy") == share  # still quick: nothing counted
    assert limits.account_total_cap("acct_noisy") == 0
    assert limits.account_total_cap("acct_victim") == total
    # They hang: no longer quick, every one counts, far past the share.
    later = T0 + 0.1 + QUICK_ANSWER * 2
    limits = ledger.limits(
        later, per_destination=16, per_account=share, per_account_total=total, gate=RateGate()
    )
    assert limits.uncounted == frozenset()
    assert limits.account_cap("acct_noisy") == share - total
    assert len(ledger) == total  # 32 - 28: the reserve is free for the victim


def test_an_account_s_total_leaves_the_reserve_to_the_others() -> None:
    assert account_limit(256, None) == 256 - 32
    assert account_limit(32, None) == 28
    assert account_limit(2, None) == 1
    assert account_limit(1, None) == 1  # nothing left to reserve
    assert account_limit(256, 0) == 256
    assert account_limit(256, 100) == 156
    for reserved in (-1, 256):
        with pytest.raises(ValueError, match="reserved"):
            EngineSettings(reserved_for_others=reserved)


def test_a_quick_answer_is_forgotten_after_a_while() -> None:
    ledger = Ledger()
    t = ledger.start("https://a.example", "acct_a", T0)
    ledger.finish(t, T0, answered_in=0.05)
    assert ledger.quick(T0 + QUICK_MEMORY - 1) == {"https://a.example"}
    assert ledger.quick(T0 + QUICK_MEMORY + 1) == frozenset()


def test_a_wait_in_the_rate_gate_is_not_taken_for_a_hanging_send() -> None:
    ledger = Ledger()
    t = ledger.start("sub_a", "acct_a", T0)
    ledger.finish(t, T0 + 0.1, answered_in=0.1)
    ledger.start("sub_a", "acct_a", T0 + 1, wait=RATE_HORIZON)
    assert ledger.quick(T0 + 1 + RATE_HORIZON + QUICK_ANSWER / 2) == {"sub_a"}


def test_the_claim_gets_the_room_the_gates_leave() -> None:
    gate = RateGate()
    gate.learn("sub_fast", 100.0, T0)
    gate.learn("sub_slow", 1.0, T0)
    ledger = Ledger()
    for _ in range(2):
        ledger.start("sub_slow", "acct_a", T0, gate.reserve("sub_slow", T0))
    ledger.start("sub_fast", "acct_a", T0, gate.reserve("sub_fast", T0))
    limits = ledger.limits(T0, per_destination=8, per_account=100, per_account_total=100, gate=gate)
    assert limits.destination_room == {"sub_slow": 6, "sub_fast": 7}
    assert limits.gates == {"sub_slow": GateRoom(1.0, 0), "sub_fast": GateRoom(100.0, 50)}
    # sub_fast: 7 slots left under its cap, fewer than the 50 its gate allows in 0.5 s.
    assert limits.destination_cap("sub_fast", 100.0) == 7
    assert limits.destination_cap("sub_slow", 1.0) == 0


# --- what a claim filled ---------------------------------------------------------------------


def test_caps_of_destinations_and_accounts() -> None:
    limits = ClaimLimits(
        per_destination=4, destination_room={"a": 1}, per_account=6, account_room={"acct_a": 2}
    )
    assert limits.destination_cap("a", None) == 1
    assert limits.destination_cap("b", None) == 4
    assert limits.destination_cap("b", 2.0) == 1
    assert (limits.account_cap("acct_a"), limits.account_cap("acct_b")) == (2, 6)
    assert ClaimLimits().destination_cap("b", 2.0) == math.inf
    assert ClaimLimits().account_cap("acct_a") == math.inf


def test_a_claim_filled_someone_when_a_destination_or_an_account_got_all_its_room() -> None:
    limits = ClaimLimits(per_destination=2, per_account=3, account_room={"acct_a": 2})
    assert not filled(limits, [])
    assert not filled(limits, [due("a"), due("b", "acct_b")])
    assert filled(limits, [due("a"), due("a", "acct_b")])  # destination a: 2 of 2
    assert filled(limits, [due("sub_x", rate_limit=1.0)])  # a new rate-limited one: 1 of 1
    assert filled(limits, [due("a"), due("b")])  # acct_a: 2 of 2
    quick = ClaimLimits(
        per_destination=2, per_account=3, account_room={"acct_a": 2}, uncounted=frozenset("b")
    )
    assert not filled(quick, [due("a"), due("b")])
    total = ClaimLimits(
        per_destination=4, per_account=3, uncounted=frozenset("bc"), per_account_total=3
    )
    assert not filled(total, [due("b"), due("c")])
    assert filled(total, [due("b"), due("c"), due("c")])  # acct_a: 3 of its total of 3
