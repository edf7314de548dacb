"""The unified dialect: ``/v1/video/generations`` of new-api-style gateways (naci, vastnum,
cubicspaces' unified API; DIALECTS §1 to §5).

One gateway answers the same task in several shapes, chosen by query flags, build and
reseller, so a reply is read by its shape, never by the path asked (DIALECTS §5.1):
``{"code": …}`` envelopes (wrapped ``TaskDto``, simple realtime format, or a gateway error
such as ``task_not_exist`` in a 2xx), Ark lists ``{"total","items"}``, the OpenAI-video
object, and bare Ark tasks (``raw=true``). The shapes themselves are normalized in
``relay.adapters.unified_shapes``.

Task ids: a gateway names a task by its own public id (``task_…``, ``video_…``) and, in
the nested raw, by the upstream's ``cgt-…`` id, and it resolves either on lookup. An answer
is refused as another task's only when it names no id equal to the one asked for and at
least one id of the same kind (upstream ``cgt-`` or gateway) that differs. Answers carry
the id asked for, since that is the handle the relay keeps polling with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

from relay.adapters.ark import ark_id_created_at, normalize_ark_task
from relay.adapters.base import CancelAccepted, Created, HttpCall, HttpReply
from relay.adapters.common import (
    NOT_FOUND_CODES,
    as_mapping,
    bad_response,
    code_matches,
    decode_json,
    empty_to_none,
    http_fault,
    is_success,
    not_an_object,
    provider_error_fields,
)
from relay.adapters.unified_shapes import (
    normalize_openai_video,
    normalize_simple,
    normalize_task_dto,
    task_dto_ids,
)
from relay.models import TaskStatus
from relay.provider_answers import FaultKind, ProviderFault, ProviderTask
from relay.submissions import Candidate

GENERATIONS_PATH: Final = "/v1/video/generations"

SHOW_RAW_AND_USAGE: Final[Mapping[str, str]] = MappingProxyType(
    {"show_raw": "true", "show_usage": "true"}
)
"""naci's query flags: the wrapped answer then carries the raw Ark task and usage (R0)."""

_NO_PARAMS: Final[Mapping[str, str]] = MappingProxyType({})
_UPSTREAM_ID_PREFIX = "cgt-"
_MAX_EMBEDDING = 3
# Statuses only the OpenAI-video object uses; queued/failed are shared with bare Ark tasks.
_OPENAI_ONLY_STATUSES = frozenset({"in_progress", "completed", "unknown"})


def _embedded_error(message: str | None) -> tuple[str | None, str | None] | None:
    """``(code, message)`` of an upstream error body that a gateway passed on as its string
    ``message`` (new-api's ``fail_to_fetch_task`` carries the upstream body verbatim); None
    when the message is plain text. Unwraps gateways behind gateways."""
    found: tuple[str | None, str | None] | None = None
    for _ in range(_MAX_EMBEDDING):
        text = (message or "").strip()
        if not text.startswith("{"):
            break
        try:
            inner = json.loads(text)
        except (ValueError, RecursionError):
            break
        code, message = provider_error_fields(inner)
        if code is None and message is None:
            break
        found = (code or (found[0] if found else None), message)
    return found


def gateway_fault(reply: HttpReply, now: datetime) -> ProviderFault:
    """Classify a non-2xx gateway reply, with the upstream's own code and words when they
    are embedded (DIALECTS §4: ``task_not_exist`` on 400, ``model_not_found`` on 503, …)."""
    code, message = provider_error_fields(decode_json(reply.body))
    embedded = _embedded_error(message)
    if embedded is not None:
        code, message = embedded[0] or code, embedded[1] or message
    return http_fault(reply, now, code=code, message=message)


def _envelope_error(reply: HttpReply, obj: Mapping[str, Any]) -> ProviderFault:
    """A ``{"code": not success, …}`` envelope in a 2xx."""
    code, message = provider_error_fields(obj)
    text = f"provider answered HTTP {reply.status_code} with an error"
    if code:
        text += f" [{code}]"
    if message:
        text += f": {message}"
    if code_matches(code, NOT_FOUND_CODES):
        return ProviderFault(FaultKind.NOT_FOUND, False, text, reply.status_code, code)
    return bad_response(text, status_code=reply.status_code, provider_code=code)


