"""Storage primitives: zone locks, DuckDB connections and transactions, SQL files, file rewrites.

Everything that opens a zone file goes through :func:`plus_analytics.storage.locks.zone` (readers and
writers alike), so a DuckDB lock conflict is impossible: a bounded wait at most.
"""
