"""Routes for WeChat's servers: a third-party platform's authorization events (issue 24, item
4). WeChat POSTs them to the platform's 授权事件接收URL, this route, and expects `success`."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.edge import NO_STORE, Call, Routes
from chalicelib.errors import ForgedMessage

routes = Routes(Blueprint(__name__))


@routes.endpoint("/wechat/component/ticket", ["POST"])
def component_ticket(call: Call) -> Response:
    """A push (the component_verify_ticket every 10 minutes, authorization notices): opened
    only if WeChat signed it (chalicelib/wechat/push.py); 403 and nothing kept otherwise."""
    events = call.services.component_events
    if events is None:
        raise ForgedMessage("this deployment has no third-party platform (WECHAT_COMPONENT_APPID)")
    events.receive(call.request.query_params, call.request.raw_body or b"", call.now)
    headers = {**NO_STORE, "Content-Type": "text/plain"}
    return Response(body="success", status_code=200, headers=headers)
