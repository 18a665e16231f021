-- The hash-chained evidence (plus_analytics.ledger.evidence).

-- name: last
select seq, hash from ledger.erasure_evidence order by seq desc limit 1

-- name: append
insert into ledger.erasure_evidence select cast(seq as bigint), request_id, event, layer, location, cast(rows_removed as bigint),
    cast(check_result as bigint), detail, cast(recorded_at as timestamp), prev_hash, hash from _evidence_batch

-- name: chain
select seq, request_id, event, layer, location, rows_removed, check_result, detail, recorded_at, prev_hash, hash
from ledger.erasure_evidence order by seq

-- name: record_hash
select hash from ledger.erasure_evidence where seq = ?
