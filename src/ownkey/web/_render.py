"""HTML answers: the Jinja2 templates of the package, autoescaped, with the console's headers.

Why the headers: the pages show key state and the usage log of an org, so they are never cached
(``no-store``), never framed (clickjacking of a confirm button), and run only the package's own
script and style (a Content-Security-Policy of ``'self'``): no inline script, nothing fetched
from elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["SECURITY_HEADERS", "human_bytes", "page", "utc"]

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def human_bytes(size: int | float) -> str:
    """1536 -> '1.5 KiB': sizes as an admin reads them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def utc(seconds: float | None) -> str:
    """Unix seconds as 'YYYY-MM-DD HH:MM:SS UTC' ('-' for none)."""
    if seconds is None:
        return "-"
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    """300 -> '5 min', 604800 -> '7 days'."""
    if seconds >= 86_400 and seconds % 3600 == 0:
        days = seconds / 86_400
        return f"{days:g} day" + ("" if days == 1 else "s")
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


_env = Environment(
    loader=PackageLoader("ownkey.web", "templates"),
    autoescape=select_autoescape(("html",), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["bytes"] = human_bytes
_env.filters["utc"] = utc
_env.filters["duration"] = _duration


def page(template: str, context: Mapping[str, Any], *, status: int = 200) -> HTMLResponse:
    """Render ``template`` with ``context`` as an HTML answer with the console's headers."""
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=dict(SECURITY_HEADERS))
