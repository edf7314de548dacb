"""The sandbox's control API (a test double's: no auth) and the guard that applies faults
and logs every provider API request.

Routes, under the sandbox's mount::

    GET    /_control/faults     the plan, its position, whether it is active
    PUT    /_control/faults     set a plan (see relay.sandbox.faults); answers the state
    DELETE /_control/faults     clear it; answers the (empty) state
    GET    /_control/requests   {"data": [{time, flavor, method, path, query, fault,
                                status}]}, oldest first; ?flavor= filters; status 499
                                when the caller hung up (mid-body, or during a
                                ``timeout`` fault)
    DELETE /_control/requests   forget them (204)
    GET    /_control/pushes     {"data": [{task_id, url, attempt, due_at, sent_at, status,
                                error}]}: seedance2.ink webhook attempts
    DELETE /_control/pushes     forget them (204)
    GET    /_control/file-faults    the result files' plan (see relay.sandbox.file_faults)
    PUT    /_control/file-faults    set it; answers the state
    DELETE /_control/file-faults    clear it; answers the (empty) state
    GET    /_control/files      {"data": [{time, path, range, fault, status, bytes}]}: file
                                requests, oldest first (status 499: the caller hung up)
    DELETE /_control/files      forget them (204)

Bad control input is a 400 ``{"error": {"code": "invalid_request", "message"}}``.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from relay.clock import Clock
from relay.sandbox.ark_shapes import internal_error_body, rate_limit_error_body
from relay.sandbox.faults import (
    Family,
    Fault,
    FaultSwitch,
    RequestLog,
    RequestRecord,
    parse_plan,
)
from relay.sandbox.file_faults import FileFaultSwitch, FileLog, parse_file_plan
from relay.sandbox.gateway_shapes import RATE_LIMITED
from relay.sandbox.push import PushScheduler
from relay.sandbox.seedance2ink_shapes import refusal
from relay.sandbox.timeline import FLAVORS, Flavor
from relay.sandbox.web import (
    Handler,
    NotJson,
    ark_request_id,
    gateway_request_id,
    json_response,
    read_json,
)

CONTROL_PATH: Final = "/_control"
CLIENT_CLOSED: Final = 499
"""What the request log records when the caller hung up before its answer (nginx's "client
closed request")."""
_DISCONNECT_POLL: Final = 0.05
_REASONS: Final = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
_GATEWAY_PANIC: Final = (
    "Panic detected, error: runtime error: invalid memory address or nil pointer "
    "dereference. Please submit a issue here: https://github.com/QuantumNous/new-api"
)


class Control:
    def __init__(self, clock: Clock, pushes: PushScheduler) -> None:
        self._clock = clock
        self._pushes = pushes
        self.faults = FaultSwitch()
        self.requests = RequestLog()
        self.file_faults = FileFaultSwitch()
        self.files = FileLog()

    def guard(self, flavor: Flavor, family: Family, handler: Handler) -> Handler:
        """``handler`` behind the fault plan and the request log."""

        async def guarded(request: Request) -> Response:
            arrived = self._clock.now()
            fault = self.faults.take(flavor)
            if fault is None:
                try:
                    response = await handler(request)
                except ClientDisconnect:  # hung up mid-body: logged, not a traceback
                    response = Response(status_code=CLIENT_CLOSED)
            elif fault.kind == "timeout":
                if await _stall(request, fault.timeout_seconds):
                    response = await handler(request)
                else:
                    response = Response(status_code=CLIENT_CLOSED)
            elif fault.kind == "slow":
                response = await handler(request)
                await asyncio.sleep(fault.timeout_seconds)
            elif fault.kind == "garbage":
                whole = await handler(request)
                response = Response(
                    whole.body[: len(whole.body) // 2], 200, media_type="application/json"
                )
            else:
                response = self._fault_response(fault, family)
            self.requests.add(
                RequestRecord(
                    arrived,
                    flavor,
                    request.method,
                    request.url.path,
                    request.url.query,
                    None if fault is None else fault.kind,
                    response.status_code,
                )
            )
            return response

        return guarded

    def _fault_response(self, fault: Fault, family: Family) -> Response:
        status = int(fault.kind)
        if status in _REASONS:
            return Response(_nginx_page(status), status, media_type="text/html")
        now = self._clock.now()
        headers: dict[str, str] = {}
        if status == 429:
            headers["retry-after"] = str(fault.retry_after)
        if family is Family.ARK:
            request_id = ark_request_id(now)
            headers["x-request-id"] = request_id
            body = (
                rate_limit_error_body(request_id)
                if status == 429
                else internal_error_body(request_id)
            )
        elif family is Family.GATEWAY:
            headers["x-oneapi-request-id"] = gateway_request_id(now)
            body = (
                RATE_LIMITED
                if status == 429
                else {"error": {"message": _GATEWAY_PANIC, "type": "new_api_panic"}}
            )
        elif status == 429:
            body = refusal("rate_limited", "Too many requests, please try again later")
        else:
            body = refusal("internal_error", "Internal server error")
        return json_response(body, status, headers)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(CONTROL_PATH + "/faults", self.get_faults, methods=["GET"]),
            Route(CONTROL_PATH + "/faults", self.put_faults, methods=["PUT"]),
            Route(CONTROL_PATH + "/faults", self.delete_faults, methods=["DELETE"]),
            Route(CONTROL_PATH + "/requests", self.get_requests, methods=["GET"]),
            Route(CONTROL_PATH + "/requests", self.delete_requests, methods=["DELETE"]),
            Route(CONTROL_PATH + "/pushes", self.get_pushes, methods=["GET"]),
            Route(CONTROL_PATH + "/pushes", self.delete_pushes, methods=["DELETE"]),
            Route(CONTROL_PATH + "/file-faults", self.get_file_faults, methods=["GET"]),
            Route(CONTROL_PATH + "/file-faults", self.put_file_faults, methods=["PUT"]),
            Route(CONTROL_PATH + "/file-faults", self.delete_file_faults, methods=["DELETE"]),
            Route(CONTROL_PATH + "/files", self.get_files, methods=["GET"]),
            Route(CONTROL_PATH + "/files", self.delete_files, methods=["DELETE"]),
        ]

    async def get_faults(self, request: Request) -> JSONResponse:
        return json_response(self.faults.state())

    async def put_faults(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        plan = parse_plan(body) if not isinstance(body, NotJson) else "the body is not JSON"
        if isinstance(plan, str):
            return _invalid(plan)
        self.faults.set(plan)
        return json_response(self.faults.state())

    async def delete_faults(self, request: Request) -> JSONResponse:
        self.faults.clear()
        return json_response(self.faults.state())

    async def get_requests(self, request: Request) -> JSONResponse:
        name = request.query_params.get("flavor")
        flavor = None
        if name is not None:
            known = {f.value: f for f in FLAVORS}
            if name not in known:
                return _invalid(f"flavor must be one of {', '.join(known)}")
            flavor = known[name]
        return json_response({"data": [r.as_json() for r in self.requests.of(flavor)]})

    async def delete_requests(self, request: Request) -> Response:
        self.requests.clear()
        return Response(status_code=204)

    async def get_pushes(self, request: Request) -> JSONResponse:
        return json_response({"data": [record.as_json() for record in self._pushes.log]})

    async def delete_pushes(self, request: Request) -> Response:
        self._pushes.log.clear()
        return Response(status_code=204)

    async def get_file_faults(self, request: Request) -> JSONResponse:
        return json_response(self.file_faults.state())

    async def put_file_faults(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        plan = parse_file_plan(body) if not isinstance(body, NotJson) else "the body is not JSON"
        if isinstance(plan, str):
            return _invalid(plan)
        self.file_faults.set(plan)
        return json_response(self.file_faults.state())

    async def delete_file_faults(self, request: Request) -> JSONResponse:
        self.file_faults.clear()
        return json_response(self.file_faults.state())

    async def get_files(self, request: Request) -> JSONResponse:
        return json_response({"data": [record.as_json() for record in self.files.records()]})

    async def delete_files(self, request: Request) -> Response:
        self.files.clear()
        return Response(status_code=204)


async def _stall(request: Request, seconds: float) -> bool:
    """Wait ``seconds`` before answering; ``False`` when the caller hung up first, so a
    stalled request does not outlive its caller (nor hold up the server's shutdown)."""
    await request.body()  # read first: a disconnect check must not swallow the body
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(left, _DISCONNECT_POLL))
        if await request.is_disconnected():
            return False
    return True


def _nginx_page(status: int) -> bytes:
    title = f"{status} {_REASONS[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        f"</body>\r\n</html>\r\n"
    ).encode()


def _invalid(message: str) -> JSONResponse:
    return json_response({"error": {"code": "invalid_request", "message": message}}, 400)
