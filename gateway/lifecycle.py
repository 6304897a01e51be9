"""Start-up checks and graceful shutdown of ``gateway serve`` (docs/operations.md, Shutdown).

**Start-up.** Every configuration problem is found before anything starts and printed as one
line naming the environment variable to fix — all of them at once, not the first one as a
traceback: :func:`validation_problems` for values the settings model refuses,
:func:`gateway.cli.configuration_problems` for combinations it cannot see.

**Shutdown.** On ``SIGTERM`` (``docker stop``, Kubernetes, ``systemctl stop``) uvicorn stops
accepting at once (new connections are refused) and closes idle keep-alive connections; the
requests in flight — streams included — get ``GATEWAY_SHUTDOWN_GRACE_SECONDS`` to finish and
are cut after that. Then the application's shutdown runs (:meth:`gateway.runtime.Runtime.close`):
the log writer writes what is journaled for up to ``GATEWAY_SHUTDOWN_LOG_DRAIN_SECONDS``, and
what it could not write stays in the record journal on disk, which the next start on this data
directory writes (the journal is the spill: nothing journaled is lost). The process exits 0.

:func:`not_ready_on_signal` makes ``/readyz`` answer 503 from the signal on, for whatever can
still ask (a request on a connection that was already open).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from pydantic import ValidationError

from gateway.settings import Settings

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_PROVIDER_FIELDS = ("provider_api_keys", "provider_base_urls")
"""Fields filled from many variables (``<PREFIX>_API_KEY``…): their errors name the variable."""


def variable_of(field: str, settings_cls: type[Settings] = Settings) -> str:
    """The environment variable that sets ``field`` (its alias, else ``GATEWAY_<FIELD>``)."""
    info = settings_cls.model_fields.get(field)
    if info is None:
        return field
    choices = getattr(info.validation_alias, "choices", None)
    if choices:
        return str(choices[0])
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return (prefix + field).upper()


def validation_problems(exc: ValidationError, settings_cls: type[Settings] = Settings) -> list[str]:
    """One line per refused value, naming its variable (never the value: it may be a secret)."""
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        field = location[0] if location else ""
        if field in _PROVIDER_FIELDS:
            problems.append(message)  # the message names the variable (settings.py)
            continue
        where = variable_of(field, settings_cls) if field else "settings"
        if len(location) > 1:
            where += f" ({'.'.join(location[1:])})"
        problems.append(f"{where}: {message}")
    return problems


def exit_on_signal() -> None:
    """Until the server takes the signals over: ``SIGTERM`` ends the process at once, with
    status 0 (nothing is being served yet).

    This is also what uvicorn calls when it is done: after its graceful shutdown it raises
    the signal again under the handler it found, which here ends the process with 0 — the
    shutdown it asked for has happened — instead of the signal's default (killed, 143).
    """
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


Handler = Callable[[int, FrameType | None], Any]


def not_ready_on_signal(stop: Callable[[], None]) -> Callable[[], None]:
    """Call ``stop`` (the readiness's) on ``SIGTERM``/``SIGINT``, then the server's handler.

    Installed by the application when it starts, inside the server's own signal handling, so
    the chain ends in uvicorn's graceful shutdown. Returns the function that puts the server's
    handlers back. Signals are the main thread's: elsewhere (an app served from a thread, as
    in tests) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[int, Handler] = {}
    previous: dict[int, Handler] = {}
    for signum in SHUTDOWN_SIGNALS:
        handler = signal.getsignal(signum)
        if not callable(handler):
            continue  # no server handles it: leave the default (or an explicit ignore) alone
        previous[signum] = handler

        def chained(received: int, frame: FrameType | None, then: Handler = handler) -> None:
            stop()
            then(received, frame)

        signal.signal(signum, chained)
        installed[signum] = chained

    def restore() -> None:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is installed[signum]:
                signal.signal(signum, handler)

    return restore
