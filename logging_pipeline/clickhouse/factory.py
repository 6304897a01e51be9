"""Choosing the transport from the gateway settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from logging_pipeline.clickhouse.transport import LogTransport

if TYPE_CHECKING:
    from gateway.settings import Settings


def transport_from_settings(settings: Settings) -> LogTransport:
    """A ClickHouse server when ``CLICKHOUSE_URL`` is set, else chdb under ``data_dir``.

    Nothing is opened here (both transports connect on first use), so startup never waits for
    or fails on the store; a malformed URL raises ValueError at once.
    """
    if settings.clickhouse_url:
        return ClickHouseConnectTransport(settings.clickhouse_url)
    return ChdbTransport(settings.data_dir / "clickhouse")
