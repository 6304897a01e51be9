"""Rate-limit policy parsing and backends (see the rate-limit issue)."""
