"""One-tap phone login (issue 24, item 1): a login that binds the user's phone number.

The mini-program posts `{"code": <wx.login>, "phone_code": <getPhoneNumber or
getRealtimePhoneNumber button>}` to `POST /auth/login`. The user is found or created by openid
as in any login (chalicelib/login.py), and the number is bound to that user in the same request,
for the app the login is for (its server token, the user's openid there: chalicelib/phone_apps.py).

The order, so that a refused login writes no user, no identity and no session:

1. the login code's claim and WeChat's `jscode2session` (LoginService, as any login);
2. the identity, read (one GetItem, no write);
3. the phone code: claimed, WeChat's paid `getuserphonenumber` called once, its answer sealed on
   the claim (`PhoneBinding.number`, the claims `POST /auth/phone` uses: the same phone code
   again, in this login or another, answers from the seal, without a second paid call);
4. the number's owner (one GetItem) and, when it has one and the identity is new and carries a
   unionid, the unionid's user (one Query);
5. the decision: the user this login will be (the identity's; for a new identity, the
   unionid's user, else, with AUTH_PHONE_LOGIN=link, the number's owner, else a new user)
   against the number's owner. Another user's number is AUTH_PHONE_CONFLICT's to rule:
   `refuse` (default) raises PhoneInUse here, before any write; `move` moves it, as
   `POST /auth/phone` does;
6. the identity graph's writes (a new user, a new identity joining a user), then the login's one
   transaction, which also writes the number on the profile (checking there that the user is
   neither banned nor merged away), its `PHONE#` owner item and the phone code's claim marked
   applied. A transaction that lost a race on the number is rebuilt from fresh reads (3 times).

What a refused (409) phone login leaves: the login code's claim, kept as refused
(`phone_in_use`: the same code again answers 409 without WeChat) and the phone code's claim with
WeChat's answer sealed under the code, both expiring after AUTH_LOGIN_REPLAY_TTL seconds (TTL).
Nothing else. (A race, or a user of a single-app deployment from before identities whose unionid
another user owns, can make the graph resolve another user than step 5 foresaw; the decision is
then made again against that user before the transaction, so no session is created, but the
identity written by step 6 stays.)

`link` never merges two existing users: only a new identity joins the number's owner, as a
unionid joins its owner (IdentityGraph), and a unionid's own user comes first. A returning
user's login with a number that is another user's is always AUTH_PHONE_CONFLICT's case.
Phone numbers are never logged, nor their hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConditionFailed, PhoneInUse, StoreUnavailable
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.identity.apps import App, Exchanged
from chalicelib.identity.graph import Identity, IdentityGraph
from chalicelib.logs import Metrics, log_event
from chalicelib.phone import MOVE, REFUSE, PhoneBinding, phone_record
from chalicelib.phone_apps import AppPhones
from chalicelib.settings import PHONE_LOGIN_POLICIES
from chalicelib.store.phones import Phones
from chalicelib.store.users import PhoneRecord, Users

LINK = PHONE_LOGIN_POLICIES[1]
_WRITE_ATTEMPTS = 3  # a transaction that lost a race on the number is rebuilt this often

Write = Callable[[Sequence[dict[str, Any]], dict[str, Any]], None]


@dataclass(frozen=True)
class PhonePlan:
    """What step 5 decided: the app, the identity as read (None: new), the user a new identity
    joins (`link`), the number, its owner as read, and the phone code's claim."""

    appid: str
    identity: Identity | None
    join: str | None
    phone: PhoneRecord
    owner: str | None
    code_hash: str

    def resolve_args(self) -> dict[str, Any]:
        """IdentityGraph.resolve's: the identity read already, and whom a new one joins."""
        return {"known": self.identity, "join": self.join}


