"""The links a person follows from a message: ``/p/`` to pay, ``/u/`` to unsubscribe.

What they record and show is ``services.links``'s; a link that is not ours is a 404
counted under ``link_<kind>`` (a browser gets an HTML page: ``app``'s error handler).
In the OpenAPI document for completeness (people, not programs, follow them): the proof
is the token itself, signed with ``OUTREACH_SECRET_KEY`` and carrying its expiry.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.core.links import PAY, UNSUBSCRIBE
from orchestrator.web.server import Server, ServerDep
from orchestrator.web.services import ebill, links
from orchestrator.web.services.refusals import Refused

router = APIRouter(tags=["Links in messages"])

TOKEN_PROOF = (
    " The token is the proof: the message id, its purpose and an expiry, signed with "
    "HMAC-SHA256 keyed with `OUTREACH_SECRET_KEY`; one that is not ours is a 404, writing nothing."
)
NOT_OURS: dict[int | str, dict[str, Any]] = {404: {"description": "not one of our links"}}


@router.head("/p/{token}", include_in_schema=False)
@router.get(
    "/p/{token}",
    summary="A payment link",
    description="Redirects (302) to the creditor's pay page; a GET from a person counts as a click."
    + TOKEN_PROOF,
    responses=NOT_OURS,
)
def pay_redirect(token: str, request: Request, server: ServerDep) -> Response:
    """The e-bill page for a browser, where the creditor offers one and the link is live
    (``services.ebill``); else to the creditor's pay page. Only a person's GET of a live
    link is a click: a HEAD or a link previewer is answered the same without recording;
    an expired link still leads to the pay page (or where to pay and whom to call)."""
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        try:
            page = ebill.show_bill(
                server, token, method=request.method, user_agent=request.headers.get("user-agent")
            )
        except Refused as exc:
            raise server.reject(f"link_{PAY}", exc.reason, exc.status, exc.detail) from None
        if page is not None:
            return HTMLResponse(page, headers=_PAGE_HEADERS)
    return pay_in_full(token, request, server)


@router.get("/p/{token}/pay", include_in_schema=False)
def pay_in_full(token: str, request: Request, server: ServerDep) -> Response:
    """The e-bill's "pay in full": to the creditor's pay page, the click recorded as a
    pay link's is."""
    try:
        answer = links.follow_pay_link(
            server, token, method=request.method, user_agent=request.headers.get("user-agent")
        )
    except Refused as exc:
        raise server.reject(f"link_{PAY}", exc.reason, exc.status, exc.detail) from None
    if answer.redirect:
        return RedirectResponse(answer.redirect, status_code=302)
    return HTMLResponse(answer.page)


# The e-bill page holds a person's balance: not cached, not framed, no referrer.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}


@router.post("/p/{token}", include_in_schema=False)
async def pay_choice(token: str, request: Request, server: ServerDep) -> Response:
    """A choice posted from the e-bill page (a promise or a plan), recorded once per
    link and choice (``services.ebill.choose``)."""
    body = await request.body()
    try:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
    except ValueError:  # too many fields: no form of ours (refused for want of its token)
        fields = {}
    try:
        page = await server.run(ebill.choose, server, token, fields)
    except Refused as exc:
        raise server.reject(f"link_{PAY}", exc.reason, exc.status, exc.detail) from None
    return HTMLResponse(page.html, page.status, headers=_PAGE_HEADERS)


def _unsubscribe_link(server: Server, token: str) -> tuple[Any, Response | None]:
    """The send of an unsubscribe link, and the 410 page to answer instead when it is
    too old to use."""
    try:
        send, too_old = links.unsubscribe_link(server, token)
    except Refused as exc:
        raise server.reject(f"link_{UNSUBSCRIBE}", exc.reason, exc.status, exc.detail) from None
    return send, None if too_old is None else HTMLResponse(too_old, 410)


@router.head("/u/{token}", include_in_schema=False)
@router.get(
    "/u/{token}",
    summary="An email's unsubscribe page",
    description="A page with one button; 410 when the link is too old." + TOKEN_PROOF,
    responses=NOT_OURS,
)
def unsubscribe_page(token: str, server: ServerDep) -> Response:
    _, too_old = _unsubscribe_link(server, token)
    if too_old is not None:
        return too_old
    safe = html.escape(token, quote=True)
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Unsubscribe</title>"
        "<h1>Stop these emails?</h1>"
        f"<form method=post action='/u/{safe}'><button type=submit>Unsubscribe</button></form>"
    )


@router.post(
    "/u/{token}",
    summary="Unsubscribe from email",
    description="The page's button, or the mailbox's one-click (RFC 8058): stops email only."
    + TOKEN_PROOF,
    responses=NOT_OURS,
)
def unsubscribe(token: str, server: ServerDep) -> Response:
    send, too_old = _unsubscribe_link(server, token)
    if too_old is not None:
        return too_old
    links.unsubscribe(server, send)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title><p>You will receive no more emails from us.</p>"
    )
