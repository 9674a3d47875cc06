"""The app's botocore clients: the same data and behaviour as boto3's, made cheaper."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import botocore.session
import pytest
from botocore import handlers
from botocore.exceptions import UnknownServiceError
from botocore.model import ServiceModel
from botocore.retries import standard
from moto import mock_aws

from chalicelib import aws, budgets, runtime, store
from chalicelib.errors import StoreUnavailable
from tests.conftest import START, TABLE


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("load_data", ("endpoints",)),
        ("load_data", ("partitions",)),
        ("load_data", ("sdk-default-configuration",)),
        ("load_service_model", ("dynamodb", "service-2")),
        ("load_service_model", ("dynamodb", "endpoint-rule-set-1")),
        ("load_service_model", ("secretsmanager", "service-2")),
    ],
)
def test_the_loader_reads_what_botocore_reads(method: str, args: tuple[str, ...]) -> None:
    ours = getattr(aws.AppLoader(), method)(*args)
    theirs = getattr(botocore.session.get_session().get_component("data_loader"), method)(*args)
    assert type(ours) is dict  # plain dicts, not OrderedDicts
    assert ours == theirs
    assert list(ours) == list(theirs)  # in the same order


def _handlers(session: botocore.session.Session, event_name: str) -> list[object]:
    """The handlers `session` calls for `event_name`, in order (botocore's own lookup)."""
    aliaser = session.get_component("event_emitter")
    return list(aliaser._emitter._handlers.prefix_search(aliaser._alias_event_name(event_name)))


def _event_names(service: str) -> list[str]:
    """Every event name a client of `service` can emit that a built-in handler listens to:
    each event type of botocore.handlers, alone, for the service and for each operation."""
    model = ServiceModel(aws.AppLoader().load_service_model(service, "service-2"), service)
    service_id = model.service_id.hyphenize()
    kinds = {spec[0].split(".")[0] for spec in handlers.BUILTIN_HANDLERS} - {"docs"}
    sections = {
        spec[0].split(".")[1] for spec in handlers.BUILTIN_HANDLERS if spec[0][:5] == "docs."
    }
    names = [f"{kind}{suffix}" for kind in kinds for suffix in ("", f".{service_id}")]
    for op in model.operation_names:
        names += [f"{kind}.{service_id}.{op}" for kind in kinds]
        names += [f"docs.{section}.{service_id}.{op}.complete-section" for section in sections]
    return names


@pytest.mark.parametrize("service", aws.SERVICES)
def test_the_session_has_botocore_s_handlers_for_every_event_of_its_services(service: str) -> None:
    """The same handlers, in the same order, as a stock session's: the session leaves out only
    those for other services."""
    ours, stock = aws.session(), botocore.session.get_session()
    names = _event_names(service)
    assert sum(bool(_handlers(stock, name)) for name in names) > 10
    for name in names:
        assert _handlers(ours, name) == _handlers(stock, name), name


def test_the_session_leaves_out_other_services_handlers() -> None:
    """A stock session registers every built-in handler (37 for S3 alone); ours none of theirs."""
    ours, stock = aws.session(), botocore.session.get_session()
    for name in ("before-parameter-build.s3.PutObject", "before-call.ec2.CopySnapshot"):
        assert len(_handlers(ours, name)) < len(_handlers(stock, name)), name
    assert not aws.handler_applies("before-parameter-build.s3.PutObject")
    assert not aws.handler_applies("docs.*.s3.CopyObject.complete-section")
    assert aws.handler_applies("docs.*.dynamodb.GetItem.complete-section")
    assert aws.handler_applies("before-call.secretsmanager")  # botocore's alias
    assert aws.handler_applies("request-created")
    assert aws.handler_applies("choose-signer.sts.AssumeRoleWithSAML")


def test_other_services_are_unknown() -> None:
    with pytest.raises(UnknownServiceError):
        aws.client("s3")


@pytest.mark.parametrize("service", aws.SERVICES)
def test_every_known_service_has_a_client(service: str) -> None:
    """Including those botocore's credential providers create (assume role, SSO, login)."""
    assert aws.client(service).meta.service_model.service_name == service


def test_clients_work_and_honour_the_endpoint_override(monkeypatch) -> None:
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        store.create_table(dynamodb, TABLE)
        assert dynamodb.list_tables()["TableNames"] == [TABLE]
        secrets = aws.client("secretsmanager")
        arn = secrets.create_secret(Name="s", SecretString="v")["ARN"]
        assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "v"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8999")
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:8999"
    assert aws.client("dynamodb").meta.region_name == "us-east-1"


def test_build_makes_its_own_clients(settings, key_set_json, clock, dynamodb, wechat) -> None:
    """runtime.build without injected clients (as in Lambda), inside the fixtures' moto."""
    secrets = aws.client("secretsmanager")
    arn = secrets.create_secret(Name="keys", SecretString=key_set_json)["ARN"]
    services = runtime.build(replace(settings, signing_keys_arn=arn), clock=clock)
    assert services.store.client is not dynamodb
    result = services.login.login("judy.1", START)
    assert services.sessions.refresh(result.tokens.refresh_token, START + 1)
    config = services.store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1, 2)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}  # 1 retry
    assert config.tcp_keepalive is True


