"""Issue 24, items 1 and 4, over real HTTP against the local server (`python -m devserver`), on a
moto server and a fake WeChat of the test's own (its paid phone calls counted, a third-party
platform's APIs served: devserver/fake_component.py):

- one-tap phone login (`POST /auth/login` with `phone_code`): a new user, a returning one, the
  same phone code twice (one paid call), another user's number under `refuse` and `link`;
- the platform: a forged ticket push refused, a genuine one answered `success`, a `component`
  app's new and returning user."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import requests
from moto.server import ThreadedMotoServer

from devserver.fake_component import TICKET_ROUTE, FakeComponent
from devserver.fake_wechat import FakeWeChat
from tests.integration.local_server import REPO_ROOT, LocalServer, local_server

pytestmark = pytest.mark.integration

APPID, SECRET = "wx-phone-appid", "phone-secret-0123456789"
PLATFORM, PLATFORM_SECRET = "wx-platform-it", "platform-secret-0123456789"
PUSH_TOKEN, AES_KEY = "push-token-it", "Q" * 43
APP_C = "wx-app-component"  # a mini-program that authorized the platform
_n = itertools.count(1)


@dataclass
class Target:
    server: LocalServer
    wechat: FakeWeChat
    platform: FakeComponent

    def post(self, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        if path == "/auth/login" and body is not None:  # two apps: each login names its own
            body = {"appid": APPID, **body}
        return requests.post(f"{self.server.url}{path}", json=body, timeout=30, **kwargs)

    def me(self, access_token: str) -> dict:
        response = requests.get(
            f"{self.server.url}/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=30
        )
        assert response.status_code == 200
        return response.json()


def admin(env: dict[str, str], *argv: str) -> None:
    done = subprocess.run(  # noqa: S603 - the project's own command line
        [sys.executable, "-m", "chalicelib.admin", *argv],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def serve(tmp, policy: str) -> Iterator[Target]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    platform = FakeComponent(PLATFORM, PLATFORM_SECRET, PUSH_TOKEN, AES_KEY, authorized={APP_C})
    wechat = FakeWeChat(APPID, SECRET, component=platform)
    wechat.start()
    aws = {
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AUTH_TABLE_NAME": f"wxauth-phone-{policy}",  # moto servers of one process share tables
    }
    env = {
        **aws,
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_APPID": APPID,
        "WECHAT_SECRET": SECRET,
        "AUTH_PHONE_LOGIN": policy,
        "WECHAT_COMPONENT_APPID": PLATFORM,
        "WECHAT_COMPONENT_SECRET": PLATFORM_SECRET,
        "WECHAT_COMPONENT_TOKEN": PUSH_TOKEN,
        "WECHAT_COMPONENT_AES_KEY": AES_KEY,
    }
    try:
        with local_server(tmp, env=env) as server:
            admin(aws, "app", "add", "--appid", APP_C, "--kind", "component",
                  "--component-appid", PLATFORM)  # fmt: skip
            yield Target(server, wechat, platform)
    finally:
        wechat.stop()
        moto.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from serve(tmp_path_factory.mktemp("phone"), "refuse")


def user() -> str:
    return f"user{next(_n)}"


def number() -> str:
    return f"1380000{next(_n):04d}"


# -- item 1: one-tap phone login --------------------------------------------------------------


def test_a_new_user_then_a_returning_one_log_in_with_their_number(target: Target) -> None:
    name, digits = user(), number()

    new = target.post("/auth/login", {"code": f"{name}.1", "phone_code": f"phone.{name}.{digits}"})

    assert new.status_code == 200, new.text
    assert new.json()["user"]["is_new"] is True
    assert new.json()["user"]["phone"]["phone_number"] == f"+86{digits}"
    assert target.me(new.json()["access_token"])["phone"]["pure_phone_number"] == digits

    again = target.post(
        "/auth/login", {"code": f"{name}.2", "phone_code": f"phone.{name}.{digits}.x"}
    )

    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == new.json()["user"]["id"]
    assert again.json()["user"]["is_new"] is False


def test_the_same_phone_code_twice_makes_one_paid_call(target: Target) -> None:
    name, digits = user(), number()
    phone_code = f"phone.{name}.{digits}"

    first = target.post("/auth/login", {"code": f"{name}.1", "phone_code": phone_code})
    second = target.post("/auth/login", {"code": f"{name}.2", "phone_code": phone_code})

    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert second.json()["user"]["phone"] == first.json()["user"]["phone"]
    assert target.wechat.phone_calls_for(phone_code) == 1


def test_another_users_number_is_refused_and_leaves_no_user(target: Target) -> None:
    owner, other, digits = user(), user(), number()
    assert (
        target.post(
            "/auth/login", {"code": f"{owner}.1", "phone_code": f"phone.{owner}.{digits}"}
        ).status_code
        == 200
    )

    refused = target.post(
        "/auth/login", {"code": f"{other}.1", "phone_code": f"phone.{other}.{digits}"}
    )

    assert refused.status_code == 409 and refused.json()["error"] == "phone_in_use"
    assert digits not in refused.text
    # no user was created: the same person's next plain login is its first
    plain = target.post("/auth/login", {"code": f"{other}.2"})
    assert plain.status_code == 200 and plain.json()["user"]["is_new"] is True


def test_the_server_log_names_no_phone_number_nor_phone_code(target: Target) -> None:
    name, digits = user(), number()
    target.post("/auth/login", {"code": f"{name}.1", "phone_code": f"phone.{name}.{digits}"})

    assert digits not in target.server.output()
    assert f"phone.{name}" not in target.server.output()


# -- item 4: the third-party platform ---------------------------------------------------------


def push(target: Target, query: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(
        f"{target.server.url}{TICKET_ROUTE}?{urlencode(query)}",
        data=body,
        headers={"Content-Type": "text/xml"},
        timeout=30,
    )


def test_a_forged_ticket_is_refused_then_a_genuine_one_lets_component_users_log_in(
    target: Target,
) -> None:
    forged = push(target, *target.platform.ticket_push(forged=True))
    assert forged.status_code == 403 and forged.json()["error"] == "access_denied"
    no_ticket = target.post("/auth/login", {"code": f"{user()}.1", "appid": APP_C})
    assert no_ticket.status_code == 503  # no ticket kept: no component token yet

    genuine = push(target, *target.platform.ticket_push())
    assert (genuine.status_code, genuine.text) == (200, "success")

    name = user()
    new = target.post("/auth/login", {"code": f"{name}.1", "appid": APP_C})
    returning = target.post("/auth/login", {"code": f"{name}.2", "appid": APP_C})

    assert new.status_code == 200, new.text
    assert new.json()["user"]["is_new"] is True
    assert returning.json()["user"] == {"id": new.json()["user"]["id"], "is_new": False}
    assert target.platform.token_calls == 1  # brokered: one component_access_token


def test_push_ticket_helper_reaches_the_server(target: Target) -> None:
    assert target.platform.push_ticket(target.server.url) == 200


# -- AUTH_PHONE_LOGIN=link ---------------------------------------------------------------------


def test_under_link_a_new_openid_joins_the_numbers_owner(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The owner bound the number; a new openid (a second WeChat account on the owner's phone)
    logging in with that number joins the owner's user: no second user, two identities."""
    for linked in serve(tmp_path_factory.mktemp("link"), "link"):
        push(linked, *linked.platform.ticket_push())
        owner, digits = user(), number()
        first = linked.post(
            "/auth/login", {"code": f"{owner}.1", "phone_code": f"phone.{owner}.{digits}"}
        )
        assert first.status_code == 200, first.text
        stranger = user()  # a new openid whose phone code carries the owner's number
        joined = linked.post(
            "/auth/login", {"code": f"{stranger}.1", "phone_code": f"phone.{stranger}.{digits}"}
        )
        assert joined.status_code == 200, joined.text
        assert joined.json()["user"]["id"] == first.json()["user"]["id"]
        assert joined.json()["user"]["is_new"] is False
        identities = linked.me(joined.json()["access_token"])["identities"]
        assert len(identities) == 2


def test_make_run_pushes_a_ticket_to_its_own_platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`make run` with WECHAT_COMPONENT_APPID (and the built-in fake WeChat): the fake platform
    pushes a signed ticket at start, so a component app's users can log in at once."""
    with local_server(
        tmp_path_factory.mktemp("run"), env={"WECHAT_COMPONENT_APPID": PLATFORM}
    ) as server:
        expected = "pushed the platform's verify ticket: HTTP 200"
        deadline = time.monotonic() + 30  # the push follows the server's readiness
        while expected not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert expected in server.output(), server.output()
