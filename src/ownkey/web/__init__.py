"""The customer's security console: server-rendered pages under ``/admin``, thin over
:mod:`ownkey.service` (the same calls as the REST API; no rule of its own).

:func:`console_router` builds the pages for an app (``ownkey serve`` mounts it in the API app):
sign in with an org admin token, then overview, coverage, revocation with a preview, the
key-usage log, jobs and the key's lifecycle of that org only.

Assets are the package's own, served from ``/admin/static/``: ``console.css`` and htmx 2.0.11
(``static/htmx.min.js``, the npm package ``htmx.org@2.0.11`` unmodified under a one-comment
header; 0BSD, ``static/htmx.LICENSE``). To update it: ``npm pack htmx.org@2`` in a temp dir,
then copy ``package/dist/htmx.min.js`` and ``package/LICENSE`` here with the header's version.
"""

from ownkey.web._guard import ConsoleDeps
from ownkey.web._router import console_router

__all__ = ["ConsoleDeps", "console_router"]
