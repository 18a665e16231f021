-- Outbox copies (plus_analytics.ledger.outbox): into the ledger, from {{ alias }}, the
-- attached database whose outbox is read.

-- name: new_suppressions
select s.suppression_id, s.request_id, s.source, s._dt, s.rows_dropped from {{ alias }}.suppression_log s
anti join ledger.outbox_copied c on c.record_id = s.suppression_id
order by s.recorded_at, s.suppression_id

-- name: new_retention
select r.log_id, r.run_id, r.as_of, r.layer, r.location, r.day, r.rule, r.rows_destroyed, r.destroyed_at
from {{ alias }}.retention_log r anti join ledger.outbox_copied c on c.record_id = r.log_id
order by r.destroyed_at, r.log_id
