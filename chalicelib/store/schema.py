"""The table's key schema, in one place: every key prefix and builder, and the attribute codec.

One table, string keys `pk` and `sk`, TTL on `expires_at` (epoch seconds). Item types, each
owned by one repository of this package:

| pk                      | sk                 | what                              | module        |
|-------------------------|--------------------|-----------------------------------|---------------|
| `USER#<user_id>`        | `PROFILE`          | a user: appid, openid, unionid,...| users.py      |
| `USER#<user_id>`        | `SESSION#<sid>`    | a session, its refresh-token state| sessions.py   |
| `USER#<user_id>`        | `IDENTITY#<a>#<o>` | the user's identities, listed     | identities.py |
| `IDENTITY#<appid>#<oid>`| `IDENTITY`         | an app's openid -> its user       | identities.py |
| `UNIONID#<unionid>`     | `USER#<user_id>`   | a unionid linked to a user        | identities.py |
| `UNIONID#<unionid>`     | `OWNER`            | the unionid's one user (arbiter)  | identities.py |
| `UNIONID#<unionid>`     | `PENDING#<uid>`    | a unionid link not made: two users| identities.py |
| `PENDING`               | `LINK#<u>#<uid>`   | the same, as earlier releases kept| identities.py |
| `APP`                   | `APP#<appid>`      | a registered app                  | apps.py       |
| `LOGIN#<sha256(code)>`  | `LOGIN`            | a WeChat code claimed, its result | logins.py     |
| `PHONE#<sha256(phone)>` | `PHONE`            | a phone number's one owner        | phones.py     |
| `CLIENT`                | `CLIENT#<id>`      | an OAuth client                   | clients.py    |
| `WXTOKEN#<appid>`       | `TOKEN`            | the app's WeChat access_token     | wechat.py     |
| `WXTOKEN#<appid>`       | `FORCED#<day>`     | forced refreshes that UTC+8 day   | wechat.py     |
| `WXTOKEN#<component>`   | `TICKET`           | a platform's verify ticket        | wechat.py     |
| `LIMIT#<name>#<sha256>` | `<window start>`   | an abuse-limit counter            | guards.py     |
| `BREAKER#<appid>`       | `JSCODE2SESSION`   | the WeChat login breaker          | guards.py     |
| `DEVICE#<sha256(code)>` | `DEVICE`           | a device login (RFC 8628)         | devices.py    |
| `DEVICE#<sha256(code)>` | `WXACODE`          | its mini-program code image       | devices.py    |
| `AUTHZ#<id>`            | `AUTHZ`            | a web sign-in, its authorization  | authorizations|
|                         |                    | code (issue 24, item 2)           | .py           |
| `DELETION`              | `<t>#<user_id>`    | a deletion due at t (10 digits)   | deletions.py  |
| `TOMBSTONE#<hmac>`      | `<requested at>`   | an erased identity: no id, no PII | deletions.py  |

Values cross the boundary only through the codec below (`s`, `n`, `b`, `boolean`, and the
`get_*` readers): a repository turns an item into its record with them, never by hand.
"""

from __future__ import annotations

import hashlib
from typing import Any

Item = dict[str, Any]

PK = "pk"
SK = "sk"
EXPIRES_AT = "expires_at"  # the table's TTL attribute

USER_PREFIX = "USER#"
PROFILE = "PROFILE"
SESSION_PREFIX = "SESSION#"
IDENTITY = "IDENTITY"
IDENTITY_PREFIX = "IDENTITY#"
UNIONID_PREFIX = "UNIONID#"
OWNER = "OWNER"
PENDING_LINK_PREFIX = "PENDING#"  # a pending link, in its unionid's partition
PENDING_PK = "PENDING"  # where earlier releases kept every pending link (read, never written)
PENDING_PREFIX = "LINK#"
APP_PK = "APP"
APP_SK_PREFIX = "APP#"
LOGIN_PREFIX = "LOGIN#"
LOGIN = "LOGIN"
PHONE_PREFIX = "PHONE#"
PHONE = "PHONE"
CLIENT_PK = "CLIENT"
CLIENT_SK_PREFIX = "CLIENT#"
WXTOKEN_PREFIX = "WXTOKEN#"
WXTOKEN = "TOKEN"
FORCED_PREFIX = "FORCED#"
TICKET = "TICKET"  # a third-party platform's component_verify_ticket (issue 24, item 4)
LIMIT_PREFIX = "LIMIT#"
BREAKER_PREFIX = "BREAKER#"
BREAKER_SK = "JSCODE2SESSION"
DEVICE_PREFIX = "DEVICE#"  # issue 24, item 3: a device login, by the hash of its user code
DEVICE = "DEVICE"
DEVICE_IMAGE = "WXACODE"
AUTHZ_PREFIX = "AUTHZ#"  # a web sign-in (issue 24, item 2)
AUTHZ = "AUTHZ"
DELETION_PK = "DELETION"  # issue 25: deletions by the time they are due
TOMBSTONE_PREFIX = "TOMBSTONE#"