def test_credentials_from_an_assumed_role_work(tmp_path, monkeypatch) -> None:
    """botocore's AssumeRole provider makes its STS client through the same loader."""
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\n"
        "aws_access_key_id = testing\n"
        "aws_secret_access_key = testing\n"
        "[profile role]\n"
        "role_arn = arn:aws:iam::123456789012:role/wxauth\n"
        "source_profile = base\n"
        "region = us-east-1\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "role")
    dynamodb = aws.client("dynamodb")  # before mock_aws, which sets credentials in the env
    assert dynamodb._request_signer._credentials.method == "assume-role"
    with mock_aws():  # the first call assumes the role (moto's STS), then lists (moto's DynamoDB)
        assert dynamodb.list_tables()["TableNames"] == []


def test_aws_data_path_is_searched_first(tmp_path, monkeypatch) -> None:
    """As botocore's own loader does: a model under AWS_DATA_PATH wins over botocore's."""
    theirs = aws.AppLoader().load_service_model("dynamodb", "service-2")
    version = theirs["metadata"]["apiVersion"]
    model = tmp_path / "dynamodb" / version / "service-2.json"
    model.parent.mkdir(parents=True)
    mine = {**theirs, "documentation": "from AWS_DATA_PATH"}
    model.write_text(json.dumps(mine))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loaded = aws.session().get_component("data_loader").load_service_model("dynamodb", "service-2")
    assert loaded["documentation"] == "from AWS_DATA_PATH"


def test_build_bounds_every_client_it_makes(settings, clock, monkeypatch) -> None:
    """DynamoDB and Secrets Manager clients alike: botocore's defaults (legacy mode, 5
    attempts, 60 s timeouts) could hold a cold start for minutes."""
    made: dict[str, object] = {}
    real = aws.client

    def recording(service: str, config=None, *, aws=None):
        made[service] = config
        return real(service, config, aws=aws)

    monkeypatch.setattr(aws, "client", recording)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-AbCdEf"
    runtime.build(replace(settings, signing_keys_arn=arn, wechat_secret_arn=arn), clock=clock)

    expected = {"dynamodb": budgets.DYNAMODB, "secretsmanager": budgets.SECRETS_MANAGER}
    assert set(made) == set(expected)
    for service, budget in expected.items():
        config = made[service]
        assert config.connect_timeout == budget.connect_timeout
        assert config.read_timeout == budget.read_timeout
        assert config.retries == {"mode": "standard", "total_max_attempts": budget.attempts}


class _Throttled:
    def is_throttling_error_from_context(self, context) -> bool:
        return True


