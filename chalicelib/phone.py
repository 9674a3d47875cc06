"""Phone-number binding: a `getPhoneNumber` code exchanged once, its number bound to one user.

Identity data, not a WeChat concern: the WeChat client only makes the call; this module owns
what is kept of its answer (the number on the user's profile, the number's one owner) and the
policy when the number is already someone else's (AUTH_PHONE_CONFLICT: `refuse` or `move`).

WeChat charges per successful `getuserphonenumber` call, so a code is exchanged once, as a login
code is (chalicelib/code_claims.py): the code's hash is claimed with a guarded PutItem before
WeChat is called, WeChat's answer is stored sealed under the code, and then applied to the user
in one transaction. The same code again within `replay_ttl` seconds
(a double tap, a retry) answers from the sealed copy without calling WeChat; if the first
request died between WeChat's answer and the transaction, the retry applies it.

The code is exchanged for the app the session was opened with (issue 22, item 10): a code from
a second mini-program's button is that app's, and WeChat takes it only with that app's server
access_token (its own broker: one per appid) and the user's openid in that app (40029 or 40003
otherwise). `AppPhones` (chalicelib/phone_apps.py) finds the app by the session's `client_id`;
the openid is the profile's when the profile came from that app, else the user's identity for it
(one Query more). A phone login (issue 24) gets the number with `number` and binds it in the
login's own transaction (chalicelib/phone_login.py).

Phone numbers are personal data: they are never logged, only their hash (the PHONE# key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib import crypto
from chalicelib.code_claims import CodeClaims
from chalicelib.errors import (
    ConditionFailed,
    GrantError,
    PhoneInUse,
    PhonePending,
    StoreUnavailable,
    TokenError,
    WeChatTokenInvalid,
    WeChatUnavailable,
)
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.logs import Metrics, log_event
from chalicelib.phone_apps import AppPhones, PhoneApp, TokenBroker
from chalicelib.settings import PHONE_CONFLICT_POLICIES
from chalicelib.store.logins import LoginRecord
from chalicelib.store.phones import Phones
from chalicelib.store.users import PhoneRecord, UserRecord, Users
from chalicelib.wechat.client import PhoneInfo, WeChatClient
from chalicelib.wechat_codes import validate_code

if TYPE_CHECKING:
    from chalicelib.store.identities import Identities

__all__ = ["AppPhones", "PhoneApp", "PhoneBinding", "TokenBroker", "phone_hash"]
REFUSE, MOVE = CONFLICT_POLICIES = PHONE_CONFLICT_POLICIES
_WRITE_ATTEMPTS = 3  # a transaction that lost a race is rebuilt from a fresh read this often


def phone_hash(e164: str) -> str:
    """The key of a number's PHONE# item, and all of a number that may be logged."""
    return hashlib.sha256(e164.encode("ascii")).hexdigest()


def phone_code_hash(appid: str, code: str) -> tuple[str, bytes]:
    """A phone code's claim (not a login code's: the two never share one) and its seal's
    context."""
    code_hash = hashlib.sha256(f"phone\x00{appid}\x00{code}".encode()).hexdigest()
    return code_hash, code_hash.encode("ascii")


def phone_record(info: PhoneInfo, bound_at: int) -> PhoneRecord:
    """WeChat's number as it is kept on a profile (E.164 and its parts, its hash)."""
    return PhoneRecord(
        phone_number=info.e164,
        country_code=info.country_code,
        pure_phone_number=info.pure_phone_number,
        phone_hash=phone_hash(info.e164),
        bound_at=bound_at,
    )


@dataclass(frozen=True)
class _Sealed:
    """What is sealed under a code: whose code it was and WeChat's answer."""

    user_id: str
    info: PhoneInfo

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "user_id": self.user_id,
                "country_code": self.info.country_code,
                "pure_phone_number": self.info.pure_phone_number,
            }
        ).encode("utf-8")

    @classmethod
    def loads(cls, data: bytes) -> _Sealed:
        opened = json.loads(data)
        return cls(
            user_id=opened["user_id"],
            info=PhoneInfo(
                country_code=opened["country_code"],
                pure_phone_number=opened["pure_phone_number"],
            ),
        )


