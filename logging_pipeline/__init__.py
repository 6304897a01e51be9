"""Request records, the batch writer, ClickHouse and body storage (see the logging issue)."""
