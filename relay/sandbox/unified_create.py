"""How a new-api-style gateway reads ``POST /v1/video/generations``, pure: the unified body
becomes the upstream Ark payload the way new-api's doubao adaptor builds it, and the Ark
rules then judge that payload (as the real upstream would, behind the gateway).

What is read (DIALECTS §3): ``prompt`` (required: 400 ``prompt is required``), ``model``;
``images`` or ``image`` as ``image_url`` items without a role; ``metadata.<option>`` copied
into the Ark payload (``metadata.content`` *replaces* the image items, its text items are
dropped); duration from top-level ``duration``, else ``seconds`` (a string), else
``metadata.duration``; the prompt always goes last as the one text item. Reseller
extensions, each only where its page documents it: naci takes Ark-style ``content`` and
top-level Ark options (and reports its model aliases as the Ark model they map to, as its
``sd2.0`` sample does), vastnum ``videos``/``audios``, cubicspaces ``input_reference``.

Refusals: a non-object body or a wrongly typed field is a 400 ``invalid_request`` TaskError;
no model is new-api's distributor 400 (OpenAI-style error); an Ark refusal of the built
payload comes back as a 400 ``fail_to_fetch_task`` TaskError whose message is the
upstream's JSON error as a string, as new-api relays upstream errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from relay.models import JSON
from relay.sandbox.ark_shapes import CreateSpec, invalid_error_body, parse_create
from relay.sandbox.gateway_shapes import task_error
from relay.sandbox.timeline import DEFAULT_MODEL, MODELS, Flavor
from relay.sandbox.web import ark_request_id

_PAYLOAD_OPTIONS: Final = (
    "callback_url",
    "return_last_frame",
    "service_tier",
    "execution_expires_after",
    "generate_audio",
    "draft",
    "tools",
    "safety_identifier",
    "priority",
    "resolution",
    "ratio",
    "duration",
    "frames",
    "seed",
    "camera_fixed",
    "watermark",
)
"""The doubao adaptor's ``requestPayload`` fields that ``metadata`` may set."""
_INT_OPTIONS: Final = frozenset(
    {"execution_expires_after", "priority", "duration", "frames", "seed"}
)
_BOOL_OPTIONS: Final = frozenset(
    {"return_last_frame", "generate_audio", "draft", "camera_fixed", "watermark"}
)
FAST_MODEL: Final = DEFAULT_MODEL
STANDARD_MODEL: Final = "doubao-seedance-2-0-260128"
_FIELD_TYPES: Final[dict[str, tuple[type, str]]] = {
    "prompt": (str, "string"),
    "model": (str, "string"),
    "image": (str, "string"),
    "images": (list, "[]string"),
    "seconds": (str, "string"),
    "duration": (int, "int"),
    "metadata": (dict, "map[string]interface {}"),
    "input_reference": (str, "string"),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP refusal with its body; ``openai_error`` bodies carry the request id."""

    status: int
    body: JSON


def parse_unified_create(
    body: object, flavor: Flavor, request_id: str, now: datetime
) -> CreateSpec | Refusal:
    if not isinstance(body, dict):
        return _bad_request(
            f"json: cannot unmarshal {_json_type(body)} into Go value of "
            f"type relaycommon.TaskSubmitReq"
        )
    for name, (kind, go_type) in _FIELD_TYPES.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return _bad_request(
                f"json: cannot unmarshal {_json_type(value)} into Go struct "
                f"field TaskSubmitReq.{name} of type {go_type}"
            )
    images = body.get("images") or []
    if not all(isinstance(url, str) for url in images):
        return _bad_request(
            "json: cannot unmarshal non-string into Go struct field "
            "TaskSubmitReq.images of type string"
        )
    model = str(body.get("model") or "").strip()
    if not model:
        return Refusal(
            400,
            {
                "error": {
                    "message": f"model name is not specified (request id: {request_id})",
                    "type": "new_api_error",
                    "code": "",
                }
            },
        )
    if flavor is Flavor.NACI:
        model = naci_upstream_model(model)
    ark_content = body.get("content") if flavor is Flavor.NACI else None
    prompt = str(body.get("prompt") or "")
    if not prompt.strip() and isinstance(ark_content, list):
        prompt = "\n".join(
            item["text"]
            for item in ark_content
            if isinstance(item, dict)
            and item.get("type") == "text"
            and isinstance(item.get("text"), str)
        )
    if not prompt.strip():
        return _bad_request("prompt is required")
    payload = _ark_payload(body, flavor, model, prompt, ark_content, images)
    spec = parse_create(payload)
    if isinstance(spec, CreateSpec):
        return spec
    # The upstream's own error, compact as Go marshals it, with the upstream's request id.
    upstream = json.dumps(
        invalid_error_body(spec, ark_request_id(now)), ensure_ascii=False, separators=(",", ":")
    )
    return Refusal(400, task_error("fail_to_fetch_task", upstream))


def naci_upstream_model(alias: str) -> str:
    """naci maps its own aliases (``sd2.0`` on its page) to the Ark model it reports."""
    if alias in MODELS:
        return alias
    return FAST_MODEL if "fast" in alias.lower() else STANDARD_MODEL


def _ark_payload(
    body: JSON,
    flavor: Flavor,
    model: str,
    prompt: str,
    ark_content: object,
    images: list[str],
) -> JSON:
    if not images and isinstance(body.get("image"), str) and body["image"].strip():
        images = [body["image"]]
    if flavor is Flavor.CUBICSPACES and body.get("input_reference"):
        images = [body["input_reference"]]
    content: list[Any] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    if isinstance(ark_content, list):
        content = list(ark_content)
    payload: JSON = {"model": model, "content": content}
    metadata = body.get("metadata") or {}
    for name in _PAYLOAD_OPTIONS:
        if name in metadata:
            payload[name] = _lenient(name, metadata[name])
    if isinstance(metadata.get("content"), list):
        payload["content"] = list(metadata["content"])
    if flavor is Flavor.NACI:
        for name in _PAYLOAD_OPTIONS:
            if name in body and name != "duration":
                payload[name] = body[name]
    if flavor is Flavor.VASTNUM:
        for field, kind, role in (
            ("videos", "video_url", "reference_video"),
            ("audios", "audio_url", "reference_audio"),
        ):
            urls = body.get(field)
            if isinstance(urls, list):
                payload["content"] += [
                    {"type": kind, kind: {"url": url}, "role": role} for url in urls
                ]
    seconds = body.get("duration") or 0
    if seconds <= 0:
        seconds = _atoi(body.get("seconds"))
    if seconds > 0:
        payload["duration"] = seconds
    payload["content"] = [
        item
        for item in payload["content"]
        if not (isinstance(item, dict) and item.get("type") == "text")
    ]
    payload["content"].append({"type": "text", "text": prompt})
    return payload


def _lenient(name: str, value: Any) -> Any:
    """new-api's ``IntValue``/``BoolValue`` also read JSON strings."""
    if isinstance(value, str):
        if name in _INT_OPTIONS and value.strip().lstrip("-").isdigit():
            return int(value)
        if name in _BOOL_OPTIONS and value in ("true", "false"):
            return value == "true"
    return value


def _atoi(value: object) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def _bad_request(message: str) -> Refusal:
    return Refusal(400, task_error("invalid_request", message))


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
