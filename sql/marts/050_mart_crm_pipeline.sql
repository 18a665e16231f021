-- Plus CRM contacts and deal pipeline per day.
-- A deal's state on a day is its latest snapshot updated on or before that day; open pipeline value is
-- the sum of the values of deals open at the end of the day.
create table fresh.mart_crm_pipeline as
with all_days as (
    select cast(unnest(generate_series(min(cast(updated_at as date)), max(cast(updated_at as date)), interval 1 day)) as date) as day
    from stg.stg_crm_deals
    where cast(updated_at as date) >= current_date - cast(getvariable('mart_days') as integer)
),

days as (
    select day from all_days where in_build('mart_crm_pipeline', day)
),

snapshots as (
    select deal_id, customer_pid, stage, value_thb, cast(created_at as date) as created_day, cast(updated_at as date) as updated_day, updated_at
    from stg.stg_crm_deals
),

state_at_day as (
    select d.day, s.deal_id, s.customer_pid, s.stage, s.value_thb
    from days as d
    inner join snapshots as s on s.updated_day <= d.day
    qualify row_number() over (partition by d.day, s.deal_id order by s.updated_at desc) = 1
),

changes as (
    select
        updated_day as day,
        count(distinct deal_id) filter (where stage = 'open' and created_day = updated_day) as deals_created,
        count(distinct deal_id) filter (where stage = 'won') as deals_won,
        count(distinct deal_id) filter (where stage = 'lost') as deals_lost,
        sum(value_thb) filter (where stage = 'won') as won_value_thb,
        count(distinct customer_pid) as customers_with_deal_changes
    from snapshots
    group by updated_day
),

pipeline as (
    select day, count(*) as open_deals, sum(value_thb) as open_pipeline_value_thb, count(distinct customer_pid) as open_customers
    from state_at_day
    where stage = 'open'
    group by day
),

new_contacts as (
    select cast(created_at as date) as day, count(distinct customer_pid) as new_contacts
    from stg.stg_crm_customers
    group by 1
)

select
    d.day,
    coalesce(n.new_contacts, 0) as new_contacts,
    coalesce(c.deals_created, 0) as deals_created,
    coalesce(c.deals_won, 0) as deals_won,
    coalesce(c.deals_lost, 0) as deals_lost,
    coalesce(c.won_value_thb, 0) as won_value_thb,
    coalesce(p.open_deals, 0) as open_deals,
    coalesce(p.open_pipeline_value_thb, 0) as open_pipeline_value_thb
from days as d
left join changes as c using (day)
left join pipeline as p using (day)
left join new_contacts as n using (day)
where coalesce(c.customers_with_deal_changes, 0) + coalesce(p.open_customers, 0) >= getvariable('k')
order by d.day;
