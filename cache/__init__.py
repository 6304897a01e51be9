"""Response cache keys and backends (see the caching issue)."""
