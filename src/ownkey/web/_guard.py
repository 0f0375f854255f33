"""The console's front door: sign-in and sign-out, the session check and the CSRF check.

Every page of an org lives under ``/admin/{org}/...`` and opens only with a session of that
org's admin token; any other org, existing or not, answers the same 404 page as an org that does
not exist (the API's rule, docs/api.md). Every POST carries the session's CSRF token in a form
field, compared in constant time; a POST without it is refused (403) before anything is read
or changed. The session cookie is HttpOnly, SameSite=Strict, Secure when served over TLS, and
scoped to ``/admin``.

Sign-in attempts are limited per client address (:data:`CLIENT_SIGNINS`, failed ones included:
token guessing) and successful sign-ins per org (:data:`ORG_SIGNINS`); beyond either the answer
is 429 with ``Retry-After``. The client address is the connection's, which uvicorn takes from
``X-Forwarded-For`` only when the connection comes from a proxy it trusts (``FORWARDED_ALLOW_IPS``,
loopback by default): behind a proxy elsewhere, list it there, or every client shares one
budget.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Protocol
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from ownkey.errors import (
    AccessDenied,
    AuditUnavailable,
    InvalidRequest,
    KeyUnavailable,
    LimitExceeded,
    NotFound,
    OwnkeyError,
)
from ownkey.service import BackgroundJobs, Runtime
from ownkey.storage import ORG_TOKEN, ApiToken
from ownkey.web._render import page
from ownkey.web._session import Session, Sessions, SessionsFull, same_secret
from ownkey.web._throttle import Throttle

__all__ = [
    "CLIENT_SIGNINS",
    "COOKIE",
    "ORG_SIGNINS",
    "ConsoleDeps",
    "Form",
    "Guard",
    "PostedForm",
    "Refused",
    "read_form",
]

COOKIE = "ownkey_console"
SIGNIN_COOKIE = "ownkey_signin"
#: A console form is a few fields; anything bigger is not one of ours.
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 64
_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Sign-in attempts of one client address: this many at once, as many more each period (s).
CLIENT_SIGNINS = (10, 60.0)
#: Successful sign-ins into one org: this many at once, as many more each period (s).
ORG_SIGNINS = (20, 60.0)


class TokenAuthority(Protocol):
    def authenticate(self, text: str) -> ApiToken | None: ...

    def active(self, token_id: str) -> ApiToken | None: ...


class ConsoleDeps(Protocol):
    """What the console needs from the app that mounts it (the API's state has all three)."""

    @property
    def runtime(self) -> Runtime: ...

    @property
    def tokens(self) -> TokenAuthority: ...

    @property
    def jobs(self) -> BackgroundJobs: ...


class Refused(Exception):  # noqa: N818 - an answer, not an error of the error tree
    """An answer decided before a page is built (redirect to sign-in, 403, 404)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


@dataclass(frozen=True, slots=True)
class Form:
    """A posted form's fields, or why it could not be read (then every check refuses it)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default).strip()


async def read_form(request: Request) -> Form:
    """The urlencoded body of a POST, at most 64 KiB and 64 fields (no multipart)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Form(problem="not a form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return Form(problem="the form is too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return Form(problem="the form could not be read")
    return Form(dict(pairs))


PostedForm = Annotated[Form, Depends(read_form)]

_STATUS: tuple[tuple[type[OwnkeyError], int], ...] = (
    (NotFound, 404),
    (AccessDenied, 403),
    (InvalidRequest, 422),
    (LimitExceeded, 422),
    (KeyUnavailable, 503),
    (AuditUnavailable, 503),
)


def status_of(exc: OwnkeyError) -> int:
    """The HTTP status of a page that shows ``exc`` (the API's table, in short; else 409)."""
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 409)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


class Guard:
    """Sessions, and the checks every console request passes before its page is built."""

    def __init__(
        self,
        deps: ConsoleDeps,
        sessions: Sessions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deps = deps
        self.sessions = sessions
        burst, period = CLIENT_SIGNINS
        self._by_client = Throttle(burst=burst, period=period, clock=clock)
        burst, period = ORG_SIGNINS
        self._by_org = Throttle(burst=burst, period=period, clock=clock)

    # -- pages of an org -----------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        """The request's live session, its token still active for its org (else ended)."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        token = self._deps.tokens.active(session.token_id)
        if token is None or token.kind != ORG_TOKEN or token.org != session.org:
            self.sessions.end(session.session_id)
            return None
        return session

    def admin(self, request: Request, org: str, form: Form | None) -> Session:
        """The session of ``org``'s admin, or :class:`Refused`: sign in (GET) or 401 (POST),
        404 for an org that is not the session's, 403 for a POST without its CSRF token."""
        session = self.session(request)
        if session is None:
            if request.headers.get("HX-Request") == "true":  # a poll: the whole page moves
                raise Refused(Response(status_code=401, headers={"HX-Redirect": "/admin/signin"}))
            if form is None:
                raise Refused(RedirectResponse("/admin/signin", status_code=303))
            raise Refused(self.refusal(401, "You are not signed in (or the session ended)."))
        if (
            not _ORG.fullmatch(org)
            or session.org != org
            or self._deps.runtime.directory.store.get_org(org) is None
        ):
            raise Refused(self.not_found(session))
        if form is not None and (form.problem or not same_secret(form.get("csrf"), session.csrf)):
            raise Refused(
                self.refusal(
                    403,
                    "This form has no valid CSRF token: reload the page and try again.",
                    session,
                )
            )
        return session

    def not_found(self, session: Session | None) -> Response:
        """The one 404 page: no such org, or not the session's to see (the same words)."""
        return self.refusal(404, "Not found.", session)

    def refusal(self, status: int, message: str, session: Session | None = None) -> Response:
        return page(
            "message.html",
            {"title": "Not available", "message": message, "session": session, "page": ""},
            status=status,
        )

    # -- sign-in and sign-out ------------------------------------------------------------------

    def signin_page(self, request: Request, *, message: str = "", status: int = 200) -> Response:
        """The sign-in form with a fresh pre-session CSRF token (cookie and field)."""
        session = self.session(request)
        if session is not None and not message:
            return RedirectResponse(f"/admin/{session.org}", status_code=303)
        pre = secrets.token_urlsafe(32)
        response = page(
            "signin.html",
            {"title": "Sign in", "csrf": pre, "message": message, "session": None, "page": ""},
            status=status,
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            pre,
            max_age=3600,
            path="/admin",
            httponly=True,
            secure=_secure(request),
            samesite="strict",
        )
        return response

    def signin(self, request: Request, form: Form) -> Response:
        """Exchange an org admin token for a session; one answer for every failure."""
        if form.problem or not same_secret(
            form.get("csrf"), request.cookies.get(SIGNIN_COOKIE, "")
        ):
            return self.signin_page(
                request, message="The sign-in form expired: try again.", status=403
            )
        client = request.client.host if request.client is not None else ""
        wait = self._by_client.take(client)
        if wait:
            return self._too_many(request, wait)
        text = form.get("token")
        token = self._deps.tokens.authenticate(text) if text else None
        org = None if token is None else token.org
        if (
            token is None
            or token.kind != ORG_TOKEN
            or org is None
            or self._deps.runtime.directory.store.get_org(org) is None
        ):
            return self.signin_page(
                request,
                message="That is not a valid org admin token.",
                status=401,
            )
        wait = self._by_org.take(org)
        if wait:
            return self._too_many(request, wait)
        self.sessions.end(request.cookies.get(COOKIE))  # never two sessions for one browser
        try:
            session = self.sessions.start(
                token_id=token.token_id, org=org, actor=f"token:{token.token_id}"
            )
        except SessionsFull:
            busy = self.signin_page(
                request, message="There is no room for another session: try later.", status=503
            )
            busy.headers["Retry-After"] = "60"
            return busy
        response = RedirectResponse(f"/admin/{org}", status_code=303)
        response.delete_cookie(
            SIGNIN_COOKIE, path="/admin", secure=_secure(request), httponly=True, samesite="strict"
        )
        response.set_cookie(
            COOKIE,
            session.session_id,
            path="/admin",
            httponly=True,
            secure=_secure(request),
            samesite="strict",
        )
        return response

    def _too_many(self, request: Request, wait: float) -> Response:
        """429: too many sign-in attempts (of this client, or into this org), and when to retry."""
        after = Throttle.retry_after(wait)
        response = self.signin_page(
            request,
            message=f"Too many sign-in attempts: try again in {after} seconds.",
            status=429,
        )
        response.headers["Retry-After"] = after
        return response

    def signout(self, request: Request, form: Form) -> Response:
        """End the session (a POST with its CSRF token) and go back to the sign-in page."""
        session = self.session(request)
        if session is None:
            return RedirectResponse("/admin/signin", status_code=303)
        if form.problem or not same_secret(form.get("csrf"), session.csrf):
            return self.refusal(
                403, "This form has no valid CSRF token: reload the page and try again.", session
            )
        self.sessions.end(session.session_id)
        response = RedirectResponse("/admin/signin", status_code=303)
        response.delete_cookie(
            COOKIE, path="/admin", secure=_secure(request), httponly=True, samesite="strict"
        )
        return response

    def run(
        self,
        request: Request,
        form: Form | None,
        handler: Callable[[Request, Session, Form], Response],
    ) -> Response:
        """Check the session (and the form's CSRF token), then build the page."""
        try:
            session = self.admin(request, str(request.path_params.get("org", "")), form)
            try:
                return handler(request, session, form or Form())
            except NotFound:
                return self.not_found(session)
            except OwnkeyError as exc:
                return self.refusal(status_of(exc), " ".join(str(exc).split()), session)
        except Refused as refused:
            return refused.response
