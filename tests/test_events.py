"""Auth events (chalicelib/events.py): published to moto's EventBridge through a rule to an SQS
queue, with the documented schema, after the write, never with a secret, never failing a
request; off when unset; printed to the log with AUTH_EVENT_LOG."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import admin, events, runtime
from chalicelib.errors import ConfigurationError, StoreUnavailable
from chalicelib.events import Events
from chalicelib.logs import Metrics
from chalicelib.settings import Settings
from tests.conftest import (
    START,
    STUB_SESSION_KEY_MARK,
    TABLE,
    TEST_APPID,
    TEST_SECRET,
    table_items,
)
from tests.http import assert_error, bearer, login, post
from tests.test_phone import FakeBroker

BUS = "wxauth-test-bus"
COMMON = {"version", "event_id", "occurred_at", "issuer", "appid"}


class Bus:
    """moto's EventBridge: a bus, a rule for `source: wxauth` to an SQS queue, and every
    PutEvents request the service sent (its entries as sent)."""

    def __init__(self) -> None:
        self.client = boto3.client("events", region_name="us-east-1")
        self.client.create_event_bus(Name=BUS)
        self._sqs = boto3.client("sqs", region_name="us-east-1")
        self._queue = self._sqs.create_queue(QueueName="wxauth-events")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.client.put_rule(
            Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["wxauth"]})
        )
        self.client.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
        self.requests: list[list[dict]] = []
        self.client.meta.events.register(
            "provide-client-params.eventbridge.PutEvents",
            lambda params, **_: self.requests.append(params["Entries"]),
        )

    def delivered(self) -> list[dict]:
        """Every event the rule delivered since the last call, oldest first."""
        found: list[dict] = []
        while True:
            answer = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"]
                )

    def kinds(self) -> list[str]:
        return [event["detail-type"] for event in self.delivered()]


@pytest.fixture
def bus(dynamodb) -> Bus:  # inside the dynamodb fixture's mock_aws
    return Bus()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(stack="test-stack")


@pytest.fixture
def services(settings, dynamodb, clock, wechat, bus, metrics) -> runtime.Services:
    """The service graph with AUTH_EVENT_BUS set, publishing to moto's bus."""
    return runtime.build(
        replace(settings, event_bus=BUS),
        dynamodb=dynamodb,
        clock=clock,
        sleep=lambda _: None,
        metrics=metrics,
        events_client=bus.client,
    )


def assert_no_secret(entries_or_events: object, *secrets: str) -> None:
    text = json.dumps(entries_or_events, default=str)
    for secret in (TEST_SECRET, STUB_SESSION_KEY_MARK, *secrets):
        assert secret not in text


def dropped_metrics(log_lines: list[str]) -> list[dict]:
    lines = [json.loads(line) for line in log_lines if line.startswith('{"_aws"')]
    return [line for line in lines if "EventsDropped" in line]


# -- login ---------------------------------------------------------------------------------------


def test_a_first_login_publishes_user_created_and_user_logged_in(client, bus):
    body = login(client, "alice.1")
    user_id = body["user"]["id"]

    assert len(bus.requests) == 1 and len(bus.requests[0]) == 2  # one PutEvents call
    for entry in bus.requests[0]:
        assert entry["Source"] == "wxauth" and entry["EventBusName"] == BUS
        assert entry["Time"] == datetime.fromtimestamp(START, UTC)
    created, logged_in = bus.delivered()
    assert created["source"] == "wxauth" and created["detail-type"] == "UserCreated"
    assert created["time"] == "2027-01-15T08:00:00Z"
    assert created["detail"] == {
        "version": 1,
        "event_id": created["detail"]["event_id"],
        "occurred_at": START,
        "issuer": "https://auth.test",
        "appid": TEST_APPID,
        "user_id": user_id,
        "created_at": START,
    }
    assert logged_in["detail-type"] == "UserLoggedIn"
    session_id = logged_in["detail"]["session_id"]
    assert logged_in["detail"] == {
        "version": 1,
        "event_id": logged_in["detail"]["event_id"],
        "occurred_at": START,
        "issuer": "https://auth.test",
        "appid": TEST_APPID,
        "user_id": user_id,
        "session_id": session_id,
        "client_id": TEST_APPID,
        "is_new": True,
    }
    assert session_id == body["refresh_token"].split(".")[1]
    assert created["detail"]["event_id"] != logged_in["detail"]["event_id"]
    assert_no_secret(bus.requests, body["access_token"], body["refresh_token"], "alice.1")