def _shape(obj: Mapping[str, Any]) -> str:
    """Which shape a 2xx body is (DIALECTS §5.1): envelope, simple, list, openai, ark, none."""
    if isinstance(obj.get("code"), str) and "status" not in obj and "object" not in obj:
        data = as_mapping(obj.get("data"))
        if data is not None and "format" in data and "url" in data:
            return "simple"
        return "envelope"
    if "id" not in obj and isinstance(obj.get("items"), list):
        return "list"
    status = obj.get("status")
    if (
        obj.get("object") == "video"
        or "progress" in obj
        or "task_id" in obj
        or (isinstance(status, str) and status.strip().lower() in _OPENAI_ONLY_STATUSES)
    ):
        return "openai"
    if "id" in obj or "status" in obj:
        return "ark"
    return "none"


def _is_upstream(task_id: str) -> bool:
    return task_id.lower().startswith(_UPSTREAM_ID_PREFIX)


def _other_task(reply: HttpReply, asked: str, named: Sequence[str]) -> ProviderFault | None:
    if not named or asked in named:
        return None
    if all(_is_upstream(i) != _is_upstream(asked) for i in named):
        # A gateway id asked, only upstream ids answered (or the reverse): the gateway
        # mapped one to the other, which the relay cannot check.
        return None
    return bad_response(
        f"provider answered with task {', '.join(map(repr, named))} when asked for {asked!r}",
        status_code=reply.status_code,
    )


def _ids(*values: object) -> list[str]:
    return [i for i in map(empty_to_none, values) if i is not None]


def _no_task(reply: HttpReply, obj: Mapping[str, Any]) -> ProviderFault:
    code, message = provider_error_fields(obj)
    if "error" in obj and (code is not None or message is not None):
        # Some gateways wrap refusals in a 2xx; keep their words rather than "no id".
        text = f"provider answered HTTP {reply.status_code} with an error"
        text += f" [{code}]" if code else ""
        text += f": {message}" if message else ""
        return bad_response(text, status_code=reply.status_code, provider_code=code)
    return bad_response(
        f"provider answered HTTP {reply.status_code} without a task", status_code=reply.status_code
    )


def read_task(
    reply: HttpReply, obj: Mapping[str, Any], provider_task_id: str, now: datetime
) -> ProviderTask | ProviderFault:
    """A 2xx body about ``provider_task_id``, whichever shape the gateway chose."""
    shape = _shape(obj)
    if shape in ("envelope", "simple"):
        code = str(obj.get("code")).strip().lower()
        data = as_mapping(obj.get("data"))
        if code != "success":
            return _envelope_error(reply, obj)
        if data is None:
            return bad_response(
                f"provider answered HTTP {reply.status_code} with success but no task",
                status_code=reply.status_code,
            )
        if shape == "simple":
            named = _ids(data.get("task_id"))
            task = normalize_simple(data, provider_task_id, now)
        else:
            named = task_dto_ids(data)
            task = normalize_task_dto(data, provider_task_id, now)
    elif shape == "list":
        return _pick_from_list(reply, obj["items"], provider_task_id, now)
    elif shape == "openai":
        named = _ids(obj.get("id"), obj.get("task_id"))
        task = normalize_openai_video(obj, provider_task_id, now)
    elif shape == "ark":
        named = _ids(obj.get("id"))
        task = replace(normalize_ark_task(obj, now), provider_task_id=provider_task_id)
    else:
        return _no_task(reply, obj)
    return _other_task(reply, provider_task_id, named) or task


def _pick_from_list(
    reply: HttpReply, items: list[Any], provider_task_id: str, now: datetime
) -> ProviderTask | ProviderFault:
    for item in items:
        entry = as_mapping(item)
        if entry is not None and entry.get("id") == provider_task_id:
            return normalize_ark_task(entry, now)
    return ProviderFault(
        kind=FaultKind.NOT_FOUND,
        retryable=False,
        message=f"task {provider_task_id!r} is not in the provider's task list",
        status_code=reply.status_code,
    )


