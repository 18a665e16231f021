-- The DPO report (plus_analytics.erasure.report): the ledger is the connection's own database; staging
-- is attached read-only as stg when present.

-- name: requests
select request_id, received_at, requester, id_kind, deadline, status, propagated_at, verified_at
from ledger.tombstones order by received_at

-- name: evidence
select seq, request_id, event, layer, location, rows_removed, check_result, detail, recorded_at
from ledger.erasure_evidence order by seq

-- name: steps
select request_id, step, max(done_at) from ledger.erasure_steps group by 1, 2

-- name: linked
select request_id, count(*) from ledger.tombstone_subjects group by 1

-- name: retention
select layer, location, rule, count(distinct day), min(day), max(day), sum(rows_destroyed), max(destroyed_at)
from ledger.retention_evidence group by all order by max(destroyed_at) desc, layer, location

-- name: retention_by_day
select layer, location, day, rule, rows_destroyed, destroyed_at from ledger.retention_evidence
order by destroyed_at desc, layer, location, day

-- name: consent_changes
select cast(recorded_at as date), purpose, count(*) filter (where granted), count(*) filter (where not granted),
       string_agg(distinct source, ', ' order by source)
from stg.stg_platform_consent group by 1, 2 order by 1 desc, 2

-- name: consent_exclusions
select source, purpose, count(*), sum(events_excluded), sum(events_total)
from analytics.meta_consent_exclusions group by all order by 1