def test_a_returning_login_is_only_user_logged_in_and_a_replay_publishes_nothing(
    client, bus, clock
):
    login(client, "alice.1")
    bus.delivered()
    clock.advance(10)
    login(client, "alice.2")
    (event,) = bus.delivered()
    assert event["detail-type"] == "UserLoggedIn" and event["detail"]["is_new"] is False
    assert event["detail"]["occurred_at"] == START + 10

    login(client, "alice.2")  # the same code again: the same session, nothing new happened
    assert bus.delivered() == [] and len(bus.requests) == 2


def test_a_login_whose_session_write_failed_publishes_no_login(
    client, bus, services, dynamodb, monkeypatch
):
    def fail(*args, **kwargs):
        raise StoreUnavailable("throttled")

    finish_login = services.store.logins.finish
    monkeypatch.setattr(services.store.logins, "finish", fail)
    assert_error(post(client, "/auth/login", {"code": "alice.1"}), 503, "temporarily_unavailable")
    # The user was written before the session's transaction failed: that much is true, and
    # the next login will not be a first one.
    (created,) = bus.delivered()
    assert created["detail-type"] == "UserCreated"
    assert [item["sk"]["S"] for item in table_items(dynamodb)] == ["IDENTITY", "PROFILE"]

    monkeypatch.setattr(services.store.logins, "finish", finish_login)
    body = login(client, "alice.2")
    (logged_in,) = bus.delivered()
    assert logged_in["detail-type"] == "UserLoggedIn" and logged_in["detail"]["is_new"] is False
    assert logged_in["detail"]["user_id"] == body["user"]["id"] == created["detail"]["user_id"]


def test_a_login_whose_user_write_failed_publishes_nothing(client, bus, services, monkeypatch):
    def fail(*args, **kwargs):
        raise StoreUnavailable("throttled")

    monkeypatch.setattr(services.graph, "resolve", fail)  # finding the user (identity graph)
    assert_error(post(client, "/auth/login", {"code": "alice.1"}), 503, "temporarily_unavailable")
    assert bus.requests == [] and bus.delivered() == []


def test_a_rejected_code_publishes_nothing(client, bus):
    assert_error(post(client, "/auth/login", {"code": "err-40029.1"}), 400, "invalid_grant")
    assert bus.requests == []


# -- refresh, reuse --------------------------------------------------------------------------------


def test_a_refresh_publishes_nothing_and_stays_one_dynamodb_request(
    client, bus, clock, dynamodb_requests
):
    body = login(client)
    bus.requests.clear()
    dynamodb_requests.clear()
    clock.advance(60)
    response = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert response.status_code == 200
    assert dynamodb_requests == ["UpdateItem"] and bus.requests == []


def test_reuse_publishes_reuse_detected_and_session_ended(client, bus, clock):
    body = login(client)
    clock.advance(60)
    rotated = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).json_body
    bus.delivered()
    clock.advance(3600)  # past the grace window: the old token is a thief's

    response = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert_error(response, 400, "invalid_grant")
    reuse, ended = bus.delivered()
    user_id, session_id = body["user"]["id"], body["refresh_token"].split(".")[1]
    assert reuse["detail-type"] == "RefreshTokenReuseDetected"
    assert {k: v for k, v in reuse["detail"].items() if k not in COMMON} == {
        "user_id": user_id,
        "session_id": session_id,
        "client_id": TEST_APPID,
        "generations_behind": 1,
    }
    assert ended["detail-type"] == "SessionEnded"
    assert {k: v for k, v in ended["detail"].items() if k not in COMMON} == {
        "user_id": user_id,
        "session_ids": [session_id],
        "session_count": 1,
        "reason": "refresh_token_reuse",
        "all_sessions": False,
    }
    assert ended["detail"]["occurred_at"] == START + 3660
    assert_no_secret(bus.requests, body["refresh_token"], rotated["refresh_token"])

    # the revoked session again: nothing more is revoked, nothing more is published
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}),
        400,
        "invalid_grant",
    )
    assert bus.delivered() == []