def read_created(
    reply: HttpReply, obj: Mapping[str, Any], now: datetime
) -> Created | ProviderFault:
    """A 2xx create answer: the OpenAI-video object, ``{"task_id"}`` of older builds and
    vastnum, a wrapped ``TaskDto``, or a bare Ark ``{"id"}``."""
    shape = _shape(obj)
    if shape == "envelope":
        data = as_mapping(obj.get("data"))
        if str(obj.get("code")).strip().lower() != "success":
            return _envelope_error(reply, obj)
        task_id = empty_to_none((data or {}).get("task_id"))
        if data is None or task_id is None:
            return _no_task(reply, obj)
        says = data.get("status") is not None
        return Created(task_id, normalize_task_dto(data, task_id, now) if says else None)
    if shape == "openai":
        task_id = empty_to_none(obj.get("id")) or empty_to_none(obj.get("task_id"))
        if task_id is None:
            return _no_task(reply, obj)
        says = obj.get("status") is not None
        return Created(task_id, normalize_openai_video(obj, task_id, now) if says else None)
    task_id = empty_to_none(obj.get("id")) if shape == "ark" else None
    if task_id is None:
        return _no_task(reply, obj)
    return Created(task_id, normalize_ark_task(obj, now) if obj.get("status") is not None else None)


class UnifiedDialect:
    """``POST``/``GET /v1/video/generations``; ``query_params`` go on every query (naci's
    preset passes ``SHOW_RAW_AND_USAGE`` so answers carry the raw task and usage)."""

    name: str = "unified"
    pushes: bool = False
    # new-api has no cancel endpoint for video tasks.
    cancellable: frozenset[TaskStatus] = frozenset()

    def __init__(self, query_params: Mapping[str, str] = _NO_PARAMS) -> None:
        self.query_params: Mapping[str, str] = MappingProxyType(dict(query_params))

    def build_create(self, body: Mapping[str, Any], webhook_url: str | None = None) -> HttpCall:
        # No push: metadata.callback_url would reach Ark with the cgt id, unsigned, and
        # gateways may strip it (DIALECTS §3), so the relay polls instead.
        return HttpCall(method="POST", path=GENERATIONS_PATH, json=body)

    def push_worth_a_look(self, body: bytes) -> bool:
        return True  # it is never handed a push URL: whatever comes is unexpected

    def parse_create(self, reply: HttpReply, now: datetime) -> Created | ProviderFault:
        if not is_success(reply):
            return gateway_fault(reply, now)
        obj = as_mapping(decode_json(reply.body))
        if obj is None:
            return not_an_object(reply)
        return read_created(reply, obj, now)

    def build_query(self, provider_task_id: str) -> HttpCall:
        return HttpCall(
            method="GET",
            path=f"{GENERATIONS_PATH}/{quote(provider_task_id, safe='')}",
            params=self.query_params,
        )

    def parse_query(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> ProviderTask | ProviderFault:
        if not is_success(reply):
            return gateway_fault(reply, now)
        obj = as_mapping(decode_json(reply.body))
        if obj is None:
            return not_an_object(reply)
        return read_task(reply, obj, provider_task_id, now)

    def build_cancel(self, provider_task_id: str) -> HttpCall | None:
        return None

    def build_list(self, model: str | None) -> HttpCall | None:
        return None  # no task list in this dialect: an uncertain create waits for a person

    def parse_list(self, reply: HttpReply, now: datetime) -> list[Candidate] | ProviderFault:
        return []

    def created_at_from_id(self, provider_task_id: str) -> datetime | None:
        # A task tracked by the upstream's cgt- id (apiyi, naci) is dated by it, as on Ark;
        # the gateway's own ids say nothing.
        return ark_id_created_at(provider_task_id)

    def parse_cancel(
        self, reply: HttpReply, provider_task_id: str, now: datetime
    ) -> CancelAccepted | ProviderFault:
        return ProviderFault(
            FaultKind.INVALID_REQUEST,
            False,
            "the unified dialect has no cancel call",
            status_code=reply.status_code,
        )
