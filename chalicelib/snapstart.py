"""Lambda SnapStart (the stack's `SnapStart=On`): the hooks around the snapshot, and what a
restored container must not keep.

With SnapStart, Lambda runs the function's init once per published version, snapshots the
memory, and starts every new container of that version from the snapshot: whatever init left
in memory is shared by all of them, and is as old as the version. So:

- before the snapshot (`prime`, app.py): build the service graph (botocore clients: their
  models and endpoint rules are most of a first request's cost) and the login and OAuth
  services, with no request to DynamoDB, Secrets Manager or WeChat, so no secret, key or
  connection is in the snapshot;
- after each restore (`refresh`): drop whatever a container may have cached from a secret
  (the WeChat app secrets, the signing key set, the client store's remembered client
  authentications, the apps' clients), reseed `random` (botocore's retry jitter draws from it: a
  seed taken at init would be every container's), and close the AWS clients' connection pools
  (none is open if nothing called AWS before the snapshot; one that was would be dead). Every
  token, id and key the service makes comes from `secrets` (os.urandom), which the snapshot does
  not replay: nothing else needs reseeding.

The hooks are registered with the runtime's `snapshot_restore_py` (in Lambda's managed Python
runtimes) when it is importable, and always kept here too, so that tests run them
(`run_before_snapshot`, `run_after_restore`). Without SnapStart the runtime never calls them.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.runtime import Services

Hook = Callable[[], None]
_before: list[Hook] = []
_after: list[Hook] = []


def _register(name: str, hook: Hook) -> None:
    try:
        runtime_hooks = importlib.import_module("snapshot_restore_py")
    except ImportError:  # not in Lambda (or a runtime without SnapStart): nothing calls them
        return
    getattr(runtime_hooks, name)(hook)


def before_snapshot(hook: Hook) -> Hook:
    """Run `hook` before Lambda takes the snapshot (as snapshot_restore_py's decorator)."""
    _before.append(hook)
    _register("register_before_snapshot", hook)
    return hook


def after_restore(hook: Hook) -> Hook:
    """Run `hook` each time a container is restored from the snapshot."""
    _after.append(hook)
    _register("register_after_restore", hook)
    return hook


def run_before_snapshot() -> None:
    """What Lambda does before the snapshot: the hooks in reverse order of registration."""
    for hook in reversed(_before):
        hook()


def run_after_restore() -> None:
    """What Lambda does after a restore: the hooks in order of registration."""
    for hook in _after:
        hook()


def prime(services: Services) -> None:
    """Build what the first requests would build, calling nothing: login and OAuth import the
    WeChat client, requests and the client store."""
    import requests  # noqa: F401 - the WeChat client imports it at the first login

    services.login  # noqa: B018 - cached_property: built now, into the snapshot
    services.oauth  # noqa: B018


def refresh(services: Services) -> None:
    """Forget what a restored container must not share with the others (see the module doc)."""
    random.seed()  # from os.urandom
    services.keys.forget()
    for secret in (services.wechat_secret, services.tombstone_key):
        forget_secret = getattr(secret, "forget", None)
        if forget_secret is not None:  # a CachedSecret (Secrets Manager); a local value has none
            forget_secret()
    if services.apps is not None:
        services.apps.forget()
    app_clients = getattr(services.platform, "__self__", None)  # the third-party platform's keys
    if app_clients is not None:
        app_clients.forget()
    clients = services.__dict__.get("clients")  # built (a cached_property), or nothing to forget
    if clients is not None:
        clients.forget()
    services.store.close_connections()
