"""One error tree for the relay. Exceptions are for bugs and boundaries; expected outcomes
(a provider fault, a failed delivery) are values (``relay.provider_answers``,
``relay.delivery.outcomes``).

Domain errors say what happened, never which HTTP status answers it: that is decided once, at
the HTTP edge, by the table in ``relay.api.errors`` (the JSON API and the dashboard both read
it). Edge errors are about the HTTP request itself, so only ``relay.api`` and
``relay.dashboard`` raise them. The message of every domain and edge error is shown to the
caller as it is: it names only what the caller sent or owns.

::

    RelayError
    ├── ConfigError              the configuration is invalid; names the key path
    ├── StoreError               the database refused or is unreachable
    │   └── MigrationError       the schema cannot be brought to this version
    ├── DestinationRefused       (relay.net.guard) the network policy forbids a webhook's
    │                            address at connect time; also an httpx.ConnectError, so a
    │                            delivery records it as a failed attempt
    ├── DomainError              what was asked cannot be done
    │   ├── InvalidInput         the task's input is wrong (names the field)
    │   ├── UntranslatableInput  the provider-neutral input asks what this provider cannot do
    │   ├── InvalidTimeRange     a replay's range is empty: since is not before until
    │   ├── DestinationNotAllowed  the network policy forbids a callback or subscription URL
    │   ├── UnknownProvider      a registration names no configured provider
    │   ├── UnknownObject        no such object in the caller's account
    │   │   ├── UnknownOutput    (relay.outputs) no stored output under that key
    │   │   ├── UnknownTask
    │   │   ├── UnknownEvent
    │   │   ├── UnknownSubscription
    │   │   ├── UnknownDestination  the event has no such (active) destination
    │   │   ├── UnknownSubmission
    │   │   ├── UnknownAccount   (operators) no account with that id
    │   │   └── UnknownKey       no such API key
    │   ├── DuplicateTask        the provider task is already tracked (raised by the stores)
    │   ├── TooManyKeys          the account has as many active API keys as it may
    │   ├── LastActiveKey        revoking it would leave the account no key to call with
    │   ├── ProviderCannot       the provider offers no way to do it (moderate an image)
    │   │   └── NotCancellable   ... to cancel this task (its dialect, or the task's status)
    │   ├── TaskFinished         the task ended before it could be cancelled
    │   ├── SubscriptionDisabled  the subscription must be enabled first
    │   │   └── ReplayTargetDisabled  ... found by a replay (relay.operator_actions)
    │   ├── ProviderRejected     the provider refused to create the task: its input is wrong
    │   ├── ModerationRefused    the provider refused a moderation request (its words, redacted)
    │   ├── CancelRefused        the provider refused to cancel the task
    │   ├── ProviderUnavailable  the provider could not do it now (not the caller's fault,
    │   │                        and never the relay's own failure)
    │   ├── SubmissionUncertain  the create met an answer that does not say whether the
    │   │   │                    provider took it (relay.submissions): never sent again
    │   │   └── SubmissionStillUncertain  a retry with the same Idempotency-Key met it
    │   ├── SubmissionKeyReused  that key's unsettled submission was for another request
    │   ├── SubmissionInFlight   the provider's answer to that submission is still awaited
    │   ├── SubmissionSettled    an uncertain submission was settled already
    │   ├── TooManyStreams       the account holds as many live event streams as it may
    │   ├── EndpointNotVerified  a subscription's URL did not answer its verification challenge
    │   ├── OutputRejected       (relay.outputs) a body the output store refuses: empty
    │   │   └── OutputTooLarge   ... or over outputs.max_bytes; nothing is left stored
    │   ├── OutputStorageUnavailable  the output storage (a directory, a bucket) failed
    │   │                        or is unreachable; what it said is the ``__cause__``
    │   └── UnsatisfiableRange   a byte range that starts past the end of a stored output
    └── EdgeError                the HTTP request itself is refused
        ├── BadRequest           a body field, query parameter, header or form is wrong
        │   ├── InvalidJson      the body is not a bounded JSON object
        │   ├── UnstorableInput  a NUL character, which no database stores, in a body
        │   │                    string or key, a path or a query parameter
        │   ├── InvalidCursor    a pagination cursor the relay did not sign (for this order)
        │   └── InvalidIdempotencyKey
        ├── Unauthorized         no API key or session, or an unknown key
        ├── CsrfRefused          a dashboard form without its session's CSRF token
        ├── NoSuchResource       the URL names nothing (an inbound token, a provider)
        ├── IdempotencyKeyReused  the key came with another request before
        ├── IdempotencyKeyInUse  the first request with the key is still being answered
        ├── PayloadTooLarge      the body is over the limit
        ├── ClientDisconnected   the client hung up before its request was read
        └── TooManyRequests      too many failed authentications; retry after a while
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.provider_answers import ProviderFault


class RelayError(Exception):
    """The root of every error the relay raises on purpose."""


class ConfigError(RelayError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class StoreError(RelayError):
    pass


class MigrationError(StoreError):
    pass


# --- the domain: what happened -------------------------------------------------------------


class DomainError(RelayError):
    """What a caller (through the API, the dashboard or the CLI) asked cannot be done."""


class _FieldError(DomainError):
    """A refusal about one named field: ``"{field}: {message}"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidInput(_FieldError):
    """The task's input is wrong; ``field`` is its dotted path (``input.duration``)."""


