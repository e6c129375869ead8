"""The production backend: tenants, logs and the delivery queue in PostgreSQL, via asyncpg."""
