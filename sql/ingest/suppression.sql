-- Late arrivals of erased subjects (plus_analytics.ingest.suppression). The ledger is attached as ledger.

-- name: late_empty
create or replace temp table _late (_file varchar, _line bigint, request_id varchar, kind varchar,
    raw_value varchar, normalized varchar, role varchar, col varchar)

-- name: batch_ids_of_column
-- The batch's values of one identifier column: a subject column's, or a reference's (another person's
-- row naming this one: redacted, as erasure redacts references).
select c._file, c._line, m.kind, m.raw_value, m.normalized, {{ role }} as role, {{ col }} as col from _checked c
join _ids m on m.kind = {{ kind }} and m.raw_value = c.{{ column }}
where c.reason is null and m.normalized is not null

-- name: batch_ids_of_mentions
-- Identifiers mentioned in the batch's free text (anyone's row that mentions an erased person is dropped).
select t._file, t._line, t.kind, t.v as raw_value, m.normalized, 'mention' as role, cast(null as varchar) as col
from _mentions t join _checked c on c._file = t._file and c._line = t._line and c.reason is null
join _ids m on m.kind = t.kind and m.raw_value = t.v where m.normalized is not null

-- name: batch_ids
create or replace temp table _batch_ids as {{ ids }}

-- name: late_children
-- Rows whose parent row was erased or dropped as a late arrival (messages of an erased conversation).
insert into _late
select distinct c._file, c._line, k.request_id, null, null, null, 'child', null
from (select distinct cast({{ parent_key }} as varchar) as v from _checked where reason is null) p
join _tomb_key t on t.kind = $row_key
join raw.erased_row_keys k on k.source = $parent and k.blind = plus_pid(t.ipad, t.opad, p.v)
join _checked c on cast(c.{{ parent_key }} as varchar) = p.v and c.reason is null

-- name: remember_dropped_parents
-- The keys of this batch's dropped rows, for their children still to come.
insert into raw.erased_row_keys
select distinct s.request_id, $source, plus_pid(t.ipad, t.opad, cast(c.{{ key }} as varchar))
from _suppressed s join _checked c using (_file, _line) join _tomb_key t on t.kind = $row_key
except select request_id, source, blind from raw.erased_row_keys

-- name: remember_erased_parents
-- The keys of the parent rows an erasure removed (the key staging knows them by is their key: the policy
-- makes a parent's key its one kept column).
insert into raw.erased_row_keys
select distinct e.request_id, $source, plus_pid(t.ipad, t.opad, e.staging_key)
from ledger.erasure_rows e join _tomb_key t on t.kind = $row_key
where e.source = $source and e.request_id in (select unnest($ids))
except select request_id, source, blind from raw.erased_row_keys

-- name: batch_blind
create or replace temp table _batch_blind as
select b.kind, b.normalized, plus_pid(t.ipad, t.opad, b.normalized) as blind
from (select distinct kind, normalized from _batch_ids) b join _tomb_key t using (kind)

-- name: late
-- Only requests already removed count. Until then a request's data is loaded like anyone's, so
-- resolution follows it to every linked identifier and the selection finds every row (suppressing would
-- also forget the identifiers the selection looks rows up by); the removal, which takes the restricted
-- zone's write lock, tops its selection up with what an ingest loaded since and removes it with the rest.
create or replace temp table _late as
select distinct b._file, b._line, ts.request_id, b.kind, b.raw_value, b.normalized, b.role, b.col
from _batch_ids b join _batch_blind bb using (kind, normalized)
join ledger.tombstone_subjects ts on ts.kind = bb.kind and ts.blind = bb.blind
join ledger.tombstones t on t.request_id = ts.request_id and t.status not in ('pending', 'resolved', 'selected')

-- name: suppressed
-- Rows dropped: an erased person's own (a subject column) and anyone's free text that mentions them.
create or replace temp table _suppressed as
select distinct _file, _line, request_id, kind, raw_value, normalized, role from _late where role <> 'reference'

-- name: late_references
-- Fields redacted in rows that are kept: references to an erased person in another person's row.
create or replace temp table _late_references as
select distinct l._file, l._line, l.request_id, l.col from _late l
where l.role = 'reference' and (l._file, l._line) not in (select _file, _line from _suppressed)

-- name: redact_references
update _checked set {{ column }} = $redacted
where (_file, _line) in (select _file, _line from _late_references where col = $col)

-- name: references_per_day
select c._dt, count(distinct (r._file, r._line)) from _late_references r join _checked c using (_file, _line) group by all

-- name: referenced_fields
select distinct _file, _line, col from _late_references

-- name: values_of_suppressed
-- A dropped subject row's identifiers (all of them are the erased person's).
select {{ kind }} as kind, {{ column }} as v from _checked
where (_file, _line) in (select _file, _line from _suppressed where role = 'subject')

-- name: values_of_late
-- The erased person's values the batch named anywhere (subject column, reference, mention).
select kind, raw_value as v from _late where kind is not null

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

-- name: log_redacted
-- Per request and day, the kept rows whose references were redacted ($source labelled so by the caller).
insert into raw.suppression_log
select $batch || '-r' || row_number() over (order by r.request_id, c._dt), r.request_id,
       $source, c._dt, count(distinct (r._file, r._line)), $now
from _late_references r join _checked c using (_file, _line) group by r.request_id, c._dt

-- name: tombstones_exist
select count(*) > 0 from ledger.tombstone_subjects;

-- name: tomb_key_table
create or replace temp table _tomb_key (kind varchar, ipad blob, opad blob);

-- name: tomb_key_insert
insert into _tomb_key values (?, ?, ?);

-- name: late_count
select (select count(distinct (_file, _line)) from _suppressed), (select count(distinct (_file, _line)) from _late_references);
