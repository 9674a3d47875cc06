"""Who may start a device login, and the session it ends in.

- **An app's client id** (WECHAT_APPID for the primary app, or a registered app's `client_id`,
  chalicelib/identity/apps.py): the PC or TV logs in as that app's users do, and its session
  is that app's (its `client_id`, and its tokens' `aud`). A public client (RFC 6749 §2.1): a
  device cannot keep a secret, so none is sent.
- **An OAuth client holding the scope `device_login`** (`wxauth-admin client create --scope
  device_login`): its session carries its own `client_id`, and AUTH_AUDIENCE as `aud` (the
  tokens are the user's, for the deployment's APIs). It may authenticate (HTTP Basic or
  `client_secret`, checked as for client credentials), or send its `client_id` alone, as a
  public client: the person who confirms the login in the mini-program, shown the client, its
  IP and the time, is what lets it in (RFC 8628 §5.4).

Any other client id is `invalid_client`; a disabled app or a client without the scope is
`unauthorized_client`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.clients import ClientStore
from chalicelib.errors import ClientAuthError, RequestError, UnauthorizedClient
from chalicelib.identity.apps import AppRegistry, token_audience

DEVICE_SCOPE = "device_login"
MAX_CLIENT_ID = 128


@dataclass(frozen=True)
class DeviceClient:
    """A client allowed to start device logins: its sessions' `client_id` and `aud` (None:
    AUTH_AUDIENCE), and the appid when it is an app's client id."""

    client_id: str
    audience: str | None = None
    appid: str | None = None


def credentials(form: dict[str, str], basic: tuple[str, str] | None) -> tuple[str, str | None]:
    """(client_id, secret or None) of a device's request: HTTP Basic or the form's client_id
    and client_secret (one method), a client_id being required (RFC 8628 §3.1, §3.4)."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if secret is not None:
            raise RequestError("authenticate with HTTP Basic or client_secret, not both")
        if client_id is not None and client_id != basic[0]:
            raise RequestError("client_id differs from the HTTP Basic user")
        client_id, secret = basic
    if not client_id:
        raise RequestError("client_id is required")
    if len(client_id) > MAX_CLIENT_ID:
        raise ClientAuthError("client authentication failed")
    return client_id, secret or None


class DeviceClients:
    """The clients that may use the device grant (see the module doc)."""

    def __init__(self, apps: AppRegistry, clients: ClientStore) -> None:
        self._apps = apps
        self._clients = clients

    def resolve(self, client_id: str, secret: str | None) -> DeviceClient:
        """The client named (and, with a secret, authenticated); an app's costs no request
        (the registry's cache), an OAuth client's one GetItem (none if its secret was
        authenticated in this container within AUTH_CLIENTS_CACHE_TTL)."""
        app = self._apps.by_client_id(client_id)
        if app is not None:
            if secret is not None:
                raise ClientAuthError(
                    "an app's client id is a public client's: send no secret with it"
                )
            if not app.enabled:
                raise UnauthorizedClient(f"app {app.appid} is disabled")
            return DeviceClient(client_id, token_audience(app), app.appid)
        if secret is not None:
            client = self._clients.authenticate(client_id, secret)
        else:
            found = self._clients.get(client_id)
            if found is None or not found.enabled:
                raise ClientAuthError("client authentication failed")
            client = found
        if DEVICE_SCOPE not in client.scopes:
            raise UnauthorizedClient(
                f"this client may not start device logins: it needs the scope {DEVICE_SCOPE}"
            )
        return DeviceClient(client.client_id)

    def authenticate(self, client_id: str, secret: str | None) -> None:
        """A poll's client: with a secret, authenticated (remembered per container, so usually
        no request); without one, nothing to check here (the login's client id is compared by
        the poll's own write)."""
        if secret is None:
            return
        if self._apps.by_client_id(client_id) is not None:
            raise ClientAuthError("an app's client id is a public client's: send no secret with it")
        self._clients.authenticate(client_id, secret)
