"""The identity graph: (appid, openid) identities, each pointing at one user, linked by unionid.

The policy; the items (identities, their listings in the user's partition, the unionid's
`OWNER` arbiter, pending links) are chalicelib/store/identities.py's.

Policy (README, "Several apps, one user"):
- A new identity whose unionid has an owner joins that user; otherwise its user id is
  `user_id_for(appid, openid)` (what single-app deployments always used, so their users resolve
  without a rewrite) and, with a unionid, it claims the unionid's OWNER item with a guarded Put:
  of two first logins from two apps at the same moment, exactly one claims it and the other
  joins its user.
- A unionid that appears later (the app was bound to the open platform since) is back-filled
  on the identity and linked if the unionid has no owner yet, or is owned by the same user.
- If linking would join two existing users, nothing is merged: a pending link is recorded, the
  `IdentityLinkPending` metric is counted, and both users go on as they were until an operator
  runs `wxauth-admin user merge --into A --from B`.
- A merge needs a reason: a pending link between A and B, a unionid both carry, or the
  operator's `force` with a written reason; it never involves a banned user. It moves every
  identity (and unionid) of B to A in one transaction, with A's custom claims, records it on
  both profiles (`merged_into`/`merged_at`/`merged_by`/`merge_reason` on B, `merged_from` on
  A), resolves the pending links between them, then the caller revokes B's sessions. Run
  again for the same pair, it moves what B still has (an identity a crash left unlisted).
- B takes no login after that: the login's transaction checks its profile. A login that
  resolved one of B's identities just before the merge moved it is started for A (`moved`); a
  first login that found B as a unionid's owner joins A (the profile its write returns says
  where B went); an identity of B the merge did not find is refused (MergedAway) and listed,
  so that the merge run again moves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.errors import ConditionFailed, MergedAway, MergeRefused
from chalicelib.identity.apps import App, Exchanged
from chalicelib.logs import Metrics, log_event
from chalicelib.profile import profile_claims
from chalicelib.store.identities import MINI_PROGRAM, Identities, Identity, PendingLink
from chalicelib.store.merges import Merges
from chalicelib.store.users import MergeNote, UserRecord, Users

__all__ = ["Identity", "IdentityGraph", "PendingLink", "Resolved"]


@dataclass(frozen=True)
class Resolved:
    """Who logged in: the user, whether this login created it, and its identity."""

    user_id: str
    is_new: bool
    identity: Identity
    custom_claims: str | None = None  # the user's (chalicelib/tokens/claims.py), for the session
    profile_claims: str | None = None  # its profile's (chalicelib/profile.py), the same way


class IdentityGraph:
    """The login's resolution of a user, the links between identities, and merges."""

    def __init__(
        self,
        identities: Identities,
        users: Users,
        merges: Merges,
        *,
        user_id_for: Callable[[str, str], str],
        metrics: Metrics | None = None,
    ) -> None:
        self._identities = identities
        self._users = users
        self._merges = merges
        self._user_id_for = user_id_for
        self._metrics = metrics or Metrics()

    # -- login ----------------------------------------------------------------------------

    def resolve(self, app: App, wx: Exchanged, now: int) -> Resolved:
        """The user of (app, openid), creating or linking what is missing.

        A returning identity: one UpdateItem (which also back-fills a unionid WeChat returns
        for the first time). A unionid back-filled: one Query and one guarded Put more (the
        unionid's owner), and a pending link (PutItem) if it would join two users. A new
        identity: that UpdateItem, with a unionid the Query and the Put, a GetItem when it
        joins another user, the profile's UpdateItem, the identity's guarded Put.
        """
        old = self._identities.touch(app.appid, wx.openid, kind=app.kind, unionid=wx.unionid)
        if old is not None:
            if wx.unionid and old.unionid is None:
                self._backfill(old, wx.unionid, now)
            return Resolved(
                old.user_id,
                False,
                _with_unionid(old, wx.unionid),
                old.custom_claims,
                old.profile_claims,
            )
        return self._first(app, wx, now)

    def _first(self, app: App, wx: Exchanged, now: int) -> Resolved:
        derived = self._user_id_for(app.appid, wx.openid)
        user_id = derived
        conflict_owner: str | None = None
        if wx.unionid:
            owner = self.owner_of(wx.unionid, candidate=derived, now=now)
            if owner != derived:
                # Join the unionid's user, unless this identity already has one of its own: a
                # user of a single-app deployment (no identity item yet) whose unionid another
                # user got first. Not merged silently: a pending link.
                if self._users.get(derived) is None:
                    user_id = owner
                else:
                    conflict_owner = owner
        unionid = None if conflict_owner else wx.unionid  # a profile shows a linked unionid
        before = self._users.ensure(
            UserRecord(user_id, app.appid, wx.openid, unionid, created_at=now)
        )
        if before is not None and before.merged_into and conflict_owner is None:
            # merged away since the owner was read: a new identity is the kept user's
            user_id = before.merged_into
            before = self._users.ensure(
                UserRecord(user_id, app.appid, wx.openid, unionid, created_at=now)
            )
        # The user's claims go on its new identity (the profile as it was holds them), so that
        # this login and every later one through the identity carry them.
        claims = before.custom_claims if before is not None else None
        profile = profile_claims(before) if before is not None else None
        identity = self._identities.create(
            Identity(
                app.appid,
                wx.openid,
                user_id,
                app.kind,
                wx.unionid,
                created_at=now,
                custom_claims=claims,
                profile_claims=profile,
            )
        )
        if conflict_owner is not None and wx.unionid:
            self._pending(wx.unionid, conflict_owner, identity, now)
        return Resolved(
            identity.user_id,
            before is None and identity.user_id == user_id,
            identity,
            identity.custom_claims,  # a lost race: the winner's item's
            identity.profile_claims,
        )

    def moved(self, app: App, wx: Exchanged, refused: MergedAway, now: int) -> Resolved:
        """After the login's transaction refused a merged-away user: the identity's user now,
        if the merge moved it (one GetItem), for a session of that user. Otherwise the
        identity is one the merge did not find: it is listed in its user's partition (one
        PutItem), so that the merge run again moves it, and MergedAway is raised again."""
        current = self._identities.get(app.appid, wx.openid)
        if current is not None and current.user_id != refused.user_id:
            return Resolved(
                current.user_id, False, current, current.custom_claims, current.profile_claims
            )
        if current is not None:
            self._identities.relist(current, now=now)
        log_event(
            "login_of_merged_user",
            level=logging.WARNING,
            user_id=refused.user_id,
            merged_into=refused.merged_into,
            appid=app.appid,
            openid=wx.openid,
        )
        self._metrics.count("LoginOfMergedUser", appid=app.appid)
        raise refused

    def owner_of(self, unionid: str, *, candidate: str, now: int) -> str:
        """The unionid's one user: its OWNER item's, else `candidate`, claimed with a guarded
        Put (a user linked to it before OWNER items existed, `UNIONID#`/`USER#`, is preferred).
        One Query, and the Put if there was no owner."""
        owner, linked = self._identities.unionid(unionid)
        if owner is not None:
            return owner
        linked = sorted(linked, key=lambda link: link.linked_at)
        if linked and candidate not in {link.user_id for link in linked}:
            candidate = linked[0].user_id
        return self._identities.claim_owner(unionid, candidate, now=now)

    def _backfill(self, identity: Identity, unionid: str, now: int) -> None:
        """A unionid WeChat returned for an identity that had none (stored by `touch`)."""
        owner = self.owner_of(unionid, candidate=identity.user_id, now=now)
        if owner == identity.user_id:
            self._users.ensure(
                UserRecord(identity.user_id, identity.appid, identity.openid, unionid, now)
            )
        else:
            self._pending(unionid, owner, identity, now)

    def _pending(self, unionid: str, owner: str, identity: Identity, now: int) -> None:
        """Record the link not made (once per unionid and user) and count the metric."""
        link = PendingLink(
            unionid, owner, identity.user_id, identity.appid, identity.openid, created_at=now
        )
        if self._identities.add_pending(link):
            self._metrics.count("IdentityLinkPending", appid=identity.appid)
            # for operators, without a Scan (wxauth-admin user pending USER_ID); no unionid
            log_event("identity_link_pending", owner=owner, user_id=identity.user_id)

    # -- reading --------------------------------------------------------------------------

    def get(self, appid: str, openid: str) -> Identity | None:
        return self._identities.get(appid, openid)

    def identities_of(self, user: UserRecord) -> list[Identity]:
        """The user's identities (one Query of its partition). A user of a single-app deployment
        that has not logged in since has none listed: its profile's (appid, openid) is it."""
        listed = self._identities.of_user(user.user_id)
        if not listed and user.openid:
            listed = [Identity(user.appid, user.openid, user.user_id, MINI_PROGRAM, user.unionid)]
        return listed

    def pending(
        self, *, include_resolved: bool = False, user_id: str | None = None
    ) -> list[PendingLink]:
        """Pending links (unresolved ones, unless `include_resolved`). Of `user_id`: those of
        its unionids (as owner or as the other user), a Query of its identities and two per
        unionid; of everyone (None): a Scan of the table, for operators."""
        if user_id is None:
            links = self._identities.all_pending()
        else:
            links = self._pending_of(self._unionids_of(user_id))
        return [link for link in links if include_resolved or link.resolved_at is None]

    def _unionids_of(self, user_id: str, user: UserRecord | None = None) -> set[str]:
        """The unionids of the user's profile (`user`, if read already) and identities."""
        user = user or self._users.get(user_id)
        found = {i.unionid for i in self._identities.of_user(user_id) if i.unionid}
        return found | ({user.unionid} if user is not None and user.unionid else set())

    def _pending_of(self, unionids: set[str]) -> list[PendingLink]:
        links = [link for u in sorted(unionids) for link in self._identities.pending_of_unionid(u)]
        return sorted(links, key=lambda link: (link.created_at, link.unionid, link.user_id))

    # -- merge (wxauth-admin user merge) --------------------------------------------------

    def merge(
        self,
        into: str,
        source: str,
        *,
        now: int,
        merged_by: str,
        force: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Move every identity and unionid of `source` to `into`, in one transaction, and
        record the merge on both profiles (`merged_by`, `reason` on `source`'s); the caller
        then revokes `source`'s sessions.

        MergeRefused, with nothing written, if a user is missing, banned or already merged away
        (`source` may be merged into `into` already: what it still has moves), if the users
        share no pending link and no unionid and `force` is not given (with a `reason`), or if
        a unionid of `source` belongs to a third user. Sessions are not moved: `source`'s end.
        """
        if into == source:
            raise MergeRefused("a user cannot be merged into itself")
        if force and not reason:
            raise MergeRefused("--force needs --reason: why these users are one person")
        target, absorbed = self._users.get(into), self._users.get(source)
        for user_id, profile in ((into, target), (source, absorbed)):
            if profile is None:
                raise MergeRefused(f"no user {user_id}")
            if profile.banned_at is not None:
                raise MergeRefused(f"user {user_id} is banned: unban it first, or merge nothing")
        assert target is not None and absorbed is not None
        again = absorbed.merged_into == into  # a merge run again: what is left moves
        for user_id, profile in ((into, target), (source, absorbed)):
            if profile.merged_into is not None and not (again and profile is absorbed):
                raise MergeRefused(f"user {user_id} was already merged into another user")
        identities = {(i.appid, i.openid): i for i in self._identities.of_user(source)}
        legacy = (absorbed.appid, absorbed.openid)
        if legacy not in identities:
            stored = self._identities.get(*legacy)
            if stored is None or stored.user_id == source:
                identities[legacy] = stored or Identity(
                    absorbed.appid, absorbed.openid, source, MINI_PROGRAM, absorbed.unionid
                )
        unionids = {i.unionid for i in identities.values() if i.unionid}
        if absorbed.unionid:
            unionids.add(absorbed.unionid)
        # A link between the two is of a unionid one of them carries: theirs, not everyone's.
        target_unionids = self._unionids_of(into, target)
        resolved = [
            link
            for link in self._pending_of(unionids | target_unionids)
            if link.resolved_at is None and {link.owner, link.user_id} == {into, source}
        ]
        justified = again or bool(resolved) or bool(unionids & target_unionids)
        if not (justified or force):
            raise MergeRefused(
                f"users {into} and {source} have no pending link and no shared unionid: check"
                " that they are one person, then merge with --force --reason TEXT"
            )
        try:
            self._merges.merge(
                into,
                source,
                identities=list(identities.values()),
                unionids=sorted(unionids),
                resolved=resolved,
                claims=target.custom_claims,
                note=MergeNote(merged_by, reason),
                now=now,
            )
        except ConditionFailed as e:
            raise MergeRefused(
                "the users changed meanwhile (banned, merged, claims set), or a unionid of the"
                " user belongs to a third user; nothing was merged"
            ) from e
        return {
            "into": into,
            "from": source,
            "identities": [i.public() for i in identities.values()],
            "unionids": len(unionids),
            "pending_resolved": len(resolved),
            "forced": not justified,
        }


def _with_unionid(identity: Identity, unionid: str | None) -> Identity:
    if identity.unionid or not unionid:
        return identity
    return replace(identity, unionid=unionid, custom_claims=None, profile_claims=None)
