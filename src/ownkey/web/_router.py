"""``console_router``: the console's paths under ``/admin``, mounted by the API app.

The paths, their methods and which handler answers; every page of an org passes the
:class:`~ownkey.web._guard.Guard` first (session of that org, CSRF token on a POST). The two
static files (htmx and the style sheet) are served from the package: nothing is fetched from
elsewhere at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ownkey.storage import SessionStore
from ownkey.web._guard import ConsoleDeps, Form, Guard, PostedForm
from ownkey.web._pages import Pages
from ownkey.web._session import Session, Sessions

__all__ = ["console_router"]

_STATIC = {"htmx.min.js": "text/javascript", "console.css": "text/css"}
Handler = Callable[[Request, Session, Form], Response]


def _static() -> dict[str, bytes]:
    folder = resources.files("ownkey.web") / "static"
    return {name: (folder / name).read_bytes() for name in _STATIC}


def console_router(deps: ConsoleDeps, *, clock: Callable[[], float] = time.time) -> APIRouter:
    """The console over ``deps`` (the API's state): sessions in its runtime's database, shared
    by every node on it; nothing global."""
    guard = Guard(deps, Sessions(SessionStore(deps.runtime.database), clock=clock), clock=clock)
    pages = Pages(deps, guard, clock)
    files = _static()
    router = APIRouter(prefix="/admin", include_in_schema=False)

    def get(path: str, handler: Handler) -> None:
        def endpoint(request: Request) -> Response:
            return guard.run(request, None, handler)

        router.add_api_route(path, endpoint, methods=["GET"], name=f"console:{path}")

    def post(path: str, handler: Handler) -> None:
        def endpoint(request: Request, form: PostedForm) -> Response:
            return guard.run(request, form, handler)

        router.add_api_route(path, endpoint, methods=["POST"], name=f"console:post:{path}")

    def home(request: Request) -> Response:
        session = guard.session(request)
        target = "/admin/signin" if session is None else f"/admin/{session.org}"
        return RedirectResponse(target, status_code=303)

    def signin_form(request: Request) -> Response:
        return guard.signin_page(request)

    def signin(request: Request, form: PostedForm) -> Response:
        return guard.signin(request, form)

    def signout(request: Request, form: PostedForm) -> Response:
        return guard.signout(request, form)

    def static(name: str) -> Response:
        if name not in files:
            return Response(status_code=404)
        return Response(
            files[name],
            media_type=_STATIC[name],
            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    router.add_api_route("", home, methods=["GET"])
    router.add_api_route("/", home, methods=["GET"])
    router.add_api_route("/signin", signin_form, methods=["GET"])
    router.add_api_route("/signin", signin, methods=["POST"])
    router.add_api_route("/signout", signout, methods=["POST"])
    router.add_api_route("/static/{name}", static, methods=["GET"])
    get("/{org}", pages.overview)
    post("/{org}/check", pages.check_key)
    get("/{org}/coverage", pages.coverage)
    post("/{org}/coverage/{service_id}", pages.toggle_service)
    get("/{org}/revocations", pages.revocations)
    post("/{org}/revocations/preview", pages.preview_rule)
    post("/{org}/revocations", pages.add_rule)
    post("/{org}/revocations/{rule_id}/lift", pages.lift_rule)
    get("/{org}/usage", pages.usage)
    get("/{org}/usage.csv", pages.usage_csv)
    get("/{org}/jobs", pages.jobs)
    get("/{org}/jobs/live", pages.jobs_live)
    get("/{org}/jobs/live/{job_id}", pages.jobs_live)
    get("/{org}/jobs/{job_id}", pages.jobs)
    get("/{org}/key", pages.key)
    get("/{org}/key/{action}", pages.confirm_key)
    post("/{org}/key/{action}", pages.key_action)
    return router
