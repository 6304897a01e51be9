"""Logging without proxying: request records built from what clients report.

The manual logger (``/custom/v1/log`` and its provider aliases), OpenTelemetry spans
(``/v1/trace/log``, OTLP ``/v1/traces``) and HoneyHive event batches each turn what they
receive into :class:`~logging_pipeline.capture.Capture` objects (:mod:`gateway.ingest.logged`)
and hand them to the same log sink as proxied requests: one log, one cost table, one query API.
"""