class UntranslatableInput(_FieldError):
    """The provider-neutral input is valid but asks what this provider cannot do (a
    resolution or ratio its models lack)."""


class InvalidTimeRange(DomainError):
    pass


class DestinationNotAllowed(_FieldError):
    """The network policy forbids the address a callback or subscription URL resolves to;
    ``field`` is the URL's field and the message says why."""


class UnknownProvider(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown provider {name!r}")
        self.name = name


class UnknownObject(DomainError):
    """No such object in the caller's account: another account's objects are unknown too, so
    nothing of theirs is revealed."""


class UnknownTask(UnknownObject):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id}")
        self.task_id = task_id


class UnknownEvent(UnknownObject):
    pass


class UnknownSubscription(UnknownObject):
    pass


class UnknownDestination(UnknownObject):
    pass


class UnknownSubmission(UnknownObject):
    def __init__(self, submission_id: str) -> None:
        super().__init__(f"no submission {submission_id}")


class UnknownAccount(UnknownObject):
    pass


class UnknownKey(UnknownObject):
    pass


class TooManyKeys(DomainError):
    pass


class LastActiveKey(DomainError):
    pass


class DuplicateTask(DomainError):
    """This provider task is already tracked: by the same account (``existing_id`` names its
    task) or by another one (``existing_id`` is None: nothing of theirs is revealed)."""

    def __init__(self, existing_id: str | None) -> None:
        super().__init__(
            f"this provider task is already tracked as {existing_id}"
            if existing_id
            else "this provider task is already tracked by another account"
        )
        self.existing_id = existing_id


class ProviderCannot(DomainError):
    pass


class NotCancellable(ProviderCannot):
    pass


class TaskFinished(DomainError):
    def __init__(self, status: str) -> None:
        super().__init__(f"the task has already ended ({status})")
        self.status = status


class SubscriptionDisabled(DomainError):
    pass


class ReplayTargetDisabled(SubscriptionDisabled):
    """A replay found its subscription disabled (before it started, or while it ran).

    Its own class only because these paths have always answered the generic code
    ``conflict`` where the API's own checks answer ``disabled`` (``relay.api.errors``)."""


class ProviderRejected(DomainError):
    """The provider refused to create the task because of its input (``fault.kind`` is
    ``invalid_request``): resubmitting the same input will not help."""

    def __init__(self, fault: ProviderFault) -> None:
        super().__init__(f"the provider refused the task: {fault.message}")
        self.fault = fault


class ModerationRefused(DomainError):
    """The provider refused an image moderation request (a 4xx): the message gives its
    status and its own words, cut to a sentence and with the operator's key taken out."""


class CancelRefused(DomainError):
    pass


class ProviderUnavailable(DomainError):
    pass


