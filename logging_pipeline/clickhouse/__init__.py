"""The ClickHouse request log: one interface, two transports, and the schema migrator.

* :class:`ChdbTransport` — the embedded engine (chdb), the default: data under
  ``GATEWAY_DATA_DIR/clickhouse``. **Embedded mode is single-process**: chdb runs one engine
  per process, bound to one data directory, so only one gateway process may use it (the CLI
  refuses ``--workers N>1`` with embedded storage). Every chdb call runs in one dedicated
  worker thread, so the event loop never blocks on the engine.
* :class:`ClickHouseConnectTransport` — a ClickHouse server over HTTP when ``CLICKHOUSE_URL``
  is set (``http://user:password@host:8123/database``), through clickhouse-connect's async
  client; any number of processes can share it.

Both take ``{name:Type}`` server-side parameters (never values formatted into SQL), insert a
batch in one statement, return query rows with the same Python values (conventions in
:mod:`logging_pipeline.clickhouse.values`) and raise :class:`LogStoreError` for every failure.
"""

from __future__ import annotations

from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.clickhouse.factory import transport_from_config
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.clickhouse.transport import LogTransport

__all__ = [
    "ChdbTransport",
    "ClickHouseConnectTransport",
    "LogStoreError",
    "LogTransport",
    "migrate",
    "transport_from_config",
]
