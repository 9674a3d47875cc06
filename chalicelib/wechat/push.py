"""The third-party platform's authorization events (授权事件接收URL; issue 24, item 4).

WeChat POSTs to the URL configured on the platform (`POST /wechat/component/ticket` here): the
query carries `timestamp`, `nonce`, `encrypt_type=aes` and `msg_signature` (and `signature`,
which covers no body: not used), the body is XML, `<xml><AppId>the platform's appid</AppId>
<Encrypt>...</Encrypt></xml>` (third-party platforms receive in 安全模式 only). Every 10 minutes it
carries a `component_verify_ticket` (InfoType `component_verify_ticket`, `ComponentVerifyTicket`,
`CreateTime`); authorization notices (`authorized`, `unauthorized`, `updateauthorized`, ...) come
the same way. WeChat expects the text `success` back.

A push is opened only if its `msg_signature` is WeChat's over the platform's message token and
its ciphertext decrypts under the platform's EncodingAESKey to a message naming the platform
(chalicelib/wechat/msgcrypt.py): anything else is ForgedMessage (403) and nothing is kept. A
malformed request (no signature, a body that is not the XML above) is RequestError (400). A
ticket is kept sealed, unless a newer one (by CreateTime) is kept already: a replayed push
changes nothing. Other notices are logged (their type and the authorizer's appid) and answered.
Neither the ticket nor the message is ever logged.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - parsed only after the checks in _xml
from collections.abc import Mapping

from chalicelib.errors import ForgedMessage, RequestError
from chalicelib.logs import Metrics, log_event
from chalicelib.wechat.component import ComponentPlatform

TICKET = "component_verify_ticket"
MAX_BODY = 16 * 1024  # a push is well under 1 KB
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{40}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,20}")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DTD_RE = re.compile(rb"<!(DOCTYPE|ENTITY|ATTLIST|ELEMENT)", re.IGNORECASE)


class AuthorizationEvents:
    """Receives the platform's pushes: keeps the verify ticket, notes the rest."""

    def __init__(self, platform: ComponentPlatform, *, metrics: Metrics | None = None) -> None:
        self._platform = platform
        self._metrics = metrics or Metrics()

    def receive(self, params: Mapping[str, str] | None, body: bytes, now: int) -> str:
        """Open a push (ForgedMessage, RequestError: see the module doc) and act on it; its
        InfoType."""
        params = params or {}
        msg_signature = _param(params, "msg_signature", _SIGNATURE_RE)
        timestamp = _param(params, "timestamp", _TIMESTAMP_RE)
        nonce = _param(params, "nonce", _NONCE_RE)
        outer = _xml(body)
        encrypted, appid = outer.get("Encrypt"), outer.get("AppId")
        if not encrypted:
            raise RequestError("the push has no Encrypt element")
        if appid is not None and appid != self._platform.appid:
            raise ForgedMessage("the push is for another platform")
        message = self._platform.crypt().open(msg_signature, timestamp, nonce, encrypted)
        try:
            fields = _xml(message.encode("utf-8"))
        except RequestError as e:  # signed by WeChat, yet not its XML: nothing to act on
            raise ForgedMessage("the push's message is not WeChat's XML") from e
        if fields.get("AppId") not in (None, self._platform.appid):
            raise ForgedMessage("the push's message is for another platform")
        info_type = (fields.get("InfoType") or "")[:64]
        if info_type == TICKET:
            self._keep(fields, now)
        else:
            log_event(
                "component_event",
                info_type=info_type,
                authorizer=(fields.get("AuthorizerAppid") or "")[:64] or None,
            )
        return info_type

    def _keep(self, fields: Mapping[str, str], now: int) -> None:
        ticket, created = fields.get("ComponentVerifyTicket"), fields.get("CreateTime") or ""
        if not ticket or len(ticket) > 512 or not created.isdigit():
            raise ForgedMessage("the push's ticket is malformed")
        kept = self._platform.keep_ticket(ticket, int(created), now)
        log_event("component_ticket", kept=kept, create_time=int(created))  # never the ticket
        self._metrics.count("ComponentTicketReceived", kept=kept)


def _param(params: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = params.get(name)
    if value is None or not pattern.fullmatch(value):
        raise RequestError(f"the push's {name} is missing or malformed")
    return value


def _xml(raw: bytes) -> dict[str, str]:
    """The text of the root's children of a small XML document without a DTD (no entity can
    expand): `{"Encrypt": ..., "AppId": ...}`; RequestError for anything else."""
    if not raw or len(raw) > MAX_BODY or _DTD_RE.search(raw):
        raise RequestError("the push must be a small XML document")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - no DTD (checked above), bounded size
    except ET.ParseError as e:
        raise RequestError("the push is not XML") from e
    return {child.tag: (child.text or "").strip() for child in root}
