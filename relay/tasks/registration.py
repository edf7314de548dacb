"""What registering a task needs before the tracker runs: the registration itself, how each
provider is reached and polled, and the provider's own create body from the caller's input
(native as given, or translated from the provider-neutral form)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.adapters.video_input import Refused, is_neutral, parse_neutral, to_native
from relay.errors import InvalidInput, UntranslatableInput
from relay.models import EventType, Task
from relay.polling.schedule import PollPolicy
from relay.pricing import Cost, PriceTable
from relay.routing import SubmissionStep
from relay.store.values import KeyAnswer, KeyReserved
from relay.tasks.providers import ProviderClient


class AnswerWithTask(Protocol):
    """How a request that holds an Idempotency-Key answers the task it creates
    (``relay.api.idempotency``): the tracker writes ``answer(task)`` with the task and says
    ``kept`` once that transaction committed, so the request sends exactly what was kept."""

    def answer(self, task: Task) -> KeyAnswer: ...

    def kept(self, answer: KeyAnswer) -> None: ...


@dataclass(frozen=True, slots=True)
class Registration:
    provider: str
    provider_task_id: str | None = None
    input: Mapping[str, Any] | None = None
    input_format: str | None = None
    """``native``, ``unified`` or None: sniffed (``relay.adapters.video_input.is_neutral``)."""
    callback_url: str | None = None
    callback_events: frozenset[EventType] | None = None
    callback_format: str = "standard"
    """The callback's body shape (``Destination.body_format``): a front door's own."""
    reference: str | None = None
    metadata: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    """The caller's Idempotency-Key: a repeat of a submission is answered from its record
    (``relay.tasks.submitting``), never sent again."""
    route: str | None = None
    """Submitted through this route (``provider`` is then the one being asked)."""
    steps: tuple[SubmissionStep, ...] = ()
    """The submission so far: the providers asked (or skipped) before ``provider``."""
    estimate: Cost | None = None
    """What the task likely costs at ``provider`` (``relay.tasks.budgets``)."""
    keep_input: bool = False
    """Keep ``input`` with the task (and its submission), for a route that resubmits it."""
    resubmission: bool = False
    """Submitting an existing task again after its provider failed it
    (``relay.tasks.resubmitting``): a task taken moves the task, it creates none."""
    key_latest: KeyReserved | None = None
    """The Idempotency-Key's latest submission, read when the request reserved the key
    (``relay.api.idempotency``), so the submitter need not read it again. None: not read."""
    key_answer: AnswerWithTask | None = None
    """The request's answer, kept for its Idempotency-Key by the transaction that writes
    the task it creates (``create_task``) instead of by a write of its own after."""

    def kept_input(self) -> dict[str, Any] | None:
        """The input as kept for a resubmission (``keep_input``), else None."""
        if not self.keep_input or self.input is None:
            return None
        return {"input": dict(self.input), "format": self.input_format}


@dataclass(frozen=True, slots=True)
class ProviderPlan:
    """How the tracker polls one provider."""

    client: ProviderClient
    poll: PollPolicy
    max_age: float
    retention: float = 604_800.0
    """How long the provider keeps a task (a task it forgot after this is expired)."""
    models: Mapping[str, str] = field(default_factory=dict)
    """Neutral model names → the provider's, for the unified input."""
    learn: bool = True
    """Poll by what was learned of this provider's task durations (``relay.polling.durations``)."""
    prices: PriceTable | None = None
    """What this provider charges (``relay.pricing``); None: its tasks have no cost."""
    polls_ahead: int = 64
    """How many of its polls the tracker may hold claimed at once
    (``relay.polling.claims.polls_ahead``: what it can begin within half a second)."""


def native_input(reg: Registration, plan: ProviderPlan) -> Mapping[str, Any]:
    """The provider's own create body: ``reg.input`` as is, or translated from the
    provider-neutral form. Refusals name the field: ``InvalidInput`` for a neutral input
    that is wrong, ``UntranslatableInput`` for one this provider cannot do."""
    assert reg.input is not None
    neutral = reg.input_format == "unified" or (reg.input_format is None and is_neutral(reg.input))
    if not neutral:
        return reg.input
    spec = parse_neutral(reg.input)
    if isinstance(spec, Refused):
        raise InvalidInput(spec_field(spec.field), spec.message)
    body = to_native(plan.client.dialect.name, spec, models=plan.models)
    if isinstance(body, Refused):
        raise UntranslatableInput(spec_field(body.field), body.message)
    return body


def spec_field(name: str) -> str:
    return name if name.startswith("input") else f"input.{name}"
