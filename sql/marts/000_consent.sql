-- Consent and the marts' own retention period, applied before any mart is built.
-- Consent state of a cookie at an event's time is its latest consent record for that purpose recorded at
-- or before the event (ASOF join): consent given later applies from its timestamp, a withdrawal applies to
-- everything after it.
--   advertising: opt-in. An ad interaction counts only if its cookie had advertising consent at the time.
--   analytics:   first-party usage of logged-in users counts unless the cookie's holder had denied or
--                withdrawn analytics consent at the time.
-- Excluded events are counted per day in meta_consent_exclusions (documented metadata).
-- The two temp tables hold only the columns the marts read (all columns would cost several times the time).
-- The marts only count distinct accounts, sessions and visitors, so usage_events holds each pseudonym as
-- the 128-bit md5_number of it instead of its 32 characters: a pseudonym is itself 128 bits of an HMAC, so
-- two of them sharing an md5 is as unlikely as two people sharing a pseudonym, and every count stays what it
-- was; the ASOF join sorts its rows with their payload, and 32-character strings spill under the memory
-- limit where 128-bit numbers do not. A NULL pseudonym stays NULL and is not counted.
create temp table usage_events as
with consent as (
    select cookie_pid, recorded_at, granted
    from stg.stg_platform_consent
    where purpose = 'analytics'
),
events as materialized (
    select
        event_ts, cookie_pid, product, event_type, feature,
        md5_number(account_pid) as account_pid,
        md5_number(session_pid) as session_pid,
        md5_number(visitor_hash) as visitor_hash,
        device_type, os_family, browser_family, country
    from stg.stg_platform_usage_events
    where cast(event_ts as date) >= current_date - cast(getvariable('mart_days') as integer)
        and in_build('consent_events', cast(event_ts as date))
)
select e.event_ts, e.product, e.event_type, e.feature, e.account_pid, e.session_pid, e.visitor_hash,
       e.device_type, e.os_family, e.browser_family, e.country, coalesce(c.granted, true) as consented
from events as e
asof left join consent as c
    on c.cookie_pid = e.cookie_pid and c.recorded_at <= e.event_ts;

create temp table ad_interactions as
with consent as (
    select cookie_pid, recorded_at, granted
    from stg.stg_platform_consent
    where purpose = 'advertising'
)
select i.event_ts, i.campaign_id, i.cookie_pid, coalesce(c.granted, false) as consented
from stg.stg_adtech_interactions as i
asof left join consent as c
    on c.cookie_pid = i.cookie_pid and c.recorded_at <= i.event_ts
where cast(i.event_ts as date) >= current_date - cast(getvariable('mart_days') as integer)
    and in_build('consent_events', cast(i.event_ts as date));

create table fresh.meta_consent_exclusions as
select cast(event_ts as date) as day, 'platform_usage_events' as source, 'analytics' as purpose,
       count(*) filter (where not consented) as events_excluded, count(*) as events_total
from usage_events
where in_build('meta_consent_exclusions', cast(event_ts as date))
group by all
union all
select cast(event_ts as date), 'adtech_interactions', 'advertising',
       count(*) filter (where not consented), count(*)
from ad_interactions
where in_build('meta_consent_exclusions', cast(event_ts as date))
group by all
order by 1, 2;
