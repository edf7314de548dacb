"""Standard Webhooks signatures, proved with the ``standardwebhooks`` package exactly as a
receiver uses it (DESIGN §4), and the relay's own itsdangerous tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from relay.signing import (
    INBOUND_GRACE,
    INBOUND_SKEW,
    InboundToken,
    Tokens,
    generate_api_key,
    generate_webhook_secret,
    hash_api_key,
    inbound_lifetime,
    sign,
    webhook_key,
)

BODY = b'{"id":"evt_01","type":"task.succeeded","sequence":3,"data":{"status":"succeeded"}}'
MSG_ID = "evt_01"

# The example of the Standard Webhooks specification (and the svix docs).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str, timestamp: int, msg_id: str = MSG_ID) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def now() -> int:
    # The library refuses timestamps more than five minutes away from its own clock.
    return int(time.time())


# --- secrets ----------------------------------------------------------------------------------


def test_generated_secret_is_whsec_and_24_random_bytes() -> None:
    secret = generate_webhook_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 24
    assert webhook_key(secret) == key
    assert generate_webhook_secret() != secret


def test_webhook_key_decodes_the_base64_part() -> None:
    assert webhook_key(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


# --- one key ------------------------------------------------------------------------------------


def test_one_key_verifies_with_the_standard_webhooks_library() -> None:
    secret = generate_webhook_secret()
    ts = now()
    signature = sign(MSG_ID, ts, BODY, [webhook_key(secret)])
    assert signature.startswith("v1,")
    assert " " not in signature
    payload = Webhook(secret).verify(BODY, headers(signature, ts))
    assert payload == {
        "id": "evt_01",
        "type": "task.succeeded",
        "sequence": 3,
        "data": {"status": "succeeded"},
    }


def test_known_answer_computed_independently() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    key = bytes(range(24))
    ts = 1780761791
    expected = base64.b64encode(
        hmac.new(key, f"{MSG_ID}.{ts}.".encode() + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(MSG_ID, ts, BODY, [webhook_key(secret)]) == f"v1,{expected}"


def test_known_answer_of_the_specification() -> None:
    assert sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, [webhook_key(SPEC_SECRET)]) == SPEC_SIGNATURE


def test_utf8_body_is_signed_as_bytes() -> None:
    secret = generate_webhook_secret()
    body = '{"data":{"prompt":"山谷 — été"}}'.encode()
    ts = now()
    Webhook(secret).verify(body, headers(sign(MSG_ID, ts, body, [webhook_key(secret)]), ts))


# --- rotation -----------------------------------------------------------------------------------


def test_two_keys_give_two_tokens_and_either_secret_verifies() -> None:
    old, new = generate_webhook_secret(), generate_webhook_secret()
    ts = now()
    signature = sign(MSG_ID, ts, BODY, [webhook_key(new), webhook_key(old)])
    tokens = signature.split(" ")
    assert len(tokens) == 2
    assert all(t.startswith("v1,") for t in tokens)
    assert tokens == [
        sign(MSG_ID, ts, BODY, [webhook_key(new)]),
        sign(MSG_ID, ts, BODY, [webhook_key(old)]),
    ]
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers(signature, ts))["id"] == "evt_01"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_webhook_secret()).verify(BODY, headers(signature, ts))


def test_no_keys_sign_nothing() -> None:
    assert sign(MSG_ID, 1, BODY, []) == ""


# --- what must not verify -----------------------------------------------------------------------


def test_tampered_body_fails() -> None:
    secret = generate_webhook_secret()
    ts = now()
    signature = sign(MSG_ID, ts, BODY, [webhook_key(secret)])
    tampered = BODY.replace(b"succeeded", b"failed")
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(tampered, headers(signature, ts))


def test_wrong_secret_fails() -> None:
    ts = now()
    signature = sign(MSG_ID, ts, BODY, [webhook_key(generate_webhook_secret())])
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(generate_webhook_secret()).verify(BODY, headers(signature, ts))


def test_id_and_timestamp_are_covered() -> None:
    secret = generate_webhook_secret()
    ts = now()
    signature = sign(MSG_ID, ts, BODY, [webhook_key(secret)])
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, headers(signature, ts, msg_id="evt_02"))
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, headers(signature, ts - 1))


def test_stale_timestamp_is_refused_by_the_receiver() -> None:
    secret = generate_webhook_secret()
    ts = now() - 3600
    signature = sign(MSG_ID, ts, BODY, [webhook_key(secret)])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers(signature, ts))


# --- API keys -----------------------------------------------------------------------------------


def test_hash_api_key_is_stable_sha256_hex() -> None:
    key = "rk_example-key"
    assert hash_api_key(key) == hash_api_key(key)
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(hash_api_key(key)) == 64
    assert hash_api_key(key) != hash_api_key("rk_example-kez")


def test_generated_api_keys_are_prefixed_and_distinct() -> None:
    first, second = generate_api_key(), generate_api_key()
    assert first.startswith("rk_")
    assert second.startswith("rk_")
    assert first != second
    assert hash_api_key(first) != hash_api_key(second)


# --- tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [{"after": 42, "order": "desc"}, 7, "x", [1, "two"], None])
def test_cursor_round_trip(value: object) -> None:
    tokens = Tokens("instance-secret")
    token = tokens.cursor(value)
    assert isinstance(token, str)
    assert tokens.read_cursor(token) == value
    assert Tokens("instance-secret").read_cursor(token) == value


def test_tampered_cursor_is_none() -> None:
    tokens = Tokens("instance-secret")
    token = tokens.cursor({"after": 42})
    payload, _, signature = token.rpartition(".")
    other_payload = tokens.cursor({"after": 43}).rpartition(".")[0]
    assert other_payload != payload
    assert tokens.read_cursor(f"{other_payload}.{signature}") is None
    assert tokens.read_cursor(payload) is None
    assert tokens.read_cursor("") is None
    assert tokens.read_cursor("not-a-token") is None


def test_cursor_from_another_secret_key_is_none() -> None:
    token = Tokens("instance-a").cursor({"after": 42})
    assert Tokens("instance-b").read_cursor(token) is None


NOW = datetime(2026, 6, 6, 16, 0, 0, tzinfo=UTC)
INK_MAX_AGE = 172_800.0
LIFETIMES = {"seedance2ink": inbound_lifetime(INK_MAX_AGE), "ark": inbound_lifetime(3600)}


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_inbound_tokens_name_one_task_and_refuse_tampering() -> None:
    tokens = Tokens("k" * 32, LIFETIMES)
    token = tokens.inbound("seedance2ink", "acc_1", "task_1", NOW)
    assert tokens.read_inbound("seedance2ink", token, NOW) == InboundToken(
        "seedance2ink", "acc_1", "task_1"
    )
    # Another purpose's token, another key, or one flipped character is not ours.
    cursor = tokens.cursor(["seedance2ink", "acc_1", "task_1"])
    assert tokens.read_inbound("seedance2ink", cursor, NOW) is None
    assert Tokens("x" * 32, LIFETIMES).read_inbound("seedance2ink", token, NOW) is None
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert tokens.read_inbound("seedance2ink", flipped, NOW) is None
    assert tokens.read_inbound("seedance2ink", "", NOW) is None
    # Another provider's URL, or one the relay no longer serves.
    assert tokens.read_inbound("ark", token, NOW) is None
    assert Tokens("k" * 32).read_inbound("seedance2ink", token, NOW) is None


def test_an_inbound_token_lasts_its_providers_slowest_task_and_then_expires() -> None:
    tokens = Tokens("k" * 32, LIFETIMES)
    token = tokens.inbound("seedance2ink", "acc_1", "task_1", NOW)
    assert inbound_lifetime(INK_MAX_AGE) == INK_MAX_AGE + INBOUND_GRACE
    # Good for a task as slow as the provider's maximum age, and a late push after it ...
    last = INK_MAX_AGE + INBOUND_GRACE
    assert tokens.read_inbound("seedance2ink", token, later(INK_MAX_AGE)) is not None
    assert tokens.read_inbound("seedance2ink", token, later(last)) is not None
    # ... and no longer.
    assert tokens.read_inbound("seedance2ink", token, later(last + 1)) is None
    # A provider with a shorter maximum age has shorter-lived URLs; the lifetime is read
    # when the token is, so changing a provider's max_age applies to URLs already out.
    short = Tokens("k" * 32, {"seedance2ink": inbound_lifetime(3600)})
    assert short.read_inbound("seedance2ink", token, later(3600 + INBOUND_GRACE)) is not None
    assert short.read_inbound("seedance2ink", token, later(3601 + INBOUND_GRACE)) is None


def test_an_inbound_token_from_an_instance_whose_clock_runs_ahead_is_good() -> None:
    tokens = Tokens("k" * 32, LIFETIMES)
    ahead = tokens.inbound("seedance2ink", "acc_1", "task_1", later(INBOUND_SKEW))
    assert tokens.read_inbound("seedance2ink", ahead, NOW) is not None
    too_far = tokens.inbound("seedance2ink", "acc_1", "task_1", later(INBOUND_SKEW + 1))
    assert tokens.read_inbound("seedance2ink", too_far, NOW) is None


def test_an_inbound_token_is_stamped_with_the_time_it_is_given_not_the_system_clock() -> None:
    tokens = Tokens("k" * 32, LIFETIMES)
    old = tokens.inbound("seedance2ink", "acc_1", "task_1", datetime(2020, 1, 1, tzinfo=UTC))
    assert tokens.read_inbound("seedance2ink", old, datetime.now(UTC)) is None
    assert tokens.read_inbound("seedance2ink", old, datetime(2020, 1, 2, tzinfo=UTC)) is not None


def test_an_untimed_token_of_an_earlier_relay_covers_only_a_task_young_enough() -> None:
    # Exactly what relays issued before tokens carried their time.
    untimed = str(
        URLSafeSerializer("k" * 32, salt="inbound").dumps(["seedance2ink", "acc_1", "task_1"])
    )
    tokens = Tokens("k" * 32, LIFETIMES)
    named = tokens.read_inbound("seedance2ink", untimed, NOW)
    # It cannot say when it was issued, but that was when its task was created: it names the
    # task only if the task is younger than the provider's inbound lifetime.
    assert named == InboundToken(
        "seedance2ink",
        "acc_1",
        "task_1",
        created_after=NOW - timedelta(seconds=INK_MAX_AGE + INBOUND_GRACE),
    )
    assert tokens.read_inbound("ark", untimed, NOW) is None
    assert Tokens("x" * 32, LIFETIMES).read_inbound("seedance2ink", untimed, NOW) is None
    # A timed token is never read as an untimed one (which would never expire).
    timed = tokens.inbound("seedance2ink", "acc_1", "task_1", NOW)
    assert tokens.read_inbound("seedance2ink", timed, later(10**7)) is None