# -- sessions ending -------------------------------------------------------------------------------


def ended(bus: Bus) -> dict:
    (event,) = bus.delivered()
    assert event["detail-type"] == "SessionEnded"
    return {k: v for k, v in event["detail"].items() if k not in COMMON}


def test_logout_publishes_session_ended_once(client, bus):
    body = login(client)
    bus.delivered()
    response = post(client, "/auth/logout", headers=bearer(body["access_token"]))
    assert response.status_code == 204
    assert ended(bus) == {
        "user_id": body["user"]["id"],
        "session_ids": [body["refresh_token"].split(".")[1]],
        "session_count": 1,
        "reason": "logout",
        "all_sessions": False,
    }
    assert_no_secret(bus.requests, body["access_token"], body["refresh_token"])


def test_logout_all_publishes_one_session_ended_for_every_live_session(client, bus):
    first, second, third = (login(client, f"alice.{n}") for n in (1, 2, 3))
    post(client, "/auth/logout", headers=bearer(third["access_token"]))
    bus.delivered()
    response = post(client, "/auth/logout", {"all": True}, headers=bearer(first["access_token"]))
    assert response.status_code == 204
    detail = ended(bus)
    assert sorted(detail.pop("session_ids")) == sorted(
        body["refresh_token"].split(".")[1] for body in (first, second)
    )
    assert detail == {
        "user_id": first["user"]["id"],
        "session_count": 2,
        "reason": "logout",
        "all_sessions": True,
    }


def test_oauth_revoke_publishes_session_ended_only_when_it_ended_one(client, bus):
    body = login(client)
    bus.delivered()
    form = {"content-type": "application/x-www-form-urlencoded"}
    revoke = f"token={body['refresh_token']}"
    assert client.http.post("/oauth/revoke", headers=form, body=revoke).status_code == 200
    assert ended(bus)["reason"] == "oauth_revoke"
    assert client.http.post("/oauth/revoke", headers=form, body=revoke).status_code == 200
    assert bus.delivered() == []  # already revoked: nothing ended, nothing published


@pytest.fixture
def admin_env(monkeypatch, settings) -> None:
    """wxauth-admin's environment: the test table, the test keys, the test bus."""
    monkeypatch.setenv("AUTH_TABLE_NAME", TABLE)
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", settings.signing_keys_file)
    monkeypatch.setenv("AUTH_EVENT_BUS", BUS)


def test_admin_revoke_and_revoke_all_publish_at_the_end_of_the_command(
    capsys, admin_env, client, bus
):
    first, second = login(client, "alice.1"), login(client, "alice.2")
    bus.delivered()
    user_id, session_id = first["user"]["id"], first["refresh_token"].split(".")[1]

    assert admin.main(["sessions", "revoke", user_id, session_id]) == 0, capsys.readouterr()
    assert ended(bus) == {
        "user_id": user_id,
        "session_ids": [session_id],
        "session_count": 1,
        "reason": "admin",
        "all_sessions": False,
    }
    assert admin.main(["sessions", "revoke-all", user_id]) == 0
    assert ended(bus)["session_ids"] == [second["refresh_token"].split(".")[1]]
    assert admin.main(["sessions", "revoke-all", user_id]) == 0  # nothing left to end
    assert bus.delivered() == []


def test_ending_one_session_and_logout_others_publish_one_session_ended_each(client, bus):
    first, second, third = (login(client, f"alice.{n}") for n in (1, 2, 3))
    sid = lambda body: body["refresh_token"].split(".")[1]  # noqa: E731
    bus.delivered()
    response = client.http.delete(
        f"/auth/sessions/{sid(second)}", headers=bearer(first["access_token"])
    )
    assert response.status_code == 204
    assert ended(bus) == {
        "user_id": first["user"]["id"],
        "session_ids": [sid(second)],
        "session_count": 1,
        "reason": "ended",
        "all_sessions": False,
    }
    response = post(client, "/auth/logout", {"others": True}, headers=bearer(first["access_token"]))
    assert response.status_code == 204
    detail = ended(bus)
    assert (detail["session_ids"], detail["session_count"], detail["reason"]) == (
        [sid(third)],
        1,
        "logout",
    )


