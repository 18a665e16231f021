-- Erasure (plus_analytics.erasure). The connection's own database is the privacy ledger; the restricted
-- zone is attached as raw (and staging as stg for verification). Policy names are templated, values bound.

-- name: take
select request_id from ledger.tombstones where status in (select unnest($statuses)) order by received_at, request_id

-- name: advance
update ledger.tombstones set status = $status where request_id in (select unnest($ids))

-- name: subjects_of
select request_id, kind, pseudonym, key_version, blind, sealed from ledger.tombstone_subjects
where request_id in (select unnest($ids)) order by request_id, kind, blind

-- name: subjects_table
create or replace temp table _subjects (request_id varchar, kind varchar, pseudonym varchar)

-- name: frontier_table
-- The identifiers found in the last round of resolution (at first: the ones given): only rows holding
-- one of them can link anything not yet found (semi-naive evaluation of the fixpoint).
create or replace temp table _frontier as select * from _subjects;
create or replace temp table _linked (request_id varchar, kind varchar, raw_value varchar)

-- name: written_values
-- The identifiers of _{{ of }} (request_id, kind, pseudonym) as written in the data (the raw values the
-- restricted zone's rows hold); returns their kinds.
create or replace temp table _{{ of }}_values as
select f.request_id, f.kind, m.raw_value from _{{ of }} f join raw.id_map m on m.kind = f.kind and m.pseudonym = f.pseudonym;
select distinct kind from _{{ of }}_values order by kind

-- name: hits
-- (request_id, _file, _line, then the columns `fields`) of the rows of {{ table }} whose `columns` (a
-- list of (column, kind), all among the fields) hold an identifier of _{{ among }} (request_id, kind,
-- raw_value): one pass over the table, then each row found is given the requests whose identifier it
-- holds.
with found as (
    select r._file, r._line{% for c in fields %}, r.{{ c }}{% endfor %} from lake.{{ table }} r
    where {% for c, k in columns %}{{ "" if loop.first else " or " }}r.{{ c }} in (select raw_value from _{{ among }} where kind = {{ k }}){% endfor %}
)
{%- for c, k in columns %}{{ "" if loop.first else " union" }}
select x.request_id, f.* from found f join _{{ among }} x on x.kind = {{ k }} and x.raw_value = f.{{ c }}
{%- endfor %}

-- name: linked
-- The values in the subject columns `columns` (a list of (column, kind)) of the rows `hits` found.
insert into _linked
with hit as ({{ hits }})
{%- for c, k in columns %}{{ "" if loop.first else " union all" }}
select request_id, {{ k }}, {{ c }} from hit where {{ c }} is not null
{%- endfor %}

-- name: next_round
-- The round's linked identifiers not found before become subjects and the next frontier; returns how many.
create or replace temp table _frontier as
select distinct l.request_id, l.kind, m.pseudonym
from _linked l join raw.id_map m on m.kind = l.kind and m.raw_value = l.raw_value and m.pseudonym is not null
anti join _subjects s on s.request_id = l.request_id and s.kind = l.kind and s.pseudonym = m.pseudonym;
insert into _subjects select * from _frontier;
delete from _linked;
select count(*) from _frontier

-- name: forms
-- Every written and normalized form of every subject identifier the restricted zone knows.
select s.request_id, s.kind, s.pseudonym, m.normalized, list(distinct m.raw_value) as written
from _subjects s join raw.id_map m on m.kind = s.kind and m.pseudonym = s.pseudonym
group by all

-- name: selection_tables
create or replace temp table _erase_rows (request_id varchar, source varchar, _file varchar, _line bigint,
    why varchar, staging_key varchar)

-- name: select_subject_rows
insert into _erase_rows
select distinct h.request_id, $source, h._file, h._line, 'subject', {{ staging_key }}
from ({{ hits }}) h join lake.{{ table }} r on r._file = h._file and r._line = h._line {{ key_joins }}

-- name: select_children
-- Rows that belong to an erased parent row (messages of erased conversations).
insert into _erase_rows
select distinct e.request_id, $source, r._file, r._line, $why, {{ staging_key }}
from lake.{{ table }} r join lake.{{ parent_table }} p on p.{{ parent_key }} = r.{{ parent_key }}
join _erase_rows e on e.source = $parent and e._file = p._file and e._line = p._line {{ key_joins }}

-- name: select_mentions
-- Anyone's free-text rows that mention a subject's identifier.
insert into _erase_rows
select distinct s.request_id, tm.source, tm._file, tm._line, 'mentions the subject in free text', null
from lake.text_mentions tm join raw.id_map m on m.kind = tm.kind and m.raw_value = tm.raw_value
join _subjects s on s.kind = m.kind and s.pseudonym = m.pseudonym
anti join _erase_rows e on e.source = tm.source and e._file = tm._file and e._line = tm._line

-- name: mention_staging_keys
update _erase_rows set staging_key = {{ staging_key }}
from lake.{{ table }} r {{ key_joins }}
where _erase_rows.source = $source and _erase_rows.staging_key is null
  and r._file = _erase_rows._file and r._line = _erase_rows._line

-- name: select_redactions
-- Non-subject identifier columns that reference a subject (a CRM record owned by their account): the
-- field is redacted, the row kept.
select distinct h.request_id, $source, h._file, h._line, $column from ({{ hits }}) h
anti join _erase_rows e on e.source = $source and e._file = h._file and e._line = h._line

-- name: quarantine_payloads
select source, _dt, _file, _line, payload from lake.quarantine

-- name: store_rows
-- The selection grows, never shrinks: a rerun after rows were already removed keeps their record.
insert into ledger.erasure_rows select distinct on (request_id, source, _file, _line) e.* from _erase_rows e
anti join ledger.erasure_rows r using (request_id, source, _file, _line)

-- name: ingested_since_selection
-- Requests whose selection saw another ingest log than the one there is now (any source and day was
-- ingested since, or the request was selected by a release that did not record it). Compared by content,
-- not by time: the machines that ingest and select need not agree on the clock.
select count(*) from (select unnest($ids) as request_id) r
left join ledger.erasure_selected_over s using (request_id)
where s.ingest_state is distinct from ({{ ingest_state }})

-- name: ingest_state
-- What the restricted zone's ingest log holds, as one value: every ingest replaces its days' rows.
select count(*) || ':' || coalesce(bit_xor(hash(source, _dt, ingested_at, rows_read, rows_loaded)), 0) from raw.ingest_log

-- name: no_ingest_state
select '0:0'

-- name: forget_selected_over
delete from ledger.erasure_selected_over where request_id in (select unnest($ids))

-- name: record_selected_over
insert into ledger.erasure_selected_over select unnest($ids), ({{ ingest_state }})

-- name: redactions_table
create or replace temp table _redactions (request_id varchar, source varchar, _file varchar, _line bigint, col varchar)

-- name: store_redactions
insert into ledger.erasure_redactions select * from _redactions except select * from ledger.erasure_redactions

-- name: quarantine_table
create or replace temp table _quarantined (request_id varchar, source varchar, _dt date, _file varchar, _line bigint)

-- name: store_quarantined
insert into ledger.erasure_quarantine select * from _quarantined except select * from ledger.erasure_quarantine

-- name: removed_per_table
select request_id, source, count(*) from ledger.erasure_rows where request_id in (select unnest($ids)) group by all

-- name: quarantined_per_request
select request_id, count(*) from ledger.erasure_quarantine where request_id in (select unnest($ids)) group by all

-- name: redacted_per_table
select request_id, source, count(*) from ledger.erasure_redactions where request_id in (select unnest($ids)) group by all

-- name: landing_lines
select _file, _line from ledger.erasure_rows where request_id in (select unnest($ids))
union select _file, _line from ledger.erasure_quarantine where request_id in (select unnest($ids))

-- name: landing_redactions
select _file, _line, col from ledger.erasure_redactions where request_id in (select unnest($ids))

-- name: landing_per_request
select request_id, count(distinct _file), count(*) from (
    select request_id, _file, _line from ledger.erasure_rows where request_id in (select unnest($ids)) union
    select request_id, _file, _line from ledger.erasure_quarantine where request_id in (select unnest($ids)) union
    select request_id, _file, _line from ledger.erasure_redactions where request_id in (select unnest($ids))) group by 1

-- name: touched_days
-- The days of a source's rows that the selection deletes or redacts: the only partitions erasure rewrites.
select distinct r._dt from lake.{{ table }} r join (
    select _file, _line from ledger.erasure_rows where source = $source and request_id in (select unnest($ids))
    union select _file, _line from ledger.erasure_redactions where source = $source and request_id in (select unnest($ids))
) s on r._file = s._file and r._line = s._line

-- name: erased_rows
-- A source's rows of the touched days as erasure leaves them, in one pass (plus_analytics.storage.lake.replace_days
-- streams them into the days' commit): the selection's rows left out, the references it redacts set to the marker.
select r.* {{ replace }}
from lake.{{ table }} r
left join (select _file, _line, list(distinct col) as cols from ledger.erasure_redactions
           where source = $source and request_id in (select unnest($ids)) group by all) x
    on r._file = x._file and r._line = x._line
anti join (select _file, _line from ledger.erasure_rows where source = $source and request_id in (select unnest($ids))) g
    on r._file = g._file and r._line = g._line
where list_contains(cast($days as date[]), r._dt)

-- name: redacted_column
case when list_contains(x.cols, {{ col }}) then $redacted else r.{{ column }} end as {{ column }}

-- name: line_touched_days
-- The days of a source's table of lines (quarantine, mentions) that hold a line of the selection
-- (ledger.erasure_quarantine, ledger.erasure_rows): the only partitions erasure rewrites.
select distinct t._dt from lake.{{ table }} t join (
    select _file, _line from ledger.{{ selection }} where source = $source and request_id in (select unnest($ids))
) s on t._file = s._file and t._line = s._line

-- name: kept_lines
-- A source's table of lines, its touched days as erasure leaves them: the selection's lines left out.
select t.* from lake.{{ table }} t
anti join (select _file, _line from ledger.{{ selection }} where source = $source and request_id in (select unnest($ids))) g
    on t._file = g._file and t._line = g._line
where list_contains(cast($days as date[]), t._dt)


-- name: delete_subject_ids
delete from raw.id_map where (kind, pseudonym) in (select kind, pseudonym from _subject_pids)

-- name: delete_subject_pseudonyms
delete from raw.pseudonyms where (kind, pseudonym) in (select kind, pseudonym from _subject_pids)

-- name: forms_table
create or replace temp table _forms as select cast(request_id as varchar) as request_id, cast(form as varchar) as form
from _forms_frame

-- name: identifier_rows_left
select f.request_id, count(*) from lake.{{ table }} r join _forms f on r.{{ column }} = f.form group by 1

-- name: staging_rows_left
select s.request_id, count(*) from stg.{{ table }} t join _subjects s on s.kind = {{ kind }} and s.pseudonym = t.{{ column }}
group by 1

-- name: staging_other_versions
select count(*) from stg.{{ table }} where key_version <> $version

-- name: found_at_resolution
-- Whether anything of the subject was ever found: identifiers at resolution, or rows removed or dropped
-- at ingest (late arrivals) since.
select request_id, coalesce(max(check_result) filter (where event = 'resolved'), 0)
       + coalesce(sum(rows_removed) filter (where event in ('removed', 'suppressed')), 0)
from ledger.erasure_evidence where request_id in (select unnest($ids)) group by 1

-- name: restaged_versions
select request_id, restaged_version from ledger.tombstones where request_id in (select unnest($ids))

-- name: forget_sealed
update ledger.tombstone_subjects set sealed = null where request_id in (select unnest($ids))

-- name: forget_selection
delete from ledger.{{ table }} where request_id in (select unnest($ids))

-- name: stamp_propagated_at
update ledger.tombstones set propagated_at = $value where request_id in (select unnest($ids))

-- name: stamp_verified_at
update ledger.tombstones set verified_at = $value where request_id in (select unnest($ids))

-- name: stamp_restaged_version
update ledger.tombstones set restaged_version = $value where request_id in (select unnest($ids))

-- name: rekey_subject
update ledger.tombstone_subjects as t set pseudonym = u.pseudonym, key_version = cast(u.key_version as integer)
from _update_rows as u where t.request_id = u.request_id and t.kind = u.kind and t.blind = u.blind

-- name: reseal_subject
update ledger.tombstone_subjects as t set sealed = cast(u.sealed as blob), key_version = cast(u.key_version as integer),
    pseudonym = u.pseudonym
from _update_rows as u where t.request_id = u.request_id and t.kind = u.kind and t.blind = u.blind

-- name: subjects_to_rekey
select request_id, kind, blind, sealed from ledger.tombstone_subjects where sealed is not null and key_version <> ?

-- name: register_requests
insert into ledger.tombstones select r, cast(t as timestamp), q, k, cast(d as timestamp), s, null, null, null from _new_requests

-- name: register_subjects
insert into ledger.tombstone_subjects select r, k, p, cast(v as integer), b, cast(s as blob) from _new_subjects

-- name: restaged_versions_of
select request_id, restaged_version from ledger.tombstones where request_id in (select unnest($ids))

-- name: subject_pids_table
create or replace temp table _subject_pids as
select cast(kind as varchar) as kind, cast(pseudonym as varchar) as pseudonym from _subject_pid_frame;

-- name: quarantine_payload_texts
select payload from lake.quarantine where payload is not null;
