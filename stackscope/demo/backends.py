"""The auth backends and the decoy pool of another service (billing).

Each auth backend names itself in X-Served-By and checks the session store on /health,
so a store outage turns every backend red, as in a real stack. The decoys answer 200 on
/health too: a pool switched to them looks healthy to the LB while logins fail.
"""

from __future__ import annotations

from stackscope.demo import store
from stackscope.demo.httpserver import HttpServer, Request, Response

STORE_TIMEOUT = 2.0


class AuthBackend:
    def __init__(self, name: str, store_port_getter) -> None:
        self.name = name
        self._store_port = store_port_getter
        self.broken = False  # backends-500: a bad release answers 500 everywhere
        self.server = HttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        headers = {"X-Served-By": self.name}
        if self.broken:
            return Response(500, b"internal error: NullPointerException in SessionManager (release 2.14.1)\n", headers)
        if request.path in ("/health", "/login"):
            problem = await store.ping(self._store_port(), STORE_TIMEOUT)
            if problem:
                return Response(500, f"{problem}\n".encode(), headers)
            if request.path == "/login":
                return Response(200, b'{"login": "ok"}\n', headers, "application/json")
            return Response(200, b"ok\n", headers)
        return Response(404, b"not found\n", headers)


class DecoyBackend:
    """A server of another service: healthy, and knows nothing of logins."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = HttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        headers = {"X-Served-By": self.name}
        if request.path in ("/health", "/"):
            return Response(200, b"billing ok\n", headers)
        return Response(404, b"billing: no such page\n", headers)
