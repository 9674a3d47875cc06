"""wxauth's Chalice app: the app, its service graph, and the routes of each audience.

The routes are Blueprints in chalicelib/api/ (auth for mini-programs, account for the signed-in
user, oauth for backends, internal for services, web for browsers); chalicelib/api/edge.py
turns domain errors into HTTP answers. A route of your own goes here, protected in one line:

    @protected("/orders", ["POST"], scope="orders:write")
    def create_order(call: Call, claims: AccessClaims) -> dict: ...
"""

# ruff: noqa: E402 - the garbage collector is paused before the imports (see below)
from __future__ import annotations

import gc

# A cold start allocates a great deal (modules, botocore's models) and frees little, and the
# cyclic garbage collector's passes over that growing heap cost it about 15% (bench/RESULTS.md).
# It is paused while these imports run and while services() builds the graph; what they made
# then lives as long as the process, so it is frozen (gc.freeze: never looked at again) instead
# of being traversed by the first collection after the pause.
_gc_was_enabled = gc.isenabled()
gc.disable()

import threading

from chalicelib import logs, runtime, snapstart
from chalicelib.api import account, auth, device, internal, oauth, platform, web
from chalicelib.api.edge import Call, Routes, WxAuth
from chalicelib.settings import Settings
from chalicelib.tokens.access import AccessClaims

gc.freeze()  # what the imports made lives as long as the process: no collection looks at it
if _gc_was_enabled:
    gc.enable()

__all__ = ["AccessClaims", "Call", "app", "endpoint", "protected", "services"]

_services: runtime.Services | None = None
_services_lock = threading.Lock()


def services() -> runtime.Services:
    """The service graph, built once per Lambda container (after the environment is set), and
    once only when `chalice local` serves the first requests on several threads at once."""
    global _services
    if _services is not None:
        return _services
    with _services_lock:
        if _services is None:
            was_enabled = gc.isenabled()
            gc.disable()  # as during the imports: this makes botocore's clients
            try:
                _services = runtime.build(Settings.from_env())
            finally:
                gc.freeze()
                if was_enabled:
                    gc.enable()
    return _services


app = WxAuth(app_name="wxauth", services=lambda: services())
logs.configure()
for blueprint in (auth, account, oauth, internal, web, platform, device):
    app.register_blueprint(blueprint.routes.target)

# Routes of this app itself (see the module doc): `@protected(path, ...)`, `@endpoint(path, ...)`.
_own = Routes(app)
endpoint = _own.endpoint
protected = _own.protected


# Lambda SnapStart (the stack's SnapStart=On; chalicelib/snapstart.py): the graph is built into
# the snapshot, calling nothing; each restored container forgets secrets, keys and connections.
@snapstart.before_snapshot
def _prime() -> None:
    snapstart.prime(services())


@snapstart.after_restore
def _refresh() -> None:
    if _services is not None:
        snapstart.refresh(_services)


def erase_due(event: object, context: object) -> dict:
    """The DeletionHandler function's entry (infra/resources.yaml: an EventBridge schedule, the
    same code and settings as the API's): erase every user whose deletion's cooling-off period
    is over (chalicelib/erasure.py), resuming any erasure an earlier run left unfinished."""
    from chalicelib.erasure import run_scheduled

    svc = services()
    try:
        return run_scheduled(svc.erasure, svc.clock, context)
    finally:
        svc.events.flush()
