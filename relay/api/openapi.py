"""``GET /openapi.json``: the API described in OpenAPI 3.1, built from the definitions the code
itself uses, the pydantic request models of ``relay.api.schemas`` (what every body and query
string is validated with) and the response models of ``relay.api.responses``.

What each route takes and answers is ``relay.api.operations.OPERATIONS``; this module turns
that table into the document. The document is pure data, built once per process;
``find_operation`` and ``documented_answer`` let a client-side check look answers up in it.
"""

from __future__ import annotations

import copy
import functools
import re

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from relay import __version__
from relay.api import idempotency
from relay.api import responses as out
from relay.api.docs_page import render
from relay.api.http import json_response
from relay.api.openapi_webhooks import webhooks
from relay.api.operations import JSON, OPERATIONS, PATH_PARAMS, Answer, Operation
from relay.api.schema_style import ClientFriendlySchema, RequestBodySchema

REF = "#/components/schemas/{model}"

ERRORS = {
    400: "Invalid input: a body, query string or header the relay does not accept",
    401: "No API key, or not a valid one",
    404: "No such object in your account",
    402: "The account's budget would be passed (budget_exceeded); nothing was sent",
    409: "A conflict with the object's state, or an Idempotency-Key already used otherwise",
    410: "Gone: the stored output was deleted (retention, or the account asked)",
    413: "The body is over the size limit",
    416: "The range starts past the end of the file",
    429: "Too many requests with a wrong API key from this address; retry after Retry-After "
    "seconds",
    502: "The provider could not answer now (not your request's fault)",
    503: "The database is unavailable; retry shortly",
}


def _errors(op: Operation) -> list[int]:
    codes = set(op.errors)
    if op.auth:
        codes.update((401, 429))
    if op.body is not None or op.query is not None or op.idempotent:
        codes.add(400)
    if op.body is not None:
        codes.add(413)
    if op.path_params:
        codes.add(404)
    if op.idempotent:
        codes.add(409)
    if op.store:
        codes.add(503)
    return sorted(codes)


class _Components:
    """Collects JSON schemas, hoisting each model's ``$defs`` into ``components``."""

    def __init__(self) -> None:
        self.schemas: JSON = {}
        self.ref(out.Error)

    def model_schema(self, model: type[BaseModel], *, body: bool = False) -> JSON:
        style = RequestBodySchema if body else ClientFriendlySchema
        schema = model.model_json_schema(ref_template=REF, schema_generator=style)
        for name, definition in schema.pop("$defs", {}).items():
            self._add(name, definition)
        return schema

    def ref(self, model: type[BaseModel], *, body: bool = False) -> JSON:
        """``body``: a request body's model (see ``RequestBodySchema``)."""
        self._add(model.__name__, self.model_schema(model, body=body))
        return {"$ref": REF.format(model=model.__name__)}

    def add(self, name: str, schema: JSON) -> JSON:
        """A schema of the document's own (not a model's), and the reference to it."""
        self._add(name, schema)
        return {"$ref": REF.format(model=name)}

    def _add(self, name: str, schema: JSON) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")


def _query_params(model: type[BaseModel], components: _Components) -> list[JSON]:
    schema = components.model_schema(model)
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = {
            k: v for k, v in prop.items() if k != "title" and not (k == "default" and v is None)
        }
        options = prop.pop("anyOf", None)
        if options is not None:  # a query string has no null: drop that branch
            kept = [o for o in options if o.get("type") != "null"]
            prop = {**(kept[0] if len(kept) == 1 else {"anyOf": kept}), **prop}
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _parameters(op: Operation, components: _Components) -> list[JSON]:
    params: list[JSON] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMS[name],
            "schema": {"type": "string", "minLength": 1},
        }
        for name in op.path_params
    ]
    if op.query is not None:
        params += _query_params(op.query, components)
    if op.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry safely: the same key with the same body gets the first "
                "answer again (24 h).",
                "schema": {"type": "string", "pattern": idempotency._KEY.pattern},
            }
        )
    return params


