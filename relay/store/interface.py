"""The storage interface: a narrow, domain-named contract that SQLite and PostgreSQL both
implement, and that one contract test suite (``tests/store``) checks for both.

``Store`` is the sum of role-sized protocols, one per kind of caller (``TaskStore`` for the
tracker, ``DeliveryStore`` for the delivery engine, ``EventStore``, ``SubscriptionStore``,
``AccountStore``, ``StoreUpkeep`` for the app; in ``relay.store.submission_roles``,
``IdempotencyStore`` for the API and ``SubmissionStore`` for the tracker's creates; in
``relay.store.copy_roles``, ``CopyStore`` for the copier of finished videos; in
``relay.store.delivery_roles``, ``DeliveryStore`` and ``OperationalEventStore``), so a component
asks only for what it uses and a test double needs a handful of methods.

The values these roles take and give (queries, pages, replies) are in
``relay.store.values``.

Rules every backend keeps:

- Every read takes the caller's ``account_id``: another account's object does not exist.
- Every write that changes a task writes its events and their deliveries, and its output
  copies (``Change.copies``), in the same transaction (a transactional outbox), so no event
  and no copy is ever lost between two writes. Which destination receives which event is
  decided by ``relay.transitions.fan_out``.

Leases and fencing (at-least-once, never a duplicate attempt record):

- A claim (``claim_due_polls``, ``claim_due_deliveries``, ``claim_due_copies``) takes rows
  that are due and not leased, or whose lease has run out, the longest due first, and
  leases them to ``owner`` until ``now + lease_seconds``. Concurrent claims (other
  coroutines, other instances on PostgreSQL) never receive the same row while its lease
  holds. A lease that runs out makes the row claimable again: that is how a crashed
  instance's work comes back. A poll claim moves the task's ``next_poll_at`` to the lease's
  end, so leased tasks are not in the due order a claim scans (a claim never steps over
  them, however many are under way).
- Polls are fenced by the task's ``version``: ``save_task`` writes only over the version the
  caller read, and releases the poll lease. A poller that lost that race re-reads the task
  and applies its answer again (the transition rules make that harmless).
- Attempts are fenced by owner and number: ``record_attempts`` applies a record only while
  the delivery is still leased to ``owner`` and has had exactly ``number - 1`` attempts. So
  each attempt number is written once, and a late record from an expired lease (claimed
  again since, by another owner or by this one) is dropped whole: it adds no attempt and
  does not clear the new lease.
- A delivery stopped while its attempt was in flight (its subscription was disabled or
  deleted) keeps that attempt in its history but stays stopped.
- Copies are fenced by their task's ``version``: a copier writes what a try left through
  ``save_task`` (with the task it settles), which ends the copy's lease; a copier that lost
  that race re-reads the task and its copies.
- Released when: a delivery's lease by the record that applies to it; a poll lease by
  ``save_task``; a copy's lease by ``save_task`` or ``create_task`` writing the copy, or by
  ``release_copy`` (a copier stopping); at start-up, ``release_leases`` frees what this
  store may reclaim (SQLite, one instance: every lease; PostgreSQL: only the leases taken
  through this store object, since other live instances hold the rest, and a crashed
  instance's leases expire).
  The same goes for Idempotency-Key reservations and pending submissions: on SQLite every
  unanswered one is a dead process's at start-up; on PostgreSQL their leases run out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from relay.delivery.fairness import ClaimLimits as ClaimLimits
from relay.keys import ApiKey, KeyHolder
from relay.models import (
    Account,
    Delivery,
    Destination,
    DueDelivery,
    Event,
    Subscription,
    Task,
)
from relay.store.copy_roles import CopyStore
from relay.store.delivery_roles import DeliveryStore as DeliveryStore
from relay.store.delivery_roles import OperationalEventStore as OperationalEventStore
from relay.store.overview_roles import OverviewStore
from relay.store.replay_steps import ReplayCursor
from relay.store.stream_roles import StreamStore
from relay.store.submission_roles import IdempotencyStore, SubmissionStore
from relay.store.usage_roles import UsageStore
from relay.store.values import (
    AccountSummary,
    DeliveryView,
    EventQuery,
    KeyAnswer,
    MetricsSnapshot,
    Page,
    ReplayQuery,
    TaskQuery,
)
from relay.transitions import Change


class TaskStore(Protocol):
    """What the tracker needs: tasks, their first events, and the poll queue."""

    async def create_task(
        self,
        change: Change,
        callback: Destination | None,
        submission: str | None = None,
        answer: KeyAnswer | None = None,
    ) -> None:
        """Insert a task with its first events and, with ``callback``, the task's callback
        destination and its deliveries; with ``submission``, mark that submission accepted
        in the same transaction; with ``answer``, keep it for its Idempotency-Key in the
        same transaction too (as ``finish_idempotency_key``: only while its owner holds the
        key). Raise ``DuplicateTask`` when the account (or another) already tracks this
        provider task."""
        ...

    async def save_task(self, change: Change, expected_version: int) -> bool:
        """Write ``change`` (the task, its new events and their deliveries) if the stored
        task is still at ``expected_version``; False if not. Also releases the poll lease."""
        ...

    async def save_tasks(self, saves: Sequence[tuple[Change, int]]) -> list[bool]:
        """``save_task`` for each of ``saves`` (a change and its expected version), in one
        transaction: whether each was written. An error writes none of them."""
        ...

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        """The account's task, or None (another account's task does not exist)."""
        ...

    async def list_tasks(self, account_id: str, query: TaskQuery) -> Page[Task]:
        """The account's tasks matching ``query``, newest first unless ``query.order`` says
        otherwise, one page from position ``query.after``."""
        ...

    async def claim_due_polls(
        self, now: datetime, limits: Mapping[str, int], lease_seconds: float, owner: str
    ) -> list[Task]:
        """Lease to ``owner``, for each provider named in ``limits``, up to that many of its
        tasks whose poll is due at ``now``, the most overdue first (the lease rules are in
        this module's docstring). A claimed task leaves the due order: its next poll moves
        to the lease's end (where a poll that never saves is due again); the tasks come back
        as they were before the claim."""
        ...

    async def release_polls(self, task_ids: Sequence[str], owner: str, now: datetime) -> None:
        """Claimed polls ``owner`` will not make (it is stopping): those of ``task_ids`` still
        leased to it are due again at ``now``."""
        ...

    async def polled_providers(self) -> set[str]:
        """The providers of every task that has a poll scheduled."""
        ...

    async def next_poll_at(self, after: datetime) -> datetime | None:
        """The earliest poll scheduled later than ``after`` (due ones are for the claim)."""
        ...


class EventStore(Protocol):
    """The event feed and each event's deliveries."""

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        """The account's event, or None."""
        ...

    async def list_events(self, account_id: str, query: EventQuery) -> Page[Event]:
        """The account's events matching ``query``, one page from position ``query.after``."""
        ...

    async def event_deliveries(self, account_id: str, event_id: str) -> list[DeliveryView]:
        """Every delivery of the account's event with its attempts, oldest first."""
        ...

    async def redeliver(
        self, account_id: str, event_id: str, destination_id: str | None, now: datetime
    ) -> list[Delivery]:
        """New deliveries of a stored event to all its active destinations, or to one; none
        when the event is not the account's."""
        ...


class SubscriptionStore(Protocol):
    """REST-hook subscriptions, their health, replays and test events."""

    async def create_subscription(self, subscription: Subscription, secret: str) -> None:
        """Insert a subscription with its signing secret."""
        ...

    async def get_subscription(self, account_id: str, sub_id: str) -> Subscription | None:
        """The account's subscription (not deleted), or None."""
        ...

    async def list_subscriptions(
        self, account_id: str, after: int | None, limit: int
    ) -> Page[Subscription]:
        """The account's subscriptions, newest first, one page from position ``after``."""
        ...

    async def update_subscription(
        self, account_id: str, sub_id: str, changes: Mapping[str, Any], now: datetime
    ) -> Subscription | None:
        """Change the ``SUBSCRIPTION_FIELDS`` named in ``changes`` (others are refused with
        ``ValueError``); None when there is no such subscription."""
        ...

    async def delete_subscription(self, account_id: str, sub_id: str, now: datetime) -> bool:
        """Remove it and stop every pending delivery to it; False when there was none."""
        ...

    async def disable_subscription(
        self, account_id: str, sub_id: str, reason: str, now: datetime
    ) -> Subscription | None:
        """Stop sending to it (its pending deliveries stop) and remember since when it
        misses events, for ``enable_subscription`` to replay."""
        ...

    async def enable_subscription(
        self, account_id: str, sub_id: str, now: datetime
    ) -> tuple[Subscription, datetime | None] | None:
        """Send to it again; also returns since when it missed events (None: it did not)."""
        ...

    async def rotate_subscription_secret(
        self, account_id: str, sub_id: str, secret: str, grace_until: datetime, now: datetime
    ) -> Subscription | None:
        """A new secret; the old one keeps signing (as well) until ``grace_until``."""
        ...

    async def disable_failing_subscriptions(self, now: datetime, failing_for: float) -> list[str]:
        """Disable subscriptions whose deliveries have failed for ``failing_for`` seconds
        without a success, each with its ``subscription.disabled`` event; their ids."""
        ...

    async def replay(
        self,
        account_id: str,
        destination_id: str,
        query: ReplayQuery,
        now: datetime,
        *,
        after: ReplayCursor | None,
        limit: int,
    ) -> tuple[int, ReplayCursor | None]:
        """New ordered deliveries to one destination for up to ``limit`` matching events
        after position ``after``, oldest first (by creation time): (how many, where to
        continue or None). Written in short transactions over bounded steps of the window
        (``relay.store.replay_steps``), never one statement over the whole history."""
        ...

    async def count_replay(self, account_id: str, destination_id: str, query: ReplayQuery) -> int:
        """How many events ``replay`` would send in all (for a progress bar), counted in
        bounded steps, each its own short read."""
        ...

    async def insert_test_delivery(
        self,
        event: Event,
        destination_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
    ) -> DueDelivery | None:
        """Write a ``relay.test`` event and one delivery of it to the subscription, already
        leased to ``owner`` so the caller sends it at once; None: no such subscription."""
        ...


class AccountStore(Protocol):
    """Accounts, their API keys (by hash, named by ``relay.keys.key_id``), the dashboard
    sessions opened with those keys, and callback secrets."""

    async def create_account(
        self,
        account: Account,
        key_hash: str,
        callback_secret: str,
        key_prefix: str | None = None,
    ) -> None:
        """Insert an account with its first API key (its hash, and the key's shown prefix
        when the caller has one) and its callback signing secret."""
        ...

    async def list_accounts(self, now: datetime) -> list[AccountSummary]:
        """Every account, oldest first, with how many of its keys are active at ``now``."""
        ...

    async def account_by_key_hash(self, key_hash: str, now: datetime) -> Account | None:
        """The account whose API key hashes to ``key_hash`` if that key is active at
        ``now``, else None. Never cached: a revocation holds from the next call on."""
        ...

    async def key_holder_by_hash(self, key_hash: str, now: datetime) -> KeyHolder | None:
        """``account_by_key_hash`` with the key itself (when it stops working), for
        ``relay.keys.KeyCache``. Never cached here either."""
        ...

    async def add_api_key(
        self,
        key: ApiKey,
        key_hash: str,
        *,
        others_until: datetime | None = None,
        max_active: int | None = None,
    ) -> None:
        """Give ``key.account_id`` another key, active from ``key.created_at``.
        ``others_until``: a rotation; the account's other keys stop then (``key.created_at``:
        at once) unless they stop sooner. ``max_active``: raise ``TooManyKeys`` when the
        account has that many active keys already. ``UnknownAccount`` without the account."""
        ...

    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        """Every key of the account, revoked ones too, oldest first."""
        ...

    async def find_api_keys(self, ref: str) -> list[ApiKey]:
        """The keys, of any account, whose id or shown prefix is ``ref`` (for operators)."""
        ...

    async def revoke_api_key(
        self, account_id: str, key_id: str, now: datetime, *, keep_last: bool = False
    ) -> ApiKey | None:
        """Stop the key at ``now`` (a key stopped earlier keeps its time) and so end its
        dashboard sessions; the key as it is now, or None when the account has no such key.
        ``keep_last``: raise ``LastActiveKey`` instead of stopping the account's last active
        key."""
        ...

    async def open_dashboard_session(
        self, session_id: str, key_id: str, now: datetime, expires_at: datetime
    ) -> None:
        """Record a dashboard sign-in made with the key (and forget sessions expired by now)."""
        ...

    async def dashboard_session_account(self, session_id: str, now: datetime) -> str | None:
        """The account of the session if it still holds at ``now``: not ended, not expired,
        and its key active. Else None."""
        ...

    async def end_dashboard_session(self, session_id: str) -> None:
        """Sign-out: the session no longer holds, whoever presents its cookie."""
        ...

    async def callback_secret(self, account_id: str) -> str | None:
        """The secret that signs the account's task callbacks."""
        ...

    async def rotate_callback_secret(
        self, account_id: str, secret: str, grace_until: datetime
    ) -> None:
        """A new callback secret; the old one keeps signing (as well) until ``grace_until``."""
        ...


class StoreUpkeep(Protocol):
    """What the app itself needs: schema, liveness, wake-ups, leases, metrics, retention."""

    async def migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied."""
        ...

    async def close(self) -> None:
        """Close connections (and release what the store holds, such as an instance lock)."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` when the database does not answer."""
        ...

    async def probe_write(self, now: datetime) -> None:
        """Commit one small write (a heartbeat row); raise ``StoreError`` when the database
        cannot take writes now (a full disk, a read-only server), even if it answers reads."""
        ...

    async def secret_key(self) -> str:
        """The instance secret for signed tokens, generated once and kept."""
        ...

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work("deliveries")`` or ``on_work("polls")`` when another instance wrote
        work that is due; returns once listening, and keeps listening (through database
        restarts) until ``close``. SQLite: nothing to do, a single instance wakes itself."""
        ...

    async def release_leases(self, now: datetime) -> None:
        """Forget the leases that are this store's to reclaim, for an instance starting
        after a crash (see the module docstring); ``now`` dates what it settles."""
        ...

    async def metrics_snapshot(self, now: datetime) -> MetricsSnapshot:
        """Tasks by status, the backlog of due, unleased deliveries at ``now``, uncertain
        submissions, and output copies by state with the bytes stored."""
        ...

    async def prune_history(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events created before ``before`` with their deliveries and
        attempts, in one short transaction; never an event with a pending delivery. Once no
        such event is left, the rest of the batch deletes finished tasks not updated since
        ``before`` that have no event left, with their callback destinations (never an open
        task, nor a subscription). How many events and tasks went (0: nothing left)."""
        ...


class Store(
    TaskStore,
    DeliveryStore,
    OperationalEventStore,
    EventStore,
    SubscriptionStore,
    AccountStore,
    IdempotencyStore,
    SubmissionStore,
    CopyStore,
    UsageStore,
    OverviewStore,
    StreamStore,
    StoreUpkeep,
    Protocol,
):
    """Everything a backend implements: the sum of the roles."""
