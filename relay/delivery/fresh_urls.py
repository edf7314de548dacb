"""Fresh video URLs for events sent after their URL expired (DESIGN §6).

Provider output URLs are signed links that die (Ark: 24 h), while a delivery may be retried
for three days and redelivered or replayed any time after. Before such a late send the
delivery engine asks here for the body to send: the stored envelope (same ``id``, so
receivers still dedupe) with a URL the provider hands out again while it keeps the task,
and a ``relay_notice`` saying what happened either way::

    "relay_notice": {"code": "video_url_refreshed" | "video_url_expired", "message": "…"}

The event itself stays as written (events are immutable); the task takes the fresh URL, so
the next late send of any of its events reuses it without asking the provider again.
When the task's video is stored (``relay.copies``), the stored copy's stable link is the
fresh URL: it works after the provider forgot the task. The copier asks here too, for a
live provider link to copy from (``provider_links``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from relay.clock import Clock
from relay.copies.values import CopyState
from relay.models import DueDelivery, Task, TaskStatus, iso
from relay.polling.schedule import is_past_max_age
from relay.provider_answers import ProviderTask
from relay.store.interface import TaskStore
from relay.tasks.registration import ProviderPlan
from relay.transitions import Change

log = logging.getLogger("relay.outputs")

_FETCHED_MAX = 10_000
MARGIN = timedelta(seconds=60)
"""A URL that dies within this is as good as dead: the receiver still has to download it."""


@dataclass(frozen=True, slots=True)
class Links:
    video_url: str
    expires_at: datetime | None
    last_frame_url: str | None


def _stored_links(task: Task | None) -> Links | None:
    """The stored copy's links of ``task``, once its video is stored."""
    if (
        task is None
        or task.output is None
        or task.output.status is not CopyState.STORED
        or task.video_url is None
        or task.video_url_expires_at is not None
    ):
        return None
    return Links(task.video_url, None, task.last_frame_url)


class OutputRefresher:
    def __init__(
        self,
        *,
        store: TaskStore,
        providers: Mapping[str, ProviderPlan],
        clock: Clock,
        outputs_stored: bool = False,
    ) -> None:
        """``outputs_stored``: outputs are copied (``outputs.store``), so an event that went
        out with the provider's link may have a stored copy to send instead."""
        self._store = store
        self._outputs_stored = outputs_stored
        self._providers = providers
        self._clock = clock
        self._asking: dict[str, asyncio.Future[tuple[Links | None, str]]] = {}
        self._fetched: dict[str, Links] = {}
        """Fresh outputs by task, for sends that read the task before it was updated."""

    def needs_refresh(self, d: DueDelivery, now: datetime) -> bool:
        """Whether ``d``'s body may need another link: its event carries the provider's
        link, which has expired, or (outputs on) may have a stored copy by now."""
        return d.url_expires_at is not None and (
            self._outputs_stored or d.url_expires_at <= now + MARGIN
        )

    async def body_for(self, d: DueDelivery) -> str:
        """The envelope to send for ``d``, whose event carries the provider's link: with
        the stored copy's link once there is one, a fresh provider link once it expired,
        else as written."""
        task = None
        if d.task_id is not None:
            task = await self._store.get_task(d.account_id, d.task_id)
        stored = _stored_links(task)
        expires = iso(d.url_expires_at)
        if stored is not None:
            output, why = stored, ""
            said = f"the video_url of this event was the provider's link (expiring at {expires})"
        elif d.url_expires_at is not None and d.url_expires_at > self._clock.now() + MARGIN:
            return d.body  # the provider's link still works
        else:
            said = f"the video_url of this event expired at {expires}"
            if task is None:
                output, why = None, "the task is no longer stored"
            else:
                output, why = await self.provider_links(task)
        envelope: dict[str, Any] = json.loads(d.body)
        data = envelope.get("data")
        if output is not None and isinstance(data, dict):
            data.update(
                video_url=output.video_url,
                video_url_expires_at=iso(output.expires_at),
                last_frame_url=output.last_frame_url,
            )
            source = (
                "is the relay's stored copy"
                if output.expires_at is None
                else "was fetched from the provider again"
            )
            envelope["relay_notice"] = {
                "code": "video_url_refreshed",
                "message": f"{said}; this one {source}",
            }
        else:
            envelope["relay_notice"] = {
                "code": "video_url_expired",
                "message": f"{said} and no fresh one could be fetched: {why}",
            }
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)

    async def provider_links(self, task: Task) -> tuple[Links | None, str]:
        """The provider's links to the task's files, live for at least ``MARGIN``: as the
        task has them, or asked for again; else None and why not."""
        now = self._clock.now()
        if (
            task.provider_video_url is not None
            and task.provider_video_url_expires_at is not None
            and task.provider_video_url_expires_at > now + MARGIN
        ):
            return (
                Links(
                    task.provider_video_url,
                    task.provider_video_url_expires_at,
                    task.provider_last_frame_url,
                ),
                "",
            )
        fetched = self._fetched.get(task.id)
        if fetched is not None and (
            fetched.expires_at is None or fetched.expires_at > now + MARGIN
        ):
            return fetched, ""
        # Deliveries of one event to several destinations come due together: one question.
        asking = self._asking.get(task.id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(task))
            self._asking[task.id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(task.id, None))
        return await asyncio.shield(asking)

    async def _ask(self, task: Task) -> tuple[Links | None, str]:
        plan = self._providers.get(task.provider)
        if plan is None:
            return None, f"provider {task.provider!r} is no longer configured"
        if task.provider_task_id is None:
            return None, "the task has no provider task id"
        now = self._clock.now()
        if is_past_max_age(task.created_at, now, plan.retention):
            return None, (
                f"the provider keeps tasks {plan.retention / 86400:g} days and this one is older"
            )
        answer = await plan.client.query(task.provider_task_id)
        if not isinstance(answer, ProviderTask):
            return None, f"the provider did not answer ({answer.message})"
        if answer.status is not TaskStatus.SUCCEEDED or answer.video_url is None:
            return None, "the provider no longer reports a video for this task"
        if answer.video_url_expires_at is not None and answer.video_url_expires_at <= now:
            return None, "the provider only hands out the same expired URL"
        output = Links(answer.video_url, answer.video_url_expires_at, answer.last_frame_url)
        if len(self._fetched) >= _FETCHED_MAX:
            self._fetched.clear()
        self._fetched[task.id] = output
        updated = replace(
            task,
            provider_video_url=output.video_url,
            provider_video_url_expires_at=output.expires_at,
            provider_last_frame_url=output.last_frame_url,
            updated_at=now,
        )
        if task.output is None or task.output.status is not CopyState.STORED:
            updated = replace(
                updated, video_url=output.video_url, video_url_expires_at=output.expires_at
            )
        if task.output is None or task.output.last_frame is None:
            updated = replace(updated, last_frame_url=output.last_frame_url)
        # No event: the status did not change. A lost race only means a later send asks again.
        if not await self._store.save_task(Change(updated), task.version):
            log.info(
                "task %s changed while its video URL was refreshed",
                task.id,
                extra={"task_id": task.id, "provider": task.provider},
            )
        return output, ""