def _operation(op: Operation, components: _Components) -> JSON:
    doc: JSON = {"operationId": operation_id(op), "summary": op.summary, "tags": [op.tag]}
    if op.description:
        doc["description"] = op.description
    params = _parameters(op, components)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        media: JSON = {"schema": components.ref(op.body, body=True)}
        if op.example is not None:
            media["example"] = op.example
        doc["requestBody"] = {"required": op.body_required, "content": {"application/json": media}}
    elif op.raw_body:
        doc["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    documented: JSON = {}
    for status, answer in answers(op).items():
        schema = components.ref(answer.model) if answer.model else {}
        entry: JSON = {
            "description": answer.description,
            "content": {answer.media_type: {"schema": schema}},
        }
        if status in ("429", "503"):
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        if op.idempotent and status.startswith("2"):
            entry["headers"] = {
                "Idempotent-Replayed": {
                    "description": "true when this is the stored answer to an earlier request "
                    "with the same Idempotency-Key",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        documented[status] = entry
    doc["responses"] = documented
    doc["security"] = [{"bearer": []}, {"apiKey": []}] if op.auth else []
    return doc


_COLLECTION_VERBS = {"GET": "list", "POST": "create"}
_ITEM_VERBS = {"GET": "get", "PATCH": "update", "DELETE": "delete"}


def operation_id(op: Operation) -> str:
    """What generators name the client's method: ``<resource>_<verb>`` such as
    ``tasks_create``, ``tasks_get``, ``subscriptions_rotate_secret``. The verb is the action
    a path ends with (``/cancel``), else the method's on a collection (list, create) or an
    item (get, update, delete); ``op.name`` where that reads badly."""
    if op.name:
        return op.name
    segments = [s.replace("-", "_") for s in op.path.split("/") if s and s != "v1"]
    resource, rest = segments[0], segments[1:]
    action = [s for s in rest if not s.startswith("{")]
    if action:
        return "_".join([resource, *action])
    verbs = _ITEM_VERBS if rest else _COLLECTION_VERBS
    return f"{resource}_{verbs[op.method]}"


def find_operation(method: str, path: str) -> Operation | None:
    """The documented operation a request is for (what a client-side check looks up); a
    HEAD is its GET's (the same answer without a body)."""
    wanted = "GET" if method.upper() == "HEAD" else method.upper()
    for op in OPERATIONS:
        if op.method == wanted and _pattern(op.path).fullmatch(path):
            return op
    return None


def answers(op: Operation) -> dict[str, Answer]:
    """Every documented status of ``op``: its own answers, then the errors it can give.
    Where the provider's 4xx pass through (a ``4XX`` range), the relay's own 4xx are part
    of that range, except 401, which is never passed through."""
    found = {str(status): answer for status, answer in op.answers.items()}
    ranged = "4XX" in found
    for status in _errors(op):
        if not (ranged and 400 <= status < 500 and status != 401):
            found.setdefault(str(status), Answer(ERRORS[status], out.Error))
    return found


def documented_answer(op: Operation, status: int) -> Answer | None:
    """What ``op`` documents for ``status``; None: nothing (an undocumented answer)."""
    found = answers(op)
    return found.get(str(status)) or found.get(f"{status // 100}XX")


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"{\w+}", template)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def build_document() -> JSON:
    components = _Components()
    paths: JSON = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    hooks = webhooks(components.ref, components.add, components.model_schema(out.Event))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Seedance relay",
            "version": __version__,
            "description": "Tracks AI video-generation tasks at several providers and "
            "delivers signed webhooks (Standard Webhooks). Errors are "
            '{"error": {"code", "message"}}; lists are cursor-paginated.',
        },
        "paths": paths,
        "webhooks": hooks,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <api key>",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "tags": [
            *({"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)),
            {"name": "webhooks", "description": "What the relay POSTs to your URLs"},
        ],
    }


@functools.cache
def _document() -> JSON:
    return build_document()


def document() -> JSON:
    """The OpenAPI document (a copy: callers may change theirs)."""
    return copy.deepcopy(_document())


@functools.cache
def _page() -> str:
    return render(_document())


async def openapi_json(request: Request) -> Response:
    return json_response(_document())


async def docs(request: Request) -> Response:
    return HTMLResponse(_page())


def openapi_routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json), Route("/docs", docs)]
