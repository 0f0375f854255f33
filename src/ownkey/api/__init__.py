"""REST API (FastAPI), thin over the service layer: ``create_app(runtime)``; see docs/api.md.

Admin routes per org (``/v1/orgs/{org}/...``, org admin tokens), the data plane (``/v1/seal``,
``/v1/open``, ``/v1/objects``, ``/v1/policy/explain``, platform service tokens), ``/healthz``,
``/metrics``, OpenAPI at ``/openapi.json``. Errors are ``application/problem+json``.
"""

from ownkey.api._app import create_app

__all__ = ["create_app"]