class PhoneBinding:
    def __init__(
        self,
        claims: CodeClaims,
        phones: Phones,
        users: Users,
        wechat: WeChatClient,
        broker: TokenBroker,
        *,
        appid: str,
        conflict: str = REFUSE,
        metrics: Metrics | None = None,
        events: Events = EVENTS_OFF,
        apps: AppPhones | None = None,
        identities: Identities | None = None,
    ) -> None:
        """`wechat`, `broker`, `appid`: the primary app's; `apps`: every app's, by the session's
        `client_id` (None: the primary app only); `identities`: a user's openid in an app that
        is not its profile's."""
        self._events = events  # PhoneBound, after the binding's transaction
        self._apps = apps
        self._identities = identities
        if conflict not in CONFLICT_POLICIES:
            raise ValueError(f"conflict policy must be one of {CONFLICT_POLICIES}")
        self._claims = claims
        self._logins = claims.logins
        self._phones = phones
        self._users = users
        self._wechat = wechat
        self._broker = broker
        self._appid = appid
        self._conflict = conflict
        self._metrics = metrics or Metrics()

    def bind_user(
        self, user_id: str, code: str, now: int, *, client_id: str | None = None
    ) -> PhoneRecord:
        """`bind` for the user of an access token (`POST /auth/phone`), with the app of its
        session (`client_id`): one GetItem of the profile first (and one Query of the user's
        identities when the app is not the profile's); TokenError if the user no longer
        exists."""
        user = self._users.get(user_id)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        validate_code(code)
        app = self._apps.of(client_id) if self._apps is not None else None
        return self.bind(user, code, now, app=app)

    def _openid(self, user: UserRecord, appid: str) -> str:
        """The user's openid in `appid`: the profile's if it came from that app."""
        if user.appid == appid or self._identities is None:
            return user.openid
        for identity in self._identities.of_user(user.user_id):
            if identity.appid == appid:
                return identity.openid
        raise GrantError("this user has not logged in with the app of this session")

    def bind(
        self, user: UserRecord, code: str, now: int, *, app: PhoneApp | None = None
    ) -> PhoneRecord:
        """Bind the number behind `code` (a code of `app`, None: the primary app) to `user`;
        the same code again gives the same number.

        Raises GrantError (WeChat rejected the code, or it is another user's already used code),
        PhoneInUse (the number is another user's and the policy is `refuse`), the WeChat errors
        (through the broker: WeChatTokenInvalid only if its one retry failed too), PhonePending.
        """
        validate_code(code)
        app = app or PhoneApp(self._appid, self._wechat, self._broker)
        code_hash, context = phone_code_hash(app.appid, code)

        def exchange() -> PhoneRecord:
            openid = lambda: self._openid(user, app.appid)  # noqa: E731
            info = self._exchange(user.user_id, openid, app, code, code_hash, context, now)
            return self._apply(user, info, code_hash, now, appid=app.appid)

        def replay(record: LoginRecord) -> PhoneRecord:
            assert record.sealed_response is not None
            sealed = _Sealed.loads(crypto.unseal(code, record.sealed_response, context=context))
            if sealed.user_id != user.user_id:
                raise GrantError("this phone code was already used")
            if record.bound_at is not None:
                return self._record(sealed.info, record.bound_at)
            return self._apply(user, sealed.info, code_hash, now, appid=app.appid)

        return self._claims.run(
            code_hash,
            now,
            exchange=exchange,
            replay=replay,
            pending=PhonePending("this phone code is still being exchanged by another request"),
        )

    def number(
        self, app: PhoneApp, code: str, now: int, *, openid: str, subject: str
    ) -> tuple[PhoneInfo, str]:
        """The number behind a phone code of `openid` in `app`, applied to no one, and the code's
        hash (a login binds it in its own transaction: chalicelib/phone_login.py). WeChat is
        called at most once per code, as by `bind`: the same code again answers from its sealed
        copy, to the same `subject` only (else GrantError)."""
        validate_code(code, name="phone_code")
        code_hash, context = phone_code_hash(app.appid, code)

        def replay(record: LoginRecord) -> PhoneInfo:
            assert record.sealed_response is not None
            sealed = _Sealed.loads(crypto.unseal(code, record.sealed_response, context=context))
            if sealed.user_id != subject:
                raise GrantError("this phone code was already used")
            return sealed.info

        info = self._claims.run(
            code_hash,
            now,
            exchange=lambda: self._exchange(
                subject, lambda: openid, app, code, code_hash, context, now
            ),
            replay=replay,
            pending=PhonePending("this phone code is still being exchanged by another request"),
        )
        return info, code_hash

    def _exchange(
        self,
        subject: str,
        openid_of: Callable[[], str],
        app: PhoneApp,
        code: str,
        code_hash: str,
        context: bytes,
        now: int,
    ) -> PhoneInfo:
        """WeChat once, with the app's token and the user's openid there (the broker may retry
        once with a fresh token); its answer sealed for `subject` (whose code it is). A code
        WeChat refused keeps its claim as refused (CodeClaims.settle)."""
        try:
            openid = openid_of()
            info = app.broker.call(lambda token: app.wechat.get_phone_number(token, code, openid))
        except WeChatTokenInvalid as e:
            # The broker retried once with a fresh token: a 503 with Retry-After, not a bug.
            self._logins.release(code_hash)
            raise WeChatUnavailable("WeChat refused the server access_token twice") from e
        except BaseException as e:
            self._claims.settle(code_hash, e, now)
            raise
        try:
            sealed = crypto.seal(code, _Sealed(subject, info).dumps(), context=context)
            self._logins.record_result(code_hash, user_id=subject, sealed_response=sealed)
        except ConditionFailed as e:
            self._logins.release(code_hash)
            raise StoreUnavailable("the phone code could not be recorded; try again") from e
        except BaseException:
            self._logins.release(code_hash)  # a code with a stored result is kept
            raise
        return info

    def _record(self, info: PhoneInfo, bound_at: int) -> PhoneRecord:
        return phone_record(info, bound_at)

    def _apply(
        self, user: UserRecord, info: PhoneInfo, code_hash: str, now: int, *, appid: str
    ) -> PhoneRecord:
        """One transaction from a fresh read; rebuilt if another request changed either side."""
        phone = self._record(info, now)
        current = user
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt:
                fresh = self._users.get(user.user_id)
                if fresh is None:
                    raise GrantError("the user of this access token no longer exists")
                current = fresh
            owner = self._phones.owner(phone.phone_hash)
            if owner is not None and owner != user.user_id and self._conflict == REFUSE:
                log_event("phone_in_use", user_id=user.user_id, owner=owner)
                raise PhoneInUse("this phone number is already bound to another account")
            previous = current.phone.phone_hash if current.phone else None
            try:
                self._phones.bind(
                    user.user_id,
                    phone,
                    previous_hash=previous,
                    owner=owner,
                    code_hash=code_hash,
                    now=now,
                )
            except ConditionFailed:
                continue
            if owner is not None and owner != user.user_id:
                log_event("phone_moved", from_user_id=owner, to_user_id=user.user_id)
                self._metrics.count("PhoneMoved")
            log_event("phone_bound", user_id=user.user_id)  # never the number, nor its hash
            moved_from = owner if owner is not None and owner != user.user_id else None
            self._events.phone_bound(
                user.user_id, appid=appid, moved_from_user_id=moved_from, now=now
            )
            return phone
        raise StoreUnavailable("the phone number could not be bound; try again")
