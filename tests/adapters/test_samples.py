"""Every response sample on the five provider pages, and every answer shape DIALECTS §1 and §2
list, normalized by the dialect that meets it, compared in full with what the relay must
make of it.

Page samples are verbatim copies (their placeholder URLs and ids included) under
``samples/<provider>/``; the Ark-dialect ones were already kept in ``samples/ark/``.
The DIALECTS shapes, which no page shows, are captured-style bodies in ``samples/unified/``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.adapters.ark import ArkDialect
from relay.adapters.base import CancelAccepted, Created, Dialect, HttpReply
from relay.adapters.seedance2ink import Seedance2InkDialect
from relay.adapters.unified import UnifiedDialect
from relay.models import ErrorCode, TaskError, TaskStatus
from relay.provider_answers import ProviderFault, ProviderTask

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 6, 6, 8, 5, 0, tzinfo=UTC)
ARK = ArkDialect()
UNIFIED = UnifiedDialect()
INK = Seedance2InkDialect()

Q, R, S, F = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED

NACI = "cgt-20260330164007-wnc8k"
NACI_MODEL = "doubao-seedance-2-0-260128"
NACI_VIDEO = "https://example.com/generated-video.mp4"
NACI_FRAME = "https://example.com/last-frame.png"
APIYI = "cgt-20260606160057-6bbjd"
APIYI_MODEL = "doubao-seedance-2-0-fast-260128"
CUBIC = "task_xxx"
CUBIC_MODEL = "doubao-seedance-2.0"
INK_ID = "req_1234567890"

PUBLIC = "task_Qm4c9ZbT1xWv8rKp2LhN5sDy7uEa3fGj"
"""The captured-style bodies' gateway id; their upstream id is ``APIYI``."""
TOS = (
    "https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/doubao-seedance-2-0/"
    f"{APIYI}/video.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Credential=AKLT%2F20260606"
    "%2Fcn-beijing%2Ftos%2Frequest&X-Tos-Date=20260606T080311Z&X-Tos-Expires=86400"
    "&X-Tos-Signature=5e1f&X-Tos-SignedHeaders=host"
)
TOS_EXPIRES = datetime(2026, 6, 7, 8, 3, 11, tzinfo=UTC)
"""X-Tos-Date 08:03:11 + 86400 s; also the captured bodies' ``updated_at`` + 24 h."""
PROXY = f"https://api.gateway.example/v1/videos/{PUBLIC}/content"
ARK_USAGE = {"completion_tokens": 108900, "total_tokens": 108900}


@dataclass(frozen=True)
class Sample:
    name: str
    dialect: Dialect
    file: str
    expected: Created | ProviderTask | CancelAccepted | ProviderFault
    query_id: str | None = None
    """The id asked for; None means the body answers a create."""
    cancel: bool = False


task = ProviderTask

NACI_RAW = task(
    NACI,
    S,
    "succeeded",
    model=NACI_MODEL,
    video_url=NACI_VIDEO,
    video_url_expires_at=datetime(2026, 3, 31, 8, 41, 28, tzinfo=UTC),
    last_frame_url=NACI_FRAME,
    usage={"completion_tokens": 13987, "total_tokens": 15000},
    resolution="720p",
    ratio="16:9",
    duration=11,
    fps=30,
    seed=1345,
)
"""The raw Ark task of the naci page, as the Ark normalizer reads it."""

