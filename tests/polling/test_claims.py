"""How many polls the tracker claims per provider (``relay.polling.claims``)."""

from __future__ import annotations

import pytest

from relay.polling.claims import MAX_WAIT, ClaimBook, polls_ahead


def test_polls_ahead_is_what_a_provider_can_begin_within_half_a_second() -> None:
    assert polls_ahead(32, 1000.0) == 32 + 500
    assert polls_ahead(8, 10.0) == 8 + 5
    assert polls_ahead(8, None) == 16


@pytest.mark.parametrize(
    ("concurrency", "rps"),
    [(8, 1000.0), (32, 1000.0), (8, 1.0), (32, 0.5), (32, 0.2), (8, 0.05), (64, 0.5)],
)
def test_what_a_provider_holds_claimed_begins_well_within_the_lease(
    concurrency: int, rps: float
) -> None:
    ahead = polls_ahead(concurrency, rps)
    # The budget begins one poll every 1 / rps s: the last of those claimed together begins
    # (ahead - 1) / rps s after the claim; past the lease (120 s), another instance would
    # claim it too.
    assert ahead >= 1
    assert (ahead - 1) / rps <= MAX_WAIT


def test_a_claim_asks_for_the_room_each_provider_has_up_to_a_batch() -> None:
    book = ClaimBook({"ark": 10, "mirror": 300}, batch=200)
    assert book.limits() == {"ark": 10, "mirror": 200}
    assert book.claimed({"ark": 10, "mirror": 200}, {"ark": 4, "mirror": 200})
    # ark took less than it asked (nothing more is due); mirror still has 100 of room.
    assert book.limits() == {"ark": 6, "mirror": 100}
    assert not book.claimed({"ark": 6, "mirror": 100}, {"ark": 0, "mirror": 100})
    assert book.limits() == {"ark": 6}
    assert (book.held("ark"), book.held("mirror")) == (4, 300)


def test_a_finished_poll_asks_for_a_claim_once_half_the_room_is_free() -> None:
    book = ClaimBook({"ark": 8}, batch=200)
    book.claimed({"ark": 8}, {"ark": 8})  # took all it asked: more may be due
    assert [book.finished("ark") for _ in range(5)] == [False, False, False, True, False]
    assert book.limits() == {"ark": 5}


def test_no_claim_is_asked_for_when_the_last_one_found_nothing_more_due() -> None:
    book = ClaimBook({"ark": 8}, batch=200)
    book.claimed({"ark": 8}, {"ark": 6})
    assert not any(book.finished("ark") for _ in range(6))
    assert book.limits() == {"ark": 8}


def test_providers_found_in_the_database_are_claimed_for_too() -> None:
    book = ClaimBook({"ark": 8}, batch=50)
    book.add({"ark", "gone"}, 50)
    assert book.limits() == {"ark": 8, "gone": 50}
    assert not book.finished("unknown")  # a poll no claim made (a refresh) changes nothing


def test_a_claim_that_found_all_it_asked_means_more_may_be_due_even_if_some_only_renewed() -> None:
    book = ClaimBook({"ark": 4}, batch=200)
    # Four due, one of them a poll still under way here (its lease renewed, not a new poll).
    assert book.claimed({"ark": 4}, got={"ark": 3}, found={"ark": 4})
    assert book.limits() == {"ark": 1}
