-- Feature usage (filters used, pins set, ...) per day and product.
create table fresh.mart_feature_usage as
with events as (
    select
        cast(event_ts as date) as day,
        product,
        event_type,
        coalesce(feature, 'none') as feature,
        account_pid
    from usage_events
    where consented and in_build('mart_feature_usage', cast(event_ts as date))
),

cells as (
    select day, product, event_type, feature, count(distinct account_pid) as people
    from events
    group by all
),

merged as (
    select
        e.day,
        e.product,
        case when c.people < getvariable('k') then '(other)' else e.event_type end as event_type,
        case when c.people < getvariable('k') then '(other)' else e.feature end as feature,
        e.account_pid
    from events as e
    inner join cells as c using (day, product, event_type, feature)
)

select
    day,
    product,
    event_type,
    feature,
    count(distinct account_pid) as accounts,
    count(*) as events
from merged
group by all
having count(distinct account_pid) >= getvariable('k')
order by day, product, event_type, feature;
