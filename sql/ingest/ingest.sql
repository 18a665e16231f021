-- Ingest (plus_analytics.ingest). Per-source column lists are composed from the policy in Python and
-- passed as identifiers; every value is bound.

-- name: batch_files
create or replace temp table _batch_files as
select i - 1 as f, cast($days as date[])[i] as _dt, cast($names as varchar[])[i] as _file
from range(1, len(cast($names as varchar[])) + 1) t(i)

-- name: undeclared_keys
select distinct k from (
    select unnest(json_keys(p)) as k from _batch_lines
    where keep and not bad and json_valid(p) and json_type(p) = 'OBJECT')
where k not in (select unnest($declared))

-- name: json_candidates
-- One statement over the batch's lines as they lie in memory (``_batch_lines``, an Arrow table over the
-- files' bytes): each line's verdict (undecodable, not JSON, not an object) and, for an object, every
-- declared key's JSON type and text value, from one call each over the line rather than a call per key.
-- JSON functions re-parse their text argument, and a CASE around them costs several times the call
-- itself, so the validity is settled by filters and the extraction joined to it. A line keeps its newline
-- (JSON ignores it); only a quarantined line's payload (``_payloads``) is cut at it.
create or replace temp table _cand as
select b._dt, b._file, l.n as _line, coalesce(l._err, if(o.is_object, null, 'not a JSON object')) as _err,
       {{ columns }}
from (select f, n, case when bad then 'invalid UTF-8' when not json_valid(p) then 'invalid JSON' end as _err
      from _batch_lines where keep) l
join _batch_files b using (f)
left join (select f, n, true as is_object, json_type(p, $paths) as types, json_extract_string(p, $paths) as texts
           from _batch_lines where keep and not bad and json_valid(p) and json_type(p) = 'OBJECT') o using (f, n)

-- name: csv_candidates
create or replace temp table _cand as
select b._dt, b._file, c.n as _line, cast(c._err as varchar) as _err, {{ columns }}
from _batch_lines c join _batch_files b using (f)

-- name: payloads
-- What a quarantined line keeps is read from the batch's lines only for the lines quarantined.
create or replace temp view _payloads as
select b._file, l.n as _line, cast(l.p as varchar) as payload from _batch_lines l join _batch_files b using (f)

-- name: drop_payloads
drop view if exists _payloads

-- name: drop_batch_files
drop table if exists _batch_files

-- name: checked
-- One CASE per column yields the first problem with it (or NULL); the row's reason joins them.
create or replace temp table _checked as
select *, coalesce(_err, nullif(concat_ws('; ', {{ problems }}), '')) as reason from (
    select c._dt, c._file, c._line, c._err, {{ checks }},
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
      join lake.{{ raw_table }} e on {{ key_match }} and e._dt < c._dt
      where c.reason is null and e._dt not in (select distinct _dt from _cand)) d
where _checked._file = d._file and _checked._line = d._line

-- name: mentions_empty
create or replace temp table _mentions (_file varchar, _line bigint, kind varchar, v varchar)

-- name: mentions_insert
insert into _mentions
select _file, _line, $kind, trim(unnest(regexp_extract_all({{ column }}, $regex, $group)), ' -')
from _cand where _err is null and {{ column }} is not null

-- name: kept_rows_of_day
select count(*) from lake.{{ raw_table }} where _dt = ?

-- name: event_days
select distinct cast({{ event_time }} as date) from _checked where reason is null

-- name: suppressed_per_day
select c._dt, count(distinct (s._file, s._line)) from _suppressed s join _checked c using (_file, _line) group by all

-- name: loaded_rows
-- The batch's rows that passed, as the source's table holds them (they replace the batch's days).
select _dt, _file, _line, {{ columns }}, $now as _ingested_at from _checked where reason is null

-- name: mention_rows
-- The identifiers the batch's loaded rows mention in free text: they replace its days in the source's
-- mentions table.
select distinct c._dt, m._file, m._line, m.kind, m.v as raw_value
from _mentions m join _checked c on c._file = m._file and c._line = m._line and c.reason is null
join _ids i on i.kind = m.kind and i.raw_value = m.v and i.error is null

-- name: quarantine_rows
-- The batch's lines that failed validation, with why: they replace its days in the source's quarantine table.
-- An NDJSON line still ends with its newline (and a carriage return before it): the payload does not.
select c._dt, c._file, c._line, c.reason,
    left({% if ndjson %}regexp_replace(p.payload, '\r?\n?$', ''){% else %}p.payload{% endif %}, $keep) as payload,
    $now as quarantined_at
from _checked c join _payloads p using (_file, _line) where c.reason is not null

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