class BudgetExceeded(DomainError):
    """A submission would pass the account's budget (``relay.tasks.budgets``): nothing was
    sent."""


class RouteUnavailable(ProviderUnavailable):
    """No provider of a route took the task, each certainly not (``relay.tasks.failover``):
    the message says why for each; nothing was created, so a retry may submit again."""

    def __init__(self, message: str, steps: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.steps = steps


class SubmissionUncertain(DomainError):
    """Whether the provider created the task cannot be known now (the answer was lost: a
    timeout after the body was sent, a 5xx, the relay killed mid-request). Sending it again
    could pay twice, so the relay does not; the submission waits to be reconciled."""

    def __init__(self, submission_id: str, message: str) -> None:
        super().__init__(
            f"{message}; submission {submission_id} is uncertain and will not be sent "
            "again: the relay tracks the task if it finds it at the provider, or settle it "
            f"with POST /v1/submissions/{submission_id}/resolve"
        )
        self.submission_id = submission_id


class SubmissionStillUncertain(SubmissionUncertain):
    """A request repeating an uncertain submission (same Idempotency-Key); ``retry_after``:
    seconds until the relay next looks for its task (None: only a person can settle it)."""

    def __init__(self, submission_id: str, message: str, *, retry_after: int | None) -> None:
        super().__init__(submission_id, message)
        self.retry_after = retry_after


class SubmissionKeyReused(DomainError):
    """An Idempotency-Key whose unsettled submission was for another request."""


class SubmissionInFlight(DomainError):
    pass


class SubmissionSettled(DomainError):
    pass


class UnknownOutput(UnknownObject):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored output {key}")
        self.key = key


class EndpointNotVerified(DomainError):
    """A subscription asked to be verified whose URL did not prove it holds the secret."""


class TooManyStreams(DomainError):
    """The account holds as many open event streams (``relay.streams``) as it may."""


class OutputDeleted(DomainError):
    """A stable link whose stored object was deleted (retention, or the account asked)."""


class OutputNotAvailable(UnknownObject):
    """A stable link whose copy is not stored (yet, or ever) while the provider's own link
    has expired too: nothing to serve or redirect to now."""


class OutputRejected(DomainError):
    """The output store refused a body (``relay.outputs``): a failed copy, never a stored
    object. The source's own errors (a cut transfer) are not this: they pass through."""


class OutputTooLarge(OutputRejected):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the output is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class OutputStorageUnavailable(DomainError):
    """The output storage failed or cannot be reached (a full disk, a bucket that answers
    500 or not at all). The message names no path or bucket; the cause says what failed."""


class UnsatisfiableRange(DomainError):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range starts past the end of the output ({size} bytes)")
        self.size = size
        self.headers = {"Content-Range": f"bytes */{size}"}


# --- the HTTP edge: the request itself -----------------------------------------------------


class EdgeError(RelayError):
    """The HTTP request itself is refused (its body, key, headers or URL); raised only by
    ``relay.api`` and ``relay.dashboard``."""


class BadRequest(EdgeError):
    pass


class InvalidJson(BadRequest):
    pass


class UnstorableInput(BadRequest):
    """A NUL character (PostgreSQL's text and jsonb refuse it; SQLite would take it): refused
    at the edge so that both backends answer the same 400, before any query runs."""


class InvalidCursor(BadRequest):
    pass


class InvalidIdempotencyKey(BadRequest):
    pass


class Unauthorized(EdgeError):
    pass


class CsrfRefused(EdgeError):
    """A dashboard form arrived without this session's CSRF token."""


class NoSuchResource(EdgeError):
    """The URL names nothing: an inbound webhook whose token is wrong (or whose task is
    gone), a provider that is not configured."""


class IdempotencyKeyReused(EdgeError):
    pass


class IdempotencyKeyInUse(EdgeError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(EdgeError):
    pass


class ClientDisconnected(EdgeError):
    """The client went away while its body was being read: nobody reads the answer, and
    nothing was done (a body is read whole before anything is written)."""


class TooManyRequests(EdgeError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
