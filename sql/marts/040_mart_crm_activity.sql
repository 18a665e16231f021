-- Plus CRM activity per day and activity type.
create table fresh.mart_crm_activity as
with activities as (
    select cast(occurred_at as date) as day, activity_type, customer_pid, account_pid
    from stg.stg_crm_activities
    where cast(occurred_at as date) >= current_date - cast(getvariable('mart_days') as integer)
        and in_build('mart_crm_activity', cast(occurred_at as date))
),

cells as (
    select day, activity_type, count(distinct customer_pid) as people from activities group by all
)

select
    a.day,
    case when c.people < getvariable('k') then '(other)' else a.activity_type end as activity_type,
    count(*) as activities,
    count(distinct a.customer_pid) as customers,
    count(distinct a.account_pid) as accounts
from activities as a
inner join cells as c using (day, activity_type)
group by all
having count(distinct a.customer_pid) >= getvariable('k')
order by 1, 2;