# -- keys ---------------------------------------------------------------------------------


def key(pk: str, sk: str) -> Item:
    """The `Key` of one item."""
    return {PK: s(pk), SK: s(sk)}


def user_pk(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


def session_sk(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def identity_pk(appid: str, openid: str) -> str:
    return f"{IDENTITY_PREFIX}{appid}#{openid}"


def identity_sk(appid: str, openid: str) -> str:
    """The identity's listing item in its user's partition."""
    return f"{IDENTITY_PREFIX}{appid}#{openid}"


def unionid_pk(unionid: str) -> str:
    return f"{UNIONID_PREFIX}{unionid}"


def pending_link_sk(user_id: str) -> str:
    """A pending link of the unionid (its partition) to `user_id`, whose identity carries it."""
    return f"{PENDING_LINK_PREFIX}{user_id}"


def pending_sk(unionid: str, user_id: str) -> str:
    """The same link in the shared `PENDING` partition of earlier releases."""
    return f"{PENDING_PREFIX}{unionid}#{user_id}"


def app_sk(appid: str) -> str:
    return f"{APP_SK_PREFIX}{appid}"


def login_pk(code_hash: str) -> str:
    return f"{LOGIN_PREFIX}{code_hash}"


def phone_pk(phone_hash: str) -> str:
    return f"{PHONE_PREFIX}{phone_hash}"


def client_sk(client_id: str) -> str:
    return f"{CLIENT_SK_PREFIX}{client_id}"


def wxtoken_pk(appid: str) -> str:
    return f"{WXTOKEN_PREFIX}{appid}"


def forced_sk(day: str) -> str:
    return f"{FORCED_PREFIX}{day}"


def limit_pk(name: str, key: str) -> str:
    """An abuse-limit counter's partition: the limit's name and a hash of the key (an IP, an
    openid, a session), never the key itself."""
    digest = hashlib.sha256(f"wxauth-limit\x00{name}\x00{key}".encode()).hexdigest()
    return f"{LIMIT_PREFIX}{name}#{digest}"


def breaker_pk(appid: str) -> str:
    return f"{BREAKER_PREFIX}{appid}"


def device_pk(user_code: str) -> str:
    """A device login's partition: a hash of its user code (normalized), never the code."""
    digest = hashlib.sha256(f"wxauth-device\x00{user_code}".encode()).hexdigest()
    return f"{DEVICE_PREFIX}{digest}"


def authz_pk(authz_id: str) -> str:
    return f"{AUTHZ_PREFIX}{authz_id}"


def due_sk(erase_after: int) -> str:
    """The start of a `DELETION` sort key: the time it is due, 10 digits, so that the keys
    sort by time (epoch seconds have 10 digits until the year 2286)."""
    return f"{int(erase_after):010d}#"


def deletion_sk(erase_after: int, user_id: str) -> str:
    return f"{due_sk(erase_after)}{user_id}"


def tombstone_pk(keyed_hash: str) -> str:
    """An erased identity's tombstone: a keyed hash (HMAC) of its appid and openid, never
    the openid nor a plain hash of it (chalicelib/deletion.py)."""
    return f"{TOMBSTONE_PREFIX}{keyed_hash}"


def tombstone_sk(requested_at: int) -> str:
    return f"{int(requested_at):010d}"


# -- the attribute codec --------------------------------------------------------------------


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def b(value: bytes) -> dict[str, bytes]:
    return {"B": bytes(value)}


def boolean(value: bool) -> dict[str, bool]:
    return {"BOOL": value}


def strings(values: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, str]]]:
    """A list of strings (`L` of `S`), order kept."""
    return {"L": [s(value) for value in values]}


def get_s(item: Item, name: str) -> str | None:
    return item[name]["S"] if name in item else None


def get_n(item: Item, name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def get_b(item: Item, name: str) -> bytes | None:
    return bytes(item[name]["B"]) if name in item else None


def get_bool(item: Item, name: str, default: bool) -> bool:
    return bool(item[name]["BOOL"]) if name in item else default


def get_strings(item: Item, name: str) -> tuple[str, ...]:
    return tuple(entry["S"] for entry in item.get(name, {}).get("L", []))


def get_string_set(item: Item, name: str) -> tuple[str, ...]:
    """A string set (SS), sorted (a set has no order); () if absent."""
    return tuple(sorted(item.get(name, {}).get("SS", [])))