def test_admin_ban_publishes_session_ended_and_user_banned(capsys, admin_env, client, bus):
    first, _ = login(client, "alice.1"), login(client, "alice.2")
    bus.delivered()
    user_id = first["user"]["id"]
    assert admin.main(["user", "ban", user_id, "--reason", "fraud"]) == 0, capsys.readouterr()
    published = {event["detail-type"]: event["detail"] for event in bus.delivered()}
    assert sorted(published) == ["SessionEnded", "UserBanned"]
    assert published["SessionEnded"]["reason"] == "banned"
    assert published["SessionEnded"]["session_count"] == 2
    banned = {k: v for k, v in published["UserBanned"].items() if k not in COMMON}
    assert banned == {"user_id": user_id, "sessions_ended": 2}
    assert published["UserBanned"]["appid"] == TEST_APPID
    assert "fraud" not in json.dumps(published)  # the reason is for operators only


def test_admin_merge_publishes_user_merged_and_session_ended(capsys, admin_env, client, bus):
    kept, absorbed = login(client, "alice.1"), login(client, "bob.1")
    bus.delivered()
    into, source = kept["user"]["id"], absorbed["user"]["id"]
    argv = ["user", "merge", "--into", into, "--from", source]
    reason = ["--force", "--reason", "ticket 7", "--operator", "carol"]
    assert admin.main([*argv, *reason]) == 0, capsys.readouterr()
    published = {event["detail-type"]: event["detail"] for event in bus.delivered()}
    assert sorted(published) == ["SessionEnded", "UserMerged"]
    assert (published["SessionEnded"]["user_id"], published["SessionEnded"]["reason"]) == (
        source,
        "merged",
    )
    merged = {k: v for k, v in published["UserMerged"].items() if k not in COMMON}
    assert merged == {
        "user_id": into,
        "merged_user_id": source,
        "identities_moved": 1,
        "forced": True,
        "sessions_ended": 1,
    }
    text = json.dumps(published)
    assert "ticket 7" not in text and "carol" not in text  # the operators' (profile, log)


# -- phone -----------------------------------------------------------------------------------------


def test_phone_bound_names_users_never_the_number(client, bus, services):
    services.__dict__["broker"] = FakeBroker()  # before `services.phone` is first built
    alice, bob = login(client, "alice.1"), login(client, "bob.1")
    bus.delivered()
    response = post(
        client, "/auth/phone", {"code": "phone.alice.13800138000"}, bearer(alice["access_token"])
    )
    assert response.status_code == 200, response.json_body
    (event,) = bus.delivered()
    assert event["detail-type"] == "PhoneBound"
    assert {k: v for k, v in event["detail"].items() if k not in COMMON} == {
        "user_id": alice["user"]["id"]
    }
    assert event["detail"]["appid"] == TEST_APPID

    services.phone._conflict = "move"
    response = post(
        client, "/auth/phone", {"code": "phone.bob.13800138000"}, bearer(bob["access_token"])
    )
    assert response.status_code == 200, response.json_body
    (event,) = bus.delivered()
    assert event["detail"]["moved_from_user_id"] == alice["user"]["id"]
    assert event["detail"]["user_id"] == bob["user"]["id"]
    assert_no_secret(bus.requests, "13800138000", "phone.alice", "phone.bob", "server-token-1")


def test_phone_refused_publishes_nothing(client, bus, services):
    services.__dict__["broker"] = FakeBroker()
    alice, bob = login(client, "alice.1"), login(client, "bob.1")
    post(client, "/auth/phone", {"code": "phone.alice.13800138000"}, bearer(alice["access_token"]))
    bus.delivered()
    response = post(
        client, "/auth/phone", {"code": "phone.bob.13800138000"}, bearer(bob["access_token"])
    )
    assert_error(response, 409, "phone_in_use")
    assert bus.delivered() == []


# -- failures never fail a request -----------------------------------------------------------------


class FailingClient:
    def __init__(self, error: Exception | None = None, answer: dict | None = None) -> None:
        self.error, self.answer, self.calls = error, answer, 0

    def put_events(self, Entries):  # noqa: N803 - botocore's parameter name
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer or {"FailedEntryCount": 0, "Entries": [{} for _ in Entries]}