class PhoneLogin:
    """The phone step of a login (LoginService's `phone`)."""

    def __init__(
        self,
        binding: PhoneBinding,
        apps: AppPhones,
        graph: IdentityGraph,
        phones: Phones,
        users: Users,
        *,
        user_id_for: Callable[[str, str], str],
        policy: str = PHONE_LOGIN_POLICIES[0],
        conflict: str = REFUSE,
        events: Events = EVENTS_OFF,
        metrics: Metrics | None = None,
    ) -> None:
        """`policy`: AUTH_PHONE_LOGIN; `conflict`: AUTH_PHONE_CONFLICT."""
        if policy not in PHONE_LOGIN_POLICIES:
            raise ValueError(f"policy must be one of {PHONE_LOGIN_POLICIES}")
        self._binding = binding
        self._apps = apps
        self._graph = graph
        self._phones = phones
        self._users = users
        self._user_id_for = user_id_for
        self._policy = policy
        self._conflict = conflict
        self._events = events
        self._metrics = metrics or Metrics()

    def plan(self, app: App, wx: Exchanged, phone_code: str, now: int) -> PhonePlan:
        """Steps 2 to 5 of the module doc: reads and WeChat only; PhoneInUse under `refuse`."""
        phone_app = self._apps.of_app(app)
        identity = self._graph.get(app.appid, wx.openid)
        # Whose code it is: the identity's own key (WeChat checked the code is this openid's),
        # the same whichever user the identity turns out to point at.
        subject = self._user_id_for(app.appid, wx.openid)
        info, code_hash = self._binding.number(
            phone_app, phone_code, now, openid=wx.openid, subject=subject
        )
        phone = phone_record(info, now)
        owner = self._phones.owner(phone.phone_hash)
        join = None
        if identity is not None:
            user_id = identity.user_id
        else:
            user_id = subject  # a new user's id (or a profile of a single-app deployment's)
            if owner is not None and owner != subject:
                by_unionid = self._graph.unionid_user(wx.unionid) if wx.unionid else None
                if by_unionid is not None:
                    user_id = by_unionid
                elif self._policy == LINK:
                    user_id = join = owner
        self._check(owner, user_id, app.appid, known=identity is not None)
        return PhonePlan(app.appid, identity, join, phone, owner, code_hash)

    def finish(self, plan: PhonePlan, user_id: str, write: Write, now: int) -> None:
        """Step 6's transaction (`write(items, profile_update)`), guarded by the number's owner
        and the profile's number as read; rebuilt from fresh reads if either changed."""
        owner = plan.owner
        # The number's PHONE# item names the user: its profile has it (written together).
        previous = plan.phone.phone_hash if owner == user_id else None
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt:
                owner = self._phones.owner(plan.phone.phone_hash)
                user = self._users.get(user_id)
                previous = user.phone.phone_hash if user is not None and user.phone else None
            self._check(owner, user_id, plan.appid, known=True)
            profile, items = self._phones.items(
                user_id,
                plan.phone,
                previous_hash=previous,
                owner=owner,
                code_hash=plan.code_hash,
                now=now,
                may_log_in=True,
            )
            try:
                write(items, profile)
            except ConditionFailed:
                continue  # the number or the profile changed: read both again
            self._bound(plan, user_id, owner, now)
            return
        raise StoreUnavailable("the phone number could not be bound; try again")

    def _check(self, owner: str | None, user_id: str, appid: str | None, *, known: bool) -> None:
        """Another user's number: PhoneInUse unless AUTH_PHONE_CONFLICT is `move`."""
        if owner is None or owner == user_id or self._conflict == MOVE:
            return
        # The user id only of a user that exists (a refused new user is never created).
        log_event("phone_in_use", user_id=user_id if known else None, owner=owner, appid=appid)
        self._metrics.count("PhoneLoginRefused")
        raise PhoneInUse("this phone number is already bound to another account")

    def _bound(self, plan: PhonePlan, user_id: str, owner: str | None, now: int) -> None:
        moved_from = owner if owner is not None and owner != user_id else None
        if plan.join is not None and user_id == plan.join:
            log_event("phone_login_linked", user_id=user_id)  # a new identity joined its owner
            self._metrics.count("PhoneLoginLinked")
        if moved_from is not None:
            log_event("phone_moved", from_user_id=moved_from, to_user_id=user_id)
            self._metrics.count("PhoneMoved")
        log_event("phone_bound", user_id=user_id)  # never the number, nor its hash
        self._events.phone_bound(user_id, appid=plan.appid, moved_from_user_id=moved_from, now=now)
