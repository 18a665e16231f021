-- Daily active usage by product, in long form: one row per (day, product, dimension, value).
-- dimension is one of: all, device_type, os_family, browser_family, country.
-- Small cells: a value describing fewer than k accounts is merged into '(other)'; an '(other)' that is
-- still below k is dropped (see README, "Small cells").
create table mart_daily_active_usage as
with events as (
    select
        cast(event_ts as date) as day,
        product,
        account_pid,
        session_pid,
        visitor_hash,
        device_type,
        os_family,
        browser_family,
        country
    from usage_events
    where consented
),

long_form as (
    select day, product, 'all' as dimension, 'all' as dimension_value, account_pid, session_pid, visitor_hash from events
    union all
    select day, product, 'device_type', device_type, account_pid, session_pid, visitor_hash from events
    union all
    select day, product, 'os_family', os_family, account_pid, session_pid, visitor_hash from events
    union all
    select day, product, 'browser_family', browser_family, account_pid, session_pid, visitor_hash from events
    union all
    select day, product, 'country', country, account_pid, session_pid, visitor_hash from events
),

cells as (
    select day, product, dimension, dimension_value, count(distinct account_pid) as people
    from long_form
    group by all
),

merged as (
    select
        l.day,
        l.product,
        l.dimension,
        case when c.people < getvariable('k') then '(other)' else l.dimension_value end as dimension_value,
        l.account_pid,
        l.session_pid,
        l.visitor_hash
    from long_form as l
    inner join cells as c using (day, product, dimension, dimension_value)
)

select
    day,
    product,
    dimension,
    dimension_value,
    count(distinct account_pid) as active_accounts,
    count(distinct visitor_hash) as unique_visitors,
    count(distinct session_pid) as sessions,
    count(*) as events
from merged
group by all
having count(distinct account_pid) >= getvariable('k')
order by day, product, dimension, dimension_value;