@pytest.mark.parametrize(
    "failing",
    [
        FailingClient(EndpointConnectionError(endpoint_url="https://events.test")),
        FailingClient(RuntimeError("a bug in the client")),
        FailingClient(
            answer={
                "FailedEntryCount": 1,
                "Entries": [{"EventId": "1"}, {"ErrorCode": "InternalFailure"}],
            }
        ),
        FailingClient(answer={"FailedEntryCount": 2, "Entries": []}),
    ],
    ids=["unreachable", "bug", "one-entry-failed", "count-only"],
)
def test_a_failed_publish_never_fails_the_request_and_is_counted(
    client, services, log_lines, failing
):
    services.events._client = failing
    body = login(client)  # a 200 all the same
    assert failing.calls == 1
    (metric,) = dropped_metrics(log_lines)
    assert metric["EventsDropped"] in (1, 2)
    (line,) = [json.loads(line) for line in log_lines if '"events_dropped"' in line]
    assert line["count"] == metric["EventsDropped"]
    assert set(line["detail_types"]) <= {"UserCreated", "UserLoggedIn"}
    for text in (line, metric):
        assert body["user"]["id"] not in json.dumps(text)  # no event's content
    assert (
        post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).status_code == 200
    )


def test_a_missing_bus_is_counted_not_a_500(client, services, bus, log_lines):
    services.events._bus = "no-such-bus"
    login(client)
    (metric,) = dropped_metrics(log_lines)
    assert metric["EventsDropped"] == 2 and metric["reason"] == "put_events_failed"


