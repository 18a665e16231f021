-- Staging bookkeeping (plus_analytics.privacy.staging). The per-source SELECTs are compiled from the
-- policy in Python (so a rule and its SQL cannot drift); what is static lives here.

-- name: version_table
-- The staging watermark: one row, its version bumped by every transaction that changes staging. A
-- build records the version it read; a publish never replaces a newer build with an older one, and any
-- run that finds staging newer than the published build rebuilds.
create table if not exists stg.staging_version (version bigint not null, changed_at timestamp not null, what varchar)

-- name: bump_version
insert into stg.staging_version
select coalesce(max(version), 0) + 1, $now, $what from stg.staging_version

-- name: trim_versions
delete from stg.staging_version where version < (select max(version) from stg.staging_version)

-- name: current_version
select coalesce(max(version), 0) from stg.staging_version

-- name: changes_table
-- What each staging version changed: per changed row (deleted or inserted), its day (event time) and its
-- change_ref (sources.yaml), so a build rebuilds only the mart days the changes touched
-- (sql/marts/dirty_days.sql). table_name '*' means everything changed (key rotation, policy change).
create table if not exists stg.staging_changes (version bigint not null, table_name varchar not null, day date, ref varchar)

-- name: changes_trimmed_table
-- The highest version whose changes are no longer in the log.
create table if not exists stg.staging_changes_trimmed (version bigint not null)

-- name: log_changes
insert into stg.staging_changes
select distinct $version, $table, cast({{ event_time }} as date), {{ ref }} from stg.{{ table }} as s where {{ where }}

-- name: log_everything
insert into stg.staging_changes values ($version, '*', null, null)

-- name: trim_changes
-- The log covers the last versions; a build from an older published version is a full one.
delete from stg.staging_changes where version <= $cut

-- name: forget_trimmed
delete from stg.staging_changes_trimmed

-- name: mark_trimmed
insert into stg.staging_changes_trimmed values ($cut)

-- name: prev_visitor_from_staging
-- A day's salt lives two days (retention): restaging older rows keeps the hash computed back then.
create or replace temp table _prev_visitor as
select {{ keys }}, visitor_hash from stg.{{ table }}
where visitor_hash is not null and ($day is null or _dt between $day and $until)

-- name: prev_visitor_empty
create or replace temp table _prev_visitor as
select {{ keys }}, null::varchar as visitor_hash from lake.{{ raw_table }} where false

-- name: erased_keys
-- Staging rows whose source rows erasure deleted, by the key staging knows them by.
concat_ws(chr(31), {{ key_exprs }}) in (
    select staging_key from ledger.erasure_rows
    where source = $source and request_id in (select unnest($requests)))

-- name: changed_rows
-- The raw rows erasure redacted (a field that referenced the subject), to be restaged.
create or replace temp table _changed_rows as
select distinct _file, _line from ledger.erasure_redactions
where source = $source and request_id in (select unnest($requests))

-- name: prev_visitor_of_changed
create or replace temp table _prev_visitor as
select {{ s_keys }}, s.visitor_hash from stg.{{ table }} s
where s.visitor_hash is not null and exists (select 1 from ({{ changed_keys }}) k where {{ match }})

-- name: changed
exists (select 1 from ({{ changed_keys }}) k where {{ match }})

-- name: retention_log_table
-- Retention's evidence for staging, written in the transaction that deletes (see restricted/schema.sql).
create table if not exists stg.retention_log (
    log_id varchar not null, run_id varchar not null, as_of date not null, layer varchar not null,
    location varchar not null, day date, rule varchar not null, rows_destroyed bigint not null,
    destroyed_at timestamp not null)

-- name: changed_rows_count
select count(*) from _changed_rows;
