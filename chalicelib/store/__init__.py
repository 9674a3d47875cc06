"""The data layer: the only code that builds DynamoDB keys, items and expressions.

- `table`: one `Table` (the client, the one error translation, the one pager, transactions)
  and `create_table`.
- `schema`: every key prefix and builder, and the attribute codec; its docstring lists every
  item type.
- one repository per aggregate, each with its record dataclass, item-to-record function,
  guarded writes, and the item builders that cross-aggregate transactions compose:
  `users` (profiles, phone numbers on them), `sessions`, `logins` (code claims; the login's
  finishing transaction), `phones` (a number's owner; the binding's transaction),
  `identities` (identities, unionids, pending links), `merges` (a merge's transaction),
  `apps`, `clients`, `wechat`
  (the brokered access token), `guards` (abuse-limit counters, the breaker), `authorizations`
  (web sign-ins and their authorization codes, issue 24), `devices` (device logins, RFC 8628:
  issue 24, item 3), `deletions` (deletions asked for, their queue and tombstones),
  `user_data` (every item of one user, read for its export and deleted by its erasure, like
  `merges` across the aggregates).

`Store` holds one of each over one table; a service takes the repository it uses
(`SessionManager(store.sessions, ...)`), not the whole store. Nothing here imports the
identity, WeChat or token packages: the policies live there, the items here.

A returning user's login is three requests: the `LOGIN#` claim (PutItem), the `IDENTITY#`
item (UpdateItem), one transaction (`Logins.finish`); docs/contributors.md, "Data model", counts
the other paths.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.store.schema import (
    EXPIRES_AT,
    PK,
    SK,
    login_pk,
    phone_pk,
    session_sk,
    user_pk,
    wxtoken_pk,
)
from chalicelib.store.sessions import SessionRecord, Sessions
from chalicelib.store.table import Table, create_table
from chalicelib.store.users import PhoneRecord, UserRecord, Users

if TYPE_CHECKING:
    from chalicelib.store.apps import Apps
    from chalicelib.store.authorizations import Authorizations
    from chalicelib.store.clients import Clients
    from chalicelib.store.deletions import Deletions
    from chalicelib.store.devices import DeviceLogins
    from chalicelib.store.guards import Guards
    from chalicelib.store.identities import Identities
    from chalicelib.store.logins import Logins
    from chalicelib.store.merges import Merges
    from chalicelib.store.phones import Phones
    from chalicelib.store.user_data import UserData
    from chalicelib.store.wechat import WeChatTokens

__all__ = [
    "EXPIRES_AT",
    "PK",
    "SK",
    "PhoneRecord",
    "SessionRecord",
    "Store",
    "Table",
    "UserRecord",
    "create_table",
    "login_pk",
    "phone_pk",
    "session_sk",
    "user_pk",
    "wxtoken_pk",
]


class Store:
    """Every repository over one table. Those a refresh or verify never uses are built (and
    their modules imported) at their first use: a cold start's cost (bench/RESULTS.md)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.table = Table(client, table_name)
        self.users = Users(self.table)
        self.sessions = Sessions(self.table)

    @property
    def client(self) -> Any:
        """The botocore DynamoDB client (benchmarks hook its events to count requests)."""
        return self.table.client

    def close_connections(self) -> None:
        self.table.close_connections()

    @property
    def table_name(self) -> str:
        return self.table.name

    @cached_property
    def logins(self) -> Logins:
        from chalicelib.store.logins import Logins

        return Logins(self.table)

    @cached_property
    def phones(self) -> Phones:
        from chalicelib.store.phones import Phones

        return Phones(self.table)

    @cached_property
    def identities(self) -> Identities:
        from chalicelib.store.identities import Identities

        return Identities(self.table)

    @cached_property
    def merges(self) -> Merges:
        from chalicelib.store.merges import Merges

        return Merges(self.table)

    @cached_property
    def apps(self) -> Apps:
        from chalicelib.store.apps import Apps

        return Apps(self.table)

    @cached_property
    def clients(self) -> Clients:
        from chalicelib.store.clients import Clients

        return Clients(self.table)

    @cached_property
    def wechat(self) -> WeChatTokens:
        from chalicelib.store.wechat import WeChatTokens

        return WeChatTokens(self.table)

    @cached_property
    def guards(self) -> Guards:
        from chalicelib.store.guards import Guards

        return Guards(self.table)

    @cached_property
    def devices(self) -> DeviceLogins:
        from chalicelib.store.devices import DeviceLogins

        return DeviceLogins(self.table)

    @cached_property
    def authorizations(self) -> Authorizations:
        from chalicelib.store.authorizations import Authorizations

        return Authorizations(self.table)

    @cached_property
    def deletions(self) -> Deletions:
        from chalicelib.store.deletions import Deletions

        return Deletions(self.table)

    @cached_property
    def user_data(self) -> UserData:
        from chalicelib.store.user_data import UserData

        return UserData(self.table)