def test_a_silent_eventbridge_costs_at_most_the_publish_budget(
    settings, dynamodb, clock, wechat, log_lines, monkeypatch
):
    """A real botocore client against an endpoint that accepts and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTS", f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        services = runtime.build(
            replace(settings, event_bus=BUS), dynamodb=dynamodb, clock=clock, sleep=lambda _: None
        )
        services.login.login("alice.1", START)
        started = time.monotonic()
        assert services.events.flush() == 2
        took = time.monotonic() - started
    finally:
        silent.close()
    assert took < events.PUBLISH.worst_case + 0.5
    config = services.events._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert dropped_metrics(log_lines)[0]["reason"] == "put_events_failed"


# -- the sink itself -------------------------------------------------------------------------------


def test_off_when_unset_buffers_nothing_and_builds_no_client(
    settings, dynamodb, clock, wechat, monkeypatch
):
    def no_client(*args, **kwargs):
        raise AssertionError("no EventBridge client without AUTH_EVENT_BUS")

    monkeypatch.setattr(runtime.aws, "client", no_client)
    services = runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    assert not services.events.enabled
    result = services.login.login("alice.1", START)
    services.sessions.revoke(result.tokens.user_id, result.tokens.session_id, now=START)
    assert services.events.pending() == [] and services.events.flush() == 0


def test_more_than_one_call_s_worth_is_one_call_and_the_rest_counted(log_lines):
    sent = FailingClient()
    sink = Events(bus=BUS, client=lambda: sent, metrics=Metrics(stack="t"))
    for n in range(12):
        sink.session_ended(f"user{n}", [f"session{n}"], reason="logout", now=START)
    assert sink.flush() == 2
    assert sent.calls == 1 and sink.pending() == []
    (metric,) = dropped_metrics(log_lines)
    assert metric["EventsDropped"] == 2 and metric["reason"] == "overflow"


def test_each_thread_flushes_only_its_own_events():
    sent: list[list[dict]] = []

    class Recording(FailingClient):
        def put_events(self, Entries):  # noqa: N803
            sent.append(Entries)
            return super().put_events(Entries)

    sink = Events(bus=BUS, client=Recording)
    sink.user_created("mine", appid=None, now=START)
    other = threading.Thread(target=lambda: sink.user_created("theirs", appid=None, now=START))
    other.start()
    other.join()
    sink.flush()
    assert [json.loads(entry["Detail"])["user_id"] for entry in sent[0]] == ["mine"]


def test_session_ended_caps_its_ids_and_says_how_many():
    sink = Events(log=True)
    sink.session_ended("u", [f"s{n}" for n in range(events.MAX_SESSION_IDS + 5)], reason="x", now=1)
    sink.session_ended("u", [], reason="x", now=1)  # nothing ended: no event
    ((_, _, detail),) = sink.pending()
    assert len(detail["session_ids"]) == events.MAX_SESSION_IDS
    assert detail["session_count"] == events.MAX_SESSION_IDS + 5


def test_user_banned_helper_schema():
    sink = Events(log=True, appid=TEST_APPID, new_id=lambda: "id1")
    sink.user_banned("u1", now=START, sessions_ended=3)
    assert sink.pending() == [
        (
            "UserBanned",
            START,
            {
                "version": 1,
                "event_id": "id1",
                "occurred_at": START,
                "issuer": "",
                "appid": TEST_APPID,
                "user_id": "u1",
                "sessions_ended": 3,
            },
        )
    ]
    assert set(events.DETAIL_TYPES) == {
        "UserCreated",
        "UserLoggedIn",
        "RefreshTokenReuseDetected",
        "SessionEnded",
        "UserBanned",
        "UserMerged",
        "PhoneBound",
        "UserDeletionRequested",
        "UserDeletionCancelled",
        "UserDeleted",
        "DeviceLoginConfirmed",  # issue 24, item 3
        "DeviceLoginDenied",
    }


def test_the_log_sink_prints_each_event_as_a_json_line(
    settings, dynamodb, clock, wechat, log_lines
):
    services = runtime.build(
        replace(settings, event_log=True), dynamodb=dynamodb, clock=clock, sleep=lambda _: None
    )
    result = services.login.login("alice.1", START)
    assert not [line for line in log_lines if "auth_event" in line]  # buffered until the flush
    assert services.events.flush() == 0
    lines = [json.loads(line) for line in log_lines if '"auth_event"' in line]
    assert [line["detail-type"] for line in lines] == ["UserCreated", "UserLoggedIn"]
    assert lines[1]["detail"]["session_id"] == result.tokens.session_id
    assert_no_secret(lines, result.tokens.refresh_token, result.tokens.access_token, "alice.1")


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "bus"),
    [
        ("", None),
        ("wxauth-events", "wxauth-events"),
        (
            "arn:aws:events:us-east-1:123456789012:event-bus/wxauth",
            "arn:aws:events:us-east-1:123456789012:event-bus/wxauth",
        ),
    ],
)
def test_auth_event_bus_setting(raw, bus):
    assert Settings.from_env({"AUTH_EVENT_BUS": raw}).event_bus == bus


@pytest.mark.parametrize(
    "raw", ["has space", "arn:aws:events:us-east-1:1234:event-bus/x", "a" * 257, "bus;drop"]
)
def test_a_bad_auth_event_bus_is_refused(raw):
    with pytest.raises(ConfigurationError, match="AUTH_EVENT_BUS"):
        Settings.from_env({"AUTH_EVENT_BUS": raw})


def test_auth_event_log_setting():
    assert Settings.from_env({}).event_log is False
    assert Settings.from_env({"AUTH_EVENT_LOG": "true"}).event_log is True
    with pytest.raises(ConfigurationError, match="AUTH_EVENT_LOG"):
        Settings.from_env({"AUTH_EVENT_LOG": "sometimes"})


# -- one-tap phone login (issue 24, item 1) --------------------------------------------------------


def test_a_phone_login_publishes_its_user_and_its_number_and_a_refused_one_nothing(
    client, bus, services
):
    services.__dict__["broker"] = FakeBroker()  # before `services.phone` is first built
    body = {"code": "alice.1", "phone_code": "phone.alice.13800138000"}
    alice = post(client, "/auth/login", body).json_body
    published = {e["detail-type"]: e["detail"] for e in bus.delivered()}
    assert set(published) == {"UserCreated", "PhoneBound", "UserLoggedIn"}
    assert published["PhoneBound"]["user_id"] == alice["user"]["id"]

    refused = post(client, "/auth/login", {"code": "bob.1", "phone_code": "phone.bob.13800138000"})

    assert refused.status_code == 409
    assert bus.delivered() == []  # no user, no session, no number: nothing to tell
    assert "13800138000" not in json.dumps(published)
