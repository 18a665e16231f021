-- Incremental builds (plus_analytics.marts.build). Every mart file filters its rows with the macro
-- in_build(mart, day): true for every day in a full build; in an incremental build, true for the days
-- in _dirty, the mart days the staging changes since the published build touched.

-- name: in_build_all
create or replace temp macro in_build(m_, d_) as true

-- name: in_build_dirty
create or replace temp macro in_build(m_, d_) as d_ in (select day from _dirty where mart = m_)

-- name: dirty_days
-- From the change log (each changed staging row's day and change_ref, see sources.yaml) to the mart days
-- to rebuild, following what each mart reads:
--   usage marts: usage events of the day; a consent decision changes its cookie's events from that day on;
--   ad performance: delivery totals, interactions (and consent) of the day; a campaign, all its days;
--   chat volume: conversations by start day; a message, its conversation's start day;
--   CRM activity: activities of the day; CRM pipeline: a deal snapshot changes every day from its own to
--   the last (the state is carried forward), a customer the day it was created.
-- 'consent_events' is the union of the days the consent-joined event tables (000_consent.sql) must hold.
create or replace temp table _dirty as
with ch as (
    select table_name, day, ref from stg.staging_changes where version > $published and day is not null
),
usage_days as (
    select day from ch where table_name = 'stg_platform_usage_events'
    union
    select cast(e.event_ts as date) from stg.stg_platform_usage_events as e
    inner join ch on ch.table_name = 'stg_platform_consent' and e.cookie_pid = ch.ref and cast(e.event_ts as date) >= ch.day
),
ad_days as (
    select day from ch where table_name = 'stg_adtech_interactions'
    union
    select cast(i.event_ts as date) from stg.stg_adtech_interactions as i
    inner join ch on ch.table_name = 'stg_platform_consent' and i.cookie_pid = ch.ref and cast(i.event_ts as date) >= ch.day
),
ad_performance_days as (
    select day from ad_days
    union
    select day from ch where table_name = 'stg_adtech_performance'
    union
    select p.date from stg.stg_adtech_performance as p
    inner join ch on ch.table_name = 'stg_adtech_campaigns' and p.campaign_id = ch.ref
),
chat_days as (
    select day from ch where table_name = 'stg_connect_conversations'
    union
    select cast(c.started_at as date) from stg.stg_connect_conversations as c
    inner join ch on ch.table_name = 'stg_connect_messages' and c.conversation_id = ch.ref
),
pipeline_first as (
    select min(day) as first from ch where table_name = 'stg_crm_deals'
),
pipeline_days as (
    select cast(unnest(generate_series(
        f.first,
        greatest(f.first, (select max(cast(updated_at as date)) from stg.stg_crm_deals), (select max(day) from build.mart_crm_pipeline)),
        interval 1 day)) as date) as day
    from pipeline_first as f where f.first is not null
    union
    select cast(try_cast(ref as timestamp) as date) from ch where table_name = 'stg_crm_customers'
),
exclusion_days as (
    select day from usage_days union select day from ad_days
)
select 'mart_daily_active_usage' as mart, day from usage_days
union all select 'mart_feature_usage', day from usage_days
union all select 'meta_consent_exclusions', day from exclusion_days
union all select 'mart_ad_performance', day from ad_performance_days
union all select 'consent_events', day from (select day from exclusion_days union select day from ad_performance_days)
union all select 'mart_chat_volume', day from chat_days
union all select 'mart_crm_activity', day from ch where table_name = 'stg_crm_activities'
union all select 'mart_crm_pipeline', day from pipeline_days

-- name: everything_changed
-- A change the log cannot follow (key rotation, policy change) since the published build, or a log that
-- no longer reaches back to it.
select exists (select 1 from stg.staging_changes where version > $published and table_name = '*')
    or $published < (select coalesce(max(version), 0) from stg.staging_changes_trimmed)

-- name: attach_fresh
-- The mart files write here; the marts then go into the build (copy, or merge by day).
attach ':memory:' as fresh

-- name: copy
create table build.{{ table }} as from fresh.{{ table }}

-- name: merge_delete
-- The rebuilt days replace the published ones; days past the marts' retention period go.
delete from build.{{ table }}
where day in (select day from _dirty where mart = $mart) or day < current_date - cast(getvariable('mart_days') as integer)

-- name: merge_insert
insert into build.{{ table }} by name select * from fresh.{{ table }}

-- name: dirty_counts
select mart, count(*) from _dirty group by 1;
