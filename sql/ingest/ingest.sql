-- Ingest (plus_analytics.ingest). Per-source column lists are composed from the policy in Python and
-- passed as identifiers; every value is bound.

-- name: lines_table
create or replace temp table _lines (_dt date, _file varchar, _line bigint, payload varchar, _err varchar)

-- name: insert_file_lines
-- A line keeps its newline (JSON ignores it); only a quarantined line's payload is cut at it.
insert into _lines select $day, $name, n, p, if(list_contains($bad, n), 'invalid UTF-8', null) from _file_lines where keep

-- name: json_objects
-- Each line is parsed as few times as possible: JSON functions re-parse their text argument, and a CASE
-- around them costs several times the call itself, so validity is settled by filters first.
create or replace temp table _objects as
select _dt, _file, _line, json_type(payload) = 'OBJECT' as is_object
from _lines where _err is null and json_valid(payload)

-- name: undeclared_keys
select distinct k from (
    select unnest(json_keys(l.payload)) as k from _lines l semi join _objects o
    on o._file = l._file and o._line = l._line and o.is_object)
where k not in (select unnest($declared))

-- name: json_candidates
create or replace temp table _cand as
select _dt, _file, _line, payload, _err, {{ columns }}
from (
    select l._dt, l._file, l._line, l.payload,
           coalesce(l._err, if(o._line is null, 'invalid JSON', if(o.is_object, null, 'not a JSON object'))) as _err,
           json_extract(if(o.is_object, l.payload, '{}'), $paths) as j
    from _lines l left join _objects o on o._file = l._file and o._line = l._line)

-- name: csv_candidates
create or replace temp table _cand as
select cast(_dt as date) as _dt, _file, _line, payload, cast(_err as varchar) as _err, {{ columns }}
from _csvrows

-- name: checked
-- One CASE per column yields the first problem with it (or NULL); the row's reason joins them.
create or replace temp table _checked as
select *, coalesce(_err, nullif(concat_ws('; ', {{ problems }}), '')) as reason from (
    select c._dt, c._file, c._line, c.payload, c._err, {{ checks }},
           {{ typed }}
    from _cand c
    {{ joins }})

-- name: duplicates_in_batch
-- Duplicate keys, as if the batch's days were ingested one by one in order: the first valid copy of a key
-- is kept; any other copy is a duplicate within its delivery if its own day has an earlier copy, else it
-- was delivered on an earlier day.
update _checked set reason = if(d.n_day > 1, $within, $earlier)
from (select _file, _line, n_day from (
        select _file, _line, row_number() over (partition by {{ key }} order by _dt, _file, _line) as n,
               row_number() over (partition by {{ key }}, _dt order by _file, _line) as n_day
        from _checked where reason is null) where n > 1) d
where _checked._file = d._file and _checked._line = d._line

-- name: duplicates_loaded
-- Rows already loaded for days outside the batch count as earlier deliveries for the days after them.
update _checked set reason = $earlier
from (select distinct c._file, c._line from _checked c
      join raw.{{ raw_table }} e on {{ key_match }} and e._dt < c._dt
      where c.reason is null and e._dt not in (select distinct _dt from _cand)) d
where _checked._file = d._file and _checked._line = d._line

-- name: mentions_empty
create or replace temp table _mentions (_file varchar, _line bigint, kind varchar, v varchar)

-- name: mentions_insert
insert into _mentions
select _file, _line, $kind, trim(unnest(regexp_extract_all({{ column }}, $regex, $group)), ' -')
from _cand where _err is null and {{ column }} is not null

-- name: kept_rows_of_day
select count(*) from raw.{{ raw_table }} where _dt = ?

-- name: event_days
select distinct cast({{ event_time }} as date) from _checked where reason is null

-- name: suppressed_per_day
select c._dt, count(distinct (s._file, s._line)) from _suppressed s join _checked c using (_file, _line) group by all

-- name: replace_rows
delete from raw.{{ raw_table }} where list_contains(cast($days as date[]), _dt)

-- name: insert_rows
insert into raw.{{ raw_table }} select _dt, _file, _line, {{ columns }}, $now from _checked where reason is null

-- name: replace_mentions
delete from raw.text_mentions where source = $s and list_contains(cast($days as date[]), _dt)

-- name: insert_mentions
insert into raw.text_mentions select distinct $s, c._dt, m._file, m._line, m.kind, m.v
from _mentions m join _checked c on c._file = m._file and c._line = m._line and c.reason is null
join raw.id_map i on i.kind = m.kind and i.raw_value = m.v and i.error is null

-- name: replace_quarantine
delete from raw.quarantine where source = $s and list_contains(cast($days as date[]), _dt)

-- name: insert_quarantine
-- An NDJSON line still ends with its newline (and a carriage return before it): the payload does not.
insert into raw.quarantine select $s, _dt, _file, _line, reason,
    left({% if ndjson %}regexp_replace(payload, '\r?\n?$', ''){% else %}payload{% endif %}, $keep), $now
from _checked where reason is not null

-- name: counts_per_day
select _dt, count(*), count(*) filter (where reason is null), count(*) filter (where reason is not null)
from _checked group by 1

-- name: replace_log
delete from raw.ingest_log where source = $s and list_contains(cast($days as date[]), _dt)

-- name: replace_column_log
delete from raw.ingest_column_log where source = $s and list_contains(cast($days as date[]), _dt)

-- name: insert_column_log
-- Per column, how many rows each problem sent to quarantine (the quality report; no values).
insert into raw.ingest_column_log
select $s, _dt, p.col, p.problem, count(*), $now from (
    select _dt, unnest([{{ pairs }}]) as p from _checked where reason is not null and _err is null
) where p.problem is not null
group by all

-- name: suppressed_lines
select distinct _file, _line from _suppressed;

-- name: drop_suppressed
delete from _checked where (_file, _line) in (select _file, _line from _suppressed);
