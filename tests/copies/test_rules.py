"""The pure rules of ``relay.copies.rules``: how a success waits for its copies, what each
try leaves, which event announces the stored video (or goes out without it), deletion."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from relay.copies.rules import CopyPolicy, failed, hold_success, removed, settle, stored
from relay.copies.values import CopyState, OutputCopy, OutputKind, StoredFile
from relay.models import EventType, Task, TaskStatus
from relay.transitions import Change, apply_answer, registered
from tests.test_transitions import PTID, answer, at, ids, new_task

VIDEO = "https://cdn.example.com/v.mp4?X-Tos-Expires=86400"
FRAME = "https://cdn.example.com/f.png"
POLICY = CopyPolicy(wait=60, max_attempts=3, retry_delays=(10, 60))
FILE = StoredFile(1234, "ab" * 32, "video/mp4")


def link(copy: OutputCopy) -> str:
    return f"https://relay.example/v1/outputs/{copy.id}"


def copy_ids() -> Any:
    counter = iter(range(1, 100))
    return lambda: f"out_{next(counter)}"


def succeeded(frame: str | None = FRAME, wait: float = 60) -> tuple[Task, Change]:
    """A running task that the provider reports succeeded, held with ``wait``."""
    running = replace(new_task(), status=TaskStatus.RUNNING, sequence=2)
    change = apply_answer(
        running,
        answer(
            TaskStatus.SUCCEEDED,
            video_url=VIDEO,
            video_url_expires_at=at(86400),
            last_frame_url=frame,
        ),
        at(10),
        ids(),
    )
    return running, hold_success(change, replace(POLICY, wait=wait), at(10), ids(), copy_ids())


def body(change: Change, n: int = 0) -> Any:
    return json.loads(change.events[n].body)


def test_a_success_writes_a_pending_copy_per_file_and_holds_its_event() -> None:
    _, held = succeeded()
    assert held.events == ()
    assert held.task.status is TaskStatus.SUCCEEDED
    assert held.task.sequence == 2  # the held event's number is not used up
    assert held.task.output is not None
    assert held.task.output.status is CopyState.PENDING
    assert [(c.kind, c.state, c.next_attempt_at, c.announce_by) for c in held.copies] == [
        (OutputKind.VIDEO, CopyState.PENDING, at(10), at(70)),
        (OutputKind.LAST_FRAME, CopyState.PENDING, at(10), at(70)),
    ]
    assert held.task.video_url == held.task.provider_video_url == VIDEO


def test_without_a_last_frame_only_the_video_is_copied() -> None:
    _, held = succeeded(frame=None)
    assert [c.kind for c in held.copies] == [OutputKind.VIDEO]


def test_with_no_wait_the_success_goes_out_at_once_with_the_pending_output() -> None:
    _, held = succeeded(wait=0)
    assert [e.type for e in held.events] == [EventType.TASK_SUCCEEDED]
    envelope = body(held)
    data = envelope["data"]
    assert (data["video_url"], data["output"]["status"]) == (VIDEO, "pending")
    assert envelope["relay_notice"]["code"] == "output_pending"
    assert held.task.sequence == 3
    assert all(c.announce_by is None for c in held.copies)


def test_changes_that_are_not_a_success_are_left_as_they_are() -> None:
    change = registered(new_task(), at(0), ids())
    assert hold_success(change, POLICY, at(0), ids(), copy_ids()) is change
    _task, held = succeeded()
    # Saved already: a later change of the succeeded task writes no second set of copies.
    again = Change(replace(held.task, updated_at=at(20)))
    assert hold_success(again, POLICY, at(20), ids(), copy_ids()) is again


def test_stored_copies_announce_the_success_with_the_stable_link() -> None:
    _, held = succeeded()
    video, frame = held.copies
    done = [stored(video, at(12), "a/t/video.mp4", FILE), stored(frame, at(12), "a/t/f.png", FILE)]
    change = settle(held.task, done, at(12), ids(), link)
    assert [e.type for e in change.events] == [EventType.TASK_SUCCEEDED]
    envelope = body(change)
    assert "relay_notice" not in envelope
    data = envelope["data"]
    assert data["video_url"] == link(video)
    assert data["last_frame_url"] == link(frame)
    assert data["video_url_expires_at"] is None
    assert data["provider_video_url"] == VIDEO
    assert data["output"]["status"] == "stored"
    assert data["output"]["video"] == {
        "size": 1234,
        "sha256": "ab" * 32,
        "content_type": "video/mp4",
    }
    assert envelope["sequence"] == 3
    assert change.task.sequence == 3
    assert all(c.announce_by is None for c in change.copies)
    assert change.events[0].url_expires_at is None  # a stored link never needs refreshing


def test_while_the_video_is_pending_before_the_deadline_nothing_is_announced() -> None:
    _, held = succeeded()
    video, frame = held.copies
    change = settle(held.task, [video, stored(frame, at(12), "f", FILE)], at(12), ids(), link)
    assert change.events == ()
    assert change.task.output is not None
    assert change.task.output.status is CopyState.PENDING
    assert change.task.last_frame_url == link(frame)  # the task shows it at once
    assert change.task.video_url == VIDEO


def test_a_pending_last_frame_holds_nothing_back() -> None:
    _, held = succeeded()
    video, frame = held.copies
    frame = failed(frame, at(11), "HTTP 503", POLICY)  # tried again later
    change = settle(held.task, [stored(video, at(12), "k", FILE), frame], at(12), ids(), link)
    envelope = body(change)
    assert envelope["type"] == "task.succeeded"
    assert "relay_notice" not in envelope
    assert envelope["data"]["video_url"] == link(video)
    assert envelope["data"]["last_frame_url"] == FRAME  # the provider's, until stored
    # The frame lands later: its link changes, no event.
    later = settle(
        change.task,
        [change.copies[0], stored(change.copies[1], at(80), "f", FILE)],
        at(80),
        ids(),
        link,
    )
    assert later.events == ()
    assert later.task.last_frame_url == link(frame)


def test_at_the_deadline_the_success_goes_out_with_the_provider_link_and_a_notice() -> None:
    _, held = succeeded()
    change = settle(held.task, list(held.copies), at(70), ids(), link)
    envelope = body(change)
    assert envelope["type"] == "task.succeeded"
    assert envelope["data"]["video_url"] == VIDEO
    assert envelope["relay_notice"]["code"] == "output_pending"
    assert "task.output_stored" in envelope["relay_notice"]["message"]
    assert change.events[0].url_expires_at == at(86400)
    # Later, stored: task.output_stored carries the stable link; nothing announced twice.
    video, frame = change.copies
    later = settle(
        change.task,
        [stored(video, at(99), "k", FILE), stored(frame, at(99), "f", FILE)],
        at(99),
        ids(),
        link,
    )
    assert [e.type for e in later.events] == [EventType.TASK_OUTPUT_STORED]
    assert body(later)["data"]["video_url"] == link(video)
    assert body(later)["sequence"] == 4
    again = settle(later.task, list(later.copies), at(100), ids(), link)
    assert again.events == ()


def test_a_copy_failing_for_good_announces_at_once_with_why() -> None:
    _, held = succeeded(frame=None)
    (video,) = held.copies
    for n, when in enumerate((at(11), at(21), at(81)), 1):
        video = failed(video, when, "the link answered HTTP 403, not the file", POLICY)
        assert video.attempts == n
    assert video.state is CopyState.FAILED
    assert video.next_attempt_at is None
    change = settle(held.task, [video], at(81), ids(), link)
    envelope = body(change)
    assert envelope["relay_notice"]["code"] == "output_not_stored"
    assert "HTTP 403" in envelope["relay_notice"]["message"]
    assert envelope["data"]["output"]["status"] == "failed"
    assert envelope["data"]["video_url"] == VIDEO


@pytest.mark.parametrize(("attempts", "due"), [(1, 10), (2, 60), (3, None)])
def test_failed_tries_are_retried_after_the_policy_delays(attempts: int, due: float | None) -> None:
    _, held = succeeded(frame=None)
    (video,) = held.copies
    for _ in range(attempts):
        video = failed(video, at(100), "cut", POLICY)
    expected = None if due is None else at(100 + due)
    assert video.next_attempt_at == expected
    assert len(video.tries) == attempts
    assert video.tries[-1].error == "cut"


def test_removal_points_the_task_back_at_the_provider_and_says_when_and_why() -> None:
    _, held = succeeded(frame=None)
    (video,) = held.copies
    announced = settle(held.task, [stored(video, at(12), "k", FILE)], at(12), ids(), link)
    assert announced.task.video_url == link(video)
    gone = removed(
        announced.task, list(announced.copies), {video.id}, at(500), "asked", ids(), link
    )
    assert gone.events == ()
    assert gone.task.video_url == VIDEO
    assert gone.task.video_url_expires_at == at(86400)
    out = gone.task.output
    assert out is not None
    assert (out.status, out.deleted_at, out.deleted_reason) == (CopyState.DELETED, at(500), "asked")
    assert [c.state for c in gone.copies] == [CopyState.DELETED]


def test_removal_while_the_success_waits_announces_it_with_the_provider_link() -> None:
    _, held = succeeded(frame=None)
    gone = removed(held.task, list(held.copies), set(), at(20), "asked", ids(), link)
    envelope = body(gone)
    assert envelope["relay_notice"]["code"] == "output_deleted"
    assert envelope["data"]["video_url"] == VIDEO
    assert envelope["data"]["provider_task_id"] == PTID
