-- Late arrivals of erased subjects (plus_analytics.ingest.suppression). The ledger is attached as ledger.

-- name: suppressed_empty
create or replace temp table _suppressed (_file varchar, _line bigint, request_id varchar, kind varchar,
    raw_value varchar, normalized varchar)

-- name: batch_ids_of_column
select c._file, c._line, m.kind, m.raw_value, m.normalized from _checked c
join _ids m on m.kind = {{ kind }} and m.raw_value = c.{{ column }}
where c.reason is null and m.normalized is not null

-- name: batch_ids
create or replace temp table _batch_ids as {{ ids }}

-- name: batch_blind
create or replace temp table _batch_blind as
select b.kind, b.normalized, plus_pid(t.ipad, t.opad, b.normalized) as blind
from (select distinct kind, normalized from _batch_ids) b join _tomb_key t using (kind)

-- name: suppressed
-- Only requests already removed suppress. Until then a request's data is loaded like anyone's, so
-- resolution follows it to every linked identifier and the selection finds every row (suppressing would
-- also forget the identifiers the selection looks rows up by); the removal, which takes the restricted
-- zone's write lock, tops its selection up with what an ingest loaded since and removes it with the rest.
create or replace temp table _suppressed as
select distinct b._file, b._line, ts.request_id, b.kind, b.raw_value, b.normalized
from _batch_ids b join _batch_blind bb using (kind, normalized)
join ledger.tombstone_subjects ts on ts.kind = bb.kind and ts.blind = bb.blind
join ledger.tombstones t on t.request_id = ts.request_id and t.status not in ('pending', 'resolved', 'selected')

-- name: values_of_suppressed
select {{ kind }} as kind, {{ column }} as v from _checked
where (_file, _line) in (select _file, _line from _suppressed)

-- name: values_of_kept
select {{ kind }}, {{ column }} from _checked
where reason is null and (_file, _line) not in (select _file, _line from _suppressed)

-- name: forget
create or replace temp table _forget as select kind, v from ({{ mine }}) where v is not null except ({{ kept }})

-- name: forget_normalized
create or replace temp table _forget_norm as select distinct m.kind, m.normalized from raw.id_map m
join _forget f on m.kind = f.kind and m.raw_value = f.v where m.normalized is not null

-- name: forget_ids
delete from raw.id_map where (kind, raw_value) in (select kind, v from _forget)

-- name: forget_pseudonyms
delete from raw.pseudonyms where (kind, normalized) in (select kind, normalized from _forget_norm)
    and (kind, normalized) not in (select kind, normalized from raw.id_map where normalized is not null)

-- name: log_suppressed
-- Per request and day, in the ingest's own transaction: the ledger's evidence chain copies it once.
insert into raw.suppression_log
select $batch || '-' || row_number() over (order by s.request_id, c._dt), s.request_id, $source, c._dt,
       count(distinct (s._file, s._line)), $now
from _suppressed s join _checked c using (_file, _line) group by s.request_id, c._dt

-- name: tombstones_exist
select count(*) > 0 from ledger.tombstone_subjects;

-- name: tomb_key_table
create or replace temp table _tomb_key (kind varchar, ipad blob, opad blob);

-- name: tomb_key_insert
insert into _tomb_key values (?, ?, ?);

-- name: suppressed_count
select count(distinct (_file, _line)) from _suppressed;
