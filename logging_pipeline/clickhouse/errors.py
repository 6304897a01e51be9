"""The one exception type the log store raises."""

from __future__ import annotations


class LogStoreError(Exception):
    """A request-log store operation failed (engine error, network, bad value, closed transport).

    Every failure inside a transport method surfaces as this type, chained to the original
    exception, so the batch writer needs one ``except`` to decide "spill and retry later".
    The message carries the engine's own text (``Code: N. DB::Exception: ...``) when there is one.
    """
