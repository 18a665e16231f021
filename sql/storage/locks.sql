-- The zones' locks in PostgreSQL (plus_analytics.storage.locks, PLUS_ZONE_LOCKS): advisory locks of the
-- server the deployment's machines share, one bigint key per zone file. PostgreSQL's SQL, not DuckDB's.

-- name: try_exclusive
select pg_try_advisory_lock(%(key)s)

-- name: try_shared
select pg_try_advisory_lock_shared(%(key)s)

-- name: unlock
select pg_advisory_unlock(%(key)s)

-- name: holders
-- Who holds a key: a bigint key is shown split in two (its high and low 32 bits) with objsubid 1.
select a.application_name, a.backend_start
from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.classid = %(high)s and l.objid = %(low)s and l.objsubid = 1
