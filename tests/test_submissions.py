"""The pure rules of ``relay.submissions``: whether a failed create may have been taken, and
which listed provider task an uncertain submission created."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from relay.provider_answers import FaultKind, ProviderFault
from relay.submissions import (
    Candidate,
    Found,
    NotFound,
    Submission,
    SubmissionState,
    create_was_taken,
    is_rival,
    match_submission,
    matched_params,
    next_look,
)

T0 = datetime(2026, 6, 6, 16, 0, tzinfo=UTC)


def fault(kind: FaultKind, status: int | None = None, *, reached: bool = True) -> ProviderFault:
    return ProviderFault(kind, True, "x", status_code=status, reached=reached)


@pytest.mark.parametrize(
    ("answer", "taken"),
    [
        # Certainly not taken: safe to try again.
        (fault(FaultKind.UNAVAILABLE, reached=False), False),  # no connection
        (fault(FaultKind.BACKED_OFF, reached=False), False),
        (fault(FaultKind.INVALID_REQUEST, 400), False),
        (fault(FaultKind.UNAUTHORIZED, 401), False),
        (fault(FaultKind.RATE_LIMITED, 429), False),
        (fault(FaultKind.NOT_FOUND, 404), False),
        # The gateway itself says so: new-api's "no available channel".
        (replace(fault(FaultKind.UNAVAILABLE, 503), provider_code="model_not_found"), False),
        # Nobody can tell.
        (fault(FaultKind.TIMEOUT), None),  # the body was sent
        (fault(FaultKind.UNAVAILABLE), None),  # the connection was cut before the answer
        (fault(FaultKind.UNAVAILABLE, 500), None),
        (fault(FaultKind.UNAVAILABLE, 502), None),
        (fault(FaultKind.UNAVAILABLE, 504), None),
        (fault(FaultKind.BAD_RESPONSE, 200), None),  # a 2xx the relay could not read
        (fault(FaultKind.UNAVAILABLE, 503), None),  # a proxy's page: maybe after forwarding
    ],
)
def test_whether_a_failed_create_may_have_been_taken(
    answer: ProviderFault, taken: bool | None
) -> None:
    assert create_was_taken(answer) is taken


def submission(**registration: object) -> Submission:
    return Submission(
        id="smb_1",
        account_id="acc_1",
        task_id="task_1",
        provider="ark",
        state=SubmissionState.UNCERTAIN,
        body_hash="h",
        registration={"model": "m", **registration},
        created_at=T0,
        updated_at=T0,
        lease_until=T0 + timedelta(seconds=70),
    )


def candidate(task_id: str, seconds: float, model: str = "m", **params: object) -> Candidate:
    return Candidate(task_id, T0 + timedelta(seconds=seconds), model, params)


END = T0 + timedelta(seconds=70)


def test_the_one_task_of_the_model_created_in_the_window_is_found() -> None:
    listed = [
        candidate("early", -60),
        candidate("other-model", 1, model="n"),
        candidate("it", 2),
        candidate("late", 200),
    ]
    assert match_submission(submission(), END, listed, frozenset(), 0) == Found("it")


def test_tasks_the_relay_knows_are_not_candidates() -> None:
    listed = [candidate("tracked", 1), candidate("it", 2)]
    assert match_submission(submission(), END, listed, frozenset({"tracked"}), 0) == Found("it")


def test_the_parameters_the_body_set_must_match() -> None:
    sub = submission(params=matched_params({"duration": 5, "seed": 7, "prompt": "ignored"}))
    listed = [candidate("ten", 1, duration=10, seed=7), candidate("it", 2, duration=5, seed=7)]
    assert match_submission(sub, END, listed, frozenset(), 0) == Found("it")


def test_two_matches_or_none_or_rivals_tell_nothing() -> None:
    two = [candidate("a", 1), candidate("b", 2)]
    assert match_submission(submission(), END, two, frozenset(), 0) == NotFound(
        "the provider lists 2 tasks that could be it"
    )
    assert match_submission(submission(), END, [], frozenset(), 0) == NotFound(
        "the provider lists no task that matches it"
    )
    # Another open submission could own the lone match: never hand it to this caller.
    assert isinstance(match_submission(submission(), END, two[:1], frozenset(), 1), NotFound)


def test_values_that_let_the_model_choose_are_not_matched_on() -> None:
    """Ark reports what the model chose, so a body's -1 or "adaptive" never equals it."""
    body = {"seed": -1, "duration": -1, "ratio": "adaptive", "resolution": "720p"}
    assert matched_params(body) == {"resolution": "720p"}
    sub = submission(params=matched_params(body))
    listed = [candidate("it", 2, seed=7, duration=5, ratio="16:9", resolution="720p")]
    assert match_submission(sub, END, listed, frozenset(), 0) == Found("it")


def test_looks_back_off_to_an_hour() -> None:
    assert [(next_look(T0, n) - T0).total_seconds() for n in (0, 1, 2, 30)] == [
        10,
        20,
        40,
        3600,
    ]


def test_a_rival_is_another_submission_whose_model_could_be_the_same() -> None:
    mine = submission()
    assert not is_rival(mine, mine)
    other = replace(mine, id="smb_2")
    assert is_rival(mine, other)
    assert not is_rival(mine, replace(other, registration={"model": "n"}))
    assert is_rival(mine, replace(other, registration={}))  # model unknown: could be
    assert is_rival(replace(mine, registration={}), replace(other, registration={"model": "n"}))
