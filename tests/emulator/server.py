"""``OpenAIEmulator``: the upstream stand-in, on a real socket in its own thread and loop.

One instance speaks OpenAI (``/v1/chat/completions``, ``/v1/responses``...), Anthropic
(``/v1/messages``), the Gemini API (``/v1beta/models/{model}:generateContent``...), Bedrock
(``/model/{modelId}/...``) and Vertex AI (``/v1/projects/.../publishers/{google,anthropic}/
models/...`` and Google's token endpoint, :mod:`.vertex`; ``VERTEX_BASE_URL`` is ``origin``): point
``OPENAI_BASE_URL`` at ``base_url``, ``ANTHROPIC_BASE_URL`` at ``anthropic_base_url`` and
``GEMINI_BASE_URL`` at ``gemini_base_url``. A request is Anthropic's when its path is under
``/v1/messages`` or it carries ``anthropic-version``; it is then keyed by ``x-api-key`` (or
``Authorization: Bearer``, as anthropic SDK 2.x sends it), and every error it gets is
Anthropic's. A ``POST /v1beta/models/{model}:{method}`` (or ``/v1/…``) is Gemini's: keyed by
``x-goog-api-key`` (or ``?key=``), with Google's errors.

Tests (sync or async) and the gateway under test each run their own event loop; giving the
emulator a private loop in a daemon thread means it keeps answering however the test's loop
is blocked (e.g. a sync SDK call), and it behaves as a separate network peer would.

Every request is recorded first, then a matching injected fault is taken (delay, status),
then the key (and for Anthropic the ``anthropic-version`` header) is checked, then the
endpoint answers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType

from aiohttp import web

from . import (
    anthropic_errors,
    azure,
    bedrock,
    chat,
    embeddings,
    gemini,
    gemini_errors,
    images,
    messages,
    models,
    responses,
    vertex,
)
from .anthropic_errors import AnthropicError
from .bedrock_validation import BedrockError, BedrockValidator, verify_signature
from .errors import InvalidRequest, error_response, invalid_request, mask_key, status_response
from .exchange import AnthropicState, Exchange
from .faults import Fault, FaultQueue
from .messages_plan import PromptCache
from .messages_validation import MessagesValidator
from .recording import RecordedRequest
from .validation import RequestValidator

logger = logging.getLogger("tests.emulator")

Handler = Callable[[Exchange], Awaitable[web.StreamResponse]]

PIXEL_PATH = "/static/pixel.png"
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc000000301010018dd8db00000000049454e44ae426082"
)
BEDROCK_ACCESS_KEY = "AKIDEMULATOR00000001"
BEDROCK_SECRET_KEY = "emulator/secret+access/key0000000000000"
_START_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 0.2
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class OpenAIEmulator:
    """An OpenAI- and Anthropic-compatible HTTP server for tests and benchmarks.

    ``requests`` and ``disconnects`` are written by the server thread and read by tests;
    ``inject``/``reset`` may be called from any thread.
    """

    def __init__(
        self, api_key: str | None = "sk-emulator", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self._serials = itertools.count(1)
        self._validator = RequestValidator()
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): chat.handle,
            ("POST", "/v1/responses"): responses.handle,
            ("POST", "/v1/embeddings"): embeddings.handle,
            ("GET", "/v1/models"): models.list_models,
        }
        self._anthropic = AnthropicState(MessagesValidator(), PromptCache())
        self.bedrock_credentials: dict[str, tuple[str, str | None]] = {
            BEDROCK_ACCESS_KEY: (BEDROCK_SECRET_KEY, None)
        }
        """AWS access key id → (secret, session token) the Bedrock routes accept (SigV4)."""
        self.bedrock_region = "us-east-1"
        """The region a Bedrock request's signature must be scoped to."""
        self.bedrock_api_key: str | None = None
        """A Bedrock API key accepted as ``Authorization: Bearer`` instead of a signature."""
        self._bedrock = BedrockValidator()
        self._bedrock_cache = PromptCache()
        self.vertex = vertex.VertexState()
        """Vertex AI's service accounts and tokens (:mod:`.vertex`)."""
        self._anthropic_routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/messages"): messages.handle,
            ("GET", "/v1/models"): models.list_anthropic_models,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenAIEmulator:
        """Serve in a background thread; returns once the socket is bound and listening."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="openai-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("emulator did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("emulator failed to start") from failure[0]
        return self

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._bind())
        except BaseException as exc:  # surfaced by start()
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _bind(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    def stop(self) -> None:
        """Close the socket and every connection, then end the thread."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        self._stopping = True  # streams cut by the shutdown are not client disconnects
        if runner is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
            future.result(timeout=_START_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_START_TIMEOUT)
        self._loop = self._thread = self._runner = None
        self._stopping = False

    def __enter__(self) -> OpenAIEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI's base URL (``OPENAI_BASE_URL``, the openai SDK's ``base_url``)."""
        return f"{self.origin}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Anthropic's base URL (``ANTHROPIC_BASE_URL``, the anthropic SDK's ``base_url``):
        the origin, to which clients append ``/v1/messages``."""
        return self.origin

    @property
    def gemini_base_url(self) -> str:
        """The Gemini API's base URL (``GEMINI_BASE_URL``, google-genai's ``base_url``): the
        origin, to which clients append ``/v1beta/models/...``."""
        return self.origin

    def inject(self, fault: Fault) -> None:
        self._faults.add(fault)

    def reset(self) -> None:
        """Forget recorded requests, pending faults, the disconnect count and the prompt
        cache."""
        with self._lock:
            self.requests.clear()
            self.disconnects = 0
        self._faults.clear()
        self._anthropic.cache.clear()
        self._bedrock_cache.clear()

    def _count_disconnect(self) -> None:
        with self._lock:
            if not self._stopping:
                self.disconnects += 1

    # -- serving ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        serial = next(self._serials)
        if request.path.startswith("/model/"):
            return await self._dispatch_bedrock(request, body, serial)
        if vertex.is_vertex(request.path):
            return await self._dispatch_vertex(request, body, serial)
        if request.method == "GET" and request.path == PIXEL_PATH:
            # A public image for the fetcher of translations that inline image URLs.
            self._record(request, body)
            return web.Response(body=PIXEL_PNG, content_type="image/png")
        anthropic = _speaks_anthropic(request)
        google = gemini.is_gemini(request.path)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    body=body,
                    client_port=_client_port(request),
                )
            )
        if request.method == "GET" and request.path.startswith(images.PREFIX):
            return images.handle(request)
        fault = self._faults.take(request.path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.close == "before_answer" and request.transport is not None:
                request.transport.close()
                return web.Response()  # written nowhere: the socket is closed
            if fault.status is not None and google:
                answer = gemini_errors.error_response(
                    fault.status, fault.message, fault.headers, fault.body
                )
                return answer
            if fault.status is not None:
                answer = self._fault_answer(fault, fault.status, serial, anthropic)
                if fault.close == "after_answer":
                    return await _answer_then_close(request, answer, fault.close_delay)
                return answer
        if google:
            refused = gemini_errors.check_key(request, self.api_key)
        elif anthropic:
            refused = anthropic_errors.check_headers(request, self.api_key, serial)
        elif azure.is_azure(request):
            refused = azure.check_key(request, self.api_key)
        else:
            refused = self._check_key(request)
        if refused is not None:
            return refused
        exchange = Exchange(
            request=request,
            body=body,
            fault=fault,
            validator=self._validator,
            anthropic=self._anthropic,
            serial=serial,
            on_disconnect=self._count_disconnect,
        )
        try:
            if google:
                return await gemini.handle(exchange)
            if anthropic:
                return await self._route_anthropic(exchange)
            return await self._route(exchange)
        except InvalidRequest as exc:
            return invalid_request(exc)
        except AnthropicError as exc:
            return anthropic_errors.error_response(exc.status, serial, exc.error_type, exc.message)
        except Exception as exc:
            # An emulator bug: say so in the body, where a failing test will show it.
            logger.exception("emulator failed on %s %s", request.method, request.path)
            if google:
                return gemini_errors.error_response(500, f"emulator error: {exc!r}")
            if anthropic:
                return anthropic_errors.error_response(
                    500, serial, message=f"emulator error: {exc!r}"
                )
            return error_response(500, f"emulator error: {exc!r}", "server_error")

    def _record(self, request: web.Request, body: bytes) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    body=body,
                    client_port=_client_port(request),
                    raw_path=request.raw_path,
                )
            )

    async def _dispatch_bedrock(
        self, request: web.Request, body: bytes, serial: int
    ) -> web.StreamResponse:
        """Bedrock's runtime API (``/model/{modelId}/...``): faults, SigV4, then the
        endpoint; every error in Bedrock's shape (:mod:`.bedrock`)."""
        self._record(request, body)
        fault = self._faults.take(request.path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                kind, message = bedrock.STATUS_ERRORS.get(
                    fault.status, ("InternalServerException", "Internal error.")
                )
                answer = bedrock.error_response(
                    fault.status, fault.error_type or kind, fault.message or message, serial
                )
                if fault.body is not None:
                    answer.body = fault.body
                return answer
        target = bedrock.split_path(request.raw_path.split("?", 1)[0])
        try:
            if target is None:
                raise BedrockError(404, "UnknownOperationException", "Unknown operation")
            authorization = request.headers.get("Authorization", "")
            if (
                self.bedrock_api_key is not None
                and authorization == f"Bearer {self.bedrock_api_key}"
            ):
                pass
            else:
                url = f"{request.scheme}://{request.host}{request.raw_path}"
                verify_signature(
                    request.method,
                    url,
                    request.headers,
                    body,
                    self.bedrock_credentials,
                    self.bedrock_region,
                )
            exchange = Exchange(
                request=request,
                body=body,
                fault=fault,
                validator=self._validator,
                anthropic=self._anthropic,
                serial=serial,
                on_disconnect=self._count_disconnect,
            )
            return await bedrock.handle(exchange, self._bedrock, self._bedrock_cache, *target)
        except BedrockError as exc:
            return bedrock.error_response(exc.status, exc.kind, exc.message, serial)
        except Exception as exc:
            logger.exception("emulator failed on %s %s", request.method, request.path)
            return bedrock.error_response(
                500, "InternalServerException", f"emulator error: {exc!r}", serial
            )

    async def _dispatch_vertex(
        self, request: web.Request, body: bytes, serial: int
    ) -> web.StreamResponse:
        """Vertex AI (:mod:`.vertex`): the token endpoint, or a model call — faults, the
        access token, then the publisher's endpoint, errors in the publisher's shape."""
        self._record(request, body)
        if request.path == vertex.TOKEN_PATH:
            return vertex.token(request, body, self.vertex)
        target = vertex.split(request.path)
        assert target is not None  # is_vertex() said so
        publisher = target[0]
        fault = self._faults.take(request.path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return vertex.fault_answer(
                    publisher, fault.status, fault.message, fault.error_type, serial
                )
        rejected = vertex.refused(request, self.vertex)
        if rejected is not None:
            return rejected
        exchange = Exchange(
            request=request,
            body=body,
            fault=fault,
            validator=self._validator,
            anthropic=self._anthropic,
            serial=serial,
            on_disconnect=self._count_disconnect,
        )
        try:
            return await vertex.handle(exchange, *target)
        except AnthropicError as exc:
            return anthropic_errors.error_response(exc.status, serial, exc.error_type, exc.message)
        except Exception as exc:
            logger.exception("emulator failed on %s %s", request.method, request.path)
            if publisher == "anthropic":
                return anthropic_errors.error_response(
                    500, serial, message=f"emulator error: {exc!r}"
                )
            return gemini_errors.error_response(500, f"emulator error: {exc!r}")

    @staticmethod
    def _fault_answer(fault: Fault, status: int, serial: int, anthropic: bool) -> web.Response:
        """The ``status`` answer a fault asks for, in the error envelope of the request's API."""
        if anthropic:
            return anthropic_errors.error_response(
                status, serial, fault.error_type, fault.message, fault.headers, fault.body
            )
        return status_response(status, fault.body, fault.headers, fault.message)

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not key.strip():
            return error_response(401, _NO_KEY)
        if key.strip() != self.api_key:
            message = (
                f"Incorrect API key provided: {mask_key(key.strip())}. You can find your API "
                "key at https://platform.openai.com/account/api-keys."
            )
            return error_response(401, message, code="invalid_api_key")
        return None

    async def _route(self, exchange: Exchange) -> web.StreamResponse:
        method, path = exchange.request.method, exchange.request.path
        if azure.is_azure(exchange.request):
            mapped = azure.openai_path(exchange.request)
            if mapped is None:
                return azure.not_found()
            path = mapped
        handler = self._routes.get((method, path))
        if handler is not None:
            return await handler(exchange)
        prefix = "/v1/models/"
        if method == "GET" and path.startswith(prefix) and len(path) > len(prefix):
            return await models.retrieve_model(exchange, path[len(prefix) :])
        return error_response(404, f"Invalid URL ({method} {path})")

    async def _route_anthropic(self, exchange: Exchange) -> web.StreamResponse:
        request = exchange.request
        handler = self._anthropic_routes.get((request.method, request.path))
        if handler is not None:
            return await handler(exchange)
        return anthropic_errors.error_response(404, exchange.serial)


def _speaks_anthropic(request: web.Request) -> bool:
    """Whether ``request`` is for Anthropic's API (and so gets Anthropic's errors)."""
    path = request.path
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return True
    return "anthropic-version" in request.headers


async def _answer_then_close(
    request: web.Request, answer: web.Response, delay: float
) -> web.Response:
    """Send ``answer`` whole, then (``delay`` seconds later) close the socket as an idle
    keep-alive timeout would: the client was told nothing, and may reuse it meanwhile."""
    await answer.prepare(request)
    await answer.write_eof()
    transport = request.transport
    if transport is not None:
        asyncio.get_running_loop().call_later(delay, transport.close)
    return answer


def _client_port(request: web.Request) -> int | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if isinstance(peer, tuple) else None
