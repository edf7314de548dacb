"""``relay accounts list``, and what ``rotate-key`` and ``revoke-key`` do to the dashboard
sessions their keys opened (the dashboard asks the store on every request, as here), through
click's ``CliRunner`` against a real SQLite file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from relay.keys import key_id
from relay.models import iso
from relay.signing import hash_api_key
from tests.test_cli_accounts import Relay, relay

__all__ = ["relay"]  # the fixture, imported to be used here

SESSION_HOURS = 12


def listed(relay: Relay) -> list[list[str]]:
    done = relay.run("accounts", "list")
    assert done.exit_code == 0, done.output
    return [re.split(r"\s{2,}", line) for line in done.stdout.splitlines()]


def test_accounts_list_shows_every_account_with_its_working_keys(relay: Relay) -> None:
    nothing = relay.run("accounts", "list")
    assert (nothing.exit_code, nothing.stdout) == (1, "")
    assert "no database at" in nothing.stderr
    assert not relay.path.exists()  # listing never creates a database
    assert relay.run("migrate").exit_code == 0
    empty = relay.run("accounts", "list")
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "no accounts" in empty.stderr

    acme, acme_key, acme_key_id = relay.create("acme")
    other, _, _ = relay.create("other co")
    rows = listed(relay)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (acme, "acme", "1 active key"),
        (other, "other co", "1 active key"),
    ]
    created = datetime.fromisoformat(rows[0][2])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    assert acme_key not in "".join(relay.run("accounts", "list").output)

    relay.rotate(acme, "--grace", "1h")
    assert listed(relay)[0][3] == "2 active keys"
    relay.run("accounts", "revoke-key", acme_key_id)
    assert listed(relay)[0][3] == "1 active key"
    for line in relay.keys(acme):
        relay.run("accounts", "revoke-key", line.split()[0])
    assert listed(relay)[0][3] == "0 active keys"
    assert listed(relay)[0][2] == iso(created)


def _session(relay: Relay, key: str, session_id: str) -> None:
    now = datetime.now(UTC)
    relay.store(
        lambda s: s.open_dashboard_session(
            session_id, key_id(hash_api_key(key)), now, now + timedelta(hours=SESSION_HOURS)
        )
    )


def _holds(relay: Relay, session_id: str) -> str | None:
    return relay.store(lambda s: s.dashboard_session_account(session_id, datetime.now(UTC)))


def test_revoking_a_key_ends_the_dashboard_sessions_it_opened(relay: Relay) -> None:
    account, first, _ = relay.create("acme")
    second, _, _ = relay.rotate(account, "--grace", "1d")
    _session(relay, first, "sess-first")
    _session(relay, second, "sess-second")
    assert _holds(relay, "sess-first") == account

    done = relay.run("accounts", "revoke-key", first)
    assert done.exit_code == 0, done.output
    assert _holds(relay, "sess-first") is None
    assert _holds(relay, "sess-second") == account  # another key's session is untouched

    # A rotation without grace stops the other keys, and so their sessions, at once.
    relay.rotate(account)
    assert _holds(relay, "sess-second") is None


def test_key_commands_refuse_an_unknown_account(relay: Relay) -> None:
    relay.create("acme")
    for args in (("accounts", "keys", "acct_nope"), ("accounts", "rotate-key", "acct_nope")):
        done = relay.run(*args)
        assert done.exit_code == 1, args
        assert "no account acct_nope" in done.output, args
