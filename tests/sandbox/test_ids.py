"""Stateless ids: every field round-trips, malformed ids decode to nothing."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.models import TaskStatus
from relay.sandbox.ids import IdStyle, encode_task_id, style_of, with_style
from relay.sandbox.simulation import (
    DEFAULT_MODEL,
    Flavor,
    Outcome,
    SandboxSettings,
    SandboxTask,
    decode_task_id,
    new_task,
    status_at,
    updated_at,
)
from tests.sandbox.ark_support import ID_RE, STANDARD
from tests.sandbox.support import T0


@pytest.mark.parametrize(
    ("prompt", "options"),
    [
        ("plain", {}),
        ("[fail] please", {"model": STANDARD, "resolution": "1080p", "seed": 0}),
        ("[EXPIRE]", {"ratio": "3:4", "duration": 15, "generate_audio": False}),
        (
            "[slow]",
            {
                "resolution": "480p",
                "ratio": "1:1",
                "duration": 4,
                "return_last_frame": True,
                "seed": 2**32 - 1,
            },
        ),
        ("x", {"model": "dreamina-seedance-2-0-260128", "ratio": "4:3"}),
    ],
)
def test_ids_round_trip(prompt: str, options: dict[str, Any]) -> None:
    now = datetime(2026, 6, 6, 23, 59, 59, 123456, tzinfo=UTC)
    settings = SandboxSettings(queued_seconds=1.25, running_seconds=61.5)
    task = new_task(now=now, settings=settings, nonce=0xABCDEF, prompt=prompt, **options)
    assert ID_RE.fullmatch(task.id)
    assert task.id.startswith("cgt-20260607075959-")
    assert task.created_at == datetime(2026, 6, 6, 23, 59, 59, 123000, tzinfo=UTC)
    assert decode_task_id(task.id) == task


def test_unknown_model_round_trips_to_the_default() -> None:
    task = new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x", model="custom")
    assert decode_task_id(task.id) == replace(task, model=DEFAULT_MODEL)


def test_outcome_and_timing_come_from_the_prompt() -> None:
    settings = SandboxSettings(queued_seconds=2, running_seconds=6)
    failed = new_task(now=T0, settings=settings, nonce=1, prompt="X [Fail] [expire]")
    slow = new_task(now=T0, settings=settings, nonce=1, prompt="[SLOW] [expire]")
    assert (failed.outcome, failed.running_seconds) == (Outcome.FAILED, 6)
    assert (slow.outcome, slow.running_seconds) == (Outcome.EXPIRED, 30)
    assert status_at(slow, T0 + timedelta(seconds=31.999)) is TaskStatus.RUNNING
    assert status_at(slow, T0 + timedelta(seconds=32)) is TaskStatus.EXPIRED
    assert updated_at(slow, T0 + timedelta(seconds=1)) == T0
    assert updated_at(slow, T0 + timedelta(seconds=3)) == T0 + timedelta(seconds=2)
    assert updated_at(slow, T0 + timedelta(days=1)) == T0 + timedelta(seconds=32)


def test_same_millisecond_tasks_get_distinct_ids_and_seeds() -> None:
    one = new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x")
    two = new_task(now=T0, settings=SandboxSettings(), nonce=2, prompt="x")
    assert one.id != two.id
    assert one.seed != two.seed
    assert new_task(now=T0, settings=SandboxSettings(), nonce=1, prompt="x") == one


def _flip(task_id: str, index: int) -> str:
    char = "b" if task_id[index] != "b" else "c"
    return task_id[:index] + char + task_id[index + 1 :]


def test_malformed_ids_decode_to_none() -> None:
    good = new_task(now=T0, settings=SandboxSettings(), nonce=9, prompt="x").id
    assert isinstance(decode_task_id(good), SandboxTask)
    bad = [
        "",
        good.upper(),
        good + "a",
        good[:-1],
        good.replace("cgt-", "cgx-"),
        good.replace("-20260606", "-20260605"),  # timestamp disagrees with the payload
        _flip(good, len(good) - 1),
        _flip(good, 19),
        good[:19] + "1" * 40,  # not base32
    ]
    assert [decode_task_id(task_id) for task_id in bad] == [None] * len(bad)


@pytest.mark.parametrize(("queued", "running"), [(-1, 6), (2, -0.5), (2, 10 * 86400)])
def test_settings_out_of_range_are_refused(queued: float, running: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        SandboxSettings(queued_seconds=queued, running_seconds=running)


# -- styles and flavors ---------------------------------------------------------------------

STYLE_RES = {
    IdStyle.CGT: ID_RE,
    IdStyle.TASK: re.compile(r"task_[0-9A-Za-z]{34}"),
    IdStyle.VIDEO: re.compile(r"video_[0-9A-Za-z]{34}"),
    IdStyle.REQ: re.compile(r"req_[0-9A-Za-z]{34}"),
}


@pytest.mark.parametrize("style", list(IdStyle))
@pytest.mark.parametrize("flavor", list(Flavor))
def test_every_flavor_and_style_round_trips(flavor: Flavor, style: IdStyle) -> None:
    task = new_task(
        now=T0,
        settings=SandboxSettings(1.5, 7.25),
        nonce=0xFFFFFF,
        prompt="[slow]",
        model="seedance-1.5-pro",
        resolution="1080p",
        ratio="21:9",
        duration=15,
        seed=2**32 - 1,
        generate_audio=False,
        return_last_frame=True,
        watermark=True,
        has_images=True,
        flavor=flavor,
        style=style,
    )
    assert STYLE_RES[style].fullmatch(task.id)
    assert decode_task_id(task.id) == task
    assert (task.flavor, task.nonce, task.watermark, task.has_images) == (
        flavor,
        0xFFFFFF,
        True,
        True,
    )


def test_an_id_moved_to_another_style_is_refused() -> None:
    task = new_task(
        now=T0,
        settings=SandboxSettings(),
        nonce=5,
        prompt="x",
        flavor=Flavor.VASTNUM,
        style=IdStyle.TASK,
    )
    moved = "video_" + task.id.removeprefix("task_")
    assert decode_task_id(moved) is None
    upstream = with_style(task, IdStyle.CGT)
    assert upstream.id.startswith("cgt-20260606160057-")
    assert decode_task_id(upstream.id) == upstream
    assert encode_task_id(upstream, IdStyle.TASK) == task.id


@pytest.mark.parametrize(
    "task_id",
    [
        "task_",
        "task_" + "0" * 33,
        "task_" + "!" * 34,
        "req_" + "z" * 34,
        "video_" + "Z" * 34,
        "other_" + "a" * 34,
    ],
)
def test_malformed_base62_ids_decode_to_none(task_id: str) -> None:
    assert decode_task_id(task_id) is None


def test_style_of() -> None:
    assert [style_of(x) for x in ("cgt-1", "task_1", "video_1", "req_1", "job_1")] == [
        IdStyle.CGT,
        IdStyle.TASK,
        IdStyle.VIDEO,
        IdStyle.REQ,
        None,
    ]
