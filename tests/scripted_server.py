"""A tiny real HTTP server whose answers a test scripts, for the async (aiohttp) code paths.

Async tests talk to it over loopback exactly as they would to Dune: no client patching.
Each path has a queue of answers; the last one repeats once the queue is down to it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer: Any = None


class ScriptedServer:
    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        self.requests: list[SeenRequest] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def script(self, method: str, path: str, *answers: Answer) -> None:
        self.answers[(method, path)].extend(answers)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def calls(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            SeenRequest(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                await request.read(),
            )
        )
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return web.json_response({"error": "not scripted"}, status=404)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        content_type = "application/json" if not isinstance(answer.body, str) else "text/plain"
        return web.Response(
            status=answer.status, text=text, content_type=content_type, headers=answer.headers
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ThreadedScriptedServer(ScriptedServer):
    """The same server on its own event loop in a thread, for sync code (Airflow task runs)."""

    def start_in_thread(self) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="scripted-dune", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop_thread(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
