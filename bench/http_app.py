"""The app ``bench/http.py`` serves: ``ownkey serve``'s own app plus a bare echo route.

uvicorn imports this factory in every worker (``--factory --workers 2``); each worker opens its
Runtime from ``OWNKEY_HOME`` exactly as ``ownkey serve`` does. ``POST /bench/echo`` answers the
request body as it came: the cost of the server, the framework and the loopback alone, the
baseline the data-plane routes are compared with on the same run.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

try:
    from ownkey.cli._serve import worker_app
except ImportError:  # an ownkey before ``serve --workers`` (to measure a baseline): the same app

    def worker_app() -> FastAPI:
        import atexit

        from ownkey.api import create_app
        from ownkey.service import Runtime

        runtime = Runtime.open()
        atexit.register(runtime.close)
        return create_app(runtime, node_sync=True)


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


def make_app() -> FastAPI:
    app = worker_app()
    app.add_api_route("/bench/echo", echo, methods=["POST"], include_in_schema=False)
    return app
