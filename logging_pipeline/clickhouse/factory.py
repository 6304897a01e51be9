"""Choosing the transport from the log store's configuration."""

from __future__ import annotations

from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.config import LogStoreConfig


def transport_from_config(config: LogStoreConfig) -> LogTransport:
    """A ClickHouse server when ``clickhouse_url`` is set, else chdb in ``embedded_path``.

    Nothing is opened here (both transports connect on first use), so startup never waits for
    or fails on the store; a malformed URL raises ValueError at once.
    """
    if config.clickhouse_url:
        return ClickHouseConnectTransport(config.clickhouse_url)
    return ChdbTransport(config.embedded_path)
