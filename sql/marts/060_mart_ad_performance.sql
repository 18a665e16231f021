-- Plus Adtech performance per day and campaign. Delivery totals come from the ad networks' daily
-- reports (no people in them); reach is the number of distinct pseudonymous people (cookies) with an
-- interaction that day with advertising consent at the time, and is null when it is below k
-- (reach_suppressed says so).
create table fresh.mart_ad_performance as
with campaigns as (
    select campaign_id, channel, objective
    from stg.stg_adtech_campaigns
    qualify row_number() over (partition by campaign_id order by created_at desc) = 1
),

performance as (
    select date as day, campaign_id, impressions, clicks, spend_thb, conversions
    from stg.stg_adtech_performance
    where date >= current_date - cast(getvariable('mart_days') as integer) and in_build('mart_ad_performance', date)
),

reach as (
    select cast(event_ts as date) as day, campaign_id, count(distinct cookie_pid) as people
    from ad_interactions
    where consented
    group by all
)

select
    p.day,
    p.campaign_id,
    coalesce(c.channel, 'unknown') as channel,
    coalesce(c.objective, 'unknown') as objective,
    p.impressions,
    p.clicks,
    case when p.impressions > 0 then p.clicks / p.impressions else 0 end as ctr,
    p.spend_thb,
    p.conversions,
    case when p.conversions > 0 then round(p.spend_thb / p.conversions, 2) end as cpa_thb,
    case when coalesce(r.people, 0) >= getvariable('k') then r.people end as reach,
    coalesce(r.people, 0) < getvariable('k') as reach_suppressed
from performance as p
left join campaigns as c using (campaign_id)
left join reach as r using (day, campaign_id)
order by p.day, p.campaign_id;