class _RetryAfterForever:
    headers = {"x-amz-retry-after": str(10**9)}  # milliseconds


@pytest.mark.parametrize(
    "budget", [budgets.DYNAMODB, budgets.SECRETS_MANAGER, budgets.CallBudget(1, 1, 8)]
)
def test_worst_case_allows_for_botocores_longest_backoff(budget: budgets.CallBudget) -> None:
    """The sleeps the installed botocore's standard mode can take before each retry, at their
    longest (jitter 1, throttled, a huge `x-amz-retry-after`), are what worst_case allows."""
    backoff = standard.ExponentialBackoff(
        service_name="dynamodb", random=lambda: 1.0, throttling_detector=_Throttled()
    )
    sleeps = [
        backoff.delay_amount(
            standard.RetryContext(attempt_number=n, http_response=_RetryAfterForever())
        )
        for n in range(1, budget.attempts)
    ]
    waits = budget.attempts * (budget.connect_timeout + budget.read_timeout)
    assert budget.worst_case == pytest.approx(waits + sum(sleeps))


def test_a_dynamodb_call_to_a_server_that_never_answers_ends_within_its_budget(
    monkeypatch,
) -> None:
    """Connections are accepted (by the kernel's backlog) and nothing is ever answered, as
    with a stalled DynamoDB: the call gives up after its attempts' read timeouts."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        monkeypatch.setenv(
            "AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{silent.getsockname()[1]}"
        )
        dynamo = store.Store(aws.client("dynamodb", runtime.DYNAMODB_CONFIG), TABLE)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            dynamo.sessions.get("user", "session")
        elapsed = time.monotonic() - started

    # backoffs of timeouts: ~25 ms
    stall = budgets.DYNAMODB.attempts * budgets.DYNAMODB.read_timeout
    assert stall * 0.9 <= elapsed <= min(stall + 3, budgets.DYNAMODB.worst_case), elapsed


# -- the fast path only for the botocore releases it was checked against -------------------------


def test_the_locked_botocore_is_one_the_fast_path_was_checked_against() -> None:
    """A lock that moves botocore past VERIFIED_BOTOCORE fails here (and infra/build.py refuses
    to build): run tools/check_botocore.py with it, then widen the range."""
    assert aws.fast_path_supported(botocore.__version__), botocore.__version__


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("1.34.0", True),
        ("1.44.8", True),
        ("1.44.999", True),
        ("1.33.13", False),
        ("1.45.0", False),
        ("2.0.0", False),
        ("1", False),
        ("garbage", False),
    ],
)
def test_fast_path_supported(version: str, supported: bool) -> None:
    assert aws.fast_path_supported(version) is supported


def test_another_botocore_gets_the_stock_session_said_once(monkeypatch, log_lines) -> None:
    monkeypatch.setattr(botocore, "__version__", "1.99.0")
    monkeypatch.setattr(aws, "_stock_logged", False)

    sessions = [aws.session(), aws.session()]

    stock = botocore.session.get_session()
    for session in sessions:
        assert not isinstance(session.get_component("data_loader"), aws.AppLoader)
        name = "before-parameter-build.s3.PutObject"  # a handler the fast path leaves out
        assert len(_handlers(session, name)) == len(_handlers(stock, name))
    notes = [line for line in log_lines if "aws_stock_session" in line]
    assert len(notes) == 1 and '"botocore":"1.99.0"' in notes[0].replace(" ", "")
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        store.create_table(dynamodb, TABLE)
        assert dynamodb.list_tables()["TableNames"] == [TABLE]


def test_a_data_file_the_loader_cannot_read_is_left_to_botocore(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(
        aws.JSONFileLoader, "load_file", lambda self, path: {"read by": "botocore", "path": path}
    )
    missing = str(tmp_path / "endpoints")  # neither .json nor .json.gz: another form, say
    assert aws.PlainJSONFileLoader().load_file(missing) == {"read by": "botocore", "path": missing}