PAGE_SAMPLES = [
    # 000 naci: unified gateway with show_raw/show_usage and raw=true.
    Sample(
        "naci/create",
        UNIFIED,
        "naci/create.json",
        Created(NACI, task(NACI, Q, "queued", progress=0, model=NACI_MODEL)),
    ),
    Sample(
        "naci/wrapped show_raw+show_usage",
        UNIFIED,
        "naci/wrapped_show_raw_show_usage.json",
        replace(
            NACI_RAW,
            raw_status="SUCCESS",
            progress=100,
            usage={
                "completion_tokens": 13987,
                "total_tokens": 15000,
                "completion_details": {"video_durations": 11, "video_tokens": 15000},
            },
        ),
        NACI,
    ),
    Sample(
        "naci/flat completed (example.com url: no known expiry)",
        UNIFIED,
        "naci/flat_completed.json",
        task(NACI, S, "completed", progress=100, model=NACI_MODEL, video_url=NACI_VIDEO),
        NACI,
    ),
    Sample("naci/raw=true", UNIFIED, "ark/naci_raw_succeeded.json", NACI_RAW, NACI),
    # 001 apiyi: Ark mirror.
    Sample("apiyi/create", ARK, "ark/apiyi_create.json", Created(APIYI)),
    Sample(
        "apiyi/create (code example)",
        ARK,
        "ark/apiyi_create_example.json",
        Created("cgt-2026xxxx-xxxxx"),
    ),
    Sample(
        "apiyi/succeeded",
        ARK,
        "ark/apiyi_succeeded.json",
        task(
            APIYI,
            S,
            "succeeded",
            model=APIYI_MODEL,
            video_url="https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/....mp4"
            "?X-Tos-Expires=86400&...",
            video_url_expires_at=TOS_EXPIRES,
            usage=ARK_USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        APIYI,
    ),
    # 002 vastnum: unified, raw Ark result nested at data.data.result.
    Sample("vastnum/create", UNIFIED, "vastnum/create.json", Created("task_id")),
    Sample(
        "vastnum/wrapped with data.data.result",
        UNIFIED,
        "vastnum/wrapped_succeeded.json",
        task(
            "task_id",
            S,
            "SUCCESS",
            progress=100,
            model=NACI_MODEL,
            video_url="video download URL",
            video_url_expires_at=datetime(2026, 4, 4, 3, 52, 4, tzinfo=UTC),
            usage={"total_tokens": 99111, "completion_tokens": 99111},
            resolution="480p",
            ratio="4:3",
            duration=5,
            fps=24,
            seed=40141,
        ),
        "task_id",
    ),
    # 003 cubicspaces: unified create and the Ark-compatible API.
    Sample(
        "cubicspaces/unified create",
        UNIFIED,
        "cubicspaces/unified_create.json",
        Created("video_xxx", task("video_xxx", Q, "queued", progress=0, model=CUBIC_MODEL)),
    ),
    Sample(
        "cubicspaces/ark create (running)",
        ARK,
        "ark/cubicspaces_create.json",
        Created(CUBIC, task(CUBIC, R, "running", model=CUBIC_MODEL)),
    ),
    Sample(
        "cubicspaces/ark running",
        ARK,
        "ark/cubicspaces_running.json",
        task(CUBIC, R, "running", model=CUBIC_MODEL),
        CUBIC,
    ),
    Sample(
        "cubicspaces/ark succeeded",
        ARK,
        "ark/cubicspaces_succeeded.json",
        task(
            CUBIC,
            S,
            "succeeded",
            model=CUBIC_MODEL,
            video_url=NACI_VIDEO,
            video_url_expires_at=datetime(2026, 2, 3, 2, 50, tzinfo=UTC),
        ),
        CUBIC,
    ),
    Sample(
        "cubicspaces/ark failed (task_failed)",
        ARK,
        "ark/cubicspaces_failed.json",
        task(
            CUBIC,
            F,
            "failed",
            model=CUBIC_MODEL,
            error=TaskError(
                ErrorCode.CONTENT_POLICY,
                "The request failed because the output video may be "
                "related to policy restrictions.",
                False,
                "task_failed",
            ),
        ),
        CUBIC,
    ),
    # 004 seedance2.ink: its own API.
    Sample(
        "seedance2ink/create",
        INK,
        "seedance2ink/create.json",
        Created(INK_ID, task(INK_ID, Q, "queued", usage={"creditsCharged": 40})),
    ),
    Sample(
        "seedance2ink/succeeded (r2.dev url: no known expiry)",
        INK,
        "seedance2ink/succeeded.json",
        task(
            INK_ID,
            S,
            "succeeded",
            model="seedance-2.0",
            video_url="https://pub-your-bucket.r2.dev/open-api-results/req_1234567890.mp4",
            ratio="16:9",
            duration=5,
        ),
        INK_ID,
    ),
    Sample(
        "seedance2ink/processing",
        INK,
        "seedance2ink/processing.json",
        task(INK_ID, R, "processing", model="seedance-2.0", ratio="16:9", duration=5),
        INK_ID,
    ),
    Sample(
        "seedance2ink/failed",
        INK,
        "seedance2ink/failed.json",
        task(
            INK_ID,
            F,
            "failed",
            model="seedance-2.0",
            ratio="16:9",
            duration=5,
            error=TaskError(
                ErrorCode.PROVIDER_ERROR,
                "Video generation failed upstream",
                False,
                "provider_error",
            ),
        ),
        INK_ID,
    ),
    Sample(
        "seedance2ink/cancel",
        INK,
        "seedance2ink/cancel.json",
        CancelAccepted(
            task(
                INK_ID,
                TaskStatus.CANCELLED,
                "cancelled",
                error=TaskError(
                    ErrorCode.CANCELLED, "the task was cancelled at the provider", False, None
                ),
            )
        ),
        INK_ID,
        cancel=True,
    ),
]

SHAPE_SAMPLES = [
    Sample(
        "new-api/NOT_START, data null",
        UNIFIED,
        "unified/not_start.json",
        task(PUBLIC, Q, "NOT_START", progress=0, model=APIYI_MODEL),
        PUBLIC,
    ),
    Sample(
        "new-api/SUBMITTED over raw queued",
        UNIFIED,
        "unified/submitted.json",
        task(PUBLIC, Q, "SUBMITTED", progress=10, model=APIYI_MODEL),
        PUBLIC,
    ),
    Sample(
        "new-api/IN_PROGRESS over raw running",
        UNIFIED,
        "unified/in_progress.json",
        task(PUBLIC, R, "IN_PROGRESS", progress=50, model=APIYI_MODEL),
        PUBLIC,
    ),
    Sample(
        "new-api/IN_PROGRESS, raw expired wins",
        UNIFIED,
        "unified/in_progress_raw_expired.json",
        task(
            PUBLIC,
            TaskStatus.EXPIRED,
            "expired",
            progress=30,
            error=TaskError(
                ErrorCode.EXPIRED, "the provider expired the task before it finished", True, None
            ),
            model=APIYI_MODEL,
        ),
        PUBLIC,
    ),
    Sample(
        "new-api/IN_PROGRESS, raw cancelled wins",
        UNIFIED,
        "unified/in_progress_raw_cancelled.json",
        task(
            PUBLIC,
            TaskStatus.CANCELLED,
            "cancelled",
            progress=30,
            error=TaskError(
                ErrorCode.CANCELLED, "the task was cancelled at the provider", False, None
            ),
            model=APIYI_MODEL,
        ),
        PUBLIC,
    ),
    Sample(
        "new-api/FAILURE timeout over raw running",
        UNIFIED,
        "unified/failure_timeout_raw_running.json",
        task(
            PUBLIC,
            F,
            "FAILURE",
            progress=100,
            resolution="720p",
            ratio="16:9",
            duration=5,
            seed=97151,
            error=TaskError(ErrorCode.TIMEOUT, "任务超时（1440分钟）", True, None),  # noqa: RUF001
            model=APIYI_MODEL,
        ),
        PUBLIC,
    ),
    Sample(
        "new-api/UNKNOWN",
        UNIFIED,
        "unified/unknown.json",
        task(PUBLIC, None, "UNKNOWN", model=APIYI_MODEL),
        PUBLIC,
    ),
    Sample(
        "new-api/OpenAI-video unknown",
        UNIFIED,
        "unified/openai_unknown.json",
        task(PUBLIC, None, "unknown", progress=0, model="seedance-2.0-fast"),
        PUBLIC,
    ),
    Sample(
        "new-api/simple format succeeded (proxy url)",
        UNIFIED,
        "unified/simple_succeeded.json",
        task(PUBLIC, S, "succeeded", video_url=PROXY),
        PUBLIC,
    ),
    Sample(
        "new-api/simple format processing",
        UNIFIED,
        "unified/simple_processing.json",
        task(PUBLIC, R, "processing"),
        PUBLIC,
    ),
    Sample(
        "ctyun/pending (raw=true)",
        UNIFIED,
        "unified/ctyun_pending.json",
        task(APIYI, Q, "pending", model=APIYI_MODEL),
        APIYI,
    ),
    Sample(
        "ctyun/pending (ark)",
        ARK,
        "unified/ctyun_pending.json",
        task(APIYI, Q, "pending", model=APIYI_MODEL),
        APIYI,
    ),
    Sample(
        "ark-compatible/processing (ark)",
        ARK,
        "unified/processing.json",
        task(APIYI, R, "processing", model=APIYI_MODEL),
        APIYI,
    ),
    Sample(
        "new-api/legacy url in fail_reason",
        UNIFIED,
        "unified/legacy_url_in_fail_reason.json",
        task(APIYI, S, "SUCCESS", progress=100, video_url=TOS, video_url_expires_at=TOS_EXPIRES),
        APIYI,
    ),
    Sample(
        "new-api/result_url on TOS: 24 h from finish_time",
        UNIFIED,
        "unified/result_url.json",
        task(
            PUBLIC,
            S,
            "SUCCESS",
            progress=100,
            model=APIYI_MODEL,
            video_url="https://ark-acg-cn-beijing.tos-cn-beijing.volces.com/"
            "doubao-seedance-2-0/video.mp4?X-Tos-Expires=86400&X-Tos-Signature=5e1f",
            video_url_expires_at=TOS_EXPIRES,
        ),
        PUBLIC,
    ),
    Sample(
        "new-api/gateway proxy url: no known expiry",
        UNIFIED,
        "unified/gateway_proxy_url.json",
        task(PUBLIC, S, "SUCCESS", progress=100, model=APIYI_MODEL, video_url=PROXY),
        PUBLIC,
    ),
    Sample(
        "new-api/gateway behind a gateway (d.data.data)",
        UNIFIED,
        "unified/nested_gateway.json",
        task(
            PUBLIC,
            S,
            "SUCCESS",
            progress=100,
            model=APIYI_MODEL,
            video_url=TOS,
            video_url_expires_at=TOS_EXPIRES,
            usage=ARK_USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        PUBLIC,
    ),
    Sample(
        "ark/list {total, items} (unified)",
        UNIFIED,
        "unified/ark_list.json",
        task(
            APIYI,
            S,
            "succeeded",
            model=APIYI_MODEL,
            video_url=TOS,
            video_url_expires_at=TOS_EXPIRES,
            usage=ARK_USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        APIYI,
    ),
    Sample(
        "ark/list {total, items} (ark)",
        ARK,
        "unified/ark_list.json",
        task(
            APIYI,
            S,
            "succeeded",
            model=APIYI_MODEL,
            video_url=TOS,
            video_url_expires_at=TOS_EXPIRES,
            usage=ARK_USAGE,
            resolution="720p",
            ratio="16:9",
            duration=5,
            fps=24,
            seed=97151,
        ),
        APIYI,
    ),
]

ALL = PAGE_SAMPLES + SHAPE_SAMPLES


@pytest.mark.parametrize("sample", ALL, ids=[s.name for s in ALL])
def test_sample_normalizes(sample: Sample) -> None:
    reply = HttpReply(
        200, {"content-type": "application/json"}, (SAMPLES / sample.file).read_bytes()
    )
    result: object
    if sample.cancel:
        assert sample.query_id is not None
        result = sample.dialect.parse_cancel(reply, sample.query_id, NOW)
    elif sample.query_id is None:
        result = sample.dialect.parse_create(reply, NOW)
    else:
        result = sample.dialect.parse_query(reply, sample.query_id, NOW)
    assert result == sample.expected


def test_every_sample_file_has_a_case() -> None:
    files = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.json")}
    assert files == {s.file for s in ALL}
