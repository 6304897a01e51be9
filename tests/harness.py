"""The end-to-end harness: a real gateway on a real socket, in a background thread.

Tests talk to it over HTTP exactly as users do (official SDKs, raw HTTP), while the upstream
emulator answers on its own socket. Each server gets its own event loop and thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from gateway.app import create_app
from gateway.protocol import ClientLimits, protocol_factory
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store import ControlStore
from tests.s3_server import free_port

T = TypeVar("T")


def wait_for(
    what: str, check: Callable[[], T | None], bound: float = 30.0, interval: float = 0.05
) -> T:
    """Poll ``check`` every ``interval`` seconds until it returns something other than
    ``None``/``False``; fail naming ``what`` after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)

_START_TIMEOUT = 60.0


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings isolated from the machine's environment (no ambient provider keys)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "provider_api_keys": {},
        "provider_base_urls": {},
        "clickhouse_url": None,
        "s3_endpoint": None,
        "s3_bucket_name": None,
        "s3_access_key": None,
        "s3_secret_key": None,
        # chdb (the embedded log store) allows one open data directory per process: only the
        # logging tests turn it on, one gateway at a time.
        "logging_enabled": False,
        "log_flush_ms": 50,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def create_key(settings: Settings, org: str = "default", name: str | None = None) -> str:
    """Create a gateway key through the real store (migrating first)."""

    async def run() -> str:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, _ = await store.create_key(org, name)
            return key
        finally:
            await store.close()

    return asyncio.run(run())


def serve_with_protocol(
    app: Callable[..., Any],
    client: Callable[[int], Coroutine[Any, Any, None]],
    limits: ClientLimits,
    *,
    lifespan: str = "off",
) -> None:
    """Run ``client(port)`` against ``app`` served in this process by uvicorn with the gateway's
    HTTP protocol, on a fresh event loop (asyncio's, so that a test can count the writes at
    its transports), on a real loopback socket; the server stops when ``client`` returns."""

    async def main() -> None:
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, loop="asyncio", lifespan=lifespan,
            http=protocol_factory(limits), log_level="warning",
        )  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        for _ in range(500):  # up to 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        try:
            await client(port)
        finally:
            server.should_exit = True
            await task

    asyncio.run(main())


class GatewayServer:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 in a daemon thread."""

    def _keep_lines(self, chunk: bytes) -> None:
        self.request_lines.extend(chunk.splitlines(keepends=True))

    def flush_request_lines(self) -> list[bytes]:
        """Every request line of the requests answered so far (the access log writes them
        in batches up to 50 ms after their request: this writes the batch now)."""
        finished = self.runtime.finished
        if finished is not None:

            async def flush() -> None:
                finished.flush()

            self.call(flush())
        return list(self.request_lines)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.request_lines: deque[bytes] = deque(maxlen=10_000)
        """The request log lines (gateway/accesslog.py): kept here, not written to stderr.
        They are written in batches up to 50 ms after their request: see
        :meth:`wait_for_request_lines`."""
        access_log = self.app.runtime.access_log
        if access_log is not None:
            access_log.write = self._keep_lines
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http=protocol_factory(ClientLimits.from_settings(settings)),  # as `gateway serve`
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gateway-server", daemon=True)
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            loop.close()

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the server's event loop (where its resources live) and wait."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def new_key(self, org: str, scopes: frozenset[str] | None = None) -> str:
        """A gateway key of ``org`` made in this server's own control store (``scopes`` None:
        full access), usable at once (the store the running gateway reads)."""
        key, _ = self.call(self.runtime.store.create_key(org, "test", scopes))
        return key

    def start(self) -> GatewayServer:
        self._thread.start()
        # Start-up loads the model registry and migrates the stores: seconds on a loaded
        # 2-core machine, so the bound is generous (a failure still ends the wait at once).
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._server.started or self._error or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._server.started:
            raise RuntimeError(f"gateway did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
