"""Schemathesis against a real relay's own ``/openapi.json``: every operation fuzzed with valid
and invalid input, over real HTTP. No answer may be a 5xx, none may break the schema its
operation documents (the response models of ``relay.api.responses``), every status and
content type must be documented ones, and what the document calls invalid must be refused.

Bounded: the documented examples, then a fixed number of generated cases per operation and
mode (valid, invalid), derandomized (the same requests on every run), no shrinking; about
1,650 requests in 20 to 40 s on two cores. Each operation with path
parameters runs twice: with generated ids (which find nothing: 404) and with real ones (a
task that succeeded, its event, a fresh subscription for each operation, the sandbox
provider), so the answers that carry objects are checked too.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.configuration
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.harness import (
    Account,
    Receiver,
    RelayServer,
    ark_input,
    eventually,
    free_port,
    relay_config,
    write_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    # The fuzzing thread's HTTP client may leave a socket for the garbage collector; with
    # warnings as errors, its ResourceWarning runs pytest's hook inside whatever the thread
    # was doing, and inside a compile() (hypothesis and pytest parse source) CPython 3.11
    # then fails with "AST constructor recursion depth mismatch". A leaked client socket is
    # no finding about the relay.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "20"))
"""Per operation, mode and set of path parameters (more for a deeper run by hand)."""
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
]
"""``negative_data_rejection``: what the document says is invalid, the relay refuses (4xx)."""
STREAMS = frozenset({"/v1/events/stream"})
"""Not fuzzed: a valid request opens a stream that never ends (tests/streams covers it,
its refusals included)."""
BUDGET = 150.0
"""Seconds the whole run may take; far more than it needs, so a slow machine is no failure."""


@dataclass
class World:
    relay: RelayServer
    receiver: Receiver
    account: Account
    task_id: str
    event_id: str


@dataclass
class Findings:
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    """(operation, first line of the failure) -> the failure and a curl command to replay it."""
    calls: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("openapi_fuzz")
    # Hypothesis caches what it learns under .hypothesis/ in the working directory.
    hypothesis.configuration.set_hypothesis_home_dir(tmp / ".hypothesis")
    config = relay_config(tmp, free_port())
    relay = await RelayServer(config, write_config(tmp, config)).start()
    receiver = await Receiver().start()
    try:
        account = await relay.account("fuzz")
        async with relay.client(account) as client:
            created = await client.post(
                "/v1/tasks",
                json={"provider": "sandbox", "input": ark_input(), "callback_url": receiver.url},
            )
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]

            async def succeeded() -> str | None:
                events = (
                    await client.get(
                        "/v1/events", params={"task_id": task_id, "type": "task.succeeded"}
                    )
                ).json()["data"]
                return events[0]["id"] if events else None

            event_id = await eventually(succeeded, within=15, what="the task to succeed")
        yield World(relay, receiver, account, task_id, event_id)
    finally:
        await receiver.stop()
        await relay.stop()


async def test_every_operation_answers_as_documented_under_fuzzing(world: World) -> None:
    async with world.relay.client() as client:
        spec = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    started = time.monotonic()
    # Blocking requests from a worker thread; the relay and the receiver answer in this loop.
    findings = await asyncio.to_thread(fuzz, schema, world)
    took = time.monotonic() - started
    report = "\n\n".join(f"{op}: {text}" for (op, _), text in sorted(findings.failures.items()))
    assert not findings.failures, f"{len(findings.failures)} problems found:\n\n{report}"
    assert took < BUDGET * max(1, EXAMPLES / 20), f"the fuzzing took {took:.0f} s"
    operations = len([op for op in spec_operations(spec) if op[1] not in STREAMS])
    assert len(findings.statuses) == operations, "an operation was never called"
    # Both the refusals and the successes were reached, not only 404s for made-up ids.
    everything = set().union(*findings.statuses.values())
    assert {200, 201, 202, 400, 404} <= everything, findings.statuses
    print(f"\nschemathesis: {operations} operations, {findings.calls} requests, {took:.1f} s")
    for label, statuses in findings.statuses.items():
        print(f"  {label}: {sorted(statuses)}")


def spec_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m, p) for p, item in spec["paths"].items() for m in item]


def fuzz(schema: Any, world: World) -> Findings:
    findings = Findings()
    auth = {"Authorization": f"Bearer {world.account.api_key}"}
    with requests.Session() as session:
        session.trust_env = False
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in STREAMS:
                continue
            for real in (False, True):
                params = real_ids(operation, world, session, auth) if real else {}
                if real and not params:
                    continue
                for example in schema.get_strategies_from_examples(operation):
                    # The documented examples, as they are (with the real ids here).
                    run_examples(
                        example,
                        functools.partial(
                            call,
                            world=world,
                            session=session,
                            auth=auth,
                            findings=findings,
                            path_parameters=params,
                        ),
                    )
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    strategy = operation.as_strategy(
                        generation_mode=mode, path_parameters=params or None
                    )
                    try:
                        run_examples(
                            strategy,
                            functools.partial(
                                call, world=world, session=session, auth=auth, findings=findings
                            ),
                        )
                    except hypothesis.errors.Unsatisfiable:
                        # Nothing to make invalid (no parameters, no body): positive only.
                        assert mode is GenerationMode.NEGATIVE, operation.label
    return findings


def run_examples(strategy: Any, test: Callable[[Any], None]) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=strategy)
    def examples(case: Any) -> None:
        test(case)

    examples()


def call(
    case: Any,
    world: World,
    session: requests.Session,
    auth: dict[str, str],
    findings: Findings,
    path_parameters: dict[str, str] | None = None,
) -> None:
    if path_parameters:
        case.path_parameters = {**(case.path_parameters or {}), **path_parameters}
    label = case.operation.label
    findings.calls += 1
    try:
        response = case.call_and_validate(
            base_url=world.relay.url, session=session, headers=auth, checks=CHECKS, timeout=20
        )
    except (Exception, FailureGroup) as exc:  # a failed check: keep it, with its request
        message = str(exc).strip() or type(exc).__name__
        kinds = [line for line in message.splitlines() if line.startswith("- ")]
        key = (label, " ".join(kinds) or message.splitlines()[0])
        if key not in findings.failures:
            if "Reproduce with" not in message:
                curl = case.as_curl_command(headers=auth, base_url=world.relay.url)
                message += f"\n  reproduce: {curl[:1500]}"
            findings.failures[key] = message[:3000]
        return
    findings.statuses.setdefault(label, set()).add(response.status_code)


def real_ids(
    operation: Any, world: World, session: requests.Session, auth: dict[str, str]
) -> dict[str, str]:
    """Existing objects for the operation's path parameters (a fresh subscription each
    time, so one operation's DELETE or PATCH does not change what the next one sees)."""
    names = {p.name for p in operation.path_parameters}
    params: dict[str, str] = {}
    if "task_id" in names:
        params["task_id"] = world.task_id
    if "event_id" in names:
        params["event_id"] = world.event_id
    if "provider" in names:
        params["provider"] = "sandbox"
    if "sub_id" in names:
        made = session.post(
            f"{world.relay.url}/v1/subscriptions",
            headers=auth,
            timeout=10,
            json={"url": world.receiver.url},
        )
        assert made.status_code == 201, made.text
        params["sub_id"] = made.json()["id"]
    if "token" in names:
        return {}  # only the relay makes inbound tokens; a made-up one is all there is
    return params
